import { isUtf8 } from "node:buffer";
import { ExpositionError } from "./errors.js";
import {
  METRIC_TYPES,
  type MetricType,
  type MetricValueKind,
  type ParsedFamily,
  type ParsedMetric,
  type ParsedPush,
  type ParseLimits,
  type Position,
  seriesOf,
} from "./types.js";

/**
 * Decodes a body of length-delimited `io.prometheus.client.MetricFamily` messages (what Go's
 * client_golang pushes by default) the way the Pushgateway does: pbutil.ReadDelimited in a loop,
 * then Go's proto2 unmarshal of client_model's metrics.proto. Every field of the current
 * metrics.proto is known here, also those Pushgateway 1.5.1 predates; other field numbers are
 * skipped by wire type at every level, as Go does.
 *
 * Stricter than Go, each marked where it is decided:
 * - a known field with the wrong wire type is `syntax` (Go skips it as an unknown field);
 * - groups (wire type 3) are `syntax` (Go skips unknown groups; metrics.proto has none);
 * - field number 0 or above 2^29-1 is `syntax` (protobuf-go refuses it; golang/protobuf 1.3 skips);
 * - a body that ends inside a length prefix, or right after a non-zero one, is `syntax` (the
 *   Pushgateway sees io.EOF there and takes it for a clean end of the body);
 * - every string field must be valid UTF-8, or it is `invalid-utf8` (proto2 strings are bytes to
 *   Go; Prometheus then fails the whole scrape);
 * - fields Pushgateway 1.5.1 does not know yet (`unit`, `created_timestamp`, histogram
 *   `exemplars`) are checked against the current schema instead of skipped unread.
 *
 * `type` absent is COUNTER, and its value is cut to int32 as Go does; GAUGE_HISTOGRAM and values
 * outside the enum are `unknown-type`.
 */
export function parseProtobuf(body: Buffer, limits: ParseLimits): ParsedPush {
  return new ProtobufDecoder(body, limits).decode();
}

const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const START_GROUP = 3;
const END_GROUP = 4;
const FIXED32 = 5;
const WIRE_TYPE_NAMES = ["varint", "fixed64", "length-delimited", "start-group", "end-group", "fixed32"];

/** pbutil.ReadDelimited reads the length as a varint of at most binary.MaxVarintLen32 bytes. */
const MAX_LENGTH_PREFIX_BYTES = 5;
const MAX_FIELD_NUMBER = 2 ** 29 - 1;
const TEXT_CACHE_SIZE = 256;

const GAUGE_HISTOGRAM = 5;

interface Field {
  /** As metrics.proto names it, for syntax errors: `Histogram.bucket`. */
  readonly name: string;
  readonly kind: "varint" | "fixed64" | "string" | "message" | "repeated-varint" | "repeated-fixed64";
  /** For strings: what an `invalid-utf8` message calls it ("label value"). */
  readonly what?: string;
  /** For messages: their own fields. */
  readonly fields?: Fields;
}

/** A message's fields by field number. */
type Fields = ReadonlyArray<Field | undefined>;

function message(entries: Record<number, Field>): Fields {
  const fields: Array<Field | undefined> = [];
  for (const [number, field] of Object.entries(entries)) fields[Number(number)] = field;
  return fields;
}
const varint = (name: string): Field => ({ name, kind: "varint" });
const fixed64 = (name: string): Field => ({ name, kind: "fixed64" });
const string = (name: string, what: string): Field => ({ name, kind: "string", what });
const nested = (name: string, fields: Fields): Field => ({ name, kind: "message", fields });
// Go accepts repeated scalars packed or not, whatever the .proto says.
const repeatedVarint = (name: string): Field => ({ name, kind: "repeated-varint" });
const repeatedFixed64 = (name: string): Field => ({ name, kind: "repeated-fixed64" });

// client_model io/prometheus/client/metrics.proto, and google/protobuf/timestamp.proto.
const TIMESTAMP = message({ 1: varint("Timestamp.seconds"), 2: varint("Timestamp.nanos") });
const EXEMPLAR = message({
  1: nested(
    "Exemplar.label",
    message({
      1: string("LabelPair.name", "exemplar label name"),
      2: string("LabelPair.value", "exemplar label value"),
    }),
  ),
  2: fixed64("Exemplar.value"),
  3: nested("Exemplar.timestamp", TIMESTAMP),
});
const LABEL_PAIR = message({
  1: string("LabelPair.name", "label name"),
  2: string("LabelPair.value", "label value"),
});
const GAUGE = message({ 1: fixed64("Gauge.value") });
const COUNTER = message({
  1: fixed64("Counter.value"),
  2: nested("Counter.exemplar", EXEMPLAR),
  3: nested("Counter.created_timestamp", TIMESTAMP),
});
const QUANTILE = message({ 1: fixed64("Quantile.quantile"), 2: fixed64("Quantile.value") });
const SUMMARY = message({
  1: varint("Summary.sample_count"),
  2: fixed64("Summary.sample_sum"),
  3: nested("Summary.quantile", QUANTILE),
  4: nested("Summary.created_timestamp", TIMESTAMP),
});
const UNTYPED = message({ 1: fixed64("Untyped.value") });
const BUCKET = message({
  1: varint("Bucket.cumulative_count"),
  2: fixed64("Bucket.upper_bound"),
  3: nested("Bucket.exemplar", EXEMPLAR),
  4: fixed64("Bucket.cumulative_count_float"),
});
const BUCKET_SPAN = message({ 1: varint("BucketSpan.offset"), 2: varint("BucketSpan.length") });
const HISTOGRAM = message({
  1: varint("Histogram.sample_count"),
  2: fixed64("Histogram.sample_sum"),
  3: nested("Histogram.bucket", BUCKET),
  4: fixed64("Histogram.sample_count_float"),
  5: varint("Histogram.schema"),
  6: fixed64("Histogram.zero_threshold"),
  7: varint("Histogram.zero_count"),
  8: fixed64("Histogram.zero_count_float"),
  9: nested("Histogram.negative_span", BUCKET_SPAN),
  10: repeatedVarint("Histogram.negative_delta"),
  11: repeatedFixed64("Histogram.negative_count"),
  12: nested("Histogram.positive_span", BUCKET_SPAN),
  13: repeatedVarint("Histogram.positive_delta"),
  14: repeatedFixed64("Histogram.positive_count"),
  15: nested("Histogram.created_timestamp", TIMESTAMP),
  16: nested("Histogram.exemplars", EXEMPLAR),
});
const METRIC = message({
  1: nested("Metric.label", LABEL_PAIR),
  2: nested("Metric.gauge", GAUGE),
  3: nested("Metric.counter", COUNTER),
  4: nested("Metric.summary", SUMMARY),
  5: nested("Metric.untyped", UNTYPED),
  6: varint("Metric.timestamp_ms"),
  7: nested("Metric.histogram", HISTOGRAM),
});
const FAMILY = message({
  1: string("MetricFamily.name", "family name"),
  2: string("MetricFamily.help", "help"),
  3: varint("MetricFamily.type"),
  4: nested("MetricFamily.metric", METRIC),
  5: string("MetricFamily.unit", "unit"),
});

/** The value fields of Metric, by field number. */
const VALUE_KINDS: ReadonlyArray<MetricValueKind | undefined> = [
  undefined,
  undefined,
  "gauge",
  "counter",
  "summary",
  "untyped",
  undefined,
  "histogram",
];

/** Looks a field up; every schema above is known to hold these numbers. */
function fieldOf(fields: Fields, number: number): Field {
  return fields[number] as Field;
}

class ProtobufDecoder {
  readonly #body: Buffer;
  readonly #maxSeries: number;
  readonly #maxLabels: number;
  #pos = 0;
  /** Wire type of the field whose tag was read last. */
  #wire = 0;
  /** 1-based number of the message (family) being read. */
  #message = 0;
  /** 1-based number of the metric being read in its family; 0 outside metrics. */
  #metric = 0;
  /** The family's name once read and valid, for errors. */
  #family: string | undefined;
  #series = 0;
  /**
   * Label names and values repeat from metric to metric: the strings decoded last, by a hash of
   * their bytes, so that a repeated one costs a byte comparison instead of a new string.
   */
  readonly #textStart = new Int32Array(TEXT_CACHE_SIZE).fill(-1);
  readonly #textLength = new Int32Array(TEXT_CACHE_SIZE);
  readonly #textValue: string[] = new Array(TEXT_CACHE_SIZE).fill("");

  constructor(body: Buffer, limits: ParseLimits) {
    this.#body = body;
    this.#maxSeries = limits.maxSeries;
    this.#maxLabels = limits.maxLabels;
  }

  decode(): ParsedPush {
    const families: ParsedFamily[] = [];
    const end = this.#body.length;
    while (this.#pos < end) {
      this.#message += 1;
      this.#metric = 0;
      this.#family = undefined;
      // Families without metrics add no series, but each is an object: they count too.
      if (families.length === this.#maxSeries) throw this.#tooManySeries("metric families");
      // Stricter than the Pushgateway where the body ends inside a length prefix or right after
      // one: ReadDelimited returns io.EOF there, which it takes for a clean end of the body.
      const prefixStart = this.#pos;
      const length = this.#varint(end);
      if (this.#pos - prefixStart > MAX_LENGTH_PREFIX_BYTES) {
        throw this.#syntax(`length prefix longer than ${MAX_LENGTH_PREFIX_BYTES} bytes`, prefixStart);
      }
      if (length > end - this.#pos) {
        throw this.#syntax(`message of ${length} bytes, but only ${end - this.#pos} left`, prefixStart);
      }
      families.push(this.#family0(this.#pos + length));
    }
    return { format: "protobuf", families, series: this.#series };
  }

  /**
   * One MetricFamily, in two passes: the first reads name, help and type wherever they are, so
   * that the second can count each metric's series (which depend on the type) as it decodes it.
   */
  #family0(end: number): ParsedFamily {
    const start = this.#pos;
    const at: Position = { message: this.#message };
    let nameStart = -1;
    let nameEnd = -1;
    let nameValid = true;
    let helpStart = -1;
    let helpEnd = -1;
    let type = 0;
    let invalid: Field | undefined;
    // Go keeps the last of repeated scalar fields; every occurrence must still be valid UTF-8.
    while (this.#pos < end) {
      const number = this.#tag(end);
      switch (number) {
        case 1:
          nameStart = this.#lengthDelimited(fieldOf(FAMILY, 1), end);
          nameEnd = this.#pos;
          nameValid = this.#isText(nameStart, nameEnd);
          if (!nameValid) invalid ??= fieldOf(FAMILY, 1);
          break;
        case 2:
          helpStart = this.#lengthDelimited(fieldOf(FAMILY, 2), end);
          helpEnd = this.#pos;
          if (!this.#isText(helpStart, helpEnd)) invalid ??= fieldOf(FAMILY, 2);
          break;
        case 3:
          type = this.#int32(fieldOf(FAMILY, 3), end);
          break;
        case 4:
          this.#lengthDelimited(fieldOf(FAMILY, 4), end);
          break;
        case 5: {
          const unitStart = this.#lengthDelimited(fieldOf(FAMILY, 5), end);
          if (!this.#isText(unitStart, this.#pos)) invalid ??= fieldOf(FAMILY, 5);
          break;
        }
        default:
          this.#skipUnknown(number, end);
      }
    }
    if (nameStart >= 0 && nameValid) this.#family = this.#body.toString("utf8", nameStart, nameEnd);
    if (invalid !== undefined) throw this.#invalidUtf8(invalid);
    const name = this.#family ?? "";
    const help = helpStart < 0 ? undefined : this.#body.toString("utf8", helpStart, helpEnd);
    const metricType = METRIC_TYPES[type];
    if (metricType === undefined) {
      const what = type === GAUGE_HISTOGRAM ? "GAUGE_HISTOGRAM (5)" : String(type);
      throw new ExpositionError(
        "unknown-type",
        `${this.#where()}: metric type ${what} cannot be exposed by the Pushgateway`,
        at,
        this.#family,
      );
    }

    const metrics: ParsedMetric[] = [];
    this.#pos = start;
    while (this.#pos < end) {
      const number = this.#tag(end);
      if (number !== 4) {
        this.#skipUnknown(number, end);
        continue;
      }
      this.#metric = metrics.length + 1;
      const metric = this.#metric0(metricType, this.#enter(fieldOf(FAMILY, 4), end));
      this.#series += seriesOf(metricType, metric);
      if (this.#series > this.#maxSeries) throw this.#tooManySeries();
      metrics.push(metric);
    }
    this.#metric = 0;
    return { name, help, type: metricType, metrics, at };
  }

  #metric0(type: MetricType, end: number): ParsedMetric {
    const labels: Array<readonly [string, string]> = [];
    const values: MetricValueKind[] = [];
    let buckets: number[] | undefined;
    let quantiles: number[] | undefined;
    let timestamped = false;
    // Buckets (or quantiles) beyond this many make too many series whatever follows: each is one,
    // plus _sum and _count.
    const room = this.#maxSeries - this.#series - 2;
    while (this.#pos < end) {
      const number = this.#tag(end);
      const kind = VALUE_KINDS[number];
      // Go merges a sub-message that appears twice into the first: its value counts once, and
      // repeated fields (buckets, quantiles) add up.
      if (kind !== undefined && !values.includes(kind)) values.push(kind);
      switch (number) {
        case 1:
          labels.push(this.#labelPair(this.#enter(fieldOf(METRIC, 1), end)));
          if (labels.length > this.#maxLabels) {
            throw new ExpositionError(
              "too-many-labels",
              `${this.#where()}: more than ${this.#maxLabels} labels on one series`,
              this.#at(),
              this.#family,
            );
          }
          break;
        case 4:
          quantiles ??= [];
          this.#summary(
            this.#enter(fieldOf(METRIC, 4), end),
            quantiles,
            type === "summary" ? room : Infinity,
          );
          break;
        case 6:
          this.#skipKnown(fieldOf(METRIC, 6), end);
          timestamped = true;
          break;
        case 7:
          buckets ??= [];
          this.#histogram(
            this.#enter(fieldOf(METRIC, 7), end),
            buckets,
            type === "histogram" ? room : Infinity,
          );
          break;
        default:
          this.#skip(METRIC, number, end);
      }
    }
    return {
      labels,
      values,
      buckets,
      quantiles,
      timestamped,
      at: { message: this.#message, metric: this.#metric },
    };
  }

  #labelPair(end: number): readonly [string, string] {
    let name = "";
    let value = "";
    while (this.#pos < end) {
      const number = this.#tag(end);
      if (number === 1) name = this.#text(fieldOf(LABEL_PAIR, 1), end);
      else if (number === 2) value = this.#text(fieldOf(LABEL_PAIR, 2), end);
      else this.#skip(LABEL_PAIR, number, end);
    }
    return [name, value];
  }

  #summary(end: number, quantiles: number[], room: number): void {
    while (this.#pos < end) {
      const number = this.#tag(end);
      if (number !== 3) {
        this.#skip(SUMMARY, number, end);
        continue;
      }
      quantiles.push(this.#doubleIn(QUANTILE, 1, this.#enter(fieldOf(SUMMARY, 3), end)));
      if (quantiles.length > room) throw this.#tooManySeries();
    }
  }

  #histogram(end: number, buckets: number[], room: number): void {
    while (this.#pos < end) {
      const number = this.#tag(end);
      if (number !== 3) {
        this.#skip(HISTOGRAM, number, end);
        continue;
      }
      buckets.push(this.#doubleIn(BUCKET, 2, this.#enter(fieldOf(HISTOGRAM, 3), end)));
      if (buckets.length > room) throw this.#tooManySeries();
    }
  }

  /** The last value of double field `wanted` of a message (0 when absent, like Go's getters). */
  #doubleIn(fields: Fields, wanted: number, end: number): number {
    let value = 0;
    while (this.#pos < end) {
      const number = this.#tag(end);
      if (number !== wanted) {
        this.#skip(fields, number, end);
        continue;
      }
      this.#expectWire(fieldOf(fields, wanted), FIXED64);
      this.#need(8, end);
      value = this.#body.readDoubleLE(this.#pos);
      this.#pos += 8;
    }
    return value;
  }

  /** Skips field `number` of a message: checked against the schema when known. */
  #skip(fields: Fields, number: number, end: number): void {
    const field = fields[number];
    if (field === undefined) this.#skipUnknown(number, end);
    else this.#skipKnown(field, end);
  }

  #skipKnown(field: Field, end: number): void {
    switch (field.kind) {
      case "varint":
        this.#expectWire(field, VARINT);
        this.#varint(end);
        return;
      case "fixed64":
        this.#expectWire(field, FIXED64);
        this.#need(8, end);
        this.#pos += 8;
        return;
      case "string":
        if (!this.#isText(this.#lengthDelimited(field, end), this.#pos)) throw this.#invalidUtf8(field);
        return;
      case "message": {
        const fields = field.fields as Fields;
        const messageEnd = this.#enter(field, end);
        while (this.#pos < messageEnd) this.#skip(fields, this.#tag(messageEnd), messageEnd);
        return;
      }
      case "repeated-varint":
        if (this.#wire === VARINT) {
          this.#varint(end);
          return;
        }
        this.#expectWire(field, LENGTH_DELIMITED);
        for (const packedEnd = this.#enter(field, end); this.#pos < packedEnd; ) this.#varint(packedEnd);
        return;
      case "repeated-fixed64": {
        if (this.#wire === FIXED64) {
          this.#need(8, end);
          this.#pos += 8;
          return;
        }
        this.#expectWire(field, LENGTH_DELIMITED);
        const start = this.#lengthDelimited(field, end);
        if ((this.#pos - start) % 8 !== 0)
          throw this.#syntax(`packed ${field.name} is not a multiple of 8 bytes`);
        return;
      }
    }
  }

  #skipUnknown(number: number, end: number): void {
    switch (this.#wire) {
      case VARINT:
        this.#varint(end);
        return;
      case FIXED64:
        this.#need(8, end);
        this.#pos += 8;
        return;
      case LENGTH_DELIMITED:
        this.#pos = this.#lengthOf(`field ${number}`, end);
        return;
      case FIXED32:
        this.#need(4, end);
        this.#pos += 4;
        return;
      case START_GROUP:
        // Stricter than Go, which skips an unknown group to its end tag: metrics.proto has none.
        throw this.#syntax(`field ${number} is a group, which metrics.proto never uses`);
      case END_GROUP:
        throw this.#syntax(`field ${number} ends a group that never started`);
      default:
        throw this.#syntax(`field ${number} has invalid wire type ${this.#wire}`);
    }
  }

  /** Reads a tag: returns the field number and keeps the wire type in `#wire`. */
  #tag(end: number): number {
    const start = this.#pos;
    const tag = this.#varint(end);
    // protobuf-go refuses these numbers; golang/protobuf 1.3 would skip them as unknown.
    if (tag < 8 || tag >= (MAX_FIELD_NUMBER + 1) * 8) {
      throw this.#syntax(`invalid field number ${Math.floor(tag / 8)}`, start);
    }
    this.#wire = tag & 7;
    return tag >>> 3;
  }

  /**
   * Reads an unsigned varint of at most 10 bytes, exact up to 2^53 (enough for every length and
   * tag that can fit in a body; values beyond only need to be skipped).
   */
  #varint(end: number): number {
    const body = this.#body;
    const start = this.#pos;
    let pos = start;
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (pos >= end) throw this.#syntax("truncated varint", start);
      const byte = body[pos++] as number;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        // As Go: the tenth byte holds bit 63 only.
        if (i === 9 && byte > 1) throw this.#syntax("varint overflows 64 bits", start);
        this.#pos = pos;
        return value;
      }
      scale *= 128;
    }
    throw this.#syntax("varint longer than 10 bytes", start);
  }

  /** A varint cut to its low 32 bits, as Go reads an int32 or enum field. */
  #int32(field: Field, end: number): number {
    this.#expectWire(field, VARINT);
    const start = this.#pos;
    this.#varint(end);
    let value = 0;
    for (let i = 0; i < 5 && start + i < this.#pos; i++) {
      value |= ((this.#body[start + i] as number) & 0x7f) << (7 * i);
    }
    return value | 0;
  }

  /** Enters a length-delimited field: returns the end of its bytes, which start at `#pos`. */
  #enter(field: Field, end: number): number {
    this.#expectWire(field, LENGTH_DELIMITED);
    return this.#lengthOf(field.name, end);
  }

  #lengthOf(name: string, end: number): number {
    const start = this.#pos;
    const length = this.#varint(end);
    if (length > end - this.#pos) {
      throw this.#syntax(`${name} of ${length} bytes, but only ${end - this.#pos} left`, start);
    }
    return this.#pos + length;
  }

  /** Skips a length-delimited field; returns where its bytes start (they end at `#pos`). */
  #lengthDelimited(field: Field, end: number): number {
    const valueEnd = this.#enter(field, end);
    const start = this.#pos;
    this.#pos = valueEnd;
    return start;
  }

  /** A label name or value: seen before in this body (most are), or checked and decoded. */
  #text(field: Field, end: number): string {
    const start = this.#lengthDelimited(field, end);
    const length = this.#pos - start;
    if (length === 0) return "";
    const body = this.#body;
    const slot =
      (length * 31 + (body[start] as number) * 7 + (body[this.#pos - 1] as number)) & (TEXT_CACHE_SIZE - 1);
    const cachedStart = this.#textStart[slot] as number;
    if (
      cachedStart >= 0 &&
      this.#textLength[slot] === length &&
      this.#sameBytes(cachedStart, start, length)
    ) {
      return this.#textValue[slot] as string;
    }
    // Stricter than Go: proto2 strings are bytes there.
    if (!this.#isText(start, this.#pos)) throw this.#invalidUtf8(field);
    const text = body.toString("utf8", start, this.#pos);
    this.#textStart[slot] = start;
    this.#textLength[slot] = length;
    this.#textValue[slot] = text;
    return text;
  }

  #sameBytes(a: number, b: number, length: number): boolean {
    const body = this.#body;
    for (let i = 0; i < length; i++) if (body[a + i] !== body[b + i]) return false;
    return true;
  }

  #isText(start: number, end: number): boolean {
    const body = this.#body;
    // Most names and values are ASCII: this loop costs less than a native call on a subarray.
    for (let i = start; i < end; i++) {
      if ((body[i] as number) >= 0x80) return isUtf8(body.subarray(start, end));
    }
    return true;
  }

  #expectWire(field: Field, wire: number): void {
    // Stricter than Go, which skips a known field with another wire type as an unknown field.
    if (this.#wire !== wire) {
      const actual = WIRE_TYPE_NAMES[this.#wire] ?? String(this.#wire);
      throw this.#syntax(`${field.name} has wire type ${actual}, not ${WIRE_TYPE_NAMES[wire]}`);
    }
  }

  #need(bytes: number, end: number): void {
    if (end - this.#pos < bytes) throw this.#syntax(`truncated ${bytes}-byte value`);
  }

  #where(): string {
    return this.#metric > 0 ? `message ${this.#message}, metric ${this.#metric}` : `message ${this.#message}`;
  }

  #at(): Position {
    return this.#metric > 0 ? { message: this.#message, metric: this.#metric } : { message: this.#message };
  }

  #syntax(what: string, offset = this.#pos): ExpositionError {
    return new ExpositionError(
      "syntax",
      `${this.#where()}, byte ${offset}: ${what}`,
      this.#at(),
      this.#family,
    );
  }

  #invalidUtf8(field: Field): ExpositionError {
    return new ExpositionError(
      "invalid-utf8",
      `${this.#where()}: ${field.what} is not valid UTF-8`,
      this.#at(),
      this.#family,
    );
  }

  #tooManySeries(what = "series"): ExpositionError {
    return new ExpositionError(
      "too-many-series",
      `${this.#where()}: more than ${this.#maxSeries} ${what} in one push`,
      this.#at(),
      this.#family,
    );
  }
}
