import type { Config } from "../config/load.js";
import type { ProblemError } from "../errors.js";
import { type BodyFormat, bodyFormat, CONTENT_TYPES } from "../exposition/content-type.js";
import { ExpositionError } from "../exposition/errors.js";
import { parseProtobuf } from "../exposition/protobuf.js";
import { parseText } from "../exposition/text.js";
import type { GroupingKey } from "../pushgateway/grouping-key.js";
import { checkConsistency, type StoredFamilies } from "./consistency.js";
import { createPushPolicies, type PushPolicy } from "./policy.js";
import { type PushedFamilies, validateGroupingKey, validatePush } from "./validate-push.js";
import { fromExpositionError, PushViolation } from "./violation.js";

/** A push body that passed validation, with the Content-Type to forward it under. */
export interface ValidatedPush {
  readonly format: BodyFormat;
  readonly contentType: string;
  /**
   * How many families and series the push has. The parsed push itself is not kept: it would
   * stay alive (and old) for as long as the Pushgateway takes to answer.
   */
  readonly summary: { readonly families: number; readonly series: number };
  /** What the push will store, for the store index. */
  readonly families: PushedFamilies;
}

/** With `validation.enabled: false` (to measure its cost), bodies are forwarded unread as before. */
const UNCHECKED: Omit<PushValidator, "policy"> = {
  checkKey() {},
  checkBody: () => undefined,
};

/** The validate stage: everything about what is pushed, as opposed to who pushes it. */
export interface PushValidator {
  /** Checks a push's grouping key before its body is read. @throws ProblemError */
  checkKey(groupingKey: GroupingKey, team: string | undefined): void;
  /** Parses and checks a push body stored under `groupingKey`. @throws ProblemError */
  checkBody(
    body: Buffer,
    contentType: string | undefined,
    groupingKey: GroupingKey,
    team: string | undefined,
  ): ValidatedPush | undefined;
  /** The policy that applies to a team's pushes (for `explain`). */
  policy(team: string | undefined): PushPolicy;
}

const NOTHING_STORED: StoredFamilies = { holder: () => undefined };

/** @param stored what the Pushgateway holds that pushes must agree with (its own families) */
export function createPushValidator(config: Config, stored: StoredFamilies = NOTHING_STORED): PushValidator {
  const policies = createPushPolicies(config);
  if (!config.validation.enabled) return { ...UNCHECKED, policy: policies };
  return {
    checkKey(groupingKey, team) {
      try {
        validateGroupingKey(groupingKey, policies(team));
      } catch (error) {
        throw toProblem(error);
      }
    },
    checkBody(body, contentType, groupingKey, team) {
      const policy = policies(team);
      const format = bodyFormat(contentType);
      const limits = { maxSeries: policy.limits.seriesPerPush, maxLabels: policy.limits.labelsPerSeries };
      try {
        const push = format === "protobuf" ? parseProtobuf(body, limits) : parseText(body, limits);
        const families = validatePush(push, groupingKey, policy, config.store.index.enabled);
        checkConsistency(push, stored);
        return {
          format,
          contentType: CONTENT_TYPES[format],
          summary: { families: push.families.length, series: push.series },
          families,
        };
      } catch (error) {
        if (error instanceof ExpositionError) {
          const limit =
            error.rule === "too-many-series"
              ? limits.maxSeries
              : error.rule === "too-many-labels"
                ? limits.maxLabels
                : undefined;
          throw fromExpositionError(error, limit).toProblem();
        }
        throw toProblem(error);
      }
    },
    policy: policies,
  };
}

function toProblem(error: unknown): ProblemError | unknown {
  return error instanceof PushViolation ? error.toProblem() : error;
}
