import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomUUID,
  sign,
} from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createTlsServer } from "node:https";
import { type JWK, type JWTPayload, SignJWT } from "jose";

/**
 * A tiny local JWT issuer for tests: it serves discovery at `/.well-known/openid-configuration`
 * and keys at `/openid/v1/jwks` the way a Kubernetes API server does, records every request
 * (path and Authorization header), and signs tokens — ServiceAccount-shaped ones, and anything an
 * attack needs. The OIDC happy path uses the real `oidc-provider` (examples/oidc-provider.mjs).
 */

export type SigningAlg = "RS256" | "ES256";

export interface SigningKey {
  readonly kid: string;
  readonly alg: SigningAlg;
  readonly privateKey: KeyObject;
  /** The public half as a JWK with `kid`, `alg` and `use: sig`, as a JWKS serves it. */
  readonly publicJwk: JWK;
}

export function generateSigningKey(kid: string = randomUUID(), alg: SigningAlg = "RS256"): SigningKey {
  const { privateKey } =
    alg === "RS256"
      ? generateKeyPairSync("rsa", { modulusLength: 2048 })
      : generateKeyPairSync("ec", { namedCurve: "P-256" });
  return fromPrivateKey(privateKey, kid, alg);
}

/** Wraps a private JWK (e.g. one made by `signingKey(kid)` of examples/oidc-provider.mjs). */
export function signingKeyFromJwk(jwk: JWK & { kid: string }, alg: SigningAlg = "RS256"): SigningKey {
  return fromPrivateKey(createPrivateKey({ key: jwk as never, format: "jwk" }), jwk.kid, alg);
}

function fromPrivateKey(privateKey: KeyObject, kid: string, alg: SigningAlg): SigningKey {
  const publicJwk = { ...createPublicKey(privateKey).export({ format: "jwk" }), kid, alg, use: "sig" } as JWK;
  return { kid, alg, privateKey, publicJwk };
}

/** Signs claims with jose's SignJWT; `header` adds to or overrides `{ alg, kid }`. */
export function signJwt(
  claims: JWTPayload,
  key: SigningKey,
  header: Record<string, unknown> = {},
): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: key.alg, kid: key.kid, ...header } as never)
    .sign(key.privateKey);
}

const b64url = (value: unknown) =>
  Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");

/**
 * Builds a compact JWS by hand, for headers jose refuses to produce (unknown `crit`, `alg: none`).
 * With `key` it signs `header.payload` (RS256/ES256); without, the signature is empty.
 */
export function signRaw(header: Record<string, unknown>, claims: JWTPayload, key?: SigningKey): string {
  const input = `${b64url(header)}.${b64url(claims)}`;
  if (!key) return `${input}.`;
  const signature = sign(
    "sha256",
    Buffer.from(input),
    key.alg === "ES256" ? { key: key.privateKey, dsaEncoding: "ieee-p1363" } : key.privateKey,
  );
  return `${input}.${signature.toString("base64url")}`;
}

export const seconds = (ms: number = Date.now()) => Math.floor(ms / 1000);

export interface ServiceAccountTokenOptions {
  namespace: string;
  serviceAccount: string;
  audiences?: string[];
  /** Lifetime in seconds (default 600). */
  expiresIn?: number;
  /** Claims merged over the generated ones (set a key to `undefined` to drop it). */
  overrides?: JWTPayload;
  /** Sign with this key instead of the issuer's current one. */
  key?: SigningKey;
}

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly authorization: string | undefined;
}

export interface LocalIssuer {
  /** Where the server listens, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  /** The `iss` it signs and names in discovery (an API server's differs from its URL). */
  readonly issuer: string;
  /** The published keys; the first one signs. Replace to rotate. */
  keys: SigningKey[];
  /** When set, discovery and JWKS answer 401 unless `Authorization: Bearer <this>` is sent. */
  expectedBearer: string | undefined;
  /** When set, every route answers this status (an issuer having a bad day). */
  failWith: number | undefined;
  readonly requests: RecordedRequest[];
  /** Requests so far whose path equals `path`. */
  hits(path: string): number;
  /** Serves a JSON document at `path` (e.g. an attacker's JWKS behind a `jku`). */
  route(path: string, body: unknown): void;
  sign(claims: JWTPayload, header?: Record<string, unknown>): Promise<string>;
  /** A projected ServiceAccount token, shaped like the kubelet's. */
  serviceAccountToken(options: ServiceAccountTokenOptions): Promise<string>;
  /** With `tls`: serves this certificate from now on and drops every open connection. */
  rotateCertificate(tls: { key: string; cert: string }): void;
  close(): Promise<void>;
}

export const DISCOVERY_PATH = "/.well-known/openid-configuration";
export const JWKS_PATH = "/openid/v1/jwks";

export async function startJwtIssuer(
  options: {
    issuer?: string;
    keys?: SigningKey[];
    port?: number;
    /** PEM key and certificate: serve HTTPS (like an API server) instead of HTTP. */
    tls?: { key: string; cert: string };
  } = {},
): Promise<LocalIssuer> {
  const routes = new Map<string, unknown>();
  const requests: RecordedRequest[] = [];
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "/").split("?")[0] as string;
    requests.push({ method: req.method ?? "GET", path, authorization: req.headers.authorization });
    const answer = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (running.failWith !== undefined) return answer(running.failWith, { error: "unavailable" });
    if (path === DISCOVERY_PATH || path === JWKS_PATH) {
      if (
        running.expectedBearer !== undefined &&
        req.headers.authorization !== `Bearer ${running.expectedBearer}`
      )
        return answer(401, { kind: "Status", status: "Failure", reason: "Unauthorized", code: 401 });
      if (path === DISCOVERY_PATH) {
        // Like an API server: the advertised jwks_uri is on the issuer's (external) host.
        return answer(200, {
          issuer: running.issuer,
          jwks_uri: `${running.issuer.replace(/\/+$/, "")}${JWKS_PATH}`,
          response_types_supported: ["id_token"],
          subject_types_supported: ["public"],
          id_token_signing_alg_values_supported: ["RS256"],
        });
      }
      return answer(200, { keys: running.keys.map((key) => key.publicJwk) });
    }
    if (routes.has(path)) return answer(200, routes.get(path));
    return answer(404, { error: "not found" });
  };
  const tlsServer = options.tls ? createTlsServer(options.tls, handle) : undefined;
  const server = tlsServer ?? createServer(handle);
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, "127.0.0.1", resolve));
  const address = server.address();
  if (typeof address !== "object" || !address) throw new Error("local issuer has no address");
  const url = `${tlsServer ? "https" : "http"}://127.0.0.1:${address.port}`;

  const running: LocalIssuer = {
    url,
    issuer: options.issuer ?? url,
    keys: options.keys ?? [generateSigningKey()],
    expectedBearer: undefined,
    failWith: undefined,
    requests,
    hits: (path) => requests.filter((request) => request.path === path).length,
    route: (path, body) => {
      routes.set(path, body);
    },
    rotateCertificate(tls) {
      if (!tlsServer) throw new Error("rotateCertificate needs an issuer started with tls");
      tlsServer.setSecureContext(tls);
      tlsServer.closeAllConnections();
    },
    sign(claims, header = {}) {
      return signJwt(claims, running.keys[0] as SigningKey, header);
    },
    serviceAccountToken({
      namespace,
      serviceAccount,
      audiences = ["pushguard"],
      expiresIn = 600,
      overrides,
      key,
    }) {
      const now = seconds();
      const claims: JWTPayload = {
        aud: audiences,
        exp: now + expiresIn,
        iat: now,
        nbf: now,
        iss: running.issuer,
        jti: randomUUID(),
        sub: `system:serviceaccount:${namespace}:${serviceAccount}`,
        "kubernetes.io": {
          namespace,
          node: { name: "node-1", uid: randomUUID() },
          pod: { name: `${serviceAccount}-7d9f8`, uid: randomUUID() },
          serviceaccount: { name: serviceAccount, uid: randomUUID() },
        },
        ...overrides,
      };
      for (const [name, value] of Object.entries(claims)) if (value === undefined) delete claims[name];
      return signJwt(claims, key ?? (running.keys[0] as SigningKey));
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return running;
}

/** A legacy (pre-1.24) Secret-based ServiceAccount token: no `exp`, no `aud`, flat claims. */
export function legacyServiceAccountClaims(namespace: string, serviceAccount: string): JWTPayload {
  return {
    iss: "kubernetes/serviceaccount",
    "kubernetes.io/serviceaccount/namespace": namespace,
    "kubernetes.io/serviceaccount/secret.name": `${serviceAccount}-token-x7k2p`,
    "kubernetes.io/serviceaccount/service-account.name": serviceAccount,
    "kubernetes.io/serviceaccount/service-account.uid": randomUUID(),
    sub: `system:serviceaccount:${namespace}:${serviceAccount}`,
  };
}

/** The value of `pushguard_auth_failures_total{reason}` on a pushguard metrics listener (0 if absent). */
export async function authFailures(metricsUrl: string, reason: string): Promise<number> {
  const text = await (await fetch(`${metricsUrl}/metrics`)).text();
  const escaped = reason.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const match = new RegExp(`^pushguard_auth_failures_total\\{reason="${escaped}"\\} (\\d+)`, "m").exec(text);
  return match ? Number(match[1]) : 0;
}
