import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import { GroupLocks } from "../../src/upstream/group-locks.js";
import { parseGroups, renderGroup } from "../../src/upstream/groups.js";

describe("replicated upstream configuration", () => {
  const yaml = (upstream: string) => `
upstream: { ${upstream} }
identities: { static: [{ name: ci, sha256: "${"a".repeat(64)}" }] }
teams: [{ name: a, members: [ci], jobs: ["a-*"], actions: [push] }]
`;
  const paths = (upstream: string) => {
    try {
      parseConfig(yaml(upstream), "t", {});
      return [];
    } catch (error) {
      return (error as { issues: Array<{ path: string }> }).issues.map((issue) => issue.path);
    }
  };

  it("takes a list of replicas or a DNS name, with the replication defaults", () => {
    const config = parseConfig(yaml('urls: ["http://pg-0:9091", "http://pg-1:9091"]'), "t", {});
    expect(config.upstream.replication).toEqual({
      writePolicy: "allInSync",
      healthCheckIntervalMs: 1_000,
      bootstrapWaitMs: 10_000,
      probeTimeoutMs: 2_000,
      stragglerMs: 1_000,
      verifyIntervalMs: 300_000,
    });
    expect(parseConfig(yaml('dns: { name: "pg-headless.monitoring.svc" }'), "t", {}).upstream.dns).toEqual({
      name: "pg-headless.monitoring.svc",
      port: 9091,
      scheme: "http",
      refreshMs: 10_000,
    });
  });

  it.each([
    ["nothing", "timeoutMs: 100", "upstream.url"],
    ["two sources", 'url: "http://pg:9091", urls: ["http://pg-0:9091"]', "upstream"],
    ["a duplicate replica", 'urls: ["http://pg-0:9091", "http://pg-0:9091/"]', "upstream.urls.1"],
    ["a bad DNS name", 'dns: { name: "not a name" }', "upstream.dns.name"],
    [
      "an unknown write policy",
      'urls: ["http://pg-0:9091"], replication: { writePolicy: quorum }',
      "upstream.replication.writePolicy",
    ],
  ])("refuses %s", (_, upstream, path) => {
    expect(paths(upstream)).toContain(path);
  });
});

/** A `/api/v1/metrics` body as Pushgateway 1.5.1 writes it. */
const apiBody = (
  families: Record<string, unknown>,
  labels: Record<string, string> = { job: "j", instance: "" },
) => ({
  status: "success",
  data: [
    {
      labels,
      last_push_successful: true,
      push_time_seconds: { type: "GAUGE", metrics: [{ labels, value: "1.7e+09" }] },
      push_failure_time_seconds: { type: "GAUGE", metrics: [{ labels, value: "0" }] },
      ...families,
    },
  ],
});

describe("group snapshots", () => {
  it("keys groups by canonical path, keeps empty grouping values and reads push times", () => {
    const { groups } = parseGroups(apiBody({}, { job: "j", instance: "" }));
    const group = groups.get("/metrics/job/j/instance@base64/=");
    expect(group).toMatchObject({ pushTime: 1.7e9, failureTime: 0, lastPushSuccessful: true, families: {} });
    expect(renderGroup(group as never)).toBe("");
  });

  it("renders deterministic text: sorted series, buckets in order, escapes, no grouping labels", () => {
    const labels = { job: "j", instance: "i" };
    const { groups } = parseGroups(
      apiBody(
        {
          b: {
            type: "HISTOGRAM",
            help: 'back\\slash\nnewline "quotes"',
            metrics: [
              {
                labels: { ...labels, x: "2" },
                buckets: { "+Inf": "3", "1": "2", "0.5": "1" },
                count: "3",
                sum: "1.5",
              },
              { labels: { ...labels, x: "1" }, buckets: { "+Inf": "0" }, count: "0", sum: "0" },
            ],
          },
          a: {
            type: "GAUGE",
            metrics: [{ labels: { ...labels, path: 'a"b\\c\nd', empty: "" }, value: "NaN" }],
          },
          s: {
            type: "SUMMARY",
            metrics: [{ labels, quantiles: { "0.99": "9", "0.5": "5" }, count: "2", sum: "14" }],
          },
        },
        labels,
      ),
    );
    expect(renderGroup(groups.get("/metrics/job/j/instance/i") as never)).toBe(
      [
        "# TYPE a gauge",
        'a{path="a\\"b\\\\c\\nd"} NaN',
        '# HELP b back\\\\slash\\nnewline "quotes"',
        "# TYPE b histogram",
        'b_bucket{x="1",le="+Inf"} 0',
        'b_sum{x="1"} 0',
        'b_count{x="1"} 0',
        'b_bucket{x="2",le="0.5"} 1',
        'b_bucket{x="2",le="1"} 2',
        'b_bucket{x="2",le="+Inf"} 3',
        'b_sum{x="2"} 1.5',
        'b_count{x="2"} 3',
        "# TYPE s summary",
        's{quantile="0.5"} 5',
        's{quantile="0.99"} 9',
        "s_sum 14",
        "s_count 2",
        "",
      ].join("\n"),
    );
  });

  it("refuses to render what the text format cannot carry, rather than dropping it", () => {
    const unknownType = parseGroups(apiBody({ g: { type: "GAUGE_HISTOGRAM", metrics: [] } })).groups;
    expect(() => renderGroup([...unknownType.values()][0] as never)).toThrow(/unsupported type/);
    const nativeHistogram = parseGroups(
      apiBody({
        h: { type: "HISTOGRAM", metrics: [{ labels: {}, count: "1", sum: "1", positive_spans: [] }] },
      }),
    ).groups;
    expect(() => renderGroup([...nativeHistogram.values()][0] as never)).toThrow(/positive_spans/);
  });
});

describe("GroupLocks", () => {
  const deferred = () => {
    let resolve!: () => void;
    const promise = new Promise<void>((done) => {
      resolve = done;
    });
    return { promise, resolve };
  };

  it("runs writes to one group in arrival order and other groups alongside", async () => {
    const locks = new GroupLocks();
    const order: string[] = [];
    const first = deferred();
    const a1 = locks.withGroups(["/a"], async () => {
      await first.promise;
      order.push("a1");
    });
    const a2 = locks.withGroups(["/a"], async () => {
      order.push("a2");
    });
    const b = locks.withGroups(["/b"], async () => {
      order.push("b");
    });
    await b;
    first.resolve();
    await Promise.all([a1, a2]);
    expect(order).toEqual(["b", "a1", "a2"]);
  });

  it("runs a wipe after the writes before it and before the writes after it", async () => {
    const locks = new GroupLocks();
    const order: string[] = [];
    const held = deferred();
    const before = locks.withGroups(["/a"], async () => {
      await held.promise;
      order.push("before");
    });
    const wipe = locks.exclusive(async () => {
      order.push("wipe");
    });
    const after = locks.withGroups(["/b"], async () => {
      order.push("after");
    });
    held.resolve();
    await Promise.all([before, wipe, after]);
    expect(order).toEqual(["before", "wipe", "after"]);
  });

  it("never deadlocks when a holder of several keys meets single-key writers", async () => {
    const locks = new GroupLocks();
    const runs = Array.from({ length: 50 }, (_, index) =>
      index % 5 === 0
        ? locks.withGroups(["/c", "/a", "/b"], async () => undefined)
        : locks.withGroups([`/${"abc"[index % 3]}`], async () => undefined),
    );
    await expect(Promise.all(runs)).resolves.toHaveLength(50);
  });
});
