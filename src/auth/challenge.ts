/**
 * `WWW-Authenticate` for a 401: a Bearer challenge (RFC 6750, with its error code when a credential
 * was presented) and a Basic one (RFC 7617), since both carry pushguard tokens.
 */
export function challenges(error?: "invalid_request" | "invalid_token"): Record<string, string> {
  const bearer = error ? `Bearer realm="pushguard", error="${error}"` : `Bearer realm="pushguard"`;
  return { "www-authenticate": `${bearer}, Basic realm="pushguard", charset="UTF-8"` };
}
