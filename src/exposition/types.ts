/**
 * A pushed body, parsed: what the Pushgateway would store, reduced to what validation needs.
 * Both parsers (text format 0.0.4 and delimited protobuf) produce this shape; they refuse what
 * the Pushgateway's own parsers refuse (and a little more, see docs/validation.md), and leave
 * every rule about names, labels, limits and collisions to `validation/`.
 */

/**
 * The family types the Pushgateway can expose to Prometheus, in the order of client_model's
 * `MetricType` enum (COUNTER = 0 ... HISTOGRAM = 4; GAUGE_HISTOGRAM = 5 has no text form).
 */
export const METRIC_TYPES = ["counter", "gauge", "summary", "untyped", "histogram"] as const;

export type MetricType = (typeof METRIC_TYPES)[number];

/** The type a name in upper case (`COUNTER`, as Go's enum and `/api/v1/metrics` spell it) stands for. */
export function metricTypeNamed(upper: string): MetricType | undefined {
  return METRIC_TYPES.find((type) => type.toUpperCase() === upper);
}

/** The value a metric carries, by its family's type. */
export type MetricValueKind = MetricType;

export interface ParsedPush {
  readonly format: "text" | "protobuf";
  /** Families in the order they first appear. Text drops families without samples (as Go does). */
  readonly families: readonly ParsedFamily[];
  /** Series a scrape of this push would see (see `seriesOf`), summed over every family. */
  readonly series: number;
}

export interface ParsedFamily {
  readonly name: string;
  /** `undefined` when the body gave no HELP (protobuf: field absent). */
  readonly help: string | undefined;
  readonly type: MetricType;
  readonly metrics: readonly ParsedMetric[];
  /** Where the family was first named: a 1-based text line, or a 1-based protobuf message number. */
  readonly at: Position;
}

export interface ParsedMetric {
  /**
   * Label pairs as pushed, in order. For text histograms and summaries, `le` and `quantile` are
   * consumed by the parser (as in Go) and are not here; protobuf keeps every pair it was sent.
   */
  readonly labels: ReadonlyArray<readonly [name: string, value: string]>;
  /** Which value fields the metric carries (protobuf may carry none, or several). */
  readonly values: readonly MetricValueKind[];
  /** Histogram bucket upper bounds, in order (may repeat: validation refuses that). */
  readonly buckets?: readonly number[];
  /** Summary quantiles, in order (may repeat: validation refuses that). */
  readonly quantiles?: readonly number[];
  /** Text histograms and summaries: how many `_count` and `_sum` lines were merged into it. */
  readonly counts?: number;
  readonly sums?: number;
  /** Whether the metric carries a timestamp (the Pushgateway refuses those). */
  readonly timestamped: boolean;
  readonly at: Position;
}

export interface Position {
  /** 1-based line of the text body. */
  readonly line?: number;
  /** 1-based number of the length-delimited protobuf message (the family). */
  readonly message?: number;
  /** 1-based number of the metric within its protobuf family. */
  readonly metric?: number;
}

/** Where a parser stops, so that a huge body never becomes a huge model. */
export interface ParseLimits {
  /**
   * Stop with `too-many-series` once more series (see `seriesOf`), or more families, than this
   * have been read.
   */
  readonly maxSeries: number;
  /** Stop with `too-many-labels` once one series has more label pairs than this. */
  readonly maxLabels: number;
}

/** Series a scrape of one metric yields, as the Pushgateway's text exposition writes it. */
export function seriesOf(type: MetricType, metric: ParsedMetric): number {
  switch (type) {
    case "summary":
      return (metric.quantiles?.length ?? 0) + 2;
    case "histogram": {
      const buckets = metric.buckets ?? [];
      // expfmt adds the +Inf bucket when it is missing.
      return buckets.length + (buckets.includes(Number.POSITIVE_INFINITY) ? 0 : 1) + 2;
    }
    default:
      return 1;
  }
}
