/** Who is calling, as established by one credential. Computed once per request, never mutated. */
export interface Identity {
  /** The identity's configured name (static tokens) or subject. */
  readonly name: string;
  /** Which kind of credential proved it. */
  readonly via: "static-token" | "anonymous";
}

export const ANONYMOUS: Identity = Object.freeze({ name: "anonymous", via: "anonymous" });
