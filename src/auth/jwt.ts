import { createHash } from "node:crypto";
import {
  decodeJwt,
  decodeProtectedHeader,
  errors,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
} from "jose";
import { ProblemError } from "../errors.js";
import { challenges } from "./challenge.js";
import type { Identity } from "./identity.js";
import { createKeySource, type FetchLike, type KeySourceOptions } from "./jwks.js";

/** One trusted JWT issuer: a company IdP, a CI system, or a Kubernetes API server. */
export interface JwtIssuerOptions extends KeySourceOptions {
  /** The name teams use to refer to this issuer. */
  readonly name: string;
  readonly kind: "oidc" | "kubernetes";
  readonly audiences: readonly string[];
  /** Explicit allow-list; `none` and HMAC are refused by the config schema. */
  readonly algorithms: readonly string[];
  /** Required `typ` header, e.g. `at+jwt` (RFC 9068). */
  readonly typ?: string;
  readonly clockToleranceSec: number;
  readonly maxTokenBytes: number;
  /** Claim path (dots for nesting) holding the subject. */
  readonly subjectClaim: string;
  /** Claim path holding groups or roles (a string or an array of strings). */
  readonly groupsClaim?: string;
}

export interface JwtVerifierDeps {
  readonly fetch?: FetchLike;
  /** Clock for expiry checks, in milliseconds. */
  readonly now?: () => number;
  /** How many verified tokens to remember (until each one's `exp`). */
  readonly cacheSize?: number;
  /**
   * Key sources to reuse, by issuer settings. Pass the same map to the verifiers a config reload
   * builds, so fetched keys (and their cooldowns) survive the reload: otherwise every reload
   * starts cold, and one during an issuer outage would lose keys that were working.
   */
  readonly keySources?: Map<string, JWTVerifyGetKey>;
}

export type VerifyJwt = (token: string) => Promise<Identity>;

/** Headers that would make a verifier fetch or trust key material named by the token itself. */
const FORBIDDEN_HEADERS = ["jku", "x5u", "jwk", "x5c"] as const;
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

export function looksLikeJwt(token: string): boolean {
  return JWT_SHAPE.test(token);
}

/**
 * Verifies JWTs from a fixed set of issuers. The verifier is chosen by the token's `iss` from the
 * allow-list before anything is fetched (RFC 8725 §3.8): a token naming an unknown issuer costs
 * nothing. Verified tokens are remembered by hash until they expire.
 */
export function createJwtVerifier(
  issuers: readonly JwtIssuerOptions[],
  deps: JwtVerifierDeps = {},
): VerifyJwt {
  const now = deps.now ?? Date.now;
  const byIssuer = new Map<string, { options: JwtIssuerOptions; keys: JWTVerifyGetKey }>();
  for (const options of issuers) {
    const sourceKey = JSON.stringify([
      options.issuer,
      options.jwksUri,
      options.discoveryUrl,
      options.caFile,
      options.bearerTokenFile,
      options.cooldownMs,
      options.cacheMaxAgeMs,
      options.timeoutMs,
    ]);
    let keys = deps.keySources?.get(sourceKey);
    if (!keys) {
      keys = createKeySource(options, deps.fetch);
      deps.keySources?.set(sourceKey, keys);
    }
    byIssuer.set(options.issuer, { options, keys });
  }
  const maxTokenBytes = Math.max(0, ...issuers.map((issuer) => issuer.maxTokenBytes));
  const cache = new VerifiedTokenCache(deps.cacheSize ?? 10_000);

  return async function verifyJwt(token) {
    if (token.length > maxTokenBytes) throw invalid("the token is too large", "oversize");
    const digest = createHash("sha256").update(token).digest("base64url");
    const cached = cache.get(digest, now());
    if (cached) return cached;

    let claims: JWTPayload;
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      claims = decodeJwt(token);
      header = decodeProtectedHeader(token);
    } catch {
      throw invalid("the token is not a well-formed JWT", "malformed");
    }
    const issuer = typeof claims.iss === "string" ? byIssuer.get(claims.iss) : undefined;
    if (!issuer) throw invalid("the token's issuer is not trusted", "unknown-issuer");
    if (token.length > issuer.options.maxTokenBytes) throw invalid("the token is too large", "oversize");
    if (FORBIDDEN_HEADERS.some((name) => name in header)) {
      throw invalid("the token names its own key material (jku/x5u/jwk/x5c)", "forbidden-header");
    }

    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, issuer.keys, {
        issuer: issuer.options.issuer,
        audience: [...issuer.options.audiences],
        algorithms: [...issuer.options.algorithms],
        typ: issuer.options.typ,
        clockTolerance: issuer.options.clockToleranceSec,
        requiredClaims: ["exp"],
        currentDate: new Date(now()),
      }));
    } catch (error) {
      throw toProblem(error, issuer.options);
    }
    const identity = toIdentity(payload, issuer.options);
    cache.set(digest, identity, (payload.exp as number) * 1000);
    return identity;
  };
}

function toIdentity(payload: JWTPayload, options: JwtIssuerOptions): Identity {
  const subject = claimAt(payload, options.subjectClaim);
  if (typeof subject !== "string" || subject === "") {
    throw invalid(`the token has no string claim "${options.subjectClaim}"`, "no-subject");
  }
  const rawGroups = options.groupsClaim ? claimAt(payload, options.groupsClaim) : undefined;
  const groups = (Array.isArray(rawGroups) ? rawGroups : rawGroups === undefined ? [] : [rawGroups]).filter(
    (group): group is string => typeof group === "string",
  );
  const identity: Identity = {
    name: subject,
    via: options.kind,
    issuer: options.name,
    groups,
    claims: payload as Record<string, unknown>,
  };
  if (options.kind !== "kubernetes") return Object.freeze(identity);
  // Projected ServiceAccount tokens: sub = system:serviceaccount:NS:NAME plus a kubernetes.io claim.
  const namespace = claimAt(payload, "kubernetes.io.namespace");
  const serviceAccount = claimAt(payload, "kubernetes.io.serviceaccount.name");
  if (typeof namespace !== "string" || typeof serviceAccount !== "string") {
    throw invalid("not a Kubernetes ServiceAccount token", "not-serviceaccount");
  }
  if (subject !== `system:serviceaccount:${namespace}:${serviceAccount}`) {
    throw invalid("the ServiceAccount token's subject does not match its claims", "not-serviceaccount");
  }
  return Object.freeze({ ...identity, namespace, serviceAccount });
}

/**
 * Reads a claim by dotted path. A key that itself contains dots (`kubernetes.io`) is tried whole
 * before being split, so both `realm_access.roles` and `kubernetes.io.namespace` work. Only own
 * properties count: `constructor` or `__proto__` never resolve to what every object inherits.
 */
export function claimAt(claims: Record<string, unknown>, path: string): unknown {
  if (Object.hasOwn(claims, path)) return claims[path];
  const parts = path.split(".");
  for (let take = parts.length - 1; take >= 1; take--) {
    const head = parts.slice(0, take).join(".");
    if (Object.hasOwn(claims, head)) {
      const child = claims[head];
      if (child && typeof child === "object" && !Array.isArray(child)) {
        return claimAt(child as Record<string, unknown>, parts.slice(take).join("."));
      }
    }
  }
  return undefined;
}

function toProblem(error: unknown, issuer: JwtIssuerOptions): ProblemError {
  if (error instanceof ProblemError) return error;
  if (error instanceof errors.JWTExpired) return invalid("the token has expired", "expired");
  if (error instanceof errors.JWTClaimValidationFailed) {
    return invalid(`the token's "${error.claim}" claim is not acceptable`, `claim-${error.claim}`);
  }
  if (error instanceof errors.JOSEAlgNotAllowed)
    return invalid("the token's algorithm is not allowed", "alg-not-allowed");
  if (error instanceof errors.JWSSignatureVerificationFailed)
    return invalid("the token's signature is invalid", "bad-signature");
  if (error instanceof errors.JWKSNoMatchingKey)
    return invalid("the token's signing key is unknown", "unknown-key");
  if (error instanceof errors.JOSENotSupported)
    return invalid("the token uses an unsupported feature", "unsupported");
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid) {
    return invalid("the token is not a valid JWS", "malformed");
  }
  // Key fetch failures: the credential may be fine, the issuer is not reachable right now.
  return new ProblemError("ERR_AUTH_UNAVAILABLE", `the keys of issuer "${issuer.name}" cannot be fetched`, {
    headers: { "retry-after": "5" },
    reason: "issuer-unavailable",
    cause: error,
  });
}

function invalid(detail: string, reason: string): ProblemError {
  return new ProblemError("ERR_AUTH_INVALID", detail, { headers: challenges("invalid_token"), reason });
}

/** Verified identities by token hash, each valid until its token's `exp`; oldest evicted first. */
class VerifiedTokenCache {
  readonly #entries = new Map<string, { identity: Identity; expiresAt: number }>();

  constructor(readonly capacity: number) {}

  get(key: string, now: number): Identity | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= now) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry.identity;
  }

  set(key: string, identity: Identity, expiresAt: number): void {
    if (this.capacity <= 0) return;
    if (this.#entries.size >= this.capacity) {
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
    this.#entries.set(key, { identity, expiresAt });
  }
}
