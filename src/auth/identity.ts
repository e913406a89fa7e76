/** Who is calling, as established by one credential. Computed once per request, never mutated. */
export interface Identity {
  /** The static identity's configured name, or the JWT subject. */
  readonly name: string;
  /** Which kind of credential proved it. */
  readonly via: "static-token" | "oidc" | "kubernetes" | "anonymous";
  /** For JWT identities: the configured name of the issuer that signed the token. */
  readonly issuer?: string;
  /** Groups or roles from the token's groups claim (empty for static tokens). */
  readonly groups: readonly string[];
  /** All verified claims of a JWT (empty for static tokens); team rules may match them. */
  readonly claims: Readonly<Record<string, unknown>>;
  /** Kubernetes ServiceAccount tokens: the pod's namespace and ServiceAccount name. */
  readonly namespace?: string;
  readonly serviceAccount?: string;
}

export const ANONYMOUS: Identity = Object.freeze({
  name: "anonymous",
  via: "anonymous",
  groups: [],
  claims: {},
});
