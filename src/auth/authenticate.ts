import type { Config } from "../config/load.js";
import { ProblemError } from "../errors.js";
import { challenges } from "./challenge.js";
import { extractCredential } from "./credentials.js";
import { ANONYMOUS, type Identity } from "./identity.js";
import { createStaticTokenVerifier } from "./static-token.js";

export type Authenticate = (authorization: string | undefined) => Identity;

/**
 * Turns the request's credential into an Identity. No credential → the anonymous identity (the
 * policy decides whether that is enough); a credential that does not verify → 401, never a
 * fallback to anonymous.
 */
export function createAuthenticator(config: Config): Authenticate {
  const verifyStaticToken = createStaticTokenVerifier(config.identities.static);
  return function authenticate(authorization) {
    const credential = extractCredential(authorization);
    if (credential === undefined) return ANONYMOUS;
    const identity = verifyStaticToken(credential);
    if (!identity) {
      throw new ProblemError("ERR_AUTH_INVALID", "the presented token is not valid", {
        headers: challenges("invalid_token"),
        reason: "unknown-token",
      });
    }
    return identity;
  };
}
