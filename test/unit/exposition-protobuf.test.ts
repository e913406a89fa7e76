import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ExpositionError, type ExpositionRule } from "../../src/exposition/errors.js";
import { parseProtobuf } from "../../src/exposition/protobuf.js";
import type { ParseLimits } from "../../src/exposition/types.js";
import {
  type MetricType,
  type ParsedFamily,
  type ParsedMetric,
  type ParsedPush,
  seriesOf,
} from "../../src/exposition/types.js";
import {
  applyEdits,
  type ByteEdit,
  encodeDelimitedGaugeHistogramFamilies,
  encodeFamilies,
  type FamilySpec,
  type MetricSpec,
  pb,
} from "../support/protobuf.js";
import { familySpecs } from "../support/push-arbitraries.js";

const MAX_SERIES = 10_000;

function parse(body: Buffer, maxSeries = MAX_SERIES): ParsedPush {
  return parseProtobuf(body, { maxSeries, maxLabels: Number.POSITIVE_INFINITY });
}

/** The error parsing `body` throws; fails when it parses, or throws anything but an ExpositionError. */
function refusal(body: Buffer, limits: number | ParseLimits = MAX_SERIES): ExpositionError {
  let parsed: ParsedPush;
  try {
    parsed = parseProtobuf(
      body,
      typeof limits === "number" ? { maxSeries: limits, maxLabels: Number.POSITIVE_INFINITY } : limits,
    );
  } catch (error) {
    expect(error).toBeInstanceOf(ExpositionError);
    return error as ExpositionError;
  }
  throw new Error(`expected a refusal, parsed ${parsed.families.length} families`);
}

/** Parses, or returns the rule it was refused with; anything else fails the test. */
function outcome(body: Buffer, maxSeries = MAX_SERIES): ParsedPush | ExpositionRule {
  try {
    return parse(body, maxSeries);
  } catch (error) {
    if (error instanceof ExpositionError) return error.rule;
    throw error;
  }
}

const cat = (...parts: Buffer[]) => Buffer.concat(parts);
const INF = Number.POSITIVE_INFINITY;
const TYPES: readonly MetricType[] = ["counter", "gauge", "summary", "untyped", "histogram"];

/** The model `encodeFamilies(families)` must decode to (each metric names each value once). */
function modelOf(families: readonly FamilySpec[]): ParsedPush {
  let series = 0;
  const parsed = families.map((family, index): ParsedFamily => {
    const type = TYPES[family.type ?? 0] as MetricType;
    const metrics = family.metrics.map(
      (metric, position): ParsedMetric => ({
        labels: metric.labels ?? [],
        values: metric.values,
        buckets: metric.values.includes("histogram") ? (metric.buckets ?? []) : undefined,
        quantiles: metric.values.includes("summary") ? (metric.quantiles ?? []) : undefined,
        timestamped: metric.timestampMs !== undefined,
        at: { message: index + 1, metric: position + 1 },
      }),
    );
    for (const metric of metrics) series += seriesOf(type, metric);
    return { name: family.name, help: family.help, type, metrics, at: { message: index + 1 } };
  });
  return { format: "protobuf", families: parsed, series };
}

const gauge = (value = 1) => pb.message(2, pb.double(1, value));
const label = (name: string, value: string) => pb.message(1, pb.bytes(1, name), pb.bytes(2, value));
const timestamp = pb.message(3, pb.varint(1, 1_700_000_000), pb.varint(2, 5));
const exemplar = (labelName: Buffer | string = "trace_id", labelValue: Buffer | string = "abc") =>
  cat(pb.message(1, pb.bytes(1, labelName), pb.bytes(2, labelValue)), pb.double(2, 1), timestamp);

type Level =
  | "family"
  | "metric"
  | "label"
  | "gauge"
  | "counter"
  | "summary"
  | "quantile"
  | "untyped"
  | "histogram"
  | "bucket";
const LEVELS: readonly Level[] = [
  "family",
  "metric",
  "label",
  "gauge",
  "counter",
  "summary",
  "quantile",
  "untyped",
  "histogram",
  "bucket",
];

/**
 * One family message using every field the parser reads, with `extra` fields added to the message
 * at `level`: after its own fields, or before them when `first`.
 */
function everythingMessage(level?: Level, extra: readonly Buffer[] = [], first = false): Buffer {
  const at = (here: Level, ...fields: Buffer[]) =>
    here !== level ? fields : first ? [...extra, ...fields] : [...fields, ...extra];
  return cat(
    ...at(
      "family",
      pb.bytes(1, "all"),
      pb.bytes(2, "Everything."),
      pb.varint(3, 3),
      pb.message(
        4,
        ...at(
          "metric",
          pb.message(1, ...at("label", pb.bytes(1, "a"), pb.bytes(2, "b"))),
          pb.message(2, ...at("gauge", pb.double(1, 1))),
          pb.message(3, ...at("counter", pb.double(1, 2))),
          pb.message(
            4,
            ...at(
              "summary",
              pb.varint(1, 3),
              pb.double(2, 4),
              pb.message(3, ...at("quantile", pb.double(1, 0.5), pb.double(2, 5))),
            ),
          ),
          pb.message(5, ...at("untyped", pb.double(1, 6))),
          pb.message(
            7,
            ...at(
              "histogram",
              pb.varint(1, 7),
              pb.double(2, 8),
              pb.message(3, ...at("bucket", pb.varint(1, 7), pb.double(2, 1))),
            ),
          ),
          pb.varint(6, 1234),
        ),
      ),
    ),
  );
}

function everything(level?: Level, ...extra: Buffer[]): Buffer {
  return pb.delimited(everythingMessage(level, extra));
}
const EVERYTHING: ParsedPush = {
  format: "protobuf",
  series: 1,
  families: [
    {
      name: "all",
      help: "Everything.",
      type: "untyped",
      at: { message: 1 },
      metrics: [
        {
          labels: [["a", "b"]],
          values: ["gauge", "counter", "summary", "untyped", "histogram"],
          buckets: [1],
          quantiles: [0.5],
          timestamped: true,
          at: { message: 1, metric: 1 },
        },
      ],
    },
  ],
};

describe("parseProtobuf: the model", () => {
  it("an empty body is no families", () => {
    expect(parse(Buffer.alloc(0))).toEqual({ format: "protobuf", families: [], series: 0 });
  });

  it("an empty message is a family without name, help or metrics", () => {
    expect(parse(pb.delimited(Buffer.alloc(0)))).toEqual({
      format: "protobuf",
      series: 0,
      families: [{ name: "", help: undefined, type: "counter", metrics: [], at: { message: 1 } }],
    });
  });

  it("reads every field it needs, from every level", () => {
    expect(parse(everything())).toEqual(EVERYTHING);
  });

  /** [MetricType value or absent, model type, value field of the metric] */
  it.each<[number | undefined, MetricType, MetricSpec["values"][number]]>([
    [undefined, "counter", "counter"],
    [0, "counter", "counter"],
    [1, "gauge", "gauge"],
    [2, "summary", "summary"],
    [3, "untyped", "untyped"],
    [4, "histogram", "histogram"],
  ])("type %s is %s", (type, modelType, value) => {
    const families: FamilySpec[] = [
      { name: "x", help: "X.", type, metrics: [{ values: [value], buckets: [1], quantiles: [0.9] }] },
    ];
    const parsed = parse(encodeFamilies(families));
    expect(parsed).toEqual(modelOf(families));
    expect(parsed.families[0]?.type).toBe(modelType);
  });

  it("keeps every label pair in order, repeated ones included; absent name or value is empty", () => {
    const body = pb.delimited(
      cat(
        pb.bytes(1, "x"),
        pb.message(
          4,
          label("z", "1"),
          label("a", "ü/中😀"),
          label("z", "2"),
          pb.message(1, pb.bytes(2, "no name")),
          pb.message(1, pb.bytes(1, "no_value")),
          pb.message(1),
          label("", ""),
          gauge(),
        ),
      ),
    );
    expect(parse(body).families[0]?.metrics[0]?.labels).toEqual([
      ["z", "1"],
      ["a", "ü/中😀"],
      ["z", "2"],
      ["", "no name"],
      ["no_value", ""],
      ["", ""],
      ["", ""],
    ]);
  });

  it("strings that look alike (same length, first and last byte) stay apart", () => {
    const names = ["a1z", "a2z", "a1z", "a22z", "a2z", "a1z"];
    const body = pb.delimited(
      cat(pb.bytes(1, "x"), ...names.map((name) => pb.message(4, label(name, name.toUpperCase())))),
    );
    expect(parse(body).families[0]?.metrics.map((metric) => metric.labels)).toEqual(
      names.map((name) => [[name, name.toUpperCase()]]),
    );
    const invalid = pb.delimited(
      cat(
        pb.bytes(1, "x"),
        // "aéz", then the same bytes with a broken middle: seen once is no licence for the other.
        pb.message(4, pb.message(1, pb.bytes(2, Buffer.from([0x61, 0xc3, 0xa9, 0x7a])))),
        pb.message(4, pb.message(1, pb.bytes(2, Buffer.from([0x61, 0xc3, 0x28, 0x7a])))),
      ),
    );
    expect(refusal(invalid).rule).toBe("invalid-utf8");
  });

  /** [buckets, series of the one metric] */
  it.each<[number[], number]>([
    [[], 3],
    [[1], 4],
    [[0.1, 1, 10], 6],
    [[0.1, 1, INF], 5],
    [[INF], 3],
    [[-INF, -1, 0, Number.NaN], 7],
    [[1, 1], 5],
  ])("histogram buckets %j: as sent, %i series", (buckets, series) => {
    const families: FamilySpec[] = [{ name: "h", type: 4, metrics: [{ values: ["histogram"], buckets }] }];
    const parsed = parse(encodeFamilies(families));
    expect(parsed).toEqual(modelOf(families));
    expect(parsed.series).toBe(series);
  });

  /** [quantiles, series of the one metric] */
  it.each<[number[], number]>([
    [[], 2],
    [[0.5], 3],
    [[0.5, 0.9, 0.99], 5],
    [[0.5, 0.5], 4],
  ])("summary quantiles %j: as sent, %i series", (quantiles, series) => {
    const families: FamilySpec[] = [{ name: "s", type: 2, metrics: [{ values: ["summary"], quantiles }] }];
    const parsed = parse(encodeFamilies(families));
    expect(parsed).toEqual(modelOf(families));
    expect(parsed.series).toBe(series);
  });

  it("a bucket without upper_bound and a quantile without quantile are 0, as Go's getters", () => {
    const body = pb.delimited(
      cat(
        pb.bytes(1, "x"),
        pb.message(
          4,
          pb.message(7, pb.message(3, pb.varint(1, 1)), pb.message(3)),
          pb.message(4, pb.message(3, pb.double(2, 1)), pb.message(3)),
        ),
      ),
    );
    const metric = parse(body).families[0]?.metrics[0];
    expect(metric?.buckets).toEqual([0, 0]);
    expect(metric?.quantiles).toEqual([0, 0]);
  });

  it.each<[string, Buffer]>([
    ["a timestamp", pb.varint(6, 1_700_000_000_000)],
    ["timestamp 0", pb.varint(6, 0)],
    ["a negative timestamp (10 bytes)", pb.varint(6, -1n)],
  ])("%s makes the metric timestamped", (_, field) => {
    const body = pb.delimited(cat(pb.bytes(1, "x"), pb.message(4, gauge(), field)));
    expect(parse(body).families[0]?.metrics[0]?.timestamped).toBe(true);
  });

  it("help is undefined when absent and kept when empty", () => {
    const body = pb.delimited(cat(pb.bytes(1, "a")), cat(pb.bytes(1, "b"), pb.bytes(2, "")));
    expect(parse(body).families.map((family) => family.help)).toEqual([undefined, ""]);
  });

  it("keeps a family that appears twice twice (validation refuses it, nothing merges here)", () => {
    const families: FamilySpec[] = [
      { name: "x", type: 1, metrics: [{ values: ["gauge"], labels: [["i", "1"]] }] },
      { name: "x", type: 1, metrics: [{ values: ["gauge"], labels: [["i", "2"]] }] },
    ];
    expect(parse(encodeFamilies(families))).toEqual(modelOf(families));
  });

  it("numbers messages and metrics from 1", () => {
    const families: FamilySpec[] = [
      { name: "a", type: 0, metrics: [{ values: ["counter"] }, { values: ["counter"] }] },
      { name: "b", type: 1, metrics: [] },
      { name: "c", type: 1, metrics: [{ values: ["gauge"] }, { values: ["gauge"] }, { values: ["gauge"] }] },
    ];
    const parsed = parse(encodeFamilies(families));
    expect(parsed.families.map((family) => family.at)).toEqual([
      { message: 1 },
      { message: 2 },
      { message: 3 },
    ]);
    expect(parsed.families[2]?.metrics.map((metric) => metric.at)).toEqual([
      { message: 3, metric: 1 },
      { message: 3, metric: 2 },
      { message: 3, metric: 3 },
    ]);
    expect(parsed.series).toBe(5);
  });

  it("a value sub-message sent twice counts once, and its buckets add up (Go merges them)", () => {
    const histogram = (bound: number) => pb.message(7, pb.message(3, pb.double(2, bound)));
    const body = pb.delimited(
      cat(pb.bytes(1, "x"), pb.varint(3, 4), pb.message(4, histogram(1), gauge(), histogram(2), gauge())),
    );
    const metric = parse(body).families[0]?.metrics[0];
    expect(metric?.values).toEqual(["histogram", "gauge"]);
    expect(metric?.buckets).toEqual([1, 2]);
    expect(parse(body).series).toBe(5);
  });

  it("metrics without any value, or with values of other types, are kept as sent", () => {
    const families: FamilySpec[] = [
      {
        name: "x",
        type: 1,
        metrics: [{ values: [] }, { values: ["counter", "histogram"], buckets: [1, 2] }],
      },
    ];
    const parsed = parse(encodeFamilies(families));
    expect(parsed).toEqual(modelOf(families));
    expect(parsed.series).toBe(2);
  });

  it("the last name, help and type win, as in Go; an upper_bound sent twice too", () => {
    const body = pb.delimited(
      cat(
        pb.bytes(1, "first"),
        pb.bytes(2, "First."),
        pb.varint(3, 1),
        pb.message(4, pb.message(7, pb.message(3, pb.double(2, 1), pb.double(2, 2)))),
        pb.bytes(1, "last"),
        pb.bytes(2, "Last."),
        pb.varint(3, 4),
      ),
    );
    const [family] = parse(body).families;
    expect(family).toMatchObject({ name: "last", help: "Last.", type: "histogram" });
    expect(family?.metrics[0]?.buckets).toEqual([2]);
  });

  it("reads the type wherever it comes, also after the metrics, before counting their series", () => {
    const body = pb.delimited(
      cat(pb.message(4, pb.message(7, pb.message(3, pb.double(2, 1)))), pb.varint(3, 4), pb.bytes(1, "late")),
    );
    expect(parse(body).families[0]).toMatchObject({ name: "late", type: "histogram" });
    expect(parse(body).series).toBe(4);
    expect(refusal(body, 3).rule).toBe("too-many-series");
  });

  it("cuts the type to int32 as Go does", () => {
    const typed = (type: number | bigint) => pb.delimited(cat(pb.bytes(1, "x"), pb.varint(3, type)));
    expect(parse(typed(2 ** 32 + 1)).families[0]?.type).toBe("gauge");
    expect(parse(typed(2n ** 63n + 4n)).families[0]?.type).toBe("histogram");
  });

  it("accepts a length prefix of up to 5 bytes, also padded (pbutil reads up to 5)", () => {
    const message = cat(pb.bytes(1, "x"));
    const padded = cat(Buffer.from([0x80 | message.length, 0x80, 0x80, 0x80, 0x00]), message);
    expect(parse(padded).families[0]?.name).toBe("x");
  });
});

describe("parseProtobuf: fields it does not read", () => {
  /** Unknown field numbers, one of each wire type Go skips. */
  const unknown: Array<[string, Buffer]> = [
    ["varint", pb.varint(99, 1)],
    ["64-bit varint", pb.varint(99, 2n ** 64n - 1n)],
    ["fixed64", pb.double(99, 1)],
    ["fixed32", pb.fixed32(99, 1)],
    ["length-delimited (not a message)", pb.bytes(99, Buffer.from([0xff, 0xff, 0x07]))],
    ["the highest field number", pb.varint(2 ** 29 - 1, 1)],
  ];
  it.each(LEVELS.flatMap((level) => unknown.map(([what, field]) => [level, what, field] as const)))(
    "skips an unknown %s field (%s)",
    (level, _, field) => {
      expect(parse(everything(level, field))).toEqual(EVERYTHING);
      expect(parse(pb.delimited(everythingMessage(level, [field, field], true)))).toEqual(EVERYTHING);
    },
  );

  /** Fields of the current metrics.proto that pushguard checks but does not keep. */
  const newer: Array<[Level, string, Buffer]> = [
    ["family", "unit", pb.bytes(5, "seconds")],
    ["counter", "exemplar", pb.message(2, exemplar())],
    ["counter", "created_timestamp", timestamp],
    ["summary", "created_timestamp", pb.message(4, pb.varint(1, 1_700_000_000))],
    ["histogram", "sample_count_float", pb.double(4, 7)],
    ["histogram", "schema (sint32)", pb.varint(5, 5)],
    ["histogram", "zero_threshold", pb.double(6, 1e-128)],
    ["histogram", "zero_count", pb.varint(7, 2)],
    ["histogram", "zero_count_float", pb.double(8, 2)],
    ["histogram", "negative_span", pb.message(9, pb.varint(1, 3), pb.varint(2, 2))],
    ["histogram", "negative_delta", pb.varint(10, 3)],
    ["histogram", "negative_delta (packed)", pb.bytes(10, Buffer.from([1, 0x80, 0x01, 3]))],
    ["histogram", "negative_count", pb.double(11, 3)],
    ["histogram", "negative_count (packed)", pb.bytes(11, Buffer.alloc(16))],
    ["histogram", "positive_span", pb.message(12, pb.varint(1, 1), pb.varint(2, 1))],
    ["histogram", "positive_delta (packed, empty)", pb.bytes(13, Buffer.alloc(0))],
    ["histogram", "positive_count", pb.double(14, 3)],
    ["histogram", "created_timestamp", pb.message(15, pb.varint(1, 1))],
    ["histogram", "exemplars", pb.message(16, exemplar())],
    ["bucket", "exemplar", pb.message(3, exemplar())],
    ["bucket", "cumulative_count_float", pb.double(4, 7)],
  ];
  it.each(newer)("checks and skips %s.%s", (level, _, field) => {
    expect(parse(everything(level, field))).toEqual(EVERYTHING);
  });
});

describe("parseProtobuf: refusals", () => {
  /** Known fields with another wire type: Go would skip them as unknown, pushguard refuses. */
  const wrongWireType: Array<[Level, string, Buffer]> = [
    ["family", "name as varint", pb.varint(1, 5)],
    ["family", "help as fixed64", pb.double(2, 1)],
    ["family", "type as length-delimited", pb.bytes(3, "x")],
    ["family", "metric as varint", pb.varint(4, 1)],
    ["family", "unit as fixed32", pb.fixed32(5, 1)],
    ["metric", "label as varint", pb.varint(1, 1)],
    ["metric", "gauge as fixed64", pb.double(2, 1)],
    ["metric", "summary as varint", pb.varint(4, 1)],
    ["metric", "histogram as fixed32", pb.fixed32(7, 1)],
    ["metric", "timestamp_ms as fixed64", pb.double(6, 1)],
    ["metric", "timestamp_ms as length-delimited", pb.bytes(6, "1")],
    ["label", "name as varint", pb.varint(1, 1)],
    ["label", "value as fixed64", pb.double(2, 1)],
    ["gauge", "value as varint", pb.varint(1, 1)],
    ["counter", "value as fixed32", pb.fixed32(1, 1)],
    ["counter", "exemplar as varint", pb.varint(2, 1)],
    ["counter", "exemplar label as fixed64", pb.message(2, pb.double(1, 1))],
    ["counter", "created_timestamp seconds as fixed64", pb.message(3, pb.double(1, 1))],
    ["untyped", "value as length-delimited", pb.bytes(1, "12345678")],
    ["summary", "sample_count as fixed64", pb.double(1, 1)],
    ["summary", "quantile as varint", pb.varint(3, 1)],
    ["quantile", "quantile as varint", pb.varint(1, 1)],
    ["quantile", "value as fixed32", pb.fixed32(2, 1)],
    ["histogram", "bucket as fixed64", pb.double(3, 1)],
    ["histogram", "sample_sum as varint", pb.varint(2, 1)],
    ["histogram", "schema as fixed64", pb.double(5, 1)],
    ["histogram", "negative_span as varint", pb.varint(9, 1)],
    ["histogram", "negative_delta as fixed64", pb.double(10, 1)],
    ["histogram", "negative_count as varint", pb.varint(11, 1)],
    ["histogram", "exemplars as fixed32", pb.fixed32(16, 1)],
    ["bucket", "upper_bound as varint", pb.varint(2, 1)],
    ["bucket", "cumulative_count as fixed64", pb.double(1, 1)],
    ["bucket", "exemplar as varint", pb.varint(3, 1)],
  ];
  it.each(wrongWireType)("%s: %s is syntax", (level, _, field) => {
    expect(refusal(everything(level, field)).rule).toBe("syntax");
  });

  /** Wire data Go refuses too, or (groups, field number 0 or too high) pushguard refuses more. */
  const malformed: Array<[string, Buffer]> = [
    ["a group", cat(pb.tag(99, 3), pb.varint(1, 1), pb.tag(99, 4))],
    ["an end-group tag", pb.tag(99, 4)],
    ["wire type 6", cat(pb.tag(99, 6), Buffer.alloc(8))],
    ["wire type 7", cat(pb.tag(99, 7), Buffer.alloc(8))],
    ["field number 0", pb.varint(0, 1)],
    ["field number 2^29", pb.varint(2 ** 29, 1)],
    ["a tag beyond 32 bits", pb.varint(2 ** 40, 1)],
    ["a varint whose tenth byte is 2", cat(pb.tag(99, 0), Buffer.from([...Array(9).fill(0xff), 0x02]))],
    ["an 11-byte varint", cat(pb.tag(99, 0), Buffer.from([...Array(10).fill(0x80), 0x00]))],
    ["a tag cut short", Buffer.from([0x80])],
    ["a varint cut short", cat(pb.tag(99, 0), Buffer.from([0xff]))],
    ["a fixed64 cut short", cat(pb.tag(99, 1), Buffer.alloc(7))],
    ["a fixed32 cut short", cat(pb.tag(99, 5), Buffer.alloc(3))],
    ["a length beyond the message", cat(pb.tag(99, 2), pb.rawVarint(2), Buffer.from([1]))],
    ["a huge length", cat(pb.tag(99, 2), pb.rawVarint(2n ** 63n))],
  ];
  it.each(LEVELS.flatMap((level) => malformed.map(([what, field]) => [level, what, field] as const)))(
    "%s: %s is syntax",
    (level, _, field) => {
      expect(refusal(everything(level, field)).rule).toBe("syntax");
    },
  );

  it.each<[string, Buffer]>([
    ["packed negative_count not a multiple of 8", pb.bytes(11, Buffer.alloc(7))],
    ["packed positive_delta ending in a cut varint", pb.bytes(13, Buffer.from([1, 0x80]))],
    ["an exemplar label with a length beyond it", pb.message(16, pb.bytes(1, Buffer.from([0x0a, 5, 1])))],
  ])("histogram: %s is syntax", (_, field) => {
    expect(refusal(everything("histogram", field)).rule).toBe("syntax");
  });

  it.each<[string, Buffer]>([
    ["a length prefix cut short", Buffer.from([0x80])],
    [
      "a length prefix longer than 5 bytes",
      cat(Buffer.from([0x81, 0x80, 0x80, 0x80, 0x80, 0x00]), Buffer.alloc(1)),
    ],
    ["a message longer than the body", cat(pb.rawVarint(3), pb.bytes(1, ""))],
    ["a length prefix and nothing after it (the Pushgateway takes that for the end)", pb.rawVarint(5)],
    ["a huge length", pb.rawVarint(2 ** 34)],
  ])("framing: %s is syntax", (_, tail) => {
    expect(refusal(tail).rule).toBe("syntax");
    const error = refusal(cat(encodeFamilies([{ name: "x", metrics: [] }]), tail));
    expect(error.rule).toBe("syntax");
    expect(error.at).toEqual({ message: 2 });
  });

  it("a cut anywhere in a message is syntax, never anything else", () => {
    const body = everything("counter", pb.message(2, exemplar()), timestamp);
    for (let end = 1; end < body.length; end++) {
      expect(refusal(body.subarray(0, end)).rule, `cut at ${end}`).toBe("syntax");
    }
  });

  it("a message cut anywhere and framed again is syntax, or parses when the cut fell between fields", () => {
    const message = everythingMessage("counter", [pb.message(2, exemplar()), timestamp]);
    let refused = 0;
    for (let end = 0; end < message.length; end++) {
      const result = outcome(pb.delimited(message.subarray(0, end)));
      if (result === "syntax") refused++;
      else expect(typeof result, `cut at ${end}`).toBe("object");
    }
    expect(refused).toBeGreaterThan(message.length / 2);
  });

  it("a body cut at a message boundary is the messages before it", () => {
    const families: FamilySpec[] = [
      { name: "a", type: 1, metrics: [{ values: ["gauge"] }] },
      { name: "b", type: 1, metrics: [{ values: ["gauge"] }] },
    ];
    const body = encodeFamilies(families);
    const boundary = encodeFamilies(families.slice(0, 1)).length;
    expect(parse(body.subarray(0, boundary))).toEqual(modelOf(families.slice(0, 1)));
    for (let end = 1; end < body.length; end++) {
      if (end !== boundary) expect(refusal(body.subarray(0, end)).rule, `cut at ${end}`).toBe("syntax");
    }
  });

  describe("invalid UTF-8", () => {
    const bad = Buffer.from([0x66, 0xff]);
    /** [field, message, family the error names, position] */
    const cases: Array<[string, Buffer, string | undefined, object]> = [
      ["family name", cat(pb.bytes(1, bad), pb.varint(3, 1)), undefined, { message: 1 }],
      ["help", cat(pb.bytes(1, "x"), pb.bytes(2, bad)), "x", { message: 1 }],
      ["help, before the name", cat(pb.bytes(2, bad), pb.bytes(1, "x")), "x", { message: 1 }],
      ["unit", cat(pb.bytes(1, "x"), pb.bytes(5, bad)), "x", { message: 1 }],
      [
        "label name",
        cat(pb.bytes(1, "x"), pb.message(4, pb.message(1, pb.bytes(1, bad), pb.bytes(2, "v")))),
        "x",
        { message: 1, metric: 1 },
      ],
      [
        "label value",
        cat(
          pb.bytes(1, "x"),
          pb.message(4, gauge(), gauge(), pb.message(1, pb.bytes(1, "l"), pb.bytes(2, bad))),
        ),
        "x",
        { message: 1, metric: 1 },
      ],
      [
        "label value, in the second metric",
        cat(
          pb.bytes(1, "x"),
          pb.message(4, gauge()),
          pb.message(4, label("l", "ok"), pb.message(1, pb.bytes(2, bad))),
        ),
        "x",
        { message: 1, metric: 2 },
      ],
      [
        "counter exemplar label name",
        cat(pb.bytes(1, "x"), pb.message(4, pb.message(3, pb.message(2, exemplar(bad))))),
        "x",
        { message: 1, metric: 1 },
      ],
      [
        "bucket exemplar label value",
        cat(
          pb.bytes(1, "x"),
          pb.varint(3, 4),
          pb.message(4, pb.message(7, pb.message(3, pb.message(3, exemplar("l", bad))))),
        ),
        "x",
        { message: 1, metric: 1 },
      ],
    ];
    it.each(cases)("in the %s is invalid-utf8", (_, message, family, at) => {
      const error = refusal(pb.delimited(message));
      expect(error.rule).toBe("invalid-utf8");
      expect(error.family).toBe(family);
      expect(error.at).toEqual(at);
    });

    it.each<[string, number[]]>([
      ["a stray continuation byte", [0x80]],
      ["an overlong NUL", [0xc0, 0x80]],
      ["a surrogate", [0xed, 0xa0, 0x80]],
      ["a sequence cut short", [0xe2, 0x82]],
      ["a code point beyond U+10FFFF", [0xf4, 0x90, 0x80, 0x80]],
    ])("%s in a label value is invalid-utf8", (_, bytes) => {
      const body = pb.delimited(
        cat(
          pb.bytes(1, "x"),
          pb.message(4, label("l", "ok"), pb.message(1, pb.bytes(2, Buffer.from(bytes)))),
        ),
      );
      expect(refusal(body).rule).toBe("invalid-utf8");
    });
  });

  it.each<[string, number | bigint]>([
    ["GAUGE_HISTOGRAM", 5],
    ["6", 6],
    ["9", 9],
    ["-1 (a 10-byte varint)", -1n],
    ["2^31-1", 2 ** 31 - 1],
  ])("type %s is unknown-type, naming the family", (_, type) => {
    const error = refusal(pb.delimited(cat(pb.bytes(1, "x"), pb.varint(3, type), pb.message(4, gauge()))));
    expect(error.rule).toBe("unknown-type");
    expect(error.family).toBe("x");
    expect(error.at).toEqual({ message: 1 });
  });

  it("a gauge histogram built by the pipeline suites' writer is unknown-type", () => {
    const body = encodeDelimitedGaugeHistogramFamilies([
      {
        name: "gh",
        metrics: [{ sampleCount: 1, sampleSum: 1, buckets: [{ upperBound: 1, cumulativeCount: 1 }] }],
      },
    ]);
    expect(refusal(body).rule).toBe("unknown-type");
  });
});

describe("parseProtobuf: maxSeries", () => {
  const counters = (count: number): FamilySpec => ({
    name: "c",
    type: 0,
    metrics: Array.from({ length: count }, (_, i) => ({ values: ["counter"], labels: [["i", String(i)]] })),
  });

  it("accepts exactly maxSeries series, refuses one more at the metric that crosses it", () => {
    const families: FamilySpec[] = [
      counters(3),
      { name: "h", type: 4, metrics: [{ values: ["histogram"], buckets: [1] }] },
    ];
    const body = encodeFamilies(families);
    expect(parse(body, 7).series).toBe(7);
    const error = refusal(body, 6);
    expect(error.rule).toBe("too-many-series");
    expect(error.at).toEqual({ message: 2, metric: 1 });
    expect(error.family).toBe("h");
  });

  it("stops where the limit is crossed: what follows is never read", () => {
    const garbage = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    const body = cat(encodeFamilies([counters(5), counters(5)]), garbage);
    expect(refusal(body).rule).toBe("syntax");
    const error = refusal(body, 3);
    expect(error.rule).toBe("too-many-series");
    expect(error.at).toEqual({ message: 1, metric: 4 });
  });

  it("stops inside one huge histogram or summary, before the end of its metric", () => {
    const buckets = Array.from({ length: 20 }, (_, i) => pb.message(3, pb.double(2, i)));
    const quantiles = Array.from({ length: 20 }, (_, i) => pb.message(3, pb.double(1, i / 20)));
    const broken = cat(pb.tag(99, 7), pb.tag(99, 7));
    const histogram = pb.delimited(
      cat(pb.bytes(1, "h"), pb.varint(3, 4), pb.message(4, pb.message(7, ...buckets, broken))),
    );
    const summary = pb.delimited(
      cat(pb.bytes(1, "s"), pb.varint(3, 2), pb.message(4, pb.message(4, ...quantiles, broken))),
    );
    for (const body of [histogram, summary]) {
      expect(refusal(body).rule).toBe("syntax");
      expect(refusal(body, 10).rule).toBe("too-many-series");
    }
  });

  it("a million series are refused after the first maxSeries, without building the rest", () => {
    const metric = pb.message(4, pb.message(3, pb.double(1, 1)));
    const count = 1_000_000;
    const family = cat(pb.bytes(1, "c"), Buffer.alloc(metric.length * count, metric));
    const body = pb.delimited(family);
    const started = performance.now();
    const error = refusal(body, 1000);
    expect(error.rule).toBe("too-many-series");
    expect(error.at).toEqual({ message: 1, metric: 1001 });
    // Decoding all of them would take well over a second.
    expect(performance.now() - started).toBeLessThan(250);
  });

  it("families count too, also without metrics: more than maxSeries are too many", () => {
    const empty = (count: number) => Buffer.alloc(count); // zero-length messages: empty families
    expect(parse(empty(3), 3).families).toHaveLength(3);
    const error = refusal(empty(1_000_000), 3);
    expect(error.rule).toBe("too-many-series");
    expect(error.at).toEqual({ message: 4 });
    expect(parse(Buffer.alloc(0), 0).families).toEqual([]);
  });
});

describe("parseProtobuf: maxLabels", () => {
  const labelled = (...counts: number[]) =>
    encodeFamilies([
      {
        name: "x",
        type: 1,
        metrics: counts.map((count) => ({
          values: ["gauge"],
          labels: Array.from({ length: count }, (_, i) => [`l${i}`, "v"] as const),
        })),
      },
    ]);

  it("accepts maxLabels label pairs on a metric, refuses one more at that metric", () => {
    expect(parseProtobuf(labelled(2, 3), { maxSeries: 10, maxLabels: 3 }).series).toBe(2);
    const error = refusal(labelled(3, 4, 5), { maxSeries: 10, maxLabels: 3 });
    expect(error.rule).toBe("too-many-labels");
    expect(error.at).toEqual({ message: 1, metric: 2 });
    expect(error.family).toBe("x");
  });

  it("stops inside a metric with a million label pairs", () => {
    const pair = label("l", "v");
    const body = pb.delimited(
      cat(pb.bytes(1, "x"), pb.message(4, Buffer.alloc(pair.length * 1_000_000, pair))),
    );
    expect(refusal(body, { maxSeries: 10, maxLabels: 32 }).rule).toBe("too-many-labels");
  });

  it("with no label limit, any number of label pairs", () => {
    expect(parse(labelled(100)).families[0]?.metrics[0]?.labels).toHaveLength(100);
  });
});

describe("parseProtobuf: properties", () => {
  const families = familySpecs();

  it("families written by the test encoder decode to the same model", () => {
    fc.assert(
      fc.property(families, (specs) => {
        expect(parse(encodeFamilies(specs), Number.MAX_SAFE_INTEGER)).toEqual(modelOf(specs));
      }),
      { numRuns: 500 },
    );
  });

  it("the series total is the sum of seriesOf, and the limit refuses exactly above it (or above as many families)", () => {
    fc.assert(
      fc.property(families, fc.nat(40), (specs, maxSeries) => {
        const { series } = modelOf(specs);
        const result = outcome(encodeFamilies(specs), maxSeries);
        if (series <= maxSeries && specs.length <= maxSeries) expect(result).toEqual(modelOf(specs));
        else expect(result).toBe("too-many-series");
      }),
      { numRuns: 300 },
    );
  });

  it("random bytes never throw anything but an ExpositionError", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        outcome(Buffer.from(bytes));
      }),
      { numRuns: 2000 },
    );
  });

  it("valid bodies with bytes changed, cut or inserted never throw anything but an ExpositionError", () => {
    const edit: fc.Arbitrary<ByteEdit> = fc.tuple(
      fc.constantFrom("set", "insert", "delete"),
      fc.nat(),
      fc.integer({ min: 0, max: 255 }),
    );
    let refused = 0;
    fc.assert(
      fc.property(
        familySpecs({ minLength: 1, maxLength: 3 }),
        fc.array(edit, { minLength: 1, maxLength: 4 }),
        fc.nat(30),
        (specs, edits, maxSeries) => {
          if (typeof outcome(applyEdits(encodeFamilies(specs), edits), maxSeries) === "string") refused++;
        },
      ),
      { numRuns: 2000 },
    );
    expect(refused).toBeGreaterThan(200);
  });
});
