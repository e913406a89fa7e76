import { readFileSync } from "node:fs";
import { createLocalJWKSet, createRemoteJWKSet, customFetch, errors, type JWTVerifyGetKey } from "jose";
import { Agent, fetch as undiciFetch } from "undici";

export interface KeySourceOptions {
  /** The issuer identifier; discovery is `<issuer>/.well-known/openid-configuration`. */
  readonly issuer: string;
  /** Explicit JWKS URI; when absent it comes from discovery. */
  readonly jwksUri?: string;
  /** Where to fetch discovery from when it is not the issuer URL (a Kubernetes API server). */
  readonly discoveryUrl?: string;
  /** Minimum time between two JWKS fetches (an unknown `kid` cannot force more). */
  readonly cooldownMs: number;
  /** How long fetched keys are trusted without a refetch. */
  readonly cacheMaxAgeMs: number;
  /** Timeout of one discovery or JWKS request. */
  readonly timeoutMs: number;
  /** PEM CA bundle for the issuer's TLS (the cluster CA in Kubernetes). */
  readonly caFile?: string;
  /** Bearer token file sent with discovery and JWKS requests (the pod's own ServiceAccount token). */
  readonly bearerTokenFile?: string;
  /** Where the issuer is in the config (`identities.kubernetes.0`), named when its files cannot be read. */
  readonly configKey?: string;
}

/** Injectable fetch, so tests can count requests; defaults to undici's. */
export type FetchLike = (
  url: string,
  init: { headers: Record<string, string>; signal: AbortSignal; redirect?: "follow" | "manual" | "error" },
) => Promise<Response>;

/**
 * The signing keys of one issuer: discovery (once, then cached) and jose's remote JWK set, which
 * keeps one fetch in flight, honours the cooldown, and keeps serving cached keys while the issuer
 * is down.
 */
export function createKeySource(options: KeySourceOptions, fetchImpl?: FetchLike): JWTVerifyGetKey {
  const doFetch = fetchImpl ?? defaultFetch(options);
  let jwks: JWTVerifyGetKey | undefined;
  let resolving: Promise<JWTVerifyGetKey> | undefined;
  let lastDiscoveryFailure = 0;

  const resolveJwks = async (): Promise<JWTVerifyGetKey> => {
    const uri = options.jwksUri ?? (await discoverJwksUri(options, doFetch));
    const remote = createRemoteJWKSet(new URL(uri), {
      cooldownDuration: options.cooldownMs,
      cacheMaxAge: options.cacheMaxAgeMs,
      timeoutDuration: options.timeoutMs,
      [customFetch]: (url: string, init: RequestInit) =>
        doFetch(url, {
          headers: withBearer(url, init.headers, options),
          signal: init.signal as AbortSignal,
          // jose asks not to follow redirects: a JWKS that moves is a configuration change.
          redirect: init.redirect === "manual" ? "manual" : undefined,
        }),
    });
    return keepLastKeysWhileDown(remote, options.cooldownMs);
  };

  return async function getKey(header, token) {
    if (!jwks) {
      if (!resolving) {
        // Discovery failures respect the cooldown too, so a flood of tokens cannot hammer the issuer.
        if (Date.now() - lastDiscoveryFailure < options.cooldownMs) {
          throw new Error(`discovery for ${options.issuer} failed recently; retrying after the cooldown`);
        }
        resolving = resolveJwks().then(
          (resolved) => {
            jwks = resolved;
            return resolved;
          },
          (error: unknown) => {
            lastDiscoveryFailure = Date.now();
            resolving = undefined;
            throw error;
          },
        );
      }
      await resolving;
    }
    return (jwks as JWTVerifyGetKey)(header, token);
  };
}

async function discoverJwksUri(options: KeySourceOptions, doFetch: FetchLike): Promise<string> {
  const base = (options.discoveryUrl ?? options.issuer).replace(/\/+$/, "");
  const url = `${base}/.well-known/openid-configuration`;
  const response = await doFetch(url, {
    headers: withBearer(url, undefined, options),
    signal: AbortSignal.timeout(options.timeoutMs),
  });
  if (!response.ok) throw new Error(`discovery for ${options.issuer} answered ${response.status}`);
  const document = (await response.json()) as { issuer?: unknown; jwks_uri?: unknown };
  // OpenID Connect Discovery §4.3: the document must name the issuer we asked about.
  if (document.issuer !== options.issuer) {
    throw new Error(`discovery for ${options.issuer} names issuer ${String(document.issuer)}`);
  }
  if (typeof document.jwks_uri !== "string")
    throw new Error(`discovery for ${options.issuer} has no jwks_uri`);
  // A Kubernetes API server advertises its external URL; fetch keys from where discovery came from.
  if (options.discoveryUrl) return `${base}${new URL(document.jwks_uri).pathname}`;
  return document.jwks_uri;
}

/**
 * jose's remote set refetches keys older than `cacheMaxAge` before every verification and fails
 * when that fetch fails, so an issuer outage longer than the cache age would turn into refused
 * tokens, and a flood of unknown `kid`s would refetch from the down issuer on every request (its
 * cooldown only counts successful fetches). Here, after a failed fetch, tokens are verified with
 * the last keys the issuer served, and the issuer is not asked again until the cooldown has passed.
 */
function keepLastKeysWhileDown(remote: RemoteJwks, cooldownMs: number): JWTVerifyGetKey {
  let failedAt = Number.NEGATIVE_INFINITY;
  let lastKnown: JWTVerifyGetKey | undefined;
  const fromLastKnown = (error: unknown): JWTVerifyGetKey => {
    if (!lastKnown) {
      const jwks = remote.jwks();
      if (!jwks) throw error;
      lastKnown = createLocalJWKSet(jwks);
    }
    return lastKnown;
  };
  return async function getKey(header, token) {
    if (Date.now() - failedAt < cooldownMs) {
      return fromLastKnown(
        new Error("fetching the issuer's keys failed recently; retrying after the cooldown"),
      )(header, token);
    }
    try {
      const key = await remote(header, token);
      lastKnown = undefined;
      return key;
    } catch (error) {
      // A key lookup that found no (or several) keys is an answer about the token, not the issuer.
      if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys)
        throw error;
      if (error instanceof errors.JOSENotSupported) throw error;
      failedAt = Date.now();
      lastKnown = undefined;
      return fromLastKnown(error)(header, token);
    }
  };
}

type RemoteJwks = ReturnType<typeof createRemoteJWKSet>;

/**
 * The request headers for a discovery or JWKS fetch of `url`. The pod's own token goes only to the
 * API server named by `discoveryUrl`: an issuer or a `jwks_uri` elsewhere never sees it.
 */
function withBearer(
  url: string,
  headers: RequestInit["headers"],
  options: KeySourceOptions,
): Record<string, string> {
  // jose hands over a Headers instance (accept, user-agent); spreading one would drop them all.
  const result: Record<string, string> = {};
  for (const [name, value] of new Headers(headers)) result[name] = value;
  const toApiServer =
    options.discoveryUrl !== undefined && new URL(url).origin === new URL(options.discoveryUrl).origin;
  if (options.bearerTokenFile && toApiServer) {
    // Re-read every time: the kubelet rotates projected tokens in place.
    const token = readIssuerFile(options, "tokenFile", options.bearerTokenFile).trim();
    result.authorization = `Bearer ${token}`;
  }
  return result;
}

/**
 * undici's fetch, trusting `caFile` when one is given. The CA is read at every fetch (key sets
 * are fetched rarely), not when the authenticator is built: a config for the cluster then still
 * loads (for `check`, `explain` and static tokens) where the file does not exist, only this
 * issuer's tokens are refused, as ERR_AUTH_UNAVAILABLE naming the key, until it can be read, and
 * a CA rotated in place (the kubelet updates `ca.crt` like the token) is trusted from then on.
 */
function defaultFetch(options: KeySourceOptions): FetchLike {
  let trusted: { ca: string; dispatcher: Agent } | undefined;
  return async (url, init) => {
    if (options.caFile) {
      const ca = readIssuerFile(options, "caFile", options.caFile);
      if (trusted?.ca !== ca) {
        void trusted?.dispatcher.close();
        trusted = { ca, dispatcher: new Agent({ connect: { ca } }) };
      }
    }
    return undiciFetch(url, { ...init, dispatcher: trusted?.dispatcher }) as unknown as Promise<Response>;
  };
}

function readIssuerFile(options: KeySourceOptions, key: "caFile" | "tokenFile", file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    const where = options.configKey ? `${options.configKey}.${key}` : key;
    throw new Error(`${where}: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? error}`, {
      cause: error,
    });
  }
}
