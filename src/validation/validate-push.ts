import {
  type MetricType,
  type ParsedFamily,
  type ParsedMetric,
  type ParsedPush,
  type Position,
  seriesOf,
} from "../exposition/types.js";
import type { GroupingKey } from "../pushgateway/grouping-key.js";
import { seriesHash } from "../store/series-hash.js";
import { SUFFIXES } from "./consistency.js";
import type { PushPolicy } from "./policy.js";
import { PushViolation } from "./violation.js";

/**
 * Names the Pushgateway uses itself: it overwrites pushed `push_time_seconds` and
 * `push_failure_time_seconds` silently, and a family named `labels` or `last_push_successful`
 * replaces that key of its group in `/api/v1/metrics` (hiding the group from every API reader,
 * pushguard's janitor and replication included).
 */
const RESERVED_METRIC_NAMES = new Set([
  "push_time_seconds",
  "push_failure_time_seconds",
  "labels",
  "last_push_successful",
]);

const LEGACY_METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LEGACY_LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/**
 * Refuses a grouping key that would break the store before any body is read: an empty label
 * value (the group's `push_time_seconds` then equals that of the group without the label, and
 * every later push of every team fails), a label reserved for another team, names or values
 * beyond the limits.
 */
export function validateGroupingKey(key: GroupingKey, policy: PushPolicy): void {
  checkLabelValue("job", key.job, policy, undefined, {});
  for (const [name, value] of Object.entries(key.labels)) {
    if (value === "") {
      throw new PushViolation(
        "empty-grouping-value",
        `grouping label "${name}" has an empty value: the Pushgateway treats it as absent, so this group would collide with the one without it; leave the label out`,
        { label: name },
      );
    }
    if (policy.reservedLabels.has(name)) throw reserved(name, "in the grouping key");
    checkLabelName(name, policy, undefined, {});
    checkLabelValue(name, value, policy, undefined, {});
  }
}

/**
 * Refuses a push the Pushgateway would store but then fail to serve, serve empty, or serve in a
 * form Prometheus rejects, and a push beyond the team's limits. `groupingKey` is the key the push
 * is stored under (after label injection): its labels overwrite the body's, as upstream.
 *
 * @returns what the push will store: each family's type and its series (as `seriesHash`es of the
 *   labels the Pushgateway will give them), for the store index
 * @throws PushViolation naming the rule, family, label and position
 */
export function validatePush(
  push: ParsedPush,
  groupingKey: GroupingKey,
  policy: PushPolicy,
  /** Compute series hashes (only the store index needs them). */
  hashSeries = true,
): PushedFamilies {
  const { limits } = policy;
  if (push.series > limits.seriesPerPush) {
    throw new PushViolation(
      "series-per-push",
      `the push has ${push.series} series; at most ${limits.seriesPerPush} are allowed in one push`,
      { limit: limits.seriesPerPush, actual: push.series },
    );
  }
  const grouping = new Map([...Object.entries(groupingKey.labels), ["job", groupingKey.job]]);
  const names = new Set<string>();
  for (const family of push.families) {
    if (names.has(family.name)) {
      throw new PushViolation(
        "duplicate-family",
        `family "${family.name}" is sent twice (the Pushgateway would keep only the last one)`,
        { family: family.name, at: family.at },
      );
    }
    names.add(family.name);
  }
  const context: PushContext = {
    checkedNames: new Set(),
    groupingPairs: [...grouping].filter(([, value]) => value !== ""),
  };
  const stored: PushedFamily[] = [];
  for (const family of push.families) {
    checkFamily(family, names, grouping, policy);
    const seen = new Set<string>();
    const series: number[] = [];
    for (const metric of family.metrics) {
      const hash = checkMetric(family, metric, grouping, policy, seen, hashSeries, context);
      if (hash !== undefined) series.push(hash);
    }
    const samples = family.metrics.reduce((sum, metric) => sum + seriesOf(family.type, metric), 0);
    stored.push({ name: family.name, type: family.type, series, samples, at: family.at });
  }
  return stored;
}

/** What every series of one push shares: computed once per push, not per series. */
interface PushContext {
  /** Label names already found valid and not reserved. */
  readonly checkedNames: Set<string>;
  /** The grouping key's pairs, which every stored series carries. */
  readonly groupingPairs: ReadonlyArray<readonly [string, string]>;
}

/** A pushed family as the store index keeps it. */
export interface PushedFamily {
  readonly name: string;
  readonly type: MetricType;
  /** `seriesHash` of each metric's stored labels (empty unless asked for). */
  readonly series: readonly number[];
  /** Series a scrape sees (`seriesOf`), for quotas. */
  readonly samples: number;
  readonly at: Position;
}

export type PushedFamilies = readonly PushedFamily[];

function checkFamily(
  family: ParsedFamily,
  names: ReadonlySet<string>,
  grouping: ReadonlyMap<string, string>,
  policy: PushPolicy,
): void {
  const { name, at } = family;
  const where = { family: name, at };
  const valid = policy.utf8Names ? name !== "" : LEGACY_METRIC_NAME.test(name);
  if (!valid) {
    throw new PushViolation(
      "invalid-metric-name",
      `${JSON.stringify(name)} is not a valid metric name${policy.utf8Names ? "" : " ([a-zA-Z_:][a-zA-Z0-9_:]*)"}`,
      where,
    );
  }
  checkLength(
    "metric-name-length",
    `metric name "${name.slice(0, 64)}"`,
    name,
    policy.limits.metricNameBytes,
    where,
  );
  if (RESERVED_METRIC_NAMES.has(name)) {
    throw new PushViolation(
      "reserved-metric-name",
      `"${name}" is a name the Pushgateway uses itself; rename the metric`,
      where,
    );
  }
  const denied = policy.deniedName(name);
  if (denied)
    throw new PushViolation("metric-name-denied", `metric "${name}" may not be pushed: ${denied}`, where);
  checkOwnership(name, family.type, policy, where);
  if (family.help !== undefined) {
    checkLength("help-length", `HELP of "${name}"`, family.help, policy.limits.helpBytes, where);
  }
  const suffixes =
    family.type === "histogram"
      ? ["_bucket", "_count", "_sum"]
      : family.type === "summary"
        ? ["_count", "_sum"]
        : [];
  for (const suffix of suffixes) {
    if (names.has(name + suffix)) {
      throw new PushViolation(
        "suffix-collision",
        `family "${name + suffix}" collides with the ${family.type} "${name}", whose series include ${name + suffix}`,
        where,
      );
    }
  }
  const special = family.type === "histogram" ? "le" : family.type === "summary" ? "quantile" : undefined;
  if (special !== undefined && grouping.has(special)) {
    throw new PushViolation(
      special === "le" ? "bucket-label" : "quantile-label",
      `the grouping key sets "${special}", which the ${family.type} "${name}" uses for its own series; remove it from the push path`,
      { ...where, label: special },
    );
  }
}

/**
 * Refuses a family whose name, or the name of one of its series (a histogram's `_bucket`, ...),
 * another team claims with `metricNames.own`.
 */
function checkOwnership(
  name: string,
  type: MetricType,
  policy: PushPolicy,
  where: { family: string; at: Position },
): void {
  const names = [
    name,
    ...SUFFIXES.filter(([, types]) => types.includes(type)).map(([suffix]) => name + suffix),
  ];
  for (const seriesName of names) {
    const owner = policy.ownedElsewhere(seriesName);
    if (owner) {
      throw new PushViolation(
        "metric-name-owned",
        `metric "${seriesName}" belongs to team ${owner.team} (its metricNames.own pattern "${owner.pattern}"); rename the metric`,
        { ...where, owner: owner.team },
      );
    }
  }
}

function checkMetric(
  family: ParsedFamily,
  metric: ParsedMetric,
  grouping: ReadonlyMap<string, string>,
  policy: PushPolicy,
  seen: Set<string>,
  hashSeries: boolean,
  context: PushContext,
): number | undefined {
  const { name, type } = family;
  const where = { family: name, at: metric.at };
  if (metric.timestamped) {
    throw new PushViolation(
      "timestamp",
      `a series of "${name}" has a timestamp; the Pushgateway refuses pushed timestamps`,
      where,
    );
  }
  if (metric.values.length !== 1 || metric.values[0] !== type) {
    throw new PushViolation(
      "value-type-mismatch",
      `a metric of the ${type} "${name}" carries ${metric.values.length === 0 ? "no value" : metric.values.join(" and ")}; it must carry exactly a ${type} value`,
      where,
    );
  }
  // What the Pushgateway stores: the body's labels, those of the grouping key overwriting them;
  // an empty value is no label to Prometheus, so `{a=""}` and `{}` are one series there.
  const pairs: Array<readonly [string, string]> = [];
  const body = metric.labels;
  for (let index = 0; index < body.length; index++) {
    const [label, value] = body[index] as readonly [string, string];
    if (!context.checkedNames.has(label)) {
      checkLabelName(label, policy, name, metric.at);
      if (policy.reservedLabels.has(label)) throw reserved(label, `on a series of "${name}"`, where);
      context.checkedNames.add(label);
    }
    // At most labelsPerSeries pairs (the parsers stop beyond): a linear scan is cheaper than a Map.
    for (let other = 0; other < index; other++) {
      if ((body[other] as readonly [string, string])[0] === label) {
        throw new PushViolation("duplicate-label", `a series of "${name}" has label "${label}" twice`, {
          ...where,
          label,
        });
      }
    }
    if (type === "histogram" && label === "le") {
      throw new PushViolation("bucket-label", `a series of the histogram "${name}" sets "le" itself`, {
        ...where,
        label,
      });
    }
    if (type === "summary" && label === "quantile") {
      throw new PushViolation("quantile-label", `a series of the summary "${name}" sets "quantile" itself`, {
        ...where,
        label,
      });
    }
    checkLabelValue(label, value, policy, name, metric.at);
    if (value !== "" && !grouping.has(label)) pairs.push([label, value]);
  }
  for (const pair of context.groupingPairs) pairs.push(pair);
  if (pairs.length > policy.limits.labelsPerSeries) {
    throw new PushViolation(
      "labels-per-series",
      `a series of "${name}" has ${pairs.length} labels (grouping labels included); at most ${policy.limits.labelsPerSeries} are allowed`,
      { ...where, limit: policy.limits.labelsPerSeries, actual: pairs.length },
    );
  }
  pairs.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  // Length-prefixed parts: no label value can spell another label set.
  let key = "";
  for (const [label, value] of pairs) key += `${label.length}:${label}${value.length}:${value}`;
  if (seen.has(key)) {
    throw new PushViolation(
      "duplicate-series",
      `series ${describeSeries(name, pairs)} is pushed twice (grouping labels, which overwrite the body's, included)`,
      where,
    );
  }
  seen.add(key);
  checkComponents(name, type, metric, pairs, where);
  return hashSeries ? seriesHash(name, pairs) : undefined;
}

/** A histogram's buckets and a summary's quantiles, `_count` and `_sum`: each at most once. */
function checkComponents(
  name: string,
  type: MetricType,
  metric: ParsedMetric,
  pairs: ReadonlyArray<readonly [string, string]>,
  where: { family: string; at: Position },
): void {
  const repeated =
    (metric.counts ?? 0) > 1
      ? `${name}_count`
      : (metric.sums ?? 0) > 1
        ? `${name}_sum`
        : type === "histogram" && repeats(metric.buckets)
          ? `a bucket of ${name}`
          : type === "summary" && repeats(metric.quantiles)
            ? `a quantile of ${name}`
            : undefined;
  if (repeated !== undefined) {
    throw new PushViolation(
      "duplicate-series",
      `${repeated} is pushed twice for ${describeSeries(name, pairs)}`,
      where,
    );
  }
}

function repeats(values: readonly number[] | undefined): boolean {
  if (values === undefined || values.length < 2) return false;
  // A Set compares with SameValueZero: two NaN bounds repeat too (and 0 repeats -0: stricter).
  return new Set(values).size !== values.length;
}

function checkLabelName(
  label: string,
  policy: PushPolicy,
  family: string | undefined,
  at: Position | undefined,
): void {
  const where = { family, label, at };
  const valid = policy.utf8Names ? label !== "" : LEGACY_LABEL_NAME.test(label);
  if (!valid) {
    throw new PushViolation(
      "invalid-label-name",
      `${JSON.stringify(label)} is not a valid label name`,
      where,
    );
  }
  if (label.startsWith("__")) {
    throw new PushViolation(
      "reserved-label-name",
      `label names starting with "__" are reserved for Prometheus ("${label}")`,
      where,
    );
  }
  checkLength(
    "label-name-length",
    `label name "${label.slice(0, 64)}"`,
    label,
    policy.limits.labelNameBytes,
    where,
  );
}

function checkLabelValue(
  label: string,
  value: string,
  policy: PushPolicy,
  family: string | undefined,
  at: Position | undefined,
): void {
  checkLength("label-value-length", `the value of label "${label}"`, value, policy.limits.labelValueBytes, {
    family,
    label,
    at,
  });
}

function reserved(
  label: string,
  where: string,
  details: { family?: string; at?: Position } = {},
): PushViolation {
  return new PushViolation(
    "reserved-label",
    `label "${label}" is reserved (another team's grouping key sets it, or the config reserves it) and may not be set ${where}`,
    { ...details, label },
  );
}

/**
 * Refuses `text` longer than `limit` UTF-8 bytes. The count is skipped when the string cannot be
 * over it (3 bytes per UTF-16 unit at most).
 */
function checkLength(
  rule: "metric-name-length" | "label-name-length" | "label-value-length" | "help-length",
  what: string,
  text: string,
  limit: number,
  details: { family?: string; label?: string; at?: Position },
): void {
  if (text.length * 3 <= limit) return;
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes > limit) {
    throw new PushViolation(rule, `${what} is longer than ${limit} bytes`, {
      ...details,
      limit,
      actual: bytes,
    });
  }
}

function describeSeries(name: string, pairs: ReadonlyArray<readonly [string, string]>): string {
  return `${name}{${pairs.map(([label, value]) => `${label}=${JSON.stringify(value)}`).join(",")}}`;
}
