import type { Config } from "../config/load.js";
import { ProblemError } from "../errors.js";
import { challenges } from "./challenge.js";
import { extractCredential } from "./credentials.js";
import { ANONYMOUS, type Identity } from "./identity.js";
import type { FetchLike } from "./jwks.js";
import { createJwtVerifier, type JwtIssuerOptions, type JwtVerifierDeps, looksLikeJwt } from "./jwt.js";
import { createStaticTokenVerifier } from "./static-token.js";

export type Authenticate = (authorization: string | undefined) => Promise<Identity>;

export interface AuthenticatorDeps {
  /** Fetch used for OIDC discovery and JWKS (tests count calls through it). */
  readonly fetch?: FetchLike;
  readonly now?: () => number;
  /** Key sets shared across config reloads, so a reload never drops keys that work. */
  readonly keySources?: JwtVerifierDeps["keySources"];
}

/**
 * Turns the request's credential into an Identity: a static token (by hash), else a JWT from a
 * trusted issuer. No credential → the anonymous identity (the policy decides whether that is
 * enough); a credential that does not verify → 401, never a fallback to anonymous.
 */
export function createAuthenticator(config: Config, deps: AuthenticatorDeps = {}): Authenticate {
  const verifyStaticToken = createStaticTokenVerifier(config.identities.static);
  const issuers = jwtIssuers(config);
  const verifyJwt = issuers.length > 0 ? createJwtVerifier(issuers, deps) : undefined;
  return async function authenticate(authorization) {
    const credential = extractCredential(authorization);
    if (credential === undefined) return ANONYMOUS;
    const identity = verifyStaticToken(credential);
    if (identity) return identity;
    if (verifyJwt && looksLikeJwt(credential)) return verifyJwt(credential);
    throw new ProblemError("ERR_AUTH_INVALID", "the presented token is not valid", {
      headers: challenges("invalid_token"),
      reason: "unknown-token",
    });
  };
}

type IssuerConfig = Config["identities"]["oidc"][number] | Config["identities"]["kubernetes"][number];

/** The options every issuer kind shares, as the config spells them. */
function commonOptions(issuer: IssuerConfig) {
  return {
    name: issuer.name,
    issuer: issuer.issuer,
    audiences: issuer.audiences,
    jwksUri: issuer.jwksUri,
    algorithms: issuer.algorithms,
    clockToleranceSec: issuer.clockToleranceSec,
    maxTokenBytes: issuer.maxTokenBytes,
    cooldownMs: issuer.jwks.cooldownMs,
    cacheMaxAgeMs: issuer.jwks.cacheMaxAgeMs,
    timeoutMs: issuer.jwks.timeoutMs,
  };
}

/** OIDC and Kubernetes issuers from the config, in the verifier's terms. */
export function jwtIssuers(config: Config): JwtIssuerOptions[] {
  const oidc = config.identities.oidc.map(
    (issuer): JwtIssuerOptions => ({
      ...commonOptions(issuer),
      kind: "oidc",
      typ: issuer.typ,
      subjectClaim: issuer.claims.subject,
      groupsClaim: issuer.claims.groups,
    }),
  );
  const kubernetes = config.identities.kubernetes.map(
    (issuer, index): JwtIssuerOptions => ({
      ...commonOptions(issuer),
      kind: "kubernetes",
      discoveryUrl: issuer.apiServer,
      caFile: issuer.caFile,
      bearerTokenFile: issuer.tokenFile,
      configKey: `identities.kubernetes.${index}`,
      subjectClaim: "sub",
    }),
  );
  return [...oidc, ...kubernetes];
}
