import { gunzipSync, gzipSync } from "node:zlib";
import { Counter, Gauge, Histogram, Registry, Summary } from "prom-client";
import { PROTOBUF_CONTENT_TYPE } from "./protobuf.js";

/**
 * Push bodies for the differential suite (`test/integration/push-validation-differential.test.ts`):
 * each case is sent straight to a Pushgateway and through pushguard, and the two must agree (see
 * the suite for the rules). Valid bodies that look odd are here as much as the breaking ones: a
 * validator that refuses them breaks somebody's batch job.
 *
 * Every case uses its own jobs (so Prometheus series of one case are never mistaken for another's);
 * jobs start with `team-a-` so the team-a token may push them.
 */

export type PushFormat = "text" | "protobuf";

export interface CorpusPush {
  readonly method: "PUT" | "POST";
  readonly path: string;
  /** The bytes on the wire (already gzip-compressed when `contentEncoding` says so). */
  readonly body: Buffer | string;
  /** Overrides the case's format for this push. */
  readonly format?: PushFormat;
  /** Overrides the format's usual Content-Type; `null` sends none. */
  readonly contentType?: string | null;
  readonly contentEncoding?: "gzip";
}

/** The codes a refused push may carry (issue 11), besides the body guard's. */
export const VALIDATION_CODES = [
  "ERR_BAD_EXPOSITION",
  "ERR_INVALID_METRIC",
  "ERR_BAD_GROUPING_KEY",
  "ERR_PUSH_TOO_LARGE",
  "ERR_PUSH_LIMIT",
  "ERR_METRIC_NAME_DENIED",
  "ERR_LABEL_RESERVED",
  "ERR_FAMILY_CONFLICT",
] as const;

export type ValidationCode = (typeof VALIDATION_CODES)[number];

interface BaseCase {
  readonly name: string;
  readonly format: PushFormat;
  readonly pushes: readonly CorpusPush[];
  readonly note?: string;
  /**
   * Sample lines the case's groups hold in `/metrics` once every push is stored, not counting
   * `push_time_seconds` and `push_failure_time_seconds`: what the client pushed, so a Pushgateway
   * that silently drops part of it does not count as serving it.
   */
  readonly series?: number;
}

/**
 * A case pushguard refuses on purpose although the Pushgateway accepts it and Prometheus scrapes
 * it fine: `stricter` says why, `code` is the refusal's code.
 */
export type PushCase =
  | (BaseCase & { readonly stricter?: undefined; readonly code?: undefined })
  | (BaseCase & { readonly stricter: string; readonly code: ValidationCode });

export const TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** The Content-Type a push is sent with, or `undefined` for none. */
export function contentTypeOf(format: PushFormat, push: CorpusPush): string | undefined {
  if (push.contentType === null) return undefined;
  return (
    push.contentType ?? ((push.format ?? format) === "protobuf" ? PROTOBUF_CONTENT_TYPE : TEXT_CONTENT_TYPE)
  );
}

// ---------------------------------------------------------------------------------------------
// A generic io.prometheus.client.MetricFamily encoder (client_model metrics.proto), written here
// while test/support/protobuf.ts is being extended; merge it there once that settles. Names, help
// and labels take raw bytes too, so invalid UTF-8 can be sent.
// ---------------------------------------------------------------------------------------------

type Bytes = string | Buffer;

export type ProtoMetricType = "COUNTER" | "GAUGE" | "SUMMARY" | "UNTYPED" | "HISTOGRAM" | "GAUGE_HISTOGRAM";

const METRIC_TYPES: Record<ProtoMetricType, number> = {
  COUNTER: 0,
  GAUGE: 1,
  SUMMARY: 2,
  UNTYPED: 3,
  HISTOGRAM: 4,
  GAUGE_HISTOGRAM: 5,
};

export interface ProtoHistogram {
  readonly count?: number;
  readonly sum?: number;
  /** `[upperBound, cumulativeCount]` in the order given. */
  readonly buckets?: ReadonlyArray<readonly [number, number]>;
  /** Native histogram fields (client_model 0.3). */
  readonly schema?: number;
  readonly zeroThreshold?: number;
  readonly zeroCount?: number;
  /** `[offset, length]` */
  readonly positiveSpans?: ReadonlyArray<readonly [number, number]>;
  readonly positiveDeltas?: readonly number[];
}

export interface ProtoMetric {
  /** Label pairs in the order given, duplicates kept. */
  readonly labels?: ReadonlyArray<readonly [Bytes, Bytes]>;
  readonly gauge?: number;
  readonly counter?: number;
  readonly untyped?: number;
  readonly summary?: {
    readonly count?: number;
    readonly sum?: number;
    /** `[quantile, value]` */
    readonly quantiles?: ReadonlyArray<readonly [number, number]>;
  };
  readonly histogram?: ProtoHistogram;
  readonly timestampMs?: number;
}

export interface ProtoFamily {
  /** Omitted: the field is absent (an empty name). */
  readonly name?: Bytes;
  readonly help?: Bytes;
  /** A name, or a raw enum number (one client_model does not define). Omitted: absent (COUNTER). */
  readonly type?: ProtoMetricType | number;
  readonly metrics?: readonly ProtoMetric[];
}

function varint(value: number | bigint): Buffer {
  let rest = BigInt.asUintN(64, BigInt(value));
  const bytes: number[] = [];
  while (rest > 0x7fn) {
    bytes.push(Number(rest & 0x7fn) | 0x80);
    rest >>= 7n;
  }
  bytes.push(Number(rest));
  return Buffer.from(bytes);
}

const tag = (field: number, wire: 0 | 1 | 2) => varint((field << 3) | wire);
const uintField = (field: number, value: number | bigint) => Buffer.concat([tag(field, 0), varint(value)]);
const sintField = (field: number, value: number) => {
  const v = BigInt(value);
  return uintField(field, BigInt.asUintN(64, (v << 1n) ^ (v >> 63n)));
};
const doubleField = (field: number, value: number) => {
  const bytes = Buffer.alloc(8);
  bytes.writeDoubleLE(value);
  return Buffer.concat([tag(field, 1), bytes]);
};
const lenField = (field: number, value: Bytes) => {
  const bytes = typeof value === "string" ? Buffer.from(value, "utf8") : value;
  return Buffer.concat([tag(field, 2), varint(bytes.length), bytes]);
};

function encodeHistogram(histogram: ProtoHistogram): Buffer {
  const parts: Buffer[] = [];
  if (histogram.count !== undefined) parts.push(uintField(1, histogram.count));
  if (histogram.sum !== undefined) parts.push(doubleField(2, histogram.sum));
  for (const [upperBound, count] of histogram.buckets ?? []) {
    parts.push(lenField(3, Buffer.concat([uintField(1, count), doubleField(2, upperBound)])));
  }
  if (histogram.schema !== undefined) parts.push(sintField(5, histogram.schema));
  if (histogram.zeroThreshold !== undefined) parts.push(doubleField(6, histogram.zeroThreshold));
  if (histogram.zeroCount !== undefined) parts.push(uintField(7, histogram.zeroCount));
  for (const [offset, length] of histogram.positiveSpans ?? []) {
    parts.push(lenField(12, Buffer.concat([sintField(1, offset), uintField(2, length)])));
  }
  for (const delta of histogram.positiveDeltas ?? []) parts.push(sintField(13, delta));
  return Buffer.concat(parts);
}

function encodeMetric(metric: ProtoMetric): Buffer {
  const parts = (metric.labels ?? []).map(([name, value]) =>
    lenField(1, Buffer.concat([lenField(1, name), lenField(2, value)])),
  );
  if (metric.gauge !== undefined) parts.push(lenField(2, doubleField(1, metric.gauge)));
  if (metric.counter !== undefined) parts.push(lenField(3, doubleField(1, metric.counter)));
  if (metric.summary !== undefined) {
    const { count, sum, quantiles = [] } = metric.summary;
    const summary: Buffer[] = [];
    if (count !== undefined) summary.push(uintField(1, count));
    if (sum !== undefined) summary.push(doubleField(2, sum));
    for (const [quantile, value] of quantiles) {
      summary.push(lenField(3, Buffer.concat([doubleField(1, quantile), doubleField(2, value)])));
    }
    parts.push(lenField(4, Buffer.concat(summary)));
  }
  if (metric.untyped !== undefined) parts.push(lenField(5, doubleField(1, metric.untyped)));
  if (metric.timestampMs !== undefined) parts.push(uintField(6, metric.timestampMs));
  if (metric.histogram !== undefined) parts.push(lenField(7, encodeHistogram(metric.histogram)));
  return Buffer.concat(parts);
}

/** One MetricFamily message (without its length prefix). */
export function encodeFamily(family: ProtoFamily): Buffer {
  const parts: Buffer[] = [];
  if (family.name !== undefined) parts.push(lenField(1, family.name));
  if (family.help !== undefined) parts.push(lenField(2, family.help));
  if (family.type !== undefined) {
    parts.push(uintField(3, typeof family.type === "number" ? family.type : METRIC_TYPES[family.type]));
  }
  for (const metric of family.metrics ?? []) parts.push(lenField(4, encodeMetric(metric)));
  return Buffer.concat(parts);
}

/** Messages, each prefixed with its varint length: the body Pushgateway reads. */
export function delimited(messages: readonly Buffer[]): Buffer {
  return Buffer.concat(messages.flatMap((message) => [varint(message.length), message]));
}

export const encodeDelimited = (families: readonly ProtoFamily[]): Buffer =>
  delimited(families.map(encodeFamily));

// ---------------------------------------------------------------------------------------------
// What a stored push must show in `/metrics`.
// ---------------------------------------------------------------------------------------------

/**
 * For each family a (well-formed) push carries at least one metric of, the sample names it may
 * appear under in `/metrics`; at least one of each list must be there once the push is stored.
 */
export function pushedSampleNames(format: PushFormat, push: CorpusPush): string[][] {
  const raw = typeof push.body === "string" ? Buffer.from(push.body, "utf8") : push.body;
  const body = push.contentEncoding === "gzip" ? gunzipSync(raw) : raw;
  return (push.format ?? format) === "text" ? textSampleNames(body) : protobufSampleNames(body);
}

function textSampleNames(body: Buffer): string[][] {
  const names = new Set<string>();
  for (const line of body.toString("utf8").split("\n")) {
    const name = /^[ \t]*([^ \t{#][^ \t{]*)/.exec(line)?.[1];
    if (name !== undefined) names.add(name);
  }
  return [...names].map((name) => [name]);
}

function protobufSampleNames(body: Buffer): string[][] {
  return decodeFamilies(body)
    .filter((family) => family.metrics.length > 0)
    .map(({ name }) => [name, `${name}_sum`, `${name}_count`, `${name}_bucket`]);
}

/**
 * The series `/metrics` would serve for a (well-formed) delimited protobuf push if the Pushgateway
 * kept every family and metric of it, as its text exposition writes them (`push_time_seconds` and
 * `push_failure_time_seconds` not counted).
 */
export function pushedProtobufSeries(push: CorpusPush): number {
  const raw = typeof push.body === "string" ? Buffer.from(push.body, "utf8") : push.body;
  const body = push.contentEncoding === "gzip" ? gunzipSync(raw) : raw;
  let series = 0;
  for (const family of decodeFamilies(body)) {
    for (const metric of family.metrics) {
      if (family.type === METRIC_TYPES.SUMMARY) {
        const summary = fieldsOf(metric).find((f) => f.number === 4)?.bytes ?? Buffer.alloc(0);
        series += fieldsOf(summary).filter((f) => f.number === 3).length + 2;
      } else if (family.type === METRIC_TYPES.HISTOGRAM || family.type === METRIC_TYPES.GAUGE_HISTOGRAM) {
        const histogram = fieldsOf(metric).find((f) => f.number === 7)?.bytes ?? Buffer.alloc(0);
        const bounds = fieldsOf(histogram)
          .filter((f) => f.number === 3)
          .map((bucket) =>
            fieldsOf(bucket.bytes ?? Buffer.alloc(0))
              .find((f) => f.number === 2)
              ?.bytes?.readDoubleLE(),
          );
        // The text exposition adds the +Inf bucket when it is missing.
        series += bounds.length + (bounds.includes(Number.POSITIVE_INFINITY) ? 0 : 1) + 2;
      } else {
        series += 1;
      }
    }
  }
  return series;
}

interface DecodedFamily {
  readonly name: string;
  readonly type: number;
  /** The Metric messages, undecoded. */
  readonly metrics: Buffer[];
}

function decodeFamilies(body: Buffer): DecodedFamily[] {
  const families: DecodedFamily[] = [];
  for (let at = 0; at < body.length; ) {
    const [length, start] = readVarint(body, at);
    at = start + Number(length);
    const fields = fieldsOf(body.subarray(start, at));
    families.push({
      name: fields.find((f) => f.number === 1)?.bytes?.toString("utf8") ?? "",
      type: Number(fields.find((f) => f.number === 3)?.varint ?? 0n),
      metrics: fields.flatMap((f) => (f.number === 4 && f.bytes ? [f.bytes] : [])),
    });
  }
  return families;
}

interface Field {
  readonly number: number;
  readonly varint?: bigint;
  /** Length-delimited and fixed-width values, as bytes. */
  readonly bytes?: Buffer;
}

function fieldsOf(message: Buffer): Field[] {
  const fields: Field[] = [];
  for (let at = 0; at < message.length; ) {
    const [key, next] = readVarint(message, at);
    const number = Number(key >> 3n);
    switch (Number(key & 7n)) {
      case 0: {
        const [varint, end] = readVarint(message, next);
        fields.push({ number, varint });
        at = end;
        break;
      }
      case 1:
        fields.push({ number, bytes: message.subarray(next, next + 8) });
        at = next + 8;
        break;
      case 5:
        fields.push({ number, bytes: message.subarray(next, next + 4) });
        at = next + 4;
        break;
      default: {
        const [size, from] = readVarint(message, next);
        fields.push({ number, bytes: message.subarray(from, from + Number(size)) });
        at = from + Number(size);
      }
    }
  }
  return fields;
}

function readVarint(bytes: Buffer, from: number): [bigint, number] {
  let value = 0n;
  let shift = 0n;
  for (let at = from; at < bytes.length; at++) {
    const byte = bytes[at] ?? 0;
    value |= BigInt(byte & 0x7f) << shift;
    shift += 7n;
    if ((byte & 0x80) === 0) return [value, at + 1];
  }
  throw new Error("truncated varint");
}

/** The jobs a case pushes to (the first `job` segment of each path, decoded). */
export function jobsOf(pushCase: PushCase): string[] {
  return [...new Set(pushCase.pushes.map((push) => jobOf(push.path)))];
}

export function jobOf(path: string): string {
  const plain = /^\/metrics\/job\/([^/]+)/.exec(path);
  if (plain?.[1] !== undefined) return decodeURIComponent(plain[1]);
  const base64 = /^\/metrics\/job@base64\/([^/]+)/.exec(path);
  if (base64?.[1] !== undefined) return Buffer.from(base64[1], "base64url").toString("utf8");
  throw new Error(`not a push path: ${path}`);
}

// ---------------------------------------------------------------------------------------------
// The corpus.
// ---------------------------------------------------------------------------------------------

const job = (slug: string, rest = "") => `/metrics/job/team-a-${slug}${rest}`;
const put = (path: string, body: Buffer | string, extra: Partial<CorpusPush> = {}): CorpusPush => ({
  method: "PUT",
  path,
  body,
  ...extra,
});
const post = (path: string, body: Buffer | string): CorpusPush => ({ method: "POST", path, body });
const bytes = (...parts: Array<string | number[]>) =>
  Buffer.concat(
    parts.map((part) => (typeof part === "string" ? Buffer.from(part, "utf8") : Buffer.from(part))),
  );
const lines = (...text: string[]) => `${text.join("\n")}\n`;

/** Real prom-client output (fixed values), as Node batch jobs push it. */
async function promClientBody(): Promise<string> {
  const registry = new Registry();
  const requests = new Counter({
    name: "batch_items_total",
    help: "Items handled, by outcome",
    labelNames: ["outcome"],
    registers: [registry],
  });
  requests.inc({ outcome: "ok" }, 1027);
  requests.inc({ outcome: "failed" }, 3);
  new Gauge({ name: "batch_last_success_seconds", help: "Last success", registers: [registry] }).set(1.7e9);
  const duration = new Histogram({
    name: "batch_step_duration_seconds",
    help: "Step duration",
    labelNames: ["step"],
    buckets: [0.1, 1, 10],
    registers: [registry],
  });
  for (const seconds of [0.05, 0.5, 5, 50]) duration.observe({ step: "load" }, seconds);
  const rows = new Summary({
    name: "batch_rows",
    help: "Rows per chunk",
    percentiles: [0.5, 0.9],
    registers: [registry],
  });
  for (const count of [10, 20, 30]) rows.observe(count);
  return registry.metrics();
}

const PYTHON_CLIENT_BODY = lines(
  "# HELP jobs_processed_total Jobs processed",
  "# TYPE jobs_processed_total counter",
  'jobs_processed_total{queue="default"} 3.0',
  "# HELP jobs_processed_created Jobs processed",
  "# TYPE jobs_processed_created gauge",
  'jobs_processed_created{queue="default"} 1.7000000005e+09',
  "# HELP last_success_unixtime Last time a batch job successfully finished",
  "# TYPE last_success_unixtime gauge",
  "last_success_unixtime 1.7000000005e+09",
  "# HELP batch_duration_seconds Batch duration",
  "# TYPE batch_duration_seconds histogram",
  'batch_duration_seconds_bucket{le="1.0"} 0.0',
  'batch_duration_seconds_bucket{le="5.0"} 1.0',
  'batch_duration_seconds_bucket{le="30.0"} 1.0',
  'batch_duration_seconds_bucket{le="+Inf"} 2.0',
  "batch_duration_seconds_count 2.0",
  "batch_duration_seconds_sum 42.0",
  "# HELP batch_duration_seconds_created Batch duration",
  "# TYPE batch_duration_seconds_created gauge",
  "batch_duration_seconds_created 1.7000000005e+09",
  "# HELP rows_written Rows written per batch",
  "# TYPE rows_written summary",
  "rows_written_count 1.0",
  "rows_written_sum 120.0",
  "# HELP build_info Build information",
  "# TYPE build_info gauge",
  'build_info{version="1.2.3"} 1.0',
  "# HELP phase Batch phase",
  "# TYPE phase gauge",
  'phase{phase="loading"} 0.0',
  'phase{phase="writing"} 0.0',
  'phase{phase="done"} 1.0',
);

const GO_CLIENT_BODY = lines(
  "# HELP backup_duration_seconds Duration of the backup.",
  "# TYPE backup_duration_seconds summary",
  'backup_duration_seconds{quantile="0.5"} 12.3',
  'backup_duration_seconds{quantile="0.9"} 20.1',
  'backup_duration_seconds{quantile="0.99"} 25.7',
  "backup_duration_seconds_sum 1234.5",
  "backup_duration_seconds_count 100",
  "# HELP backup_records_total Records backed up.",
  "# TYPE backup_records_total counter",
  'backup_records_total{db="users"} 1.234567e+06',
  "# HELP backup_last_completion_timestamp_seconds The timestamp of the last completion of a DB backup.",
  "# TYPE backup_last_completion_timestamp_seconds gauge",
  "backup_last_completion_timestamp_seconds 1.7000000005e+09",
);

const HISTOGRAM = lines(
  "# TYPE latency_seconds histogram",
  'latency_seconds_bucket{le="0.5"} 1',
  'latency_seconds_bucket{le="+Inf"} 2',
  "latency_seconds_sum 1.2",
  "latency_seconds_count 2",
);

const SUMMARY = lines(
  "# TYPE duration_seconds summary",
  'duration_seconds{quantile="0.5"} 0.2',
  'duration_seconds{quantile="0.9"} 0.7',
  "duration_seconds_sum 3",
  "duration_seconds_count 7",
);

/**
 * A body that is a valid text push (one comment line) and, read as delimited protobuf, a gauge
 * family with an empty name (the Pushgateway then serves an empty `/metrics`): pushguard must read
 * a body in the format the Pushgateway will, whatever the spelling of the Content-Type.
 */
const POLYGLOT = (() => {
  const metric = lenField(4, lenField(2, doubleField(1, 1)));
  const head = Buffer.concat([uintField(3, METRIC_TYPES.GAUGE), metric]);
  // `#` (0x23) is the message length, 35; the help string ends the message with the only newline.
  const help = `${"x".repeat(35 - head.length - 3)}\n`;
  const message = Buffer.concat([head, lenField(2, help)]);
  if (message.length !== 0x23 || message.indexOf(0x0a) !== message.length - 1)
    throw new Error("bad polyglot");
  return Buffer.concat([Buffer.from([0x23]), message]);
})();

const textCases: PushCase[] = [
  // Valid: all of these must be accepted.
  {
    name: "text: HELP, TYPE and one gauge",
    format: "text",
    pushes: [
      put(
        job("gauge"),
        lines(
          "# HELP backup_last_success_seconds Last success.",
          "# TYPE backup_last_success_seconds gauge",
          "backup_last_success_seconds 1.7e+09",
        ),
      ),
    ],
    series: 1,
  },
  {
    name: "text: escapes in label values",
    format: "text",
    pushes: [
      put(job("label-escapes"), `${String.raw`files{path="C:\\Temp\\x",quote="say \"hi\"",nl="a\nb"} 3`}\n`),
    ],
    series: 1,
  },
  {
    name: "text: escapes in HELP",
    format: "text",
    pushes: [
      put(
        job("help-escapes"),
        `${String.raw`# HELP esc_help Backslash \\ and newline \n and a "quote".`}\n# TYPE esc_help gauge\nesc_help 1\n`,
      ),
    ],
    series: 1,
  },
  {
    name: "text: +Inf, -Inf, NaN, exponents, -0",
    format: "text",
    pushes: [
      put(
        job("special-values"),
        lines(
          "v_pos_inf +Inf",
          "v_neg_inf -Inf",
          "v_nan NaN",
          "v_exp 1.5e-7",
          "v_exp_upper -2E+10",
          "v_neg_zero -0",
          "v_int 42",
        ),
      ),
    ],
    series: 7,
  },
  {
    name: "text: other spellings of infinity and NaN (Inf, -infinity, nan)",
    format: "text",
    pushes: [put(job("go-floats"), lines("f_inf Inf", "f_infinity -infinity", "f_nan nan"))],
    series: 3,
  },
  {
    name: "text: values .5 and +3",
    format: "text",
    pushes: [put(job("dot-plus"), lines("f_dot .5", "f_plus +3"))],
    series: 2,
  },
  {
    name: "text: untyped samples, with and without labels",
    format: "text",
    pushes: [put(job("untyped"), lines("no_type_here 1", 'no_type_labels{a="1"} 2'))],
    series: 2,
  },
  {
    name: "text: # TYPE without samples",
    format: "text",
    pushes: [
      put(
        job("type-only"),
        lines("# HELP lonely Nothing follows.", "# TYPE lonely counter", "# TYPE present gauge", "present 1"),
      ),
    ],
    series: 1,
  },
  {
    name: "text: only comments",
    format: "text",
    pushes: [put(job("comments-only"), lines("# a comment", "#another", "# HELP-like but not", "# EOF"))],
    series: 0,
  },
  { name: "text: empty body", format: "text", pushes: [put(job("empty-body"), "")], series: 0 },
  {
    name: "text: blank lines",
    format: "text",
    pushes: [put(job("blank-lines"), "\n\nfirst 1\n\n\nsecond 2\n\n")],
    series: 2,
  },
  {
    name: "text: tabs and runs of spaces between tokens",
    format: "text",
    pushes: [
      put(
        job("whitespace"),
        lines("tabbed\t1", "  leading_blanks 2", 'spaced{a="1"}   3', "tab_spaced \t 4"),
      ),
    ],
    series: 4,
  },
  {
    name: "text: blanks inside the label braces",
    format: "text",
    pushes: [put(job("label-blanks"), lines('label_blanks{ a = "1" , b="2" } 1'))],
    series: 1,
  },
  {
    name: "text: trailing comma in labels",
    format: "text",
    pushes: [put(job("trailing-comma"), lines('trailing{a="1",} 1'))],
    series: 1,
  },
  {
    name: "text: histogram without +Inf bucket",
    format: "text",
    pushes: [
      put(
        job("hist-no-inf"),
        lines(
          "# TYPE h_noinf histogram",
          'h_noinf_bucket{le="0.5"} 1',
          'h_noinf_bucket{le="1"} 2',
          "h_noinf_sum 1.2",
          "h_noinf_count 2",
        ),
      ),
    ],
    note: "the Pushgateway adds the +Inf bucket",
    series: 5,
  },
  {
    name: "text: histogram with only _sum and _count",
    format: "text",
    pushes: [put(job("hist-sum-count"), lines("# TYPE h_bare histogram", "h_bare_sum 1", "h_bare_count 2"))],
    series: 3,
  },
  {
    name: "text: histogram with +Inf",
    format: "text",
    pushes: [put(job("histogram"), HISTOGRAM)],
    series: 4,
  },
  {
    name: "text: summary without quantiles",
    format: "text",
    pushes: [put(job("summary-bare"), lines("# TYPE s_bare summary", "s_bare_sum 1", "s_bare_count 1"))],
    series: 2,
  },
  { name: "text: summary with quantiles", format: "text", pushes: [put(job("summary"), SUMMARY)], series: 4 },
  {
    name: "text: unicode label values",
    format: "text",
    pushes: [put(job("unicode"), lines('uni{city="Zürich",word="中文",emoji="😀"} 1'))],
    series: 1,
  },
  {
    name: "text: empty label value in the body",
    format: "text",
    pushes: [put(job("empty-label-value"), lines('empty_value{a="",b="x"} 1'))],
    series: 1,
  },
  {
    name: "text: unsorted label names",
    format: "text",
    pushes: [put(job("unsorted-labels"), lines('unsorted{z="1",a="2",m="3"} 1'))],
    series: 1,
  },
  {
    name: "text: a 2000-byte unicode label value",
    format: "text",
    pushes: [put(job("long-value"), lines(`long_value{v="${"ü".repeat(1000)}"} 1`))],
    series: 1,
  },
  {
    name: "text: prom-client output",
    format: "text",
    pushes: [put(job("prom-client"), await promClientBody())],
    series: 2 + 1 + 6 + 4,
  },
  {
    name: "text: Python prometheus_client style output",
    format: "text",
    pushes: [put(job("python"), PYTHON_CLIENT_BODY)],
    series: 16,
  },
  {
    name: "text: Go client_golang style output",
    format: "text",
    pushes: [put(job("go-style"), GO_CLIENT_BODY)],
    series: 7,
  },
  {
    name: "text: _total names, counters with and without the suffix",
    format: "text",
    pushes: [
      put(
        job("total"),
        lines(
          "# TYPE jobs_done_total counter",
          "jobs_done_total 5",
          "# TYPE jobs_failed counter",
          "jobs_failed 1",
        ),
      ),
    ],
    series: 2,
  },
  {
    name: "text: colons in names",
    format: "text",
    pushes: [put(job("colons"), lines("job:latency_seconds:p99 0.2", ":leading_colon 1", "trailing: 3"))],
    series: 3,
  },
  {
    name: "text: instance label in the body, none in the grouping key",
    format: "text",
    pushes: [
      put(job("body-instance"), lines('with_instance{instance="db1"} 1', 'with_instance{instance="db2"} 2')),
    ],
    series: 2,
  },
  {
    name: "text: body job and instance overwritten by the grouping key",
    format: "text",
    pushes: [put(job("overwritten", "/instance/i1"), lines('overwritten{job="other",instance="x",a="1"} 1'))],
    series: 1,
  },
  {
    name: "text: gauge with an le label; gauge pushed to a key with le",
    format: "text",
    pushes: [
      put(job("gauge-le"), lines("# TYPE gauge_le gauge", 'gauge_le{le="1"} 1', 'gauge_le{le="2"} 2')),
      put(job("gauge-le-key", "/le/5"), lines("# TYPE gauge_key_le gauge", "gauge_key_le 1")),
    ],
    series: 3,
  },
  {
    name: "text: untyped samples shaped like a histogram",
    format: "text",
    pushes: [put(job("histogram-shaped"), lines('look_bucket{le="1"} 1', "look_sum 2", "look_count 3"))],
    series: 3,
  },
  {
    name: "text: negative counter",
    format: "text",
    pushes: [put(job("negative-counter"), lines("# TYPE negative counter", "negative -5"))],
    series: 1,
  },
  {
    name: "text: comment with invalid UTF-8",
    format: "text",
    pushes: [put(job("comment-bad-utf8"), bytes("# just ", [0xff, 0xfe], " bytes\nafter_comment 1\n"))],
    note: "comments are skipped unread by Go's parser",
    series: 1,
  },
  {
    name: "text: 200 families",
    format: "text",
    pushes: [put(job("many-families"), lines(...Array.from({ length: 200 }, (_, i) => `family_${i} ${i}`)))],
    series: 200,
  },
  {
    name: "text: exactly 10,000 series (2,500 summaries of 4)",
    format: "text",
    pushes: [
      put(
        job("series-at-limit"),
        lines(
          "# TYPE at_limit summary",
          ...Array.from({ length: 2500 }, (_, i) => [
            `at_limit{i="${i}",quantile="0.5"} 1`,
            `at_limit{i="${i}",quantile="0.9"} 2`,
            `at_limit_sum{i="${i}"} 3`,
            `at_limit_count{i="${i}"} 4`,
          ]).flat(),
        ),
      ),
    ],
    series: 10_000,
  },
  {
    name: "text: no Content-Type header",
    format: "text",
    pushes: [put(job("no-content-type"), lines("no_content_type 1"), { contentType: null })],
    series: 1,
  },
  {
    name: "text: protobuf media type without encoding=delimited (read as text)",
    format: "text",
    pushes: [
      put(job("half-protobuf-type"), lines("half_protobuf 1"), {
        contentType: "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily",
      }),
    ],
    series: 1,
  },
  {
    name: "text: gzip-compressed",
    format: "text",
    pushes: [put(job("gzip"), gzipSync(HISTOGRAM), { contentEncoding: "gzip" })],
    series: 4,
  },
  {
    name: "text: the protobuf polyglot sent as text/plain (a comment)",
    format: "text",
    pushes: [put(job("polyglot-text"), POLYGLOT, { contentType: "text/plain; version=0.0.4" })],
    series: 0,
  },
  {
    name: "text: a gauge named like the Pushgateway's own, with its HELP and type",
    format: "text",
    pushes: [
      put(
        job("own-family-same"),
        lines(
          "# HELP go_goroutines Number of goroutines that currently exist.",
          "# TYPE go_goroutines gauge",
          "go_goroutines 12",
        ),
      ),
    ],
  },

  // Refused by the Pushgateway, or breaking it.
  {
    name: "text: CRLF line endings",
    format: "text",
    pushes: [put(job("crlf"), "crlf_a 1\r\ncrlf_b 2\r\n")],
  },
  {
    name: "text: last line without newline",
    format: "text",
    pushes: [put(job("no-final-newline"), "no_newline 1")],
  },
  {
    name: "text: unknown escape in HELP",
    format: "text",
    pushes: [
      put(job("help-bad-escape"), `${String.raw`# HELP esc_bad A tab \t is no HELP escape`}\nesc_bad 1\n`),
    ],
  },
  {
    name: "text: unknown escape in a label value",
    format: "text",
    pushes: [put(job("label-bad-escape"), `${String.raw`esc_label{a="\t"} 1`}\n`)],
  },
  {
    name: "text: float out of range (1e400)",
    format: "text",
    pushes: [put(job("float-range"), lines("too_big 1e400"))],
  },
  { name: "text: hex integer value", format: "text", pushes: [put(job("hex-int"), lines("hex_value 0x10"))] },
  {
    name: "text: hex float value",
    format: "text",
    pushes: [put(job("hex-float"), lines("hex_float 0x1p-2"))],
  },
  {
    name: "text: HELP with invalid UTF-8 on a family without samples",
    format: "text",
    pushes: [
      put(
        job("help-bad-utf8-unused"),
        bytes("# HELP unused_help bad ", [0xff], "\n# TYPE unused_help gauge\nother_metric 1\n"),
      ),
    ],
    note: "Go's parser drops a family without samples, HELP and all",
    series: 1,
  },
  {
    name: "text: timestamp",
    format: "text",
    pushes: [put(job("timestamp"), lines("with_timestamp 1 1700000000000"))],
  },
  {
    name: "text: duplicate series",
    format: "text",
    pushes: [put(job("duplicate"), lines('dup{x="1"} 1', 'dup{x="1"} 2'))],
  },
  {
    name: "text: series that differ only in instance, pushed to a key with instance",
    format: "text",
    pushes: [
      put(job("dup-after-key", "/instance/z"), lines('dup_key{instance="1"} 1', 'dup_key{instance="2"} 2')),
    ],
  },
  {
    name: "text: series that differ only in an empty label",
    format: "text",
    pushes: [put(job("empty-vs-absent"), lines('empty_absent{a=""} 1', "empty_absent 2"))],
    note: "the Pushgateway keeps both, Prometheus sees one series twice",
    series: 2,
  },
  {
    name: "text: histogram pushed to a key with le",
    format: "text",
    pushes: [put(job("hist-le-key", "/le/5"), HISTOGRAM)],
  },
  {
    name: "text: summary pushed to a key with quantile",
    format: "text",
    pushes: [put(job("summary-quantile-key", "/quantile/0.9"), SUMMARY)],
  },
  {
    name: "text: HELP with invalid UTF-8",
    format: "text",
    pushes: [
      put(
        job("help-bad-utf8"),
        bytes("# HELP bad_help bad ", [0xff], "\n# TYPE bad_help gauge\nbad_help 1\n"),
      ),
    ],
  },
  {
    name: "text: label value with invalid UTF-8",
    format: "text",
    pushes: [put(job("value-bad-utf8"), bytes('bad_value{a="', [0xc3, 0x28], '"} 1\n'))],
  },
  {
    name: "text: metric name with invalid UTF-8",
    format: "text",
    pushes: [put(job("name-bad-utf8"), bytes("bad", [0xff], "name 1\n"))],
  },
  {
    name: "text: label name starting with __",
    format: "text",
    pushes: [put(job("dunder-label"), lines('dunder{__x="1"} 1'))],
  },
  {
    name: "text: __name__ as a label",
    format: "text",
    pushes: [put(job("name-label"), lines('name_label{__name__="other"} 1'))],
  },
  {
    name: "text: label name with a dash",
    format: "text",
    pushes: [put(job("dash-label"), lines('dash_label{a-b="1"} 1'))],
  },
  {
    name: "text: unquoted label value",
    format: "text",
    pushes: [put(job("unquoted"), lines("unquoted{a=1} 1"))],
  },
  {
    name: "text: name starting with a digit",
    format: "text",
    pushes: [put(job("digit-name"), lines("1st_metric 1"))],
  },
  {
    name: "text: family named labels",
    format: "text",
    pushes: [put(job("family-labels"), lines("labels 1"))],
    note: "overwrites the group's `labels` key in /api/v1/metrics",
  },
  {
    name: "text: family named last_push_successful",
    format: "text",
    pushes: [put(job("family-lps"), lines("last_push_successful 0"))],
  },
  {
    name: "text: histogram x then a gauge x_count",
    format: "text",
    pushes: [
      put(job("suffix-after"), `${HISTOGRAM}# TYPE latency_seconds_count gauge\nlatency_seconds_count 3\n`),
    ],
  },
  {
    name: "text: a gauge x_count then histogram x",
    format: "text",
    pushes: [
      put(job("suffix-before"), `# TYPE latency_seconds_count gauge\nlatency_seconds_count 3\n${HISTOGRAM}`),
    ],
  },
  {
    name: "text: an untyped x_sum then summary x",
    format: "text",
    pushes: [put(job("suffix-untyped"), `duration_seconds_sum 3\n${SUMMARY}`)],
  },
  {
    name: "text: second TYPE line",
    format: "text",
    pushes: [put(job("second-type"), lines("# TYPE twice gauge", "# TYPE twice counter", "twice 1"))],
  },
  {
    name: "text: TYPE after samples",
    format: "text",
    pushes: [put(job("type-late"), lines("late 1", "# TYPE late gauge"))],
  },
  {
    name: "text: unknown type",
    format: "text",
    pushes: [put(job("unknown-type"), lines("# TYPE build info", "build 1"))],
  },
  {
    name: "text: histogram bucket without le",
    format: "text",
    pushes: [put(job("bucket-no-le"), lines("# TYPE no_le histogram", "no_le_bucket 1", "no_le_count 1"))],
    stricter: "Go's parser drops the value of a _bucket line without le, silently",
    code: "ERR_INVALID_METRIC",
  },
  {
    name: "text: histogram with a duplicate le",
    format: "text",
    pushes: [
      put(
        job("dup-le"),
        lines(
          "# TYPE dup_le histogram",
          'dup_le_bucket{le="1"} 1',
          'dup_le_bucket{le="1"} 2',
          "dup_le_sum 1",
          "dup_le_count 2",
        ),
      ),
    ],
    series: 5,
  },
  {
    name: "text: a sample without quantile or suffix in a summary",
    format: "text",
    pushes: [
      put(
        job("summary-bare-sample"),
        lines("# TYPE s_drop summary", "s_drop_sum 1", "s_drop_count 2", "s_drop 5"),
      ),
    ],
    note: "Go's parser keeps the summary and drops the sample's value silently",
    series: 3,
  },
  {
    name: "text: a sample without suffix in a histogram",
    format: "text",
    pushes: [put(job("histogram-bare-sample"), `${HISTOGRAM}latency_seconds{x="1"} 2\n`)],
    note: "Go's parser makes an empty histogram of it: zero-valued series nobody pushed, and the value is gone",
    series: 5,
  },
  {
    name: "text: OpenMetrics exemplar",
    format: "text",
    pushes: [put(job("exemplar"), lines('exemplar_total 1 # {trace_id="abc"} 1'))],
  },
  {
    name: "text: HELP with invalid UTF-8, gzip-compressed",
    format: "text",
    pushes: [
      put(
        job("gzip-help-bad-utf8"),
        gzipSync(bytes("# HELP gz_bad bad ", [0xff], "\n# TYPE gz_bad gauge\ngz_bad 1\n")),
        { contentEncoding: "gzip" },
      ),
    ],
  },
  {
    name: "text: a gauge named like the Pushgateway's own counter",
    format: "text",
    pushes: [
      put(
        job("own-family-type"),
        lines("# TYPE process_cpu_seconds_total gauge", "process_cpu_seconds_total 1"),
      ),
    ],
    note: "breaks the Pushgateway's own family: pushguard needs the Pushgateway's own names",
  },

  // Deliberately stricter.
  {
    name: "text: family named push_time_seconds",
    format: "text",
    pushes: [put(job("family-push-time"), lines("push_time_seconds 5"))],
    stricter: "the Pushgateway silently replaces a pushed push_time_seconds with its own",
    code: "ERR_INVALID_METRIC",
  },
  {
    name: "text: family named up",
    format: "text",
    pushes: [put(job("family-up"), lines("up 1"))],
    stricter: "denied by default: `up` would be mistaken for the scrape's own series",
    code: "ERR_METRIC_NAME_DENIED",
  },
  {
    name: "text: family named pushgateway_*",
    format: "text",
    pushes: [put(job("family-pushgateway"), lines("pushgateway_custom_total 1"))],
    stricter: "denied by default: the pushgateway_ prefix is the Pushgateway's own",
    code: "ERR_METRIC_NAME_DENIED",
  },
  {
    name: "text: 10,001 series",
    format: "text",
    pushes: [
      put(
        job("series-over-limit"),
        lines(...Array.from({ length: 10_001 }, (_, i) => `over_limit{i="${i}"} 1`)),
      ),
    ],
    stricter: "more series in one push than the default limit (10,000)",
    code: "ERR_PUSH_TOO_LARGE",
  },
];

/** A family for the protobuf cases, with every field spelled out. */
const gauge = (name: Bytes, value = 1, labels: ReadonlyArray<readonly [Bytes, Bytes]> = []): ProtoFamily => ({
  name,
  help: "a gauge",
  type: "GAUGE",
  metrics: [{ labels, gauge: value }],
});
const protoHistogram = (name: string, labels: ReadonlyArray<readonly [Bytes, Bytes]> = []): ProtoFamily => ({
  name,
  help: "a histogram",
  type: "HISTOGRAM",
  metrics: [
    {
      labels,
      histogram: {
        count: 2,
        sum: 1.2,
        buckets: [
          [0.5, 1],
          [Number.POSITIVE_INFINITY, 2],
        ],
      },
    },
  ],
});
const protoSummary = (name: string): ProtoFamily => ({
  name,
  help: "a summary",
  type: "SUMMARY",
  metrics: [
    {
      summary: {
        count: 7,
        sum: 3,
        quantiles: [
          [0.5, 0.2],
          [0.9, 0.7],
        ],
      },
    },
  ],
});
const pb = (path: string, families: readonly ProtoFamily[], extra: Partial<CorpusPush> = {}) =>
  put(path, encodeDelimited(families), extra);

const protobufCases: PushCase[] = [
  // Valid.
  {
    name: "protobuf: one gauge",
    format: "protobuf",
    pushes: [pb(job("pb-gauge"), [gauge("pb_gauge", 42.5)])],
    series: 1,
  },
  {
    name: "protobuf: counter, untyped, summary, histogram (client_golang shapes)",
    format: "protobuf",
    pushes: [
      pb(job("pb-types"), [
        { name: "pb_requests_total", help: "Requests.", type: "COUNTER", metrics: [{ counter: 1027 }] },
        { name: "pb_untyped", type: "UNTYPED", metrics: [{ untyped: 3 }] },
        protoSummary("pb_duration_seconds"),
        protoHistogram("pb_latency_seconds"),
      ]),
    ],
    series: 1 + 1 + 4 + 4,
  },
  {
    name: "protobuf: type field absent (COUNTER)",
    format: "protobuf",
    pushes: [pb(job("pb-no-type"), [{ name: "pb_default_type_total", metrics: [{ counter: 1 }] }])],
    series: 1,
  },
  {
    name: "protobuf: histogram without +Inf bucket",
    format: "protobuf",
    pushes: [
      pb(job("pb-hist-no-inf"), [
        {
          name: "pb_no_inf",
          type: "HISTOGRAM",
          metrics: [
            {
              histogram: {
                count: 2,
                sum: 1,
                buckets: [
                  [0.5, 1],
                  [1, 2],
                ],
              },
            },
          ],
        },
      ]),
    ],
    series: 5,
  },
  {
    name: "protobuf: summary without quantiles",
    format: "protobuf",
    pushes: [
      pb(job("pb-summary-bare"), [
        { name: "pb_bare", type: "SUMMARY", metrics: [{ summary: { count: 1, sum: 2 } }] },
      ]),
    ],
    series: 2,
  },
  {
    name: "protobuf: +Inf, -Inf, NaN values",
    format: "protobuf",
    pushes: [
      pb(job("pb-special"), [
        gauge("pb_pos_inf", Number.POSITIVE_INFINITY),
        gauge("pb_neg_inf", Number.NEGATIVE_INFINITY),
        gauge("pb_nan", Number.NaN),
      ]),
    ],
    series: 3,
  },
  {
    name: "protobuf: empty body",
    format: "protobuf",
    pushes: [put(job("pb-empty"), Buffer.alloc(0))],
    series: 0,
  },
  {
    name: "protobuf: family without metrics",
    format: "protobuf",
    pushes: [
      pb(job("pb-no-metrics"), [{ name: "pb_quiet", help: "nothing yet", type: "GAUGE" }, gauge("pb_loud")]),
    ],
    series: 1,
  },
  {
    name: "protobuf: labels unsorted, empty value, unicode value, a label named le on a gauge",
    format: "protobuf",
    pushes: [
      pb(job("pb-labels"), [
        gauge("pb_labels", 1, [
          ["z", "1"],
          ["a", ""],
          ["city", "Zürich 中文 😀"],
          ["le", "0.5"],
        ]),
      ]),
    ],
    series: 1,
  },
  {
    name: "protobuf: body job and instance overwritten by the grouping key",
    format: "protobuf",
    pushes: [
      pb(job("pb-overwritten", "/instance/i1"), [
        gauge("pb_overwritten", 1, [
          ["job", "other"],
          ["instance", "x"],
        ]),
      ]),
    ],
    series: 1,
  },
  {
    name: "protobuf: colons and _total in names",
    format: "protobuf",
    pushes: [pb(job("pb-colons"), [gauge("pb:rule:rate5m"), gauge(":pb_leading"), gauge("pb_things_total")])],
    series: 3,
  },
  {
    name: "protobuf: Content-Type parameters reordered, media type in capitals",
    format: "protobuf",
    pushes: [
      pb(job("pb-content-type"), [gauge("pb_content_type")], {
        contentType:
          "Application/Vnd.Google.Protobuf; encoding=delimited; proto=io.prometheus.client.MetricFamily",
      }),
    ],
    series: 1,
  },
  {
    name: "protobuf: gzip-compressed",
    format: "protobuf",
    pushes: [put(job("pb-gzip"), gzipSync(encodeDelimited([gauge("pb_gzip")])), { contentEncoding: "gzip" })],
    series: 1,
  },
  {
    name: "protobuf: native histogram (no classic buckets)",
    format: "protobuf",
    pushes: [
      pb(job("pb-native"), [
        {
          name: "pb_native",
          type: "HISTOGRAM",
          metrics: [
            {
              histogram: {
                count: 3,
                sum: 4.5,
                schema: 0,
                zeroThreshold: 1e-128,
                zeroCount: 0,
                positiveSpans: [[0, 2]],
                positiveDeltas: [1, 1],
              },
            },
          ],
        },
      ]),
    ],
  },

  // Refused by the Pushgateway, or breaking it.
  {
    name: "protobuf: empty family name",
    format: "protobuf",
    pushes: [pb(job("pb-empty-name"), [gauge("")])],
  },
  {
    name: "protobuf: name field absent",
    format: "protobuf",
    pushes: [pb(job("pb-no-name"), [{ type: "GAUGE", metrics: [{ gauge: 1 }] }])],
  },
  {
    name: "protobuf: name with a space",
    format: "protobuf",
    pushes: [pb(job("pb-space"), [gauge("pb with space")])],
  },
  {
    name: "protobuf: name with a dash",
    format: "protobuf",
    pushes: [pb(job("pb-dash"), [gauge("pb-dash")])],
  },
  {
    name: "protobuf: name starting with a digit",
    format: "protobuf",
    pushes: [pb(job("pb-digit"), [gauge("1pb")])],
  },
  {
    name: "protobuf: name with invalid UTF-8",
    format: "protobuf",
    pushes: [pb(job("pb-name-utf8"), [gauge(bytes("pb_", [0xff]))])],
  },
  {
    name: "protobuf: name in UTF-8 beyond the legacy charset",
    format: "protobuf",
    pushes: [pb(job("pb-name-unicode"), [gauge("pb_zähler")])],
  },
  {
    name: "protobuf: HELP with invalid UTF-8",
    format: "protobuf",
    pushes: [pb(job("pb-help-utf8"), [{ ...gauge("pb_bad_help"), help: bytes("bad ", [0xff]) }])],
  },
  {
    name: "protobuf: label value with invalid UTF-8",
    format: "protobuf",
    pushes: [pb(job("pb-value-utf8"), [gauge("pb_bad_value", 1, [["a", bytes([0xc3, 0x28])]])])],
  },
  {
    name: "protobuf: label name starting with __",
    format: "protobuf",
    pushes: [pb(job("pb-dunder"), [gauge("pb_dunder", 1, [["__x", "1"]])])],
  },
  {
    name: "protobuf: label name with a dash",
    format: "protobuf",
    pushes: [pb(job("pb-label-dash"), [gauge("pb_label_dash", 1, [["a-b", "1"]])])],
  },
  {
    name: "protobuf: empty label name",
    format: "protobuf",
    pushes: [pb(job("pb-label-empty"), [gauge("pb_label_empty", 1, [["", "1"]])])],
  },
  {
    name: "protobuf: the same label twice in one metric",
    format: "protobuf",
    pushes: [
      pb(job("pb-dup-label"), [
        gauge("pb_dup_label", 1, [
          ["a", "1"],
          ["a", "2"],
        ]),
      ]),
    ],
  },
  {
    name: "protobuf: GAUGE_HISTOGRAM",
    format: "protobuf",
    pushes: [
      pb(job("pb-gauge-histogram"), [{ ...protoHistogram("pb_gauge_histogram"), type: "GAUGE_HISTOGRAM" }]),
    ],
  },
  {
    name: "protobuf: type number client_model does not define",
    format: "protobuf",
    pushes: [pb(job("pb-type-9"), [{ name: "pb_type_9", type: 9, metrics: [{ gauge: 1 }] }])],
  },
  {
    name: "protobuf: histogram with an explicit le label",
    format: "protobuf",
    pushes: [pb(job("pb-hist-le"), [protoHistogram("pb_hist_le", [["le", "1"]])])],
  },
  {
    name: "protobuf: summary with an explicit quantile label",
    format: "protobuf",
    pushes: [
      pb(job("pb-summary-quantile"), [
        {
          ...protoSummary("pb_summary_quantile"),
          metrics: [{ labels: [["quantile", "x"]], summary: { count: 1, sum: 1 } }],
        },
      ]),
    ],
  },
  {
    name: "protobuf: histogram pushed to a key with le",
    format: "protobuf",
    pushes: [pb(job("pb-hist-le-key", "/le/1"), [protoHistogram("pb_hist_le_key")])],
  },
  {
    name: "protobuf: family named labels",
    format: "protobuf",
    pushes: [pb(job("pb-family-labels"), [gauge("labels")])],
  },
  {
    name: "protobuf: family named last_push_successful",
    format: "protobuf",
    pushes: [pb(job("pb-family-lps"), [gauge("last_push_successful")])],
  },
  {
    name: "protobuf: duplicate series",
    format: "protobuf",
    pushes: [
      pb(job("pb-duplicate"), [
        {
          name: "pb_dup",
          type: "GAUGE",
          metrics: [
            { labels: [["x", "1"]], gauge: 1 },
            { labels: [["x", "1"]], gauge: 2 },
          ],
        },
      ]),
    ],
  },
  {
    name: "protobuf: series that differ only in instance, pushed to a key with instance",
    format: "protobuf",
    pushes: [
      pb(job("pb-dup-after-key", "/instance/z"), [
        {
          name: "pb_dup_key",
          type: "GAUGE",
          metrics: [
            { labels: [["instance", "1"]], gauge: 1 },
            { labels: [["instance", "2"]], gauge: 2 },
          ],
        },
      ]),
    ],
  },
  {
    name: "protobuf: the same family twice",
    format: "protobuf",
    pushes: [
      pb(job("pb-dup-family"), [gauge("pb_twice", 1, [["x", "1"]]), gauge("pb_twice", 2, [["x", "2"]])]),
    ],
    series: 2,
  },
  {
    name: "protobuf: histogram x and gauge x_count",
    format: "protobuf",
    pushes: [pb(job("pb-suffix"), [protoHistogram("pb_suffix"), gauge("pb_suffix_count")])],
  },
  {
    name: "protobuf: timestamp",
    format: "protobuf",
    pushes: [
      pb(job("pb-timestamp"), [
        { name: "pb_ts", type: "GAUGE", metrics: [{ gauge: 1, timestampMs: 1_700_000_000_000 }] },
      ]),
    ],
  },
  {
    name: "protobuf: GAUGE family whose metric carries a counter",
    format: "protobuf",
    pushes: [
      pb(job("pb-type-mismatch"), [{ name: "pb_mismatch", type: "GAUGE", metrics: [{ counter: 1 }] }]),
    ],
  },
  {
    name: "protobuf: metric without a value",
    format: "protobuf",
    pushes: [
      pb(job("pb-no-value"), [{ name: "pb_no_value", type: "GAUGE", metrics: [{ labels: [["a", "1"]] }] }]),
    ],
  },
  {
    name: "protobuf: SUMMARY family whose metric carries a gauge",
    format: "protobuf",
    pushes: [
      pb(job("pb-summary-gauge"), [{ name: "pb_summary_gauge", type: "SUMMARY", metrics: [{ gauge: 1 }] }]),
    ],
    note: "without the consistency check, /api/v1/metrics then panics (nil summary) for everyone",
  },
  {
    name: "protobuf: HISTOGRAM family whose metric carries no value",
    format: "protobuf",
    pushes: [
      pb(job("pb-histogram-empty"), [{ name: "pb_histogram_empty", type: "HISTOGRAM", metrics: [{}] }]),
    ],
  },
  {
    name: "protobuf: histogram with a repeated upper bound",
    format: "protobuf",
    pushes: [
      pb(job("pb-dup-bound"), [
        {
          name: "pb_dup_bound",
          type: "HISTOGRAM",
          metrics: [
            {
              histogram: {
                count: 2,
                sum: 1,
                buckets: [
                  [1, 1],
                  [1, 2],
                ],
              },
            },
          ],
        },
      ]),
    ],
  },
  {
    name: "protobuf: message longer than the body",
    format: "protobuf",
    pushes: [put(job("pb-truncated"), encodeDelimited([gauge("pb_truncated")]).subarray(0, 10))],
  },
  {
    name: "protobuf: text body with the protobuf Content-Type",
    format: "protobuf",
    pushes: [put(job("pb-text-body"), lines("# TYPE text_body gauge", "text_body 1"))],
  },
  {
    name: "protobuf: empty family name, gzip-compressed",
    format: "protobuf",
    pushes: [
      put(job("pb-gzip-empty-name"), gzipSync(encodeDelimited([gauge("")])), { contentEncoding: "gzip" }),
    ],
  },
  {
    name: "protobuf: polyglot (a text comment, an empty-named family in protobuf)",
    format: "protobuf",
    pushes: [put(job("polyglot-exact"), POLYGLOT)],
  },
  {
    name: "protobuf: polyglot with the Content-Type parameters reordered",
    format: "protobuf",
    pushes: [
      put(job("polyglot-reordered"), POLYGLOT, {
        contentType:
          "application/vnd.google.protobuf; encoding=delimited; proto=io.prometheus.client.MetricFamily",
      }),
    ],
  },
  {
    name: "protobuf: polyglot with quoted Content-Type parameters and capitals",
    format: "protobuf",
    pushes: [
      put(job("polyglot-quoted"), POLYGLOT, {
        contentType:
          'APPLICATION/vnd.google.protobuf;proto="io.prometheus.client.MetricFamily";Encoding="delimited"',
      }),
    ],
  },

  // Deliberately stricter.
  {
    name: "protobuf: metric with a gauge and a counter value",
    format: "protobuf",
    pushes: [
      pb(job("pb-two-values"), [
        { name: "pb_two_values", type: "GAUGE", metrics: [{ gauge: 1, counter: 2 }] },
      ]),
    ],
    stricter:
      "a metric must carry exactly the value its family's type names; the Pushgateway silently drops the other",
    code: "ERR_INVALID_METRIC",
  },
  {
    name: "protobuf: family without metrics, with a name that is not valid",
    format: "protobuf",
    pushes: [pb(job("pb-unused-bad-name"), [{ name: "pb-unused", type: "GAUGE" }, gauge("pb_used")])],
    stricter:
      "every family is checked, also one without metrics (which the Pushgateway stores but never serves)",
    code: "ERR_INVALID_METRIC",
  },
  {
    name: "protobuf: family without metrics, with HELP that is not UTF-8",
    format: "protobuf",
    pushes: [
      pb(job("pb-unused-bad-help"), [
        { name: "pb_unused", help: bytes("bad ", [0xff]), type: "GAUGE" },
        gauge("pb_used"),
      ]),
    ],
    stricter:
      "every family is checked, also one without metrics (which the Pushgateway stores but never serves)",
    code: "ERR_INVALID_METRIC",
  },
  {
    name: "protobuf: family named push_failure_time_seconds",
    format: "protobuf",
    pushes: [pb(job("pb-family-push-failure"), [gauge("push_failure_time_seconds")])],
    stricter: "the Pushgateway silently replaces a pushed push_failure_time_seconds with its own",
    code: "ERR_INVALID_METRIC",
  },
];

const sequenceCases: PushCase[] = [
  {
    name: "sequence: PUT a job, then PUT it with instance@base64/= (empty)",
    format: "text",
    pushes: [
      put(job("seq-empty-after"), lines("seq_a 1")),
      put(job("seq-empty-after", "/instance@base64/="), lines("seq_b 1")),
    ],
    note: 'both groups then have push_time_seconds{instance="",job=...}',
  },
  {
    name: "sequence: PUT a job with instance@base64/= (empty), then PUT it without",
    format: "text",
    pushes: [
      put(job("seq-empty-before", "/instance@base64/="), lines("seq_a 1")),
      put(job("seq-empty-before"), lines("seq_b 1")),
    ],
  },
  {
    name: "sequence: PUT a job, then PUT it with x/ (empty, plain)",
    format: "text",
    pushes: [put(job("seq-empty-x"), lines("seq_a 1")), put(job("seq-empty-x", "/x/"), lines("seq_b 1"))],
    note: "the Pushgateway serves both groups; Prometheus drops the empty label and sees push_time_seconds twice",
    series: 2,
  },
  {
    name: "sequence: PUT then POST to one group (POST adds families)",
    format: "text",
    pushes: [
      put(job("seq-merge"), lines("first_metric 1")),
      post(job("seq-merge"), lines("second_metric 2")),
    ],
    series: 2,
  },
  {
    name: "sequence: PUT replaces the group",
    format: "text",
    pushes: [put(job("seq-replace"), lines("replaced 1")), put(job("seq-replace"), lines("replacement 2"))],
    series: 1,
  },
  {
    name: "sequence: one family in two groups of the job",
    format: "text",
    pushes: [
      put(job("seq-two-groups", "/instance/i1"), HISTOGRAM),
      put(job("seq-two-groups", "/instance/i2"), HISTOGRAM),
    ],
    series: 8,
  },
  {
    name: "sequence: protobuf PUT, text POST to one group",
    format: "protobuf",
    pushes: [
      pb(job("seq-mixed"), [gauge("mixed_pb")]),
      { ...post(job("seq-mixed"), lines("mixed_text 1")), format: "text" },
    ],
    series: 2,
  },
  {
    name: "grouping key: x@base64/= (empty value) alone",
    format: "text",
    pushes: [put(job("empty-value-alone", "/x@base64/="), lines("empty_alone 1"))],
    stricter:
      "an empty grouping-label value breaks the store as soon as the group without that label exists; it is refused before it can",
    code: "ERR_BAD_GROUPING_KEY",
  },
];

/** Every hand-written case. */
export const PUSH_CORPUS: readonly PushCase[] = [...textCases, ...protobufCases, ...sequenceCases];

/** The cases where pushguard refuses what the Pushgateway accepts and serves well, and why. */
export const STRICTER_CASES: ReadonlyArray<{ name: string; reason: string; code: ValidationCode }> =
  PUSH_CORPUS.flatMap((c) =>
    c.stricter === undefined ? [] : [{ name: c.name, reason: c.stricter, code: c.code }],
  );
