/**
 * Writer for `io.prometheus.client.MetricFamily` in the length-delimited form Pushgateway accepts
 * (what Go's client_golang sends): gauge and gauge histogram families for the pipeline suites,
 * `encodeFamilies` for any family of the parsed model, and `pb` for hand-built (and broken) wire
 * data in the parser's tests. The end-to-end suite uses the real Go client.
 */
export interface GaugeFamily {
  name: string;
  help?: string;
  metrics: Array<{ labels?: Record<string, string>; value: number }>;
}

export function encodeDelimitedGaugeFamilies(families: GaugeFamily[]): Buffer {
  return Buffer.concat(
    families.map((family) => {
      const message = encodeFamily(family);
      return Buffer.concat([varint(message.length), message]);
    }),
  );
}

export interface GaugeHistogramFamily {
  name: string;
  help?: string;
  metrics: Array<{
    labels?: Record<string, string>;
    sampleCount: number;
    sampleSum: number;
    /** Cumulative counts by upper bound, as in `Histogram.bucket`. */
    buckets: Array<{ upperBound: number; cumulativeCount: number }>;
  }>;
}

/** Families of type GAUGE_HISTOGRAM (MetricType 5), which only the protobuf format can push. */
export function encodeDelimitedGaugeHistogramFamilies(families: GaugeHistogramFamily[]): Buffer {
  return Buffer.concat(
    families.map((family) => {
      const message = encodeGaugeHistogramFamily(family);
      return Buffer.concat([varint(message.length), message]);
    }),
  );
}

export const PROTOBUF_CONTENT_TYPE =
  "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

function encodeFamily(family: GaugeFamily): Buffer {
  const parts = [stringField(1, family.name)];
  if (family.help) parts.push(stringField(2, family.help));
  parts.push(Buffer.from([(3 << 3) | 0, 1])); // type = GAUGE
  for (const metric of family.metrics) {
    const metricParts = Object.entries(metric.labels ?? {}).map(([name, value]) =>
      bytesField(1, Buffer.concat([stringField(1, name), stringField(2, value)])),
    );
    const value = Buffer.alloc(9);
    value[0] = (1 << 3) | 1; // Gauge.value, 64-bit
    value.writeDoubleLE(metric.value, 1);
    metricParts.push(bytesField(2, value));
    parts.push(bytesField(4, Buffer.concat(metricParts)));
  }
  return Buffer.concat(parts);
}

function encodeGaugeHistogramFamily(family: GaugeHistogramFamily): Buffer {
  const parts = [stringField(1, family.name)];
  if (family.help) parts.push(stringField(2, family.help));
  parts.push(Buffer.from([(3 << 3) | 0, 5])); // type = GAUGE_HISTOGRAM
  for (const metric of family.metrics) {
    const metricParts = Object.entries(metric.labels ?? {}).map(([name, value]) =>
      bytesField(1, Buffer.concat([stringField(1, name), stringField(2, value)])),
    );
    const histogram = [varintField(1, metric.sampleCount), doubleField(2, metric.sampleSum)];
    for (const bucket of metric.buckets) {
      // Bucket.cumulative_count = 1 (uint64), Bucket.upper_bound = 2 (double)
      histogram.push(
        bytesField(
          3,
          Buffer.concat([varintField(1, bucket.cumulativeCount), doubleField(2, bucket.upperBound)]),
        ),
      );
    }
    metricParts.push(bytesField(7, Buffer.concat(histogram))); // Metric.histogram
    parts.push(bytesField(4, Buffer.concat(metricParts)));
  }
  return Buffer.concat(parts);
}

function varintField(field: number, value: number): Buffer {
  return Buffer.concat([varint(field * 8), varint(value)]);
}

function doubleField(field: number, value: number): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeDoubleLE(value);
  return Buffer.concat([varint(field * 8 + 1), bytes]);
}

function stringField(field: number, value: string): Buffer {
  return bytesField(field, Buffer.from(value, "utf8"));
}

function bytesField(field: number, value: Buffer): Buffer {
  return Buffer.concat([varint(field * 8 + 2), varint(value.length), value]);
}

function varint(value: number): Buffer {
  const bytes: number[] = [];
  let rest = value;
  while (rest > 0x7f) {
    bytes.push((rest & 0x7f) | 0x80);
    rest >>>= 7;
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

/**
 * Hand-built protobuf pieces for the parser's tests: any field number with any wire type, so a
 * body can be as wrong as a test needs. Numbers beyond 2^53 (and negative int64s, 10 bytes on
 * the wire) are given as bigints.
 */
export const pb = {
  /** A bare varint, no tag. */
  rawVarint(value: number | bigint): Buffer {
    const bytes: number[] = [];
    let rest = BigInt.asUintN(64, BigInt(value));
    while (rest > 0x7fn) {
      bytes.push(Number(rest & 0x7fn) | 0x80);
      rest >>= 7n;
    }
    bytes.push(Number(rest));
    return Buffer.from(bytes);
  },
  tag(field: number | bigint, wireType: number): Buffer {
    return pb.rawVarint((BigInt(field) << 3n) | BigInt(wireType));
  },
  varint(field: number, value: number | bigint): Buffer {
    return Buffer.concat([pb.tag(field, 0), pb.rawVarint(value)]);
  },
  double(field: number, value: number): Buffer {
    return doubleField(field, value);
  },
  fixed32(field: number, value: number): Buffer {
    const bytes = Buffer.alloc(4);
    bytes.writeUInt32LE(value >>> 0);
    return Buffer.concat([pb.tag(field, 5), bytes]);
  },
  /** A length-delimited field; a string is encoded as UTF-8. */
  bytes(field: number, value: Buffer | string): Buffer {
    return bytesField(field, typeof value === "string" ? Buffer.from(value, "utf8") : value);
  },
  message(field: number, ...parts: Buffer[]): Buffer {
    return bytesField(field, Buffer.concat(parts));
  },
  /** The body: each message (the concatenated fields of one MetricFamily) after its length. */
  delimited(...messages: Buffer[]): Buffer {
    return Buffer.concat(messages.flatMap((message) => [pb.rawVarint(message.length), message]));
  },
};

/** A MetricFamily in the terms of the parsed model, for `encodeFamilies`. */
export interface FamilySpec {
  name: string;
  help?: string;
  /** The MetricType enum value; absent means no `type` field at all. */
  type?: number;
  metrics: MetricSpec[];
}

export interface MetricSpec {
  labels?: ReadonlyArray<readonly [string, string]>;
  /** Value sub-messages, in this order: the histogram carries `buckets`, the summary `quantiles`. */
  values: ReadonlyArray<"gauge" | "counter" | "summary" | "untyped" | "histogram">;
  buckets?: readonly number[];
  quantiles?: readonly number[];
  timestampMs?: number;
}

/** Encodes families field by field in the order Go's client_golang writes them. */
export function encodeFamilies(families: readonly FamilySpec[]): Buffer {
  return pb.delimited(...families.map(encodeFamilySpec));
}

export function encodeFamilySpec(family: FamilySpec): Buffer {
  const parts = [pb.bytes(1, family.name)];
  if (family.help !== undefined) parts.push(pb.bytes(2, family.help));
  if (family.type !== undefined) parts.push(pb.varint(3, family.type));
  for (const metric of family.metrics) parts.push(pb.message(4, ...encodeMetricSpec(metric)));
  return Buffer.concat(parts);
}

function encodeMetricSpec(metric: MetricSpec): Buffer[] {
  const parts = (metric.labels ?? []).map(([name, value]) =>
    pb.message(1, pb.bytes(1, name), pb.bytes(2, value)),
  );
  for (const kind of metric.values) {
    switch (kind) {
      case "gauge":
        parts.push(pb.message(2, pb.double(1, 1)));
        break;
      case "counter":
        parts.push(pb.message(3, pb.double(1, 1)));
        break;
      case "untyped":
        parts.push(pb.message(5, pb.double(1, 1)));
        break;
      case "summary":
        parts.push(
          pb.message(
            4,
            pb.varint(1, 1),
            pb.double(2, 0.5),
            ...(metric.quantiles ?? []).map((q) => pb.message(3, pb.double(1, q), pb.double(2, 1))),
          ),
        );
        break;
      case "histogram":
        parts.push(
          pb.message(
            7,
            pb.varint(1, 1),
            pb.double(2, 0.5),
            ...(metric.buckets ?? []).map((bound) => pb.message(3, pb.varint(1, 1), pb.double(2, bound))),
          ),
        );
        break;
    }
  }
  if (metric.timestampMs !== undefined) parts.push(pb.varint(6, metric.timestampMs));
  return parts;
}

/** A change to one byte of a body: overwrite it, insert one before it, or delete it. */
export type ByteEdit = readonly ["set" | "insert" | "delete", index: number, value: number];

/** `body` with the edits applied in order; indexes wrap around the body's current length. */
export function applyEdits(body: Buffer, edits: readonly ByteEdit[]): Buffer {
  const bytes = [...body];
  for (const [kind, index, value] of edits) {
    const at = index % (bytes.length + 1);
    if (kind === "set") bytes[at % Math.max(bytes.length, 1)] = value;
    else if (kind === "insert") bytes.splice(at, 0, value);
    else bytes.splice(at, 1);
  }
  return Buffer.from(bytes);
}
