/**
 * What a Pushgateway 1.5.1 stores after a series of writes, and which writes its consistency
 * check refuses, modelled from plain data for the store-consistency differential suite
 * (`test/integration/store-consistency-differential.test.ts`). The suite feeds it only the writes
 * pushguard acknowledged, and compares it with two real Pushgateways and a real Prometheus; the
 * model also says why a write clashes, which the real ones do not.
 *
 * The check it models: in the default mode the Pushgateway applies each push to a copy of its
 * store and gathers it with client_golang's `Gatherers` (storage/diskmetricstore.go,
 * checkWriteRequest), which refuses a family name with two types, a histogram or summary beside
 * a family named like one of its series (`checkSuffixCollisions`), and one series stored twice
 * (`checkMetricConsistency`: name and every label pair, empty values included).
 */

export type FamilyType = "counter" | "gauge" | "untyped" | "histogram" | "summary";

export interface ModelMetric {
  /** Label pairs as the body carries them; the grouping key's labels overwrite them when stored. */
  readonly labels: ReadonlyArray<readonly [string, string]>;
  /** Histogram: the finite upper bounds, ascending (the `+Inf` bucket is always sent too). */
  readonly buckets?: readonly number[];
  /** Summary: the quantiles, ascending. */
  readonly quantiles?: readonly number[];
}

export interface ModelFamily {
  readonly name: string;
  readonly type: FamilyType;
  readonly help?: string;
  readonly metrics: readonly ModelMetric[];
}

/** A grouping key: the job and the other labels of the push path. */
export interface GroupKey {
  readonly job: string;
  /** Never contains `job`. */
  readonly labels: Readonly<Record<string, string>>;
}

export type StoreWrite =
  | { readonly method: "PUT" | "POST"; readonly key: GroupKey; readonly families: readonly ModelFamily[] }
  | { readonly method: "DELETE"; readonly key: GroupKey };

export type ConflictRule = "type-conflict" | "suffix-conflict" | "series-conflict";

export interface Conflict {
  readonly rule: ConflictRule;
  /** The pushed family. */
  readonly family: string;
  /** The group holding the family it clashes with (the pushed group itself for a POST). */
  readonly holder: GroupKey;
  /** The team that group counts against (pushguard's notion: see `StoreModel.apply`). */
  readonly owner: string;
  /**
   * The two series differ only in a label with an empty value: the Pushgateway keeps such a
   * label (so its check passes) and Prometheus drops it (so a scrape holds the series twice and
   * keeps one).
   */
  readonly onlyForPrometheus: boolean;
}

/** `_bucket`, `_count` and `_sum` series of a histogram, `_count` and `_sum` of a summary. */
const SERIES_SUFFIXES: Readonly<Record<FamilyType, readonly string[]>> = {
  histogram: ["_bucket", "_count", "_sum"],
  summary: ["_count", "_sum"],
  counter: [],
  gauge: [],
  untyped: [],
};

/** One string per group, whatever order or encoding its path used. */
export function groupId(key: GroupKey): string {
  return JSON.stringify([key.job, ...Object.entries(key.labels).sort(([a], [b]) => (a < b ? -1 : 1))]);
}

/** `job="x",instance="y"`, for messages. */
export function describeKey(key: GroupKey): string {
  return [
    `job=${JSON.stringify(key.job)}`,
    ...Object.entries(key.labels).map(([name, value]) => `${name}=${JSON.stringify(value)}`),
  ].join(",");
}

/**
 * The label pairs a metric is stored with, sorted: the body's, overwritten by the grouping key's,
 * and `instance=""` when there is no `instance` (storage/diskmetricstore.go, sanitizeLabels).
 */
export function storedLabels(metric: ModelMetric, key: GroupKey): Array<[string, string]> {
  const labels = new Map(metric.labels);
  for (const [name, value] of Object.entries(key.labels)) labels.set(name, value);
  labels.set("job", key.job);
  if (!labels.has("instance")) labels.set("instance", "");
  return [...labels].sort(([a], [b]) => (a < b ? -1 : 1));
}

/** A series as the Pushgateway tells them apart, or (`dropEmpty`) as Prometheus does. */
function seriesId(
  name: string,
  labels: ReadonlyArray<readonly [string, string]>,
  dropEmpty: boolean,
): string {
  return JSON.stringify([name, ...labels.filter(([, value]) => !dropEmpty || value !== "")]);
}

/** The samples `/metrics` serves for a family (and Prometheus stores, one series each). */
export function familySeries(family: ModelFamily): number {
  return family.metrics.reduce((sum, metric) => {
    if (family.type === "histogram") return sum + (metric.buckets?.length ?? 0) + 3;
    if (family.type === "summary") return sum + (metric.quantiles?.length ?? 0) + 2;
    return sum + 1;
  }, 0);
}

/** Whether `base` is a histogram or summary one of whose series is named like `other`. */
export function suffixClash(base: ModelFamily, other: ModelFamily): boolean {
  return SERIES_SUFFIXES[base.type].some((suffix) => other.name === base.name + suffix);
}

interface StoredGroup {
  readonly key: GroupKey;
  owner: string;
  readonly families: Map<string, ModelFamily>;
}

export class StoreModel {
  readonly #groups = new Map<string, StoredGroup>();

  /** Every clash `write` would have with what is stored; [] when the Pushgateway stores it cleanly. */
  conflicts(write: StoreWrite): Conflict[] {
    if (write.method === "DELETE") return [];
    const target = groupId(write.key);
    const pushed = new Set(write.families.map((family) => family.name));
    // What stays beside the write: all but the group for PUT, all but its pushed families for POST.
    const rest = [...this.#groups].flatMap(([id, group]) =>
      [...group.families.values()]
        .filter((family) => id !== target || (write.method === "POST" && !pushed.has(family.name)))
        .map((family) => ({ key: group.key, owner: group.owner, family })),
    );
    const found: Conflict[] = [];
    for (const family of write.families) {
      for (const other of rest) {
        const conflict = (rule: ConflictRule, onlyForPrometheus = false) =>
          found.push({ rule, family: family.name, holder: other.key, owner: other.owner, onlyForPrometheus });
        if (other.family.name === family.name && other.family.type !== family.type) conflict("type-conflict");
        if (suffixClash(family, other.family) || suffixClash(other.family, family))
          conflict("suffix-conflict");
        if (other.family.name !== family.name || other.family.type !== family.type) continue;
        const ids = (of: ModelFamily, key: GroupKey, dropEmpty: boolean) =>
          new Set(of.metrics.map((metric) => seriesId(of.name, storedLabels(metric, key), dropEmpty)));
        const [exact, prometheus] = [false, true].map((dropEmpty) => {
          const mine = ids(family, write.key, dropEmpty);
          return [...ids(other.family, other.key, dropEmpty)].some((id) => mine.has(id));
        });
        if (exact) conflict("series-conflict");
        else if (prometheus) conflict("series-conflict", true);
      }
    }
    return found;
  }

  /**
   * Records an acknowledged write: PUT replaces the group, POST the families it carries. The
   * group then counts against `team`, the writer's.
   */
  apply(write: StoreWrite, team: string): void {
    const id = groupId(write.key);
    if (write.method === "DELETE") {
      this.#groups.delete(id);
      return;
    }
    const group = (write.method === "POST" && this.#groups.get(id)) || {
      key: write.key,
      owner: team,
      families: new Map(),
    };
    group.owner = team;
    for (const family of write.families) group.families.set(family.name, family);
    this.#groups.set(id, group);
  }

  /** Gives every group the owner `ownerOf` says (as a pushguard that re-read the store does). */
  reattribute(ownerOf: (key: GroupKey) => string): void {
    for (const group of this.#groups.values()) group.owner = ownerOf(group.key);
  }

  /** The stored groups and their families. */
  groups(): Array<{ key: GroupKey; families: ModelFamily[] }> {
    return [...this.#groups.values()].map((group) => ({
      key: group.key,
      families: [...group.families.values()],
    }));
  }

  group(key: GroupKey): ModelFamily[] | undefined {
    const group = this.#groups.get(groupId(key));
    return group && [...group.families.values()];
  }

  /**
   * The series `/metrics` serves, by job: each group's samples plus its `push_time_seconds` and
   * `push_failure_time_seconds`. As long as no two series differ only in an empty-valued label,
   * Prometheus stores as many.
   */
  seriesByJob(): Map<string, number> {
    const byJob = new Map<string, number>();
    for (const { key, families } of this.#groups.values()) {
      const series = [...families.values()].reduce((sum, family) => sum + familySeries(family), 2);
      byJob.set(key.job, (byJob.get(key.job) ?? 0) + series);
    }
    return byJob;
  }
}
