import { ProblemError } from "../errors.js";
import { challenges } from "./challenge.js";

/**
 * Extracts the presented secret from an `Authorization` header: `Bearer <token>` (scheme in any
 * letter case, RFC 6750) or the password of `Basic` (RFC 7617), so clients that only know basic
 * auth (Python's `basic_auth_handler`, Go's `.BasicAuth()`) work unchanged. Query-string tokens
 * are never looked at. Returns `undefined` when there is no credential at all.
 */
export function extractCredential(authorization: string | undefined): string | undefined {
  if (authorization === undefined || authorization.trim() === "") return undefined;
  const match = AUTHORIZATION.exec(authorization);
  if (!match) throw invalid(KNOWN_SCHEME.test(authorization) ? MALFORMED : UNSUPPORTED_SCHEME);
  const scheme = (match[1] as string).toLowerCase();
  const value = match[2] as string;
  if (scheme === "bearer") return value;
  const decoded = Buffer.from(value, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (!BASE64.test(value) || colon === -1) throw invalid("malformed Basic credentials");
  const password = decoded.slice(colon + 1);
  if (password === "") throw invalid("Basic credentials carry no password (the token goes in the password)");
  return password;
}

// RFC 6750 b64token for Bearer; the same character set covers Basic's base64.
const AUTHORIZATION = /^\s*(bearer|basic) +([A-Za-z0-9\-._~+/]+=*)\s*$/i;
const KNOWN_SCHEME = /^\s*(bearer|basic)(\s|$)/i;
// The header is never quoted back: without a scheme, its first word would be the token itself.
const HOW_TO_SEND = 'send "Authorization: Bearer <token>", or the token as the password of HTTP Basic auth';
const UNSUPPORTED_SCHEME = `the Authorization scheme is neither Bearer nor Basic: ${HOW_TO_SEND}`;
const MALFORMED = `malformed Authorization header: ${HOW_TO_SEND} (a Bearer token has only the characters A-Z a-z 0-9 - . _ ~ + / and trailing =)`;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

function invalid(detail: string): ProblemError {
  return new ProblemError("ERR_AUTH_INVALID", detail, {
    headers: challenges("invalid_request"),
    reason: "malformed",
  });
}
