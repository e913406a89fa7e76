import { once } from "node:events";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { ExpositionError } from "../../src/exposition/errors.js";
import { parseProtobuf } from "../../src/exposition/protobuf.js";
import { type MetricType, type ParsedPush, seriesOf } from "../../src/exposition/types.js";
import { buildGoFamilies, runProgram } from "../support/clients/index.js";
import { type FamilySpec, type MetricSpec, PROTOBUF_CONTENT_TYPE } from "../support/protobuf.js";
import { familySpecs } from "../support/push-arbitraries.js";

/**
 * The protobuf parser against the real encoder: Prometheus' Go client (client_golang 1.14 and
 * golang/protobuf from Debian, test/support/clients/go-families/main.go) writes the bodies,
 * parseProtobuf must read exactly what Go wrote. Once as a batch job pushes (push.Pusher to a
 * listener here, one collector of every kind, exemplars and native histograms included), and for
 * generated families through expfmt's delimited encoder, the one push.Pusher uses.
 */

const unlimited = { maxSeries: Number.MAX_SAFE_INTEGER, maxLabels: Number.POSITIVE_INFINITY };
let families: string;

beforeAll(async () => {
  families = await buildGoFamilies();
}, 300_000);

interface Captured {
  readonly method: string | undefined;
  readonly url: string | undefined;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

/** Runs the Go client's push against a listener here and returns the request it sent. */
async function capturePush(): Promise<Captured> {
  const requests: Captured[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      requests.push({
        method: request.method,
        url: request.url,
        headers: request.headers,
        body: Buffer.concat(chunks),
      });
      response.end();
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  try {
    const { port } = server.address() as AddressInfo;
    const result = await runProgram(families, ["-push", `http://127.0.0.1:${port}`]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
  } finally {
    server.close();
  }
  expect(requests).toHaveLength(1);
  return requests[0] as Captured;
}

/** Encodes each body's families with Go's expfmt, in one run of the Go program. */
async function encodeWithGo(bodies: readonly (readonly FamilySpec[])[]): Promise<Buffer[]> {
  // Doubles as strings: JSON has no +Inf, NaN or -0.
  const json = JSON.stringify(bodies, (key, value) =>
    (key === "buckets" || key === "quantiles") && Array.isArray(value)
      ? value.map((n: number) => (Object.is(n, -0) ? "-0" : String(n)))
      : value,
  );
  const result = await runProgram(families, ["-encode"], { input: json });
  expect(result.stderr).toBe("");
  expect(result.code).toBe(0);
  // One line per body, an empty one for an empty body.
  return result.stdout
    .split("\n")
    .slice(0, -1)
    .map((line) => Buffer.from(line, "hex"));
}

const TYPES: readonly MetricType[] = ["counter", "gauge", "summary", "untyped", "histogram"];
/** Go writes a Metric's fields by field number, whatever order they were set in. */
const FIELD_ORDER: ReadonlyArray<MetricSpec["values"][number]> = [
  "gauge",
  "counter",
  "summary",
  "untyped",
  "histogram",
];

function modelOf(specs: readonly FamilySpec[]): ParsedPush {
  let series = 0;
  const parsed = specs.map((family, index) => {
    const type = TYPES[family.type ?? 0] as MetricType;
    const metrics = family.metrics.map((metric, position) => ({
      labels: metric.labels ?? [],
      values: FIELD_ORDER.filter((kind) => metric.values.includes(kind)),
      buckets: metric.values.includes("histogram") ? (metric.buckets ?? []) : undefined,
      quantiles: metric.values.includes("summary") ? (metric.quantiles ?? []) : undefined,
      timestamped: metric.timestampMs !== undefined,
      at: { message: index + 1, metric: position + 1 },
    }));
    for (const metric of metrics) series += seriesOf(type, metric);
    return { name: family.name, help: family.help, type, metrics, at: { message: index + 1 } };
  });
  return { format: "protobuf", families: parsed, series };
}

describe("protobuf bodies written by Go's client_golang", () => {
  it("a push of every kind of collector decodes to what was collected", async () => {
    const pushed = await capturePush();
    expect(pushed.method).toBe("PUT");
    expect(pushed.url).toBe("/metrics/job/exposition-test");
    expect(pushed.headers["content-type"]).toBe(PROTOBUF_CONTENT_TYPE);
    const metric = (labels: Array<[string, string]>, values: MetricType[], extra = {}) => ({
      labels,
      values,
      buckets: undefined,
      quantiles: undefined,
      timestamped: false,
      ...extra,
    });
    const expected = [
      // The +Inf bucket is written because it holds an exemplar.
      {
        name: "latency_seconds",
        help: "Latency.",
        type: "histogram",
        metrics: [metric([], ["histogram"], { buckets: [0.1, 1, 10, Number.POSITIVE_INFINITY] })],
      },
      // Native buckets (schema, zero bucket, spans, deltas) are skipped.
      {
        name: "native_seconds",
        help: "Classic and native buckets.",
        type: "histogram",
        metrics: [metric([], ["histogram"], { buckets: [1] })],
      },
      // Label pairs sorted by name, metrics by label values; the counter's exemplar is skipped.
      {
        name: "requests_total",
        help: "Requests handled.",
        type: "counter",
        metrics: [
          metric(
            [
              ["code", "200"],
              ["method", "GET"],
            ],
            ["counter"],
          ),
          metric(
            [
              ["code", "500"],
              ["method", "POST"],
            ],
            ["counter"],
          ),
        ],
      },
      {
        name: "size_bytes",
        help: "Sizes.",
        type: "summary",
        metrics: [metric([], ["summary"], { quantiles: [0.5, 0.9, 0.99] })],
      },
      {
        name: "stamped_value",
        help: "With a timestamp.",
        type: "gauge",
        metrics: [metric([], ["gauge"], { timestamped: true })],
      },
      {
        name: "temperature_celsius",
        help: "Température, in °C.",
        type: "gauge",
        metrics: [metric([["room", "küche"]], ["gauge"])],
      },
      { name: "untyped_value", help: "Untyped.", type: "untyped", metrics: [metric([], ["untyped"])] },
    ];
    const parsed = parseProtobuf(pushed.body, unlimited);
    expect(parsed).toEqual({
      format: "protobuf",
      series: 6 + 4 + 2 + 5 + 1 + 1 + 1,
      families: expected.map((family, index) => ({
        ...family,
        at: { message: index + 1 },
        metrics: family.metrics.map((m, position) => ({
          ...m,
          at: { message: index + 1, metric: position + 1 },
        })),
      })),
    });
  });

  it("generated families encoded by expfmt decode to the same model", async () => {
    const bodies: FamilySpec[][] = [[], ...fc.sample(familySpecs(), { numRuns: 300 })];
    const encoded = await encodeWithGo(bodies);
    expect(encoded).toHaveLength(bodies.length);
    bodies.forEach((specs, index) => {
      expect(parseProtobuf(encoded[index] as Buffer, unlimited), JSON.stringify(specs)).toEqual(
        modelOf(specs),
      );
    });
  });

  it("a GAUGE_HISTOGRAM family from Go is unknown-type", async () => {
    const [body] = await encodeWithGo([
      [{ name: "gh", type: 5, metrics: [{ values: ["histogram"], buckets: [1] }] }],
    ]);
    let refusal: unknown;
    try {
      parseProtobuf(body as Buffer, unlimited);
    } catch (error) {
      refusal = error;
    }
    expect(refusal).toBeInstanceOf(ExpositionError);
    expect((refusal as ExpositionError).rule).toBe("unknown-type");
  });
});
