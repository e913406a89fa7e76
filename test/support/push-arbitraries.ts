import fc from "fast-check";
import type { FamilySpec, MetricSpec } from "./protobuf.js";
import {
  type CorpusPush,
  encodeDelimited,
  type ProtoFamily,
  type ProtoMetric,
  type PushFormat,
} from "./push-corpus.js";
import {
  type FamilyType,
  type GroupKey,
  type ModelFamily,
  type StoreWrite,
  storedLabels,
  suffixClash,
} from "./store-model.js";

/**
 * Generated pushes for the differential suite. Each is built from valid pieces of a small grammar
 * (the text format, or MetricFamily messages) whose names come from a small alphabet, so families
 * collide (`a` and `a_count`), series repeat and `le`/`quantile`/`job`/`instance` labels meet
 * histograms and summaries; then none, one or two flaws are applied (an invalid name, label,
 * value, escape or UTF-8 byte, a timestamp, CRLF, a missing last newline, a mutated byte, a cut
 * protobuf message). Drawing every piece from a pool with invalid members instead would make
 * nearly every push invalid, and nothing would be learned about valid ones.
 *
 * A generated push is a function of its index: its job is its own and every family name starts
 * with a prefix of its own, so the pushes of one batch never meet in the Pushgateway (no type or
 * HELP conflicts between groups, which would make one push's outcome depend on another's).
 */
export interface GeneratedPush {
  readonly format: PushFormat;
  /** Renders the push for index `index` (its job and name prefix). */
  render(index: number): CorpusPush;
}

type Part = string | readonly number[];
const render = (parts: readonly Part[]) =>
  Buffer.concat(
    parts.map((part) => (typeof part === "string" ? Buffer.from(part, "utf8") : Buffer.from(part))),
  );

const weighted = <T>(...choices: Array<readonly [number, T]>): fc.Arbitrary<T> =>
  fc.oneof(...choices.map(([weight, value]) => ({ weight, arbitrary: fc.constant(value) })));

/** `list[floor(roll * length)]`: a flaw picks its target and variant with rolls in [0, 1). */
const pick = <T>(list: readonly T[], roll: number): T | undefined => list[Math.floor(roll * list.length)];
const roll = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });

/** Base names (the push's prefix goes in front); suffixes make histogram and summary collisions likely. */
const baseName = fc.constantFrom("a", "a", "b", "b", "c", "a_count", "a_sum", "a_bucket", "a_total", "d:e");
const labelName = weighted([6, "x"], [3, "y"], [1, "le"], [1, "quantile"], [1, "job"], [1, "instance"]);
/** Label values as written between the quotes of the text format (escapes included). */
const labelValue = weighted(
  [4, "1"],
  [3, "2"],
  [2, "3"],
  [2, ""],
  [1, "0.5"],
  [1, "+Inf"],
  [1, "中文😀"],
  [1, String.raw`say \"hi\"`],
  [1, String.raw`a\nb`],
  [1, String.raw`back\\slash`],
);
const unescapeText = (text: string) => text.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
const help = weighted([4, "Some help."], [1, String.raw`back\\slash and new\nline`], [1, "中文"], [1, ""]);
const groupingLabels = fc.subarray(
  [
    ["instance", "i1"],
    ["le", "1"],
    ["quantile", "0.5"],
    ["x", "v"],
    ["job", "other"],
  ] as const,
  { maxLength: 2 },
);

interface Flaw<K extends string> {
  readonly kind: K;
  /** Which family (and sample) it hits. */
  readonly target: number;
  /** Which of the kind's variants it is. */
  readonly variant: number;
}

/** None (half the pushes), one or two flaws. */
function flawsOf<K extends string>(kinds: readonly K[]): fc.Arbitrary<Array<Flaw<K>>> {
  const flaw: fc.Arbitrary<Flaw<K>> = fc.record({
    kind: fc.constantFrom(...kinds),
    target: roll,
    variant: roll,
  });
  return fc.oneof(
    { weight: 5, arbitrary: fc.constant<Array<Flaw<K>>>([]) },
    { weight: 4, arbitrary: fc.array(flaw, { minLength: 1, maxLength: 1 }) },
    { weight: 1, arbitrary: fc.array(flaw, { minLength: 2, maxLength: 2 }) },
  );
}

function pathOf(index: number, format: PushFormat, labels: ReadonlyArray<readonly [string, string]>): string {
  return `/metrics/job/team-a-g${format === "text" ? "t" : "p"}${index}${labels.map(([n, v]) => `/${n}/${v}`).join("")}`;
}

// ---------------------------------------------------------------------------------------------
// Text format 0.0.4.
// ---------------------------------------------------------------------------------------------

const TEXT_FLAWS = [
  "name",
  "label-name",
  "label-value",
  "value",
  "help-escape",
  "help-utf8",
  "type",
  "timestamp",
  "bucket-without-le",
  "crlf",
  "no-final-newline",
  "byte",
] as const;

const textSample = fc.record({
  /** Which sample of its family's type this is (histogram: mostly `_bucket`, ...). */
  shape: roll,
  bound: fc.constantFrom("0.5", "1", "+Inf"),
  quantile: fc.constantFrom("0.5", "0.9"),
  labels: fc.uniqueArray(fc.tuple(labelName, labelValue), { selector: ([name]) => name, maxLength: 2 }),
  trailingComma: weighted([9, false], [1, true]),
  separator: weighted([8, " "], [1, "\t"], [1, "  "]),
  value: weighted([6, "1"], [2, "0"], [1, "-2.5"], [1, "1e3"], [1, "NaN"], [1, "+Inf"], [1, "-Inf"]),
});

const textFamily = fc.record({
  name: baseName,
  help: fc.option(help, { freq: 3 }),
  type: weighted<string | undefined>(
    [3, undefined],
    [2, "counter"],
    [2, "gauge"],
    [1, "untyped"],
    [3, "histogram"],
    [3, "summary"],
    [1, "GAUGE"],
  ),
  samples: fc.array(textSample, { maxLength: 3 }),
});

type TextSampleSpec = typeof textSample extends fc.Arbitrary<infer T> ? T : never;

/** The suffix and the label the family's type implies for one of its samples. */
function shapeOf(
  type: string | undefined,
  sample: TextSampleSpec,
): { suffix: string; special?: [string, string] } {
  if (type === "histogram") {
    const suffix = pick(["_bucket", "_bucket", "_bucket", "_sum", "_count"], sample.shape) ?? "_bucket";
    return suffix === "_bucket" ? { suffix, special: ["le", sample.bound] } : { suffix };
  }
  if (type === "summary") {
    const suffix = pick(["", "", "_sum", "_count"], sample.shape) ?? "";
    return suffix === "" ? { suffix, special: ["quantile", sample.quantile] } : { suffix };
  }
  return { suffix: pick(["", "", "", "", "", "_total", "_count"], sample.shape) ?? "" };
}

/** A text push of one to three families, HELP/TYPE lines, comments and blank lines, with flaws. */
export const textPush: fc.Arbitrary<GeneratedPush> = fc
  .record({
    method: weighted([3, "PUT" as const], [1, "POST" as const]),
    grouping: groupingLabels,
    families: fc.array(textFamily, { minLength: 1, maxLength: 3 }),
    comment: weighted([6, false], [1, true]),
    blankLines: weighted([6, false], [1, true]),
    flaws: flawsOf(TEXT_FLAWS),
  })
  .map((spec) => ({
    format: "text" as const,
    render(index: number): CorpusPush {
      const prefix = `g${index}_`;
      const flaw = (kind: (typeof TEXT_FLAWS)[number]) => spec.flaws.find((f) => f.kind === kind);
      const family = (f: { target: number } | undefined) =>
        f ? Math.floor(f.target * spec.families.length) : -1;
      const sampleOf = (f: { target: number } | undefined, samples: number) =>
        f ? Math.floor(((f.target * spec.families.length) % 1) * samples) : -1;
      const lines: Part[][] = [];
      if (spec.comment) lines.push(["# a comment"]);
      spec.families.forEach((fam, i) => {
        const badName = flaw("name");
        const name: Part[] =
          family(badName) === i
            ? (pick<Part[]>(
                [
                  [prefix, "a b"],
                  [prefix, "a-b"],
                  [prefix, "a", [0xff]],
                  ["1", prefix, "a"],
                ],
                badName?.variant ?? 0,
              ) ?? [])
            : [prefix, fam.name];
        const helpText: Part[] | undefined =
          family(flaw("help-escape")) === i
            ? [String.raw`tab \t`]
            : family(flaw("help-utf8")) === i
              ? ["bad ", [0xff]]
              : fam.help !== null
                ? [fam.help]
                : undefined;
        if (helpText !== undefined) lines.push(["# HELP ", ...name, " ", ...helpText]);
        const badType = flaw("type");
        const type =
          family(badType) === i ? pick(["info", "gaugehistogram"], badType?.variant ?? 0) : fam.type;
        if (type !== undefined) lines.push(["# TYPE ", ...name, " ", type]);
        fam.samples.forEach((sample, j) => {
          const at = (kind: (typeof TEXT_FLAWS)[number]) => {
            const f = flaw(kind);
            return family(f) === i && sampleOf(f, fam.samples.length) === j ? f : undefined;
          };
          const { suffix, special } = shapeOf(type?.toLowerCase(), sample);
          const labels: Array<[Part, Part[]]> = sample.labels
            .filter(([n]) => n !== special?.[0])
            .map(([n, v]) => [n, [v]]);
          if (special !== undefined && !at("bucket-without-le")) labels.push([special[0], [special[1]]]);
          const badLabelName = at("label-name");
          if (badLabelName)
            labels.push([pick(["__x", "a-b", "__name__"], badLabelName.variant) ?? "__x", ["1"]]);
          const badLabelValue = at("label-value");
          if (badLabelValue) {
            labels.push([
              "z",
              pick<Part[]>([[String.raw`\t`], ["bad", [0xff]], [[0xc3, 0x28]]], badLabelValue.variant) ?? [],
            ]);
          }
          const pairs = labels.flatMap(([n, v], k) => [k > 0 ? "," : "", n, '="', ...v, '"']);
          const braces: Part[] =
            pairs.length > 0 ? ["{", ...pairs, sample.trailingComma ? "," : "", "}"] : [];
          const badValue = at("value");
          const value = badValue
            ? (pick(["0x1p-2", "1e400", "x", ""], badValue.variant) ?? "x")
            : sample.value;
          const timestamp = at("timestamp") ? " 1700000000000" : "";
          lines.push([...name, suffix, ...braces, sample.separator, value, timestamp]);
        });
        if (spec.blankLines) lines.push([]);
      });
      const lineEnd = flaw("crlf") ? "\r\n" : "\n";
      const last = flaw("no-final-newline") ? "" : lineEnd;
      const body = render(lines.flatMap((line, i) => [...line, i < lines.length - 1 ? lineEnd : last]));
      return {
        method: spec.method,
        path: pathOf(index, "text", spec.grouping),
        body: mutate(body, flaw("byte")),
      };
    },
  }));

/** Replaces, inserts or deletes one byte (the flaw's rolls choose where and how). */
function mutate(body: Buffer, flaw: { target: number; variant: number } | undefined): Buffer {
  if (flaw === undefined || body.length === 0) return body;
  const at = Math.floor(flaw.target * body.length);
  const kinds = ["replace", "insert", "delete"] as const;
  const kind = pick(kinds, flaw.variant) ?? "replace";
  const bytes = [0x00, 0x0a, 0x20, 0x22, 0x23, 0x2c, 0x5c, 0x7b, 0x7d, 0xff];
  const byte = pick(bytes, (flaw.variant * kinds.length) % 1) ?? 0xff;
  const after = body.subarray(kind === "insert" ? at : at + 1);
  return Buffer.concat([
    body.subarray(0, at),
    kind === "delete" ? Buffer.alloc(0) : Buffer.from([byte]),
    after,
  ]);
}

// ---------------------------------------------------------------------------------------------
// Delimited protobuf.
// ---------------------------------------------------------------------------------------------

const PROTOBUF_FLAWS = [
  "name",
  "help",
  "label-name",
  "label-value",
  "type",
  "value",
  "timestamp",
  "truncate",
] as const;

const protoMetric = fc.record({
  labels: fc.uniqueArray(fc.tuple(labelName, labelValue.map(unescapeText)), {
    selector: ([name]) => name,
    maxLength: 3,
  }),
  buckets: fc.subarray<readonly [number, number]>(
    [
      [0.5, 1],
      [1, 2],
      [Number.POSITIVE_INFINITY, 3],
      [1, 2],
    ],
    { maxLength: 3 },
  ),
  quantiles: fc.subarray<readonly [number, number]>(
    [
      [0.5, 1],
      [0.9, 2],
      [0.5, 1],
    ],
    { maxLength: 2 },
  ),
});

const protoFamily = fc.record({
  name: baseName,
  help: fc.option(help.map(unescapeText), { freq: 3 }),
  type: weighted<ProtoFamily["type"]>(
    [4, "GAUGE"],
    [3, "COUNTER"],
    [2, "UNTYPED"],
    [3, "SUMMARY"],
    [3, "HISTOGRAM"],
    [1, undefined],
  ),
  // Families without metrics are in the corpus (some refused on purpose), so every one has some.
  metrics: fc.array(protoMetric, { minLength: 1, maxLength: 3 }),
});

type ProtoMetricSpec = typeof protoMetric extends fc.Arbitrary<infer T> ? T : never;

/** The value field `type` names (COUNTER when absent or unknown). */
function valueFor(type: ProtoFamily["type"], spec: ProtoMetricSpec): ProtoMetric {
  switch (type) {
    case "GAUGE":
      return { gauge: 1 };
    case "UNTYPED":
      return { untyped: 1 };
    case "SUMMARY":
      return { summary: { count: 3, sum: 4, quantiles: spec.quantiles } };
    case "HISTOGRAM":
    case "GAUGE_HISTOGRAM":
      return { histogram: { count: 3, sum: 4, buckets: spec.buckets } };
    default:
      return { counter: 1 };
  }
}

/** A delimited protobuf push of one to three families, with flaws. */
export const protobufPush: fc.Arbitrary<GeneratedPush> = fc
  .record({
    method: weighted([3, "PUT" as const], [1, "POST" as const]),
    grouping: groupingLabels,
    families: fc.array(protoFamily, { minLength: 1, maxLength: 3 }),
    flaws: flawsOf(PROTOBUF_FLAWS),
  })
  .map((spec) => ({
    format: "protobuf" as const,
    render(index: number): CorpusPush {
      const prefix = `g${index}_`;
      const on = (kind: (typeof PROTOBUF_FLAWS)[number], i: number) =>
        spec.flaws.find((f) => f.kind === kind && Math.floor(f.target * spec.families.length) === i);
      const families = spec.families.map((family, i): ProtoFamily => {
        const badName = on("name", i);
        const name = badName
          ? pick<Part[]>(
              [[""], [prefix, "a b"], [prefix, "a-b"], [prefix, [0xff]], ["1", prefix]],
              badName.variant,
            )
          : [prefix, family.name];
        if (name?.length === 1 && name[0] === "") {
          // An empty name is the one name two pushes of a batch can share: keep such families alike.
          return { name: "", type: "GAUGE", metrics: family.metrics.map(() => ({ gauge: 1 })) };
        }
        const badType = on("type", i);
        const type = badType
          ? pick<ProtoFamily["type"]>(["GAUGE_HISTOGRAM", 9], badType.variant)
          : family.type;
        const badValue = on("value", i);
        const badLabel = on("label-name", i);
        const badLabelValue = on("label-value", i);
        return {
          name: render(name ?? [prefix]),
          ...(on("help", i)
            ? { help: render(["bad ", [0xff]]) }
            : family.help !== null
              ? { help: family.help }
              : {}),
          ...(type !== undefined ? { type } : {}),
          metrics: family.metrics.map((metric, j) => {
            const first = j === 0;
            const labels: Array<readonly [string | Buffer, string | Buffer]> = [...metric.labels];
            if (first && badLabel) labels.push([pick(["__x", "a-b", ""], badLabel.variant) ?? "__x", "1"]);
            if (first && badLabelValue) {
              labels.push([
                "z",
                render(pick<Part[]>([[[0xff]], [[0xc3, 0x28]]], badLabelValue.variant) ?? []),
              ]);
            }
            const value =
              first && badValue
                ? badValue.variant < 0.5
                  ? {}
                  : valueFor(type === "GAUGE" ? "COUNTER" : "GAUGE", metric)
                : valueFor(type, metric);
            return {
              labels,
              ...value,
              ...(first && on("timestamp", i) ? { timestampMs: 1_700_000_000_000 } : {}),
            };
          }),
        };
      });
      const body = encodeDelimited(families);
      const cut = spec.flaws.find((f) => f.kind === "truncate");
      return {
        method: spec.method,
        path: pathOf(index, "protobuf", spec.grouping),
        body: cut ? body.subarray(0, Math.floor(cut.target * body.length)) : body,
      };
    },
  }));

// ---------------------------------------------------------------------------------------------
// Sequences of writes across groups and teams.
// ---------------------------------------------------------------------------------------------

/** Who sends a write, as named in `standardConfig`: team-a (team-a-*), team-b (team-b-*), admins (*). */
export type SequenceActor = "team-a" | "team-b" | "admin";

/** One write of a generated sequence: valid on its own, and authorized for its actor. */
export interface SequenceStep {
  readonly actor: SequenceActor;
  readonly write: StoreWrite;
  readonly format: PushFormat;
  /** How the path spells the grouping key (the same group either way). */
  readonly spelling: { readonly reversed: boolean; readonly base64: boolean };
}

/** Jobs shared by the pool, with who may write each (mostly its own team, now and then an admin). */
const SEQUENCE_JOBS: ReadonlyArray<readonly [number, string, fc.Arbitrary<SequenceActor>]> = [
  [3, "team-a-x", weighted<SequenceActor>([4, "team-a"], [1, "admin"])],
  [1, "team-a-y", weighted<SequenceActor>([4, "team-a"], [1, "admin"])],
  [2, "team-b-x", weighted<SequenceActor>([4, "team-b"], [1, "admin"])],
  [1, "ops-z", fc.constant<SequenceActor>("admin")],
];

/** Grouping labels beside the job: `instance` mostly, so bodies' `instance` labels meet keys. */
const sequenceKeyLabels = weighted<Readonly<Record<string, string>>>(
  [4, {}],
  [4, { instance: "i1" }],
  [1, { instance: "i2" }],
  [1, { x: "v" }],
  [1, { instance: "i1", x: "v" }],
);

/**
 * Family names and the type each mostly has: `m` a histogram beside `m_count` and `m_bucket`
 * (suffix clashes), `s` a summary beside `s_sum` (a clash) and `s_bucket` (none: a summary has no
 * buckets), `n` a gauge; now and then a name comes with another type (type clashes).
 */
const SEQUENCE_NAMES: ReadonlyArray<readonly [number, string, FamilyType]> = [
  [3, "m", "histogram"],
  [1, "m_count", "counter"],
  [1, "m_bucket", "gauge"],
  [2, "s", "summary"],
  [1, "s_sum", "counter"],
  [1, "s_bucket", "untyped"],
  [8, "n", "gauge"],
];
const FAMILY_TYPES: readonly FamilyType[] = ["counter", "gauge", "untyped", "histogram", "summary"];

/** Mostly one label at most, `instance="i1"` first: what makes series of two groups one. */
const sequenceLabels = fc
  .uniqueArray(
    weighted<readonly [string, string]>(
      [6, ["instance", "i1"]],
      [2, ["instance", "i2"]],
      [1, ["instance", ""]],
      [2, ["x", "v"]],
      [1, ["x", "w"]],
      [1, ["y", "1"]],
      [2, ["y", ""]],
    ),
    { selector: ([name]) => name, maxLength: 2, depthIdentifier: "labels" },
  )
  .chain((labels) => weighted([2, labels.slice(0, 1)], [1, labels]));

const sequenceMetric = fc.record({
  labels: sequenceLabels,
  buckets: fc.subarray([0.5, 1]),
  quantiles: fc.subarray([0.5, 0.9], { minLength: 1 }),
});

const sequenceFamily = fc
  .oneof(
    ...SEQUENCE_NAMES.map(([weight, name, type]) => ({
      weight,
      arbitrary: fc.constant([name, type] as const),
    })),
  )
  .chain(([name, usual]) =>
    fc.record({
      name: fc.constant(name),
      type: fc.oneof(
        { weight: 6, arbitrary: fc.constant(usual) },
        { weight: 1, arbitrary: fc.constantFrom(...FAMILY_TYPES) },
      ),
      help: weighted<string | undefined>([2, undefined], [2, "One help."], [1, "Another help."]),
      metrics: fc.array(sequenceMetric, { minLength: 1, maxLength: 3 }),
    }),
  );

/** A family as drawn: every metric with buckets and quantiles, whatever the type says. */
type DrawnFamily = typeof sequenceFamily extends fc.Arbitrary<infer T> ? T : never;

/**
 * What makes the push valid on its own (pushguard's per-push rules, docs/validation.md): each name
 * once, no histogram or summary beside a family named like its series, no series twice once the
 * grouping labels overwrite the body's and empty values are dropped. The rest of a family stays.
 */
function validAlone(key: GroupKey, families: ReadonlyArray<ModelFamily>): ModelFamily[] {
  const kept: ModelFamily[] = [];
  for (const family of families) {
    const clashes = kept.some(
      (other) => other.name === family.name || suffixClash(other, family) || suffixClash(family, other),
    );
    if (clashes) continue;
    const seen = new Set<string>();
    const metrics = family.metrics.filter((metric) => {
      const id = JSON.stringify(storedLabels(metric, key).filter(([, value]) => value !== ""));
      if (seen.has(id)) return false;
      seen.add(id);
      return true;
    });
    const typed: ModelFamily = {
      name: family.name,
      type: family.type,
      ...(family.help !== undefined ? { help: family.help } : {}),
      metrics: metrics.map((metric) => ({
        labels: metric.labels,
        ...(family.type === "histogram" ? { buckets: metric.buckets } : {}),
        ...(family.type === "summary" ? { quantiles: metric.quantiles } : {}),
      })),
    };
    kept.push(typed);
  }
  return kept;
}

/** Who writes to which group: the first thing a step draws, and what a step may take over. */
interface SequenceTarget {
  readonly actor: SequenceActor;
  readonly key: GroupKey;
}

const sequenceTarget: fc.Arbitrary<SequenceTarget> = weighted(
  ...SEQUENCE_JOBS.map(([weight, job, actor]) => [weight, [job, actor]] as const),
).chain(([job, actor]) =>
  fc.record({ actor, key: sequenceKeyLabels.map((labels): GroupKey => ({ job, labels })) }),
);

const sequenceStepSpec = fc.record({
  target: sequenceTarget,
  /**
   * Write the previous step's families to its group again (as a job re-pushing its group), or
   * write to another group of its job (as another instance of it: the groups whose series can be
   * one).
   */
  follow: weighted<"no" | "same group" | "same job">([2, "no"], [2, "same group"], [3, "same job"]),
  /** When re-pushing: the type the first family now has (as after a release that changed it). */
  retype: fc.option(fc.constantFrom(...FAMILY_TYPES), { freq: 3 }),
  method: weighted<"PUT" | "POST" | "DELETE">([4, "PUT"], [3, "POST"], [1, "DELETE"]),
  families: fc.array(sequenceFamily, { minLength: 1, maxLength: 2 }),
  format: weighted<PushFormat>([1, "text"], [1, "protobuf"]),
  spelling: fc.record({ reversed: fc.boolean(), base64: weighted([3, false], [1, true]) }),
});

/**
 * Sequences of PUT, POST and DELETE by several teams over a small shared pool of jobs, grouping
 * keys (`instance` among them), family names and types, so that writes valid on their own clash
 * across groups: a name with two types, a histogram beside `m_count`, one series stored by two
 * groups (`{job=a}` pushing `m{instance="i1"}` and `{job=a,instance=i1}` pushing `m`). Some steps
 * write the group the step before wrote, so families are also replaced in place (by PUT, or POST
 * with the same name), now and then by another type; some write another group of its job. Unlike
 * the pushes above, the steps of a sequence are meant to meet.
 */
export const storeSequence: fc.Arbitrary<SequenceStep[]> = fc
  .array(sequenceStepSpec, { minLength: 12, maxLength: 28 })
  .map((specs) => {
    let previous: (SequenceTarget & { families: readonly DrawnFamily[] }) | undefined;
    return specs.map((spec): SequenceStep => {
      const { follow, method, format, spelling } = spec;
      let { actor, key } = spec.target;
      let families: readonly DrawnFamily[] = spec.families;
      if (previous !== undefined && follow === "same group") {
        ({ actor, key } = previous);
        const [first, ...rest] = previous.families;
        if (first !== undefined) families = [{ ...first, type: spec.retype ?? first.type }, ...rest];
      } else if (previous !== undefined && follow === "same job") {
        ({ actor } = previous);
        key = { job: previous.key.job, labels: key.labels };
      }
      previous = { actor, key, families };
      const write: StoreWrite =
        method === "DELETE" ? { method, key } : { method, key, families: validAlone(key, families) };
      return { actor, write, format, spelling };
    });
  });

/** The push path of a write, spelled as the step says. */
export function sequencePath(step: Pick<SequenceStep, "write" | "spelling">): string {
  const { key } = step.write;
  const segment = (name: string, value: string) =>
    step.spelling.base64 ? `${name}@base64/${Buffer.from(value).toString("base64url")}` : `${name}/${value}`;
  const labels = Object.entries(key.labels).map(([name, value]) => segment(name, value));
  if (step.spelling.reversed) labels.reverse();
  return [`/metrics/${segment("job", key.job)}`, ...labels].join("/");
}

/** The body of a PUT or POST in the given format. */
export function renderFamilies(format: PushFormat, families: readonly ModelFamily[]): Buffer {
  return format === "text" ? Buffer.from(textOf(families)) : encodeDelimited(families.map(protoOf));
}

function textOf(families: readonly ModelFamily[]): string {
  const lines: string[] = [];
  for (const { name, type, help, metrics } of families) {
    if (help !== undefined) lines.push(`# HELP ${name} ${help}`);
    lines.push(`# TYPE ${name} ${type}`);
    for (const metric of metrics) {
      const sample = (suffix: string, value: number, extra?: readonly [string, string]) => {
        const pairs = [...metric.labels, ...(extra ? [extra] : [])].map(([n, v]) => `${n}="${v}"`);
        lines.push(`${name}${suffix}${pairs.length > 0 ? `{${pairs.join(",")}}` : ""} ${value}`);
      };
      if (type === "histogram") {
        const bounds = metric.buckets ?? [];
        bounds.forEach((bound, i) => {
          sample("_bucket", i + 1, ["le", String(bound)]);
        });
        sample("_bucket", bounds.length + 1, ["le", "+Inf"]);
        sample("_sum", 4);
        sample("_count", bounds.length + 1);
      } else if (type === "summary") {
        for (const quantile of metric.quantiles ?? []) sample("", 1, ["quantile", String(quantile)]);
        sample("_sum", 4);
        sample("_count", 3);
      } else {
        sample("", 1);
      }
    }
  }
  return `${lines.join("\n")}\n`;
}

function protoOf({ name, type, help, metrics }: ModelFamily): ProtoFamily {
  return {
    name,
    ...(help !== undefined ? { help } : {}),
    type: type.toUpperCase() as ProtoFamily["type"],
    metrics: metrics.map((metric): ProtoMetric => {
      const labels = metric.labels;
      if (type === "histogram") {
        const bounds = [...(metric.buckets ?? []), Number.POSITIVE_INFINITY];
        return {
          labels,
          histogram: { count: bounds.length, sum: 4, buckets: bounds.map((bound, i) => [bound, i + 1]) },
        };
      }
      if (type === "summary") {
        return {
          labels,
          summary: { count: 3, sum: 4, quantiles: (metric.quantiles ?? []).map((q) => [q, 1]) },
        };
      }
      return { labels, [type]: 1 };
    }),
  };
}

/**
 * MetricFamily specs for `encodeFamilies` with any bytes as names, help and labels, any mix of
 * value fields, buckets and quantiles: what the protobuf parser's round-trip properties (against
 * the test encoder, and against Go's expfmt) draw from.
 */
export function familySpecs(
  counts: { minLength?: number; maxLength?: number } = { maxLength: 4 },
): fc.Arbitrary<FamilySpec[]> {
  const text = fc.string({ unit: "binary", maxLength: 10 });
  const metric: fc.Arbitrary<MetricSpec> = fc.record(
    {
      labels: fc.array(fc.tuple(text, text), { maxLength: 3 }),
      values: fc.shuffledSubarray<MetricSpec["values"][number]>([
        "gauge",
        "counter",
        "summary",
        "untyped",
        "histogram",
      ]),
      buckets: fc.array(fc.double(), { maxLength: 4 }),
      quantiles: fc.array(fc.double(), { maxLength: 4 }),
      timestampMs: fc.maxSafeInteger(),
    },
    { requiredKeys: ["values"] },
  );
  const family: fc.Arbitrary<FamilySpec> = fc.record(
    {
      name: text,
      help: text,
      type: fc.integer({ min: 0, max: 4 }),
      metrics: fc.array(metric, { maxLength: 4 }),
    },
    { requiredKeys: ["name", "metrics"] },
  );
  return fc.array(family, counts);
}
