import type { MetricType, ParsedPush } from "../exposition/types.js";
import { PushViolation } from "./violation.js";

/** What the Pushgateway already holds, family by name, as far as pushguard knows it. */
export interface StoredFamilies {
  /** The type a family of this name has there, and who holds it (for the refusal), if any. */
  holder(name: string): { readonly type: MetricType; readonly holder: string } | undefined;
}

/** The series suffixes of histograms and summaries, with the types whose series carry them. */
export const SUFFIXES: ReadonlyArray<readonly [string, readonly MetricType[]]> = [
  ["_bucket", ["histogram"]],
  ["_count", ["histogram", "summary"]],
  ["_sum", ["histogram", "summary"]],
];

/**
 * Refuses a push whose families clash with stored ones the way client_golang's gatherer refuses
 * them (a type clash, or a histogram or summary beside a family named like one of its series),
 * which is what makes the Pushgateway's `/metrics` answer 500. Pure over `stored`.
 *
 * @throws PushViolation (`type-conflict` or `suffix-conflict`), naming the family and its holder
 */
export function checkConsistency(push: ParsedPush, stored: StoredFamilies): void {
  for (const family of push.families) {
    const { name, type } = family;
    const same = stored.holder(name);
    if (same && same.type !== type) {
      throw new PushViolation(
        "type-conflict",
        `family "${name}" is a ${same.type} in ${same.holder}; it cannot be pushed as a ${type}`,
        { family: name, at: family.at, holder: same.holder },
      );
    }
    for (const [suffix, baseTypes] of SUFFIXES) {
      // This family named like a series of a stored histogram or summary...
      if (name.endsWith(suffix) && name.length > suffix.length) {
        const base = stored.holder(name.slice(0, -suffix.length));
        if (base && baseTypes.includes(base.type))
          throw suffixConflict(family.name, family.at, name, base.holder);
      }
      // ...or a histogram or summary whose series a stored family is named like.
      if (baseTypes.includes(type)) {
        const clash = stored.holder(name + suffix);
        if (clash) throw suffixConflict(family.name, family.at, name + suffix, clash.holder);
      }
    }
  }
}

function suffixConflict(
  family: string,
  at: ParsedPush["families"][number]["at"],
  clashing: string,
  holder: string,
): PushViolation {
  return new PushViolation(
    "suffix-conflict",
    `family "${family}" collides with "${clashing}" in ${holder} (a histogram's or summary's series share its name)`,
    { family, at, holder },
  );
}
