import type { Position } from "./types.js";

/**
 * Why a body could not be parsed into families. `syntax` is what the Pushgateway's own parsers
 * refuse too (or, where marked, a little more); the others are pushguard's stricter rules that are
 * cheapest to apply while parsing.
 */
export type ExpositionRule =
  | "syntax"
  | "invalid-utf8"
  | "unknown-type"
  | "dropped-sample"
  | "too-many-series"
  | "too-many-labels";

export class ExpositionError extends Error {
  override readonly name = "ExpositionError";

  constructor(
    readonly rule: ExpositionRule,
    message: string,
    readonly at: Position,
    /** The family concerned, when its name is known and printable. */
    readonly family?: string,
  ) {
    super(message);
  }
}
