import { type ProblemCode, ProblemError } from "../errors.js";
import type { ExpositionError, ExpositionRule } from "../exposition/errors.js";
import type { Position } from "../exposition/types.js";

/**
 * Every reason a push body (or its grouping key) is refused. Each rule is one problem code; the
 * rule itself is in the problem body (`rule`) and in `pushguard_push_rejections_total`.
 */
export type ViolationRule =
  | ExpositionRule
  | "empty-grouping-value"
  | "invalid-metric-name"
  | "invalid-label-name"
  | "reserved-label-name"
  | "reserved-metric-name"
  | "timestamp"
  | "duplicate-family"
  | "duplicate-label"
  | "duplicate-series"
  | "suffix-collision"
  | "bucket-label"
  | "quantile-label"
  | "value-type-mismatch"
  | "series-per-push"
  | "labels-per-series"
  | "metric-name-length"
  | "label-name-length"
  | "label-value-length"
  | "help-length"
  | "metric-name-denied"
  | "metric-name-owned"
  | "reserved-label"
  | "type-conflict"
  | "suffix-conflict"
  | "series-conflict"
  | "team-groups"
  | "team-series";

const RULE_CODES: Record<ViolationRule, ProblemCode> = {
  syntax: "ERR_BAD_EXPOSITION",
  "invalid-utf8": "ERR_INVALID_METRIC",
  "unknown-type": "ERR_INVALID_METRIC",
  "dropped-sample": "ERR_INVALID_METRIC",
  "too-many-series": "ERR_PUSH_TOO_LARGE",
  "too-many-labels": "ERR_PUSH_LIMIT",
  "empty-grouping-value": "ERR_BAD_GROUPING_KEY",
  "invalid-metric-name": "ERR_INVALID_METRIC",
  "invalid-label-name": "ERR_INVALID_METRIC",
  "reserved-label-name": "ERR_INVALID_METRIC",
  "reserved-metric-name": "ERR_INVALID_METRIC",
  timestamp: "ERR_INVALID_METRIC",
  "duplicate-family": "ERR_INVALID_METRIC",
  "duplicate-label": "ERR_INVALID_METRIC",
  "duplicate-series": "ERR_INVALID_METRIC",
  "suffix-collision": "ERR_INVALID_METRIC",
  "bucket-label": "ERR_INVALID_METRIC",
  "quantile-label": "ERR_INVALID_METRIC",
  "value-type-mismatch": "ERR_INVALID_METRIC",
  "series-per-push": "ERR_PUSH_TOO_LARGE",
  "labels-per-series": "ERR_PUSH_LIMIT",
  "metric-name-length": "ERR_PUSH_LIMIT",
  "label-name-length": "ERR_PUSH_LIMIT",
  "label-value-length": "ERR_PUSH_LIMIT",
  "help-length": "ERR_PUSH_LIMIT",
  "metric-name-denied": "ERR_METRIC_NAME_DENIED",
  "metric-name-owned": "ERR_METRIC_NAME_DENIED",
  "reserved-label": "ERR_LABEL_RESERVED",
  "type-conflict": "ERR_FAMILY_CONFLICT",
  "suffix-conflict": "ERR_FAMILY_CONFLICT",
  "series-conflict": "ERR_FAMILY_CONFLICT",
  "team-groups": "ERR_QUOTA_EXCEEDED",
  "team-series": "ERR_QUOTA_EXCEEDED",
};

export interface ViolationDetails {
  /** The family concerned (omitted when its name is not printable). */
  readonly family?: string;
  /** The label concerned. */
  readonly label?: string;
  readonly at?: Position;
  /** For limits: the limit in force and what the push had. */
  readonly limit?: number;
  readonly actual?: number;
  /** For conflicts: who holds the family the push clashes with. */
  readonly holder?: string;
  /** For names another team owns: that team. */
  readonly owner?: string;
}

/** One reason a push is refused; becomes a problem response in `toProblem`. */
export class PushViolation extends Error {
  override readonly name = "PushViolation";

  constructor(
    readonly rule: ViolationRule,
    message: string,
    readonly details: ViolationDetails = {},
  ) {
    super(message);
  }

  toProblem(): ProblemError {
    const { at, ...rest } = this.details;
    return new ProblemError(RULE_CODES[this.rule], this.message, {
      details: { rule: this.rule, ...rest, ...at },
      reason: this.rule,
    });
  }
}

/** The parsers' errors as violations, so every refusal of a body takes the same path. */
export function fromExpositionError(error: ExpositionError, limit: number | undefined): PushViolation {
  return new PushViolation(error.rule, error.message, {
    family: error.family,
    at: error.at,
    ...(limit !== undefined ? { limit } : {}),
  });
}
