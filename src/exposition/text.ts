import { isUtf8 } from "node:buffer";
import { ExpositionError } from "./errors.js";
import type {
  MetricType,
  MetricValueKind,
  ParsedFamily,
  ParsedPush,
  ParseLimits,
  Position,
} from "./types.js";
import { metricTypeNamed, seriesOf } from "./types.js";

/**
 * Parses a text format 0.0.4 body exactly as the Pushgateway's parser (prometheus/common
 * `expfmt.TextParser`) does: the same tokens, escapes, line-based errors and merging of
 * histogram and summary lines into metrics by their labels. A body that parser refuses is
 * refused here with `syntax`; the only additions are `invalid-utf8` for HELP text (Go keeps it,
 * and Prometheus then rejects the whole scrape), `unknown-type` for samples of a type the
 * Pushgateway cannot expose, and `dropped-sample` for a histogram or summary line Go would keep
 * without its value (no `le`/`quantile`, not `_sum`/`_count`).
 *
 * Type names are matched case-insensitively, as Go does; a body must end with a newline (Go:
 * "unexpected end of input stream"), so must every line, CRLF line endings included.
 */
export function parseText(body: Buffer, limits: ParseLimits): ParsedPush {
  return new TextParser(body, limits).parse();
}

const NEWLINE = 0x0a;
const HASH = 0x23;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN = 0x7b;
const CLOSE = 0x7d;
const COMMA = 0x2c;
const EQUALS = 0x3d;

/** A type Go's parser knows (client_model 0.3) but the Pushgateway cannot write as text. */
type DeclaredType = MetricType | "gauge_histogram";

function declaredType(upper: string): DeclaredType | undefined {
  return upper === "GAUGE_HISTOGRAM" ? "gauge_histogram" : metricTypeNamed(upper);
}

interface FamilyBuilder {
  readonly name: string;
  help: string | undefined;
  /** The line of a HELP that is not UTF-8 (Prometheus would refuse the scrape). */
  invalidHelpLine?: number;
  type: DeclaredType | undefined;
  readonly metrics: MetricBuilder[];
  /** Histogram or summary metrics by their labels (without `le`/`quantile`). */
  readonly merged: Map<string, MetricBuilder>;
  readonly at: Position;
}

interface MetricBuilder {
  readonly labels: Array<[string, string]>;
  values: MetricValueKind[];
  buckets?: number[];
  quantiles?: number[];
  counts?: number;
  sums?: number;
  timestamped: boolean;
  readonly at: Position;
}

function isBlank(byte: number | undefined): boolean {
  return byte === 0x20 || byte === 0x09;
}

function isLabelNameStart(byte: number | undefined): boolean {
  return (
    byte !== undefined && ((byte >= 0x61 && byte <= 0x7a) || (byte >= 0x41 && byte <= 0x5a) || byte === 0x5f)
  );
}

function isLabelNameContinuation(byte: number | undefined): boolean {
  return isLabelNameStart(byte) || (byte !== undefined && byte >= 0x30 && byte <= 0x39);
}

function isMetricNameStart(byte: number | undefined): boolean {
  return isLabelNameStart(byte) || byte === 0x3a;
}

function isMetricNameContinuation(byte: number | undefined): boolean {
  return isLabelNameContinuation(byte) || byte === 0x3a;
}

/** Thrown inside the parser when input ends mid-line; reported like Go's `io.EOF` case. */
const END_OF_INPUT = Symbol("end of input");

class TextParser {
  readonly #body: Buffer;
  readonly #limits: ParseLimits;
  /** Index of the current byte (Go's `currentByte`); `#body.length` once input has ended. */
  #pos = -1;
  #line = 0;
  #samples = 0;
  readonly #families = new Map<string, FamilyBuilder>();
  #family: FamilyBuilder | undefined;
  #metric: MetricBuilder | undefined;
  /** For histogram and summary lines: the line's labels other than `le` and `quantile`. */
  #mergeLabels: Array<[string, string]> = [];
  #quantile = Number.NaN;
  #bucket = Number.NaN;
  #isCount = false;
  #isSum = false;

  /** The first histogram or summary line whose value Go would drop. */
  #droppedSample: { line: number; family: string; type: string } | undefined;
  /** The current line's label names, once there are too many for a linear duplicate check. */
  #labelNames: Set<string> | undefined;

  constructor(body: Buffer, limits: ParseLimits) {
    this.#body = body;
    this.#limits = limits;
  }

  parse(): ParsedPush {
    try {
      while (this.#line0()) {
        // one line per turn
      }
    } catch (error) {
      if (error === END_OF_INPUT) throw this.#syntax("unexpected end of input stream");
      throw error;
    }
    if (this.#droppedSample) {
      const { line, family, type } = this.#droppedSample;
      throw new ExpositionError(
        "dropped-sample",
        `line ${line}: a sample of the ${type} "${family}" that is neither a ${type === "summary" ? "quantile" : "bucket with le"}, _sum nor _count; the Pushgateway would drop its value`,
        { line },
        family,
      );
    }
    const families: ParsedFamily[] = [];
    let series = 0;
    for (const family of this.#families.values()) {
      // Go drops families that got no samples (a TYPE or HELP line alone).
      if (family.metrics.length === 0) continue;
      if (family.invalidHelpLine !== undefined) {
        const line = family.invalidHelpLine;
        throw new ExpositionError(
          "invalid-utf8",
          `line ${line}: HELP of "${family.name}" is not valid UTF-8`,
          { line },
          family.name,
        );
      }
      const type = family.type as MetricType;
      for (const metric of family.metrics) series += seriesOf(type, metric);
      families.push({ name: family.name, help: family.help, type, metrics: family.metrics, at: family.at });
    }
    return { format: "text", families, series };
  }

  #cur(): number | undefined {
    return this.#body[this.#pos];
  }

  /** Reads the next byte (Go's `ReadByte`); false at the end of input. */
  #read(): boolean {
    this.#pos += 1;
    return this.#pos < this.#body.length;
  }

  /** Like `#read`, but input must go on. */
  #next(): void {
    if (!this.#read()) throw END_OF_INPUT;
  }

  /** Reads past blanks and tabs (always reading at least one byte); false at the end of input. */
  #skipBlankTab(): boolean {
    for (;;) {
      if (!this.#read()) return false;
      if (!isBlank(this.#cur())) return true;
    }
  }

  #skipBlankTabOrEnd(): void {
    if (!this.#skipBlankTab()) throw END_OF_INPUT;
  }

  #syntax(message: string): ExpositionError {
    return new ExpositionError(
      "syntax",
      `line ${this.#line}: ${message}`,
      { line: this.#line },
      this.#family?.name,
    );
  }

  /** Parses one line; false when the input ended cleanly. */
  #line0(): boolean {
    this.#line += 1;
    if (!this.#skipBlankTab()) return false;
    const byte = this.#cur();
    if (byte === NEWLINE) return true;
    if (byte === HASH) this.#comment();
    else this.#sample();
    return true;
  }

  #comment(): void {
    this.#skipBlankTabOrEnd();
    if (this.#cur() === NEWLINE) return;
    const keyword = this.#tokenUntilWhitespace();
    if (this.#cur() === NEWLINE) return;
    if (keyword !== "HELP" && keyword !== "TYPE") {
      while (this.#cur() !== NEWLINE) this.#next();
      return;
    }
    this.#skipBlankTabOrEnd();
    const name = this.#metricName();
    if (this.#cur() === NEWLINE) return;
    if (!isBlank(this.#cur())) throw this.#syntax("invalid metric name in comment");
    this.#setFamily(name);
    this.#skipBlankTabOrEnd();
    if (this.#cur() === NEWLINE) return;
    if (keyword === "HELP") this.#help();
    else this.#type();
  }

  #help(): void {
    const family = this.#family as FamilyBuilder;
    if (family.help !== undefined) throw this.#syntax(`second HELP line for metric name "${family.name}"`);
    const bytes = this.#untilNewline(true);
    // Refused only if the family gets samples: Go drops a family without any, HELP and all.
    if (!isUtf8(bytes)) family.invalidHelpLine = this.#line;
    family.help = bytes.toString("utf8");
  }

  #type(): void {
    const family = this.#family as FamilyBuilder;
    if (family.type !== undefined) {
      throw this.#syntax(`second TYPE line for metric name "${family.name}", or TYPE reported after samples`);
    }
    const token = this.#untilNewline(false).toString("utf8");
    const type = declaredType(goToUpper(token));
    if (type === undefined) throw this.#syntax(`unknown metric type ${shown(token)}`);
    family.type = type;
  }

  #sample(): void {
    const name = this.#metricName();
    if (name === "") {
      const quoted = this.#cur() === OPEN || this.#cur() === QUOTE;
      // The quoted form of newer Pushgateways (--push.enable-utf8-names); 1.5.1 has no such syntax.
      throw this.#syntax(
        quoted
          ? "invalid metric name (quoted UTF-8 names are not accepted in the text format: push them as protobuf)"
          : "invalid metric name",
      );
    }
    this.#setFamily(name);
    const family = this.#family as FamilyBuilder;
    family.type ??= "untyped";
    this.#metric = { labels: [], values: [], timestamped: false, at: { line: this.#line } };
    this.#labelNames = undefined;
    if (isBlank(this.#cur())) this.#skipBlankTabOrEnd();
    const merging = family.type === "summary" || family.type === "histogram";
    if (merging) {
      this.#mergeLabels = [];
      this.#quantile = Number.NaN;
      this.#bucket = Number.NaN;
    }
    if (this.#cur() === OPEN) this.#labels(family, merging);
    this.#value(family, merging);
  }

  #labels(family: FamilyBuilder, merging: boolean): void {
    const metric = this.#metric as MetricBuilder;
    for (;;) {
      this.#skipBlankTabOrEnd();
      if (this.#cur() === CLOSE) break;
      const name = this.#labelName();
      if (name === "") throw this.#syntax(`invalid label name for metric "${family.name}"`);
      if (name === "__name__") throw this.#syntax('label name "__name__" is reserved');
      const consumed =
        (family.type === "summary" && name === "quantile") || (family.type === "histogram" && name === "le");
      const pair: [string, string] = [name, ""];
      if (!consumed) metric.labels.push(pair);
      if (isBlank(this.#cur())) this.#skipBlankTabOrEnd();
      if (this.#cur() !== EQUALS) throw this.#syntax("expected '=' after label name");
      if (!consumed && this.#repeatsLabel(metric.labels)) {
        throw this.#syntax(`duplicate label names for metric "${family.name}"`);
      }
      this.#skipBlankTabOrEnd();
      if (this.#cur() !== QUOTE) throw this.#syntax("expected '\"' at start of label value");
      const value = this.#labelValue();
      pair[1] = value;
      if (consumed) {
        const bound = parseGoFloat(value);
        if (bound === undefined) throw this.#syntax(`expected float as value for '${name}' label`);
        if (name === "le") this.#bucket = bound;
        else this.#quantile = bound;
      } else if (merging) {
        this.#mergeLabels.push(pair);
      }
      this.#skipBlankTabOrEnd();
      if (this.#cur() === COMMA) continue;
      if (this.#cur() === CLOSE) break;
      throw this.#syntax(`unexpected end of label value ${shown(value)}`);
    }
    this.#skipBlankTabOrEnd();
  }

  #value(family: FamilyBuilder, merging: boolean): void {
    let metric = this.#metric as MetricBuilder;
    if (merging) {
      const key = signature(this.#mergeLabels);
      const existing = family.merged.get(key);
      if (existing) metric = existing;
      else {
        family.merged.set(key, metric);
        family.metrics.push(metric);
      }
    } else {
      family.metrics.push(metric);
    }
    this.#samples += 1;
    if (this.#samples > this.#limits.maxSeries) throw this.#tooManySeries("series");
    const token = this.#tokenUntilWhitespace();
    if (parseGoFloat(token) === undefined) throw this.#syntax(`expected float as value, got ${shown(token)}`);
    const type = family.type as DeclaredType;
    if (type === "gauge_histogram") {
      throw new ExpositionError(
        "unknown-type",
        `line ${this.#line}: "${family.name}" has type gauge_histogram, which the Pushgateway cannot expose`,
        { line: this.#line },
        family.name,
      );
    }
    if (metric.values.length === 0) metric.values = [type];
    if ((type === "summary" || type === "histogram") && !this.#isCount && !this.#isSum) {
      // Go keeps the line's metric but drops its value: data lost without a word. Reported once
      // the whole body parsed, so a syntax error anywhere is still reported as Go reports it.
      const component = type === "summary" ? this.#quantile : this.#bucket;
      if (Number.isNaN(component)) this.#droppedSample ??= { line: this.#line, family: family.name, type };
    }
    if (type === "summary") {
      if (this.#isCount) metric.counts = (metric.counts ?? 0) + 1;
      else if (this.#isSum) metric.sums = (metric.sums ?? 0) + 1;
      else if (!Number.isNaN(this.#quantile)) {
        metric.quantiles ??= [];
        metric.quantiles.push(this.#quantile);
      }
    } else if (type === "histogram") {
      if (this.#isCount) metric.counts = (metric.counts ?? 0) + 1;
      else if (this.#isSum) metric.sums = (metric.sums ?? 0) + 1;
      else if (!Number.isNaN(this.#bucket)) {
        metric.buckets ??= [];
        metric.buckets.push(this.#bucket);
      }
    }
    if (this.#cur() === NEWLINE) return;
    this.#timestamp(metric);
  }

  #timestamp(metric: MetricBuilder): void {
    this.#skipBlankTabOrEnd();
    const token = this.#tokenUntilWhitespace();
    if (!isGoInt64(token)) throw this.#syntax(`expected integer as timestamp, got ${shown(token)}`);
    metric.timestamped = true;
    if (this.#untilNewline(false).length > 0) throw this.#syntax("spurious string after timestamp");
  }

  /** Whether the label just added repeats an earlier one; also enforces `maxLabels`. */
  #repeatsLabel(labels: ReadonlyArray<readonly [string, string]>): boolean {
    const count = labels.length;
    if (count > this.#limits.maxLabels) {
      throw new ExpositionError(
        "too-many-labels",
        `line ${this.#line}: more than ${this.#limits.maxLabels} labels on one series`,
        { line: this.#line },
        this.#family?.name,
      );
    }
    const name = (labels[count - 1] as readonly [string, string])[0];
    if (count <= 8) {
      for (let index = 0; index < count - 1; index++)
        if ((labels[index] as [string, string])[0] === name) return true;
      return false;
    }
    this.#labelNames ??= new Set(labels.slice(0, -1).map(([other]) => other));
    if (this.#labelNames.has(name)) return true;
    this.#labelNames.add(name);
    return false;
  }

  #tooManySeries(what: "series" | "metric families"): ExpositionError {
    return new ExpositionError(
      "too-many-series",
      `line ${this.#line}: more than ${this.#limits.maxSeries} ${what} in one push`,
      { line: this.#line },
      this.#family?.name,
    );
  }

  /** Go's `setOrCreateCurrentMF`: `x_count`, `x_sum` (and `x_bucket`) belong to a summary (histogram) `x`. */
  #setFamily(name: string): void {
    this.#isCount = false;
    this.#isSum = false;
    const existing = this.#families.get(name);
    if (existing) {
      this.#family = existing;
      return;
    }
    const count = name.length > 6 && name.endsWith("_count");
    const sum = name.length > 4 && name.endsWith("_sum");
    const bucket = name.length > 7 && name.endsWith("_bucket");
    if (count || sum) {
      const summary = this.#families.get(name.slice(0, name.length - (count ? 6 : 4)));
      if (summary?.type === "summary") {
        this.#family = summary;
        this.#isCount = count;
        this.#isSum = sum;
        return;
      }
    }
    if (count || sum || bucket) {
      const histogram = this.#families.get(name.slice(0, name.length - (count ? 6 : sum ? 4 : 7)));
      if (histogram?.type === "histogram") {
        this.#family = histogram;
        this.#isCount = count;
        this.#isSum = sum;
        return;
      }
    }
    if (this.#families.size >= this.#limits.maxSeries) throw this.#tooManySeries("metric families");
    const family: FamilyBuilder = {
      name,
      help: undefined,
      type: undefined,
      metrics: [],
      merged: new Map(),
      at: { line: this.#line },
    };
    this.#families.set(name, family);
    this.#family = family;
  }

  /** Bytes from the current one to the next blank, tab or newline; input must not end first. */
  #tokenUntilWhitespace(): string {
    const start = this.#pos;
    while (!isBlank(this.#cur()) && this.#cur() !== NEWLINE) this.#next();
    return this.#body.toString("latin1", start, this.#pos);
  }

  #metricName(): string {
    const start = this.#pos;
    if (!isMetricNameStart(this.#cur())) return "";
    do this.#next();
    while (isMetricNameContinuation(this.#cur()));
    return this.#body.toString("latin1", start, this.#pos);
  }

  #labelName(): string {
    const start = this.#pos;
    if (!isLabelNameStart(this.#cur())) return "";
    do this.#next();
    while (isLabelNameContinuation(this.#cur()));
    return this.#body.toString("latin1", start, this.#pos);
  }

  /** The rest of the line from the current byte; with `escapes`, `\\` and `\n` are decoded (HELP). */
  #untilNewline(escapes: boolean): Buffer {
    const start = this.#pos;
    const end = this.#body.indexOf(NEWLINE, start);
    if (end === -1) {
      this.#pos = this.#body.length;
      throw END_OF_INPUT;
    }
    const firstEscape = escapes ? this.#body.indexOf(BACKSLASH, start) : -1;
    if (firstEscape === -1 || firstEscape > end) {
      this.#pos = end;
      return this.#body.subarray(start, end);
    }
    // Decoded into one buffer: escapes only ever shorten the text.
    const decoded = Buffer.allocUnsafe(end - start);
    let length = 0;
    for (let index = start; index < end; index++) {
      const byte = this.#body[index] as number;
      if (byte !== BACKSLASH) {
        decoded[length++] = byte;
        continue;
      }
      index += 1;
      this.#pos = index;
      const escaped = this.#body[index];
      if (escaped === BACKSLASH) decoded[length++] = BACKSLASH;
      else if (escaped === 0x6e) decoded[length++] = NEWLINE;
      // A `\` right before the newline is an invalid escape of the newline, as in Go.
      else throw this.#syntax(`invalid escape sequence '\\${String.fromCharCode(escaped ?? 0)}'`);
    }
    this.#pos = end;
    return decoded.subarray(0, length);
  }

  /** A quoted label value, the current byte being the opening quote; ends on the closing quote. */
  #labelValue(): string {
    const start = this.#pos + 1;
    let decoded: Buffer | undefined;
    let length = 0;
    let ascii = true;
    let index = start;
    for (; ; index++) {
      if (index >= this.#body.length) {
        this.#pos = index;
        throw END_OF_INPUT;
      }
      const byte = this.#body[index] as number;
      if (byte === QUOTE) break;
      if (byte === NEWLINE) {
        this.#pos = index;
        throw this.#syntax("label value contains unescaped new-line");
      }
      if (byte >= 0x80) ascii = false;
      if (byte !== BACKSLASH) {
        if (decoded) decoded[length++] = byte;
        continue;
      }
      if (!decoded) {
        // Escapes only ever shorten the value: one buffer, as long as the rest of the body, at most.
        decoded = Buffer.allocUnsafe(this.#body.length - start);
        this.#body.copy(decoded, 0, start, index);
        length = index - start;
      }
      index += 1;
      if (index >= this.#body.length) {
        this.#pos = index;
        throw END_OF_INPUT;
      }
      const escaped = this.#body[index];
      if (escaped === QUOTE || escaped === BACKSLASH) decoded[length++] = escaped;
      else if (escaped === 0x6e) decoded[length++] = NEWLINE;
      else {
        this.#pos = index;
        throw this.#syntax(`invalid escape sequence '\\${String.fromCharCode(escaped ?? 0)}'`);
      }
    }
    this.#pos = index;
    const bytes = decoded ? decoded.subarray(0, length) : this.#body.subarray(start, index);
    if (!ascii && !isUtf8(bytes)) throw this.#syntax("invalid label value: not valid UTF-8");
    return ascii ? bytes.toString("latin1") : bytes.toString("utf8");
  }
}

/**
 * Label pairs in name order, one string: the identity of a histogram or summary metric. Each part
 * is length-prefixed, so no value can spell another label set (Go separates bytes with 0xFF,
 * which UTF-8 never contains; any character can appear in a decoded string).
 */
function signature(labels: ReadonlyArray<readonly [string, string]>): string {
  if (labels.length === 0) return "";
  const sorted = labels.length === 1 ? labels : [...labels].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  let key = "";
  for (const [name, value] of sorted) key += `${name.length}:${name}${value.length}:${value}`;
  return key;
}

// Each digit run has exactly one way to match: no backtracking on a long run of digits.
const DECIMAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const INFINITY = /^[+-]?(?:inf|infinity)$/i;

/**
 * Go's `strconv.ParseFloat(s, 64)` as expfmt calls it (no `p`, `P` or `_`, so no hex floats):
 * decimal notation, `Inf`/`Infinity` with an optional sign and `NaN`, in any letter case. A
 * decimal beyond the float64 range is an error there (ErrRange), not an infinity.
 */
export function parseGoFloat(text: string): number | undefined {
  if (DECIMAL.test(text)) {
    const value = Number(text);
    return Number.isFinite(value) ? value : undefined;
  }
  if (INFINITY.test(text)) return text.startsWith("-") ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
  if (/^nan$/i.test(text)) return Number.NaN;
  return undefined;
}

/** A token for an error message: quoted, and cut short (the body is the client's own, but long). */
function shown(text: string): string {
  return JSON.stringify(text.length > 64 ? `${text.slice(0, 64)}…` : text);
}

/**
 * Go's `strings.ToUpper`: each character's simple upper case. JavaScript's `toUpperCase` applies
 * full mappings (`ﬆ` → `ST`), which would make `hiﬆogram` a histogram where Go refuses it.
 */
function goToUpper(text: string): string {
  if (!/[^\x20-\x7e]/.test(text)) return text.toUpperCase();
  let upper = "";
  for (const char of text) {
    const mapped = char.toUpperCase();
    upper += [...mapped].length === 1 ? mapped : char;
  }
  return upper;
}

const INT64 = /^[+-]?\d+$/;
const INT64_MAX = 2n ** 63n - 1n;

/** Go's `strconv.ParseInt(s, 10, 64)`. */
function isGoInt64(text: string): boolean {
  // Beyond 20 characters (sign and 19 digits) it cannot fit; BigInt of a huge text is costly.
  if (text.length > 20 || !INT64.test(text)) return false;
  const value = BigInt(text);
  return value <= INT64_MAX && value >= -INT64_MAX - 1n;
}
