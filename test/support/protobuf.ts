/**
 * Minimal writer for `io.prometheus.client.MetricFamily` in the length-delimited form Pushgateway
 * accepts (what Go's client_golang sends). Just enough for a gauge family with labels; the
 * end-to-end suite uses the real Go client.
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
