/**
 * Minimal writer for `io.prometheus.client.MetricFamily` in the length-delimited form Pushgateway
 * accepts (what Go's client_golang sends). Just enough for a gauge family with labels and a gauge
 * histogram family (a type the text format cannot carry); the end-to-end suite uses the real Go
 * client.
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
  return Buffer.concat([Buffer.from([(field << 3) | 0]), varint(value)]);
}

function doubleField(field: number, value: number): Buffer {
  const bytes = Buffer.alloc(9);
  bytes[0] = (field << 3) | 1;
  bytes.writeDoubleLE(value, 1);
  return bytes;
}

function stringField(field: number, value: string): Buffer {
  return bytesField(field, Buffer.from(value, "utf8"));
}

function bytesField(field: number, value: Buffer): Buffer {
  return Buffer.concat([Buffer.from([(field << 3) | 2]), varint(value.length), value]);
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
