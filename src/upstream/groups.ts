import { formatGroupingKey, type GroupingKey } from "../pushgateway/grouping-key.js";

/**
 * One group as the Pushgateway's `GET /api/v1/metrics` reports it: its grouping labels, when it
 * last changed, and its metric families. The janitor reads push times from it; repair copies and
 * compares groups through `renderGroup`.
 */
export interface PushedGroup {
  /** The grouping key, `job` included, exactly as stored (an empty value is a real label). */
  readonly labels: Readonly<Record<string, string>>;
  readonly groupingKey: GroupingKey;
  /** The canonical path of the group (`formatGroupingKey`), also its identity in maps. */
  readonly path: string;
  /** Unix seconds of the last successful change; 0 when there never was one. */
  readonly pushTime: number;
  /** Unix seconds of the last failed change; 0 when there never was one. */
  readonly failureTime: number;
  readonly lastPushSuccessful: boolean;
  /** Families by name, as reported; `push_time_seconds` and `push_failure_time_seconds` excluded. */
  readonly families: Readonly<Record<string, ReportedFamily>>;
}

export interface ReportedFamily {
  readonly type: string;
  readonly help?: string;
  readonly metrics: readonly ReportedMetric[];
}

type ReportedMetric = Readonly<Record<string, unknown>> & { readonly labels?: Record<string, string> };

/** Thrown for groups pushguard cannot reproduce in the text format (repair must not guess). */
export class UnsupportedGroupError extends Error {
  override readonly name = "UnsupportedGroupError";
}

/** The metrics the Pushgateway adds to every group itself; they can never be pushed. */
const GATEWAY_METRICS = new Set(["push_time_seconds", "push_failure_time_seconds"]);
const GROUP_FIELDS = new Set(["labels", "last_push_successful"]);

/** The fields each family type may carry per metric; anything else would be lost by a copy. */
const METRIC_FIELDS: Record<string, { readonly text: string; readonly fields: ReadonlySet<string> }> = {
  COUNTER: { text: "counter", fields: new Set(["labels", "value"]) },
  GAUGE: { text: "gauge", fields: new Set(["labels", "value"]) },
  UNTYPED: { text: "untyped", fields: new Set(["labels", "value"]) },
  HISTOGRAM: { text: "histogram", fields: new Set(["labels", "buckets", "count", "sum"]) },
  SUMMARY: { text: "summary", fields: new Set(["labels", "quantiles", "count", "sum"]) },
};

/**
 * Parses a `/api/v1/metrics` body into groups keyed by canonical path. Groups whose labels cannot
 * form a grouping key (never written by pushguard) are returned in `unreadable`, not guessed at.
 */
export function parseGroups(body: unknown): { groups: Map<string, PushedGroup>; unreadable: number } {
  const data = (body as { data?: unknown })?.data;
  if (!Array.isArray(data)) throw new Error("unexpected /api/v1/metrics answer: no data array");
  const groups = new Map<string, PushedGroup>();
  let unreadable = 0;
  for (const entry of data as Array<Record<string, unknown>>) {
    const labels = entry.labels as Record<string, string> | undefined;
    if (!labels || typeof labels.job !== "string") {
      unreadable += 1;
      continue;
    }
    const { job, ...rest } = labels;
    const groupingKey: GroupingKey = { job, labels: rest };
    let path: string;
    try {
      path = formatGroupingKey(groupingKey);
    } catch {
      unreadable += 1;
      continue;
    }
    const families: Record<string, ReportedFamily> = {};
    for (const [name, value] of Object.entries(entry)) {
      if (GROUP_FIELDS.has(name) || GATEWAY_METRICS.has(name)) continue;
      families[name] = value as ReportedFamily;
    }
    groups.set(path, {
      labels,
      groupingKey,
      path,
      pushTime: gaugeValue(entry.push_time_seconds),
      failureTime: gaugeValue(entry.push_failure_time_seconds),
      lastPushSuccessful: entry.last_push_successful !== false,
      families,
    });
  }
  return { groups, unreadable };
}

/** When the group last changed at all (success or failure), in Unix seconds; 0 when unknown. */
export function lastActivity(group: PushedGroup): number {
  return Math.max(group.pushTime, group.failureTime);
}

/**
 * The group's metrics in text format 0.0.4, deterministic (families, series and labels sorted),
 * without the grouping labels (the push path sets them) and without empty-valued labels (absent
 * and empty are the same in Prometheus). Two groups render equally exactly when a scrape would
 * see the same series with the same values, so this is both what repair pushes and what it
 * compares. Push times, per-family timestamps and the last push's success are not content.
 *
 * @throws UnsupportedGroupError for family types or fields the text format cannot carry
 */
export function renderGroup(group: PushedGroup): string {
  const lines: string[] = [];
  for (const name of Object.keys(group.families).sort()) {
    const family = group.families[name] as ReportedFamily;
    const kind = METRIC_FIELDS[family.type];
    if (!kind || !Array.isArray(family.metrics)) {
      throw new UnsupportedGroupError(`family ${name} has unsupported type ${String(family.type)}`);
    }
    if (family.help !== undefined && family.help !== "")
      lines.push(`# HELP ${name} ${escapeHelp(family.help)}`);
    lines.push(`# TYPE ${name} ${kind.text}`);
    // Series sorted by their labels; each histogram or summary keeps its lines in order.
    const series: Array<{ key: string; lines: string[] }> = [];
    for (const metric of family.metrics) {
      for (const field of Object.keys(metric)) {
        if (!kind.fields.has(field)) {
          throw new UnsupportedGroupError(`family ${name} carries "${field}", which text format cannot copy`);
        }
      }
      const labels = seriesLabels(metric.labels ?? {}, group.labels);
      series.push({ key: JSON.stringify(labels), lines: renderMetric(name, family.type, metric, labels) });
    }
    series.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    for (const { lines: seriesLines } of series) lines.push(...seriesLines);
  }
  return lines.length === 0 ? "" : `${lines.join("\n")}\n`;
}

function renderMetric(
  name: string,
  type: string,
  metric: ReportedMetric,
  labels: ReadonlyArray<readonly [string, string]>,
): string[] {
  switch (type) {
    case "HISTOGRAM": {
      const buckets = Object.entries((metric.buckets ?? {}) as Record<string, string>).sort(
        ([a], [b]) => bound(a) - bound(b),
      );
      return [
        ...buckets.map(([le, count]) => sample(`${name}_bucket`, [...labels, ["le", le]], count)),
        sample(`${name}_sum`, labels, metric.sum),
        sample(`${name}_count`, labels, metric.count),
      ];
    }
    case "SUMMARY": {
      const quantiles = Object.entries((metric.quantiles ?? {}) as Record<string, string>).sort(
        ([a], [b]) => bound(a) - bound(b),
      );
      return [
        ...quantiles.map(([quantile, value]) => sample(name, [...labels, ["quantile", quantile]], value)),
        sample(`${name}_sum`, labels, metric.sum),
        sample(`${name}_count`, labels, metric.count),
      ];
    }
    default:
      return [sample(name, labels, metric.value)];
  }
}

function seriesLabels(
  labels: Readonly<Record<string, string>>,
  grouping: Readonly<Record<string, string>>,
): Array<readonly [string, string]> {
  return Object.entries(labels)
    .filter(([name, value]) => value !== "" && !(name in grouping))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

function sample(name: string, labels: ReadonlyArray<readonly [string, string]>, value: unknown): string {
  if (typeof value !== "string" && typeof value !== "number") {
    throw new UnsupportedGroupError(`series ${name} has no value`);
  }
  const rendered = labels.map(([label, text]) => `${label}="${escapeLabelValue(text)}"`).join(",");
  return `${name}${rendered ? `{${rendered}}` : ""} ${value}`;
}

/** A bucket bound or quantile as Go formats it (`+Inf` is not a JavaScript number literal). */
function bound(text: string): number {
  if (text === "+Inf") return Number.POSITIVE_INFINITY;
  if (text === "-Inf") return Number.NEGATIVE_INFINITY;
  return Number(text);
}

function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function escapeHelp(help: string): string {
  return help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function gaugeValue(family: unknown): number {
  const metric = (family as ReportedFamily | undefined)?.metrics?.[0] as { value?: string } | undefined;
  const value = Number(metric?.value ?? 0);
  return Number.isFinite(value) ? value : 0;
}
