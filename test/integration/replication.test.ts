import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { bearer, send } from "../support/http.js";
import { freePort, type RunningProcess, startProcess, waitForHttp } from "../support/processes.js";
import { encodeDelimitedGaugeHistogramFamilies, PROTOBUF_CONTENT_TYPE } from "../support/protobuf.js";
import { PUSHGATEWAY_BINARY } from "../support/pushgateway.js";
import {
  ADMIN_TOKEN,
  startPushguard,
  TEAM_A_TOKEN,
  type TestPushguard,
  TOKEN_ENV,
} from "../support/pushguard.js";
import { startRedis } from "../support/redis.js";

/** A Pushgateway on a fixed loopback address, so a test can kill it and start it again empty. */
interface Replica {
  readonly url: string;
  process: RunningProcess;
  start(): Promise<void>;
  kill(): Promise<void>;
  groups(): Promise<Map<string, GroupView>>;
  metricsText(): Promise<string>;
}

interface GroupView {
  readonly labels: Record<string, string>;
  readonly value: number | undefined;
}

async function replicaAt(host: string, port: number): Promise<Replica> {
  const url = `http://${host}:${port}`;
  const replica: Replica = {
    url,
    process: undefined as unknown as RunningProcess,
    async start() {
      replica.process = startProcess(PUSHGATEWAY_BINARY, [
        `--web.listen-address=${host}:${port}`,
        "--web.enable-admin-api",
        "--log.level=warn",
        // Debian's default is a file every instance would share: state stays in memory.
        "--persistence.file=",
      ]);
      await waitForHttp(`${url}/-/ready`, replica.process);
    },
    async kill() {
      replica.process.child.kill("SIGKILL");
      await replica.process.stop();
    },
    async groups() {
      return groupsOf(await (await fetch(`${url}/api/v1/metrics`)).json());
    },
    async metricsText() {
      return (await fetch(`${url}/metrics`)).text();
    },
  };
  await replica.start();
  return replica;
}

/** Groups of a `/api/v1/metrics` body by job, with the value of their `load_value` gauge. */
function groupsOf(body: unknown): Map<string, GroupView> {
  const groups = new Map<string, GroupView>();
  for (const group of (body as { data: Array<Record<string, unknown>> }).data) {
    const labels = group.labels as Record<string, string>;
    const family = group.load_value as { metrics: Array<{ value: string }> } | undefined;
    const value = family ? Number(family.metrics[0]?.value) : undefined;
    groups.set(labels.job as string, { labels, value });
  }
  return groups;
}

function config(upstream: string, replication = "healthCheckIntervalMs: 100, bootstrapWaitMs: 0"): string {
  return `
listen: { api: "127.0.0.1:0", metrics: "127.0.0.1:0" }
upstream: { ${upstream}, timeoutMs: 2000, connectTimeoutMs: 500, replication: { ${replication} } }
identities:
  static:
    - { name: team-a-ci, tokenEnv: TEST_TEAM_A_TOKEN }
    - { name: admin, tokenEnv: TEST_ADMIN_TOKEN }
teams:
  - { name: team-a, members: [team-a-ci], jobs: ["team-a-*"], actions: [push, delete] }
  - { name: admins, members: [admin], jobs: ["*"], actions: [push, delete, wipe, read] }
`;
}

const urlsOf = (replicas: readonly Replica[]) =>
  `urls: [${replicas.map((replica) => `"${replica.url}"`).join(", ")}]`;

interface ReadyBody {
  replicas: Array<{ url: string; up: boolean; state: string }>;
}

async function replicaStates(pushguard: TestPushguard): Promise<Record<string, string>> {
  const body = (await (await fetch(`${pushguard.metricsUrl}/readyz`)).json()) as ReadyBody;
  return Object.fromEntries(body.replicas.map((replica) => [replica.url, replica.state]));
}

async function waitInSync(
  pushguard: TestPushguard,
  replicas: readonly Replica[],
  timeout = 10_000,
): Promise<void> {
  await vi.waitFor(
    async () => {
      const states = await replicaStates(pushguard);
      expect(replicas.map((replica) => states[replica.url])).toEqual(replicas.map(() => "in-sync"));
    },
    { timeout, interval: 20 },
  );
}

const push = (pushguard: TestPushguard, job: string, body: string, token = TEAM_A_TOKEN) =>
  send(pushguard.apiUrl, "PUT", `/metrics/job/${job}`, { headers: bearer(token), body });

/** Every replica holds exactly one group, `job`, whose gauge is `value`. */
async function expectEveryReplicaHoldsOnly(job: string, value: number): Promise<void> {
  for (const replica of replicas) {
    const stored = await replica.groups();
    expect({ replica: replica.url, jobs: [...stored.keys()], value: stored.get(job)?.value }).toEqual({
      replica: replica.url,
      jobs: [job],
      value,
    });
  }
}

let replicas: Replica[] = [];
let pushguard: TestPushguard | undefined;

beforeAll(async () => {
  const ports = await Promise.all([freePort(), freePort(), freePort()]);
  replicas = await Promise.all(ports.map((port) => replicaAt("127.0.0.1", port)));
});

afterEach(async () => {
  await pushguard?.close();
  pushguard = undefined;
  await Promise.all(
    replicas.map((replica) => send(replica.url, "PUT", "/api/v1/admin/wipe").catch(() => undefined)),
  );
});

afterAll(async () => {
  await Promise.all(replicas.map((replica) => replica.process?.stop()));
});

describe("three replicas: one killed and restarted empty under load", () => {
  it("loses no acknowledged push, repairs the restarted replica, and never reads from a stale one", async () => {
    pushguard = await startPushguard(config(urlsOf(replicas)));
    await waitInSync(pushguard, replicas);
    const server = pushguard;
    const [, , victim] = replicas as [Replica, Replica, Replica];

    const acknowledged = new Map<string, number>();
    const staleReads: string[] = [];
    const readTimes: number[] = [];
    let writes = 0;
    const writeTimes: number[] = [];
    let stop = false;

    const writers = Array.from({ length: 6 }, async (_, worker) => {
      for (let sequence = 1; !stop; sequence++) {
        const job = `team-a-load-${worker}-${sequence % 20}`;
        const response = await push(server, job, `load_value ${sequence}\n`);
        writes += 1;
        writeTimes.push(Date.now());
        if (response.status === 200) acknowledged.set(job, sequence);
      }
    });
    const reader = (async () => {
      while (!stop) {
        const expected = new Map(acknowledged);
        const response = await send(server.apiUrl, "GET", "/api/v1/metrics", {
          headers: bearer(ADMIN_TOKEN),
        });
        if (response.status !== 200) continue;
        readTimes.push(Date.now());
        const seen = groupsOf(response.json());
        for (const [job, value] of expected) {
          const stored = seen.get(job)?.value;
          if (stored === undefined || stored < value)
            staleReads.push(`${job}: acknowledged ${value}, read ${stored}`);
        }
      }
    })();

    let killedAt = 0;
    let restartedAt = 0;
    let repairedAt = 0;
    try {
      // Under load before the kill, however slow the machine is today.
      while (writes < 50) await sleep(20);
      await victim.kill();
      killedAt = Date.now();
      await sleep(300);
      await victim.start();
      restartedAt = Date.now();
      await waitInSync(server, replicas, 10_000);
      repairedAt = Date.now();
      await sleep(300);
    } finally {
      stop = true;
      await Promise.allSettled([...writers, reader]);
    }
    await Promise.all([...writers, reader]);

    expect(staleReads).toEqual([]);
    expect(writeTimes.filter((time) => time > killedAt && time < repairedAt).length).toBeGreaterThan(0);
    expect(readTimes.filter((time) => time > killedAt && time < repairedAt).length).toBeGreaterThan(0);
    expect(repairedAt - restartedAt).toBeLessThan(10_000);
    for (const replica of replicas) {
      const stored = await replica.groups();
      const missing = [...acknowledged].filter(([job, value]) => stored.get(job)?.value !== value);
      expect({ replica: replica.url, missing }).toEqual({ replica: replica.url, missing: [] });
    }
    const metrics = await (await fetch(`${server.metricsUrl}/metrics`)).text();
    expect(metrics).toMatch(
      new RegExp(
        `pushguard_upstream_replica_repairs_total\\{replica="${victim.url}",result="success"\\} [1-9]`,
      ),
    );
    expect(server.logs().some((line) => line.msg === "Pushgateway replica repaired: back in sync")).toBe(
      true,
    );
  });
});

describe("restart detection", () => {
  it("never reads from a replica that restarted empty between two health checks", async () => {
    // Health checks are ten minutes apart: only the new-connection check can notice the restart.
    pushguard = await startPushguard(
      config(urlsOf(replicas), "healthCheckIntervalMs: 600000, bootstrapWaitMs: 0"),
    );
    await waitInSync(pushguard, replicas);
    for (let index = 0; index < 5; index++) {
      expect((await push(pushguard, `team-a-quiet-${index}`, `load_value ${index}\n`)).status).toBe(200);
    }
    // Reads stay on one replica while it is in sync (the first, here): restart that one.
    const first = await send(pushguard.apiUrl, "GET", "/api/v1/metrics", { headers: bearer(ADMIN_TOKEN) });
    expect(groupsOf(first.json()).size).toBe(5);
    const victim = replicas[0] as Replica;
    await victim.kill();
    await victim.start();
    for (let read = 0; read < 30; read++) {
      const response = await send(pushguard.apiUrl, "GET", "/api/v1/metrics", {
        headers: bearer(ADMIN_TOKEN),
      });
      expect(response.status).toBe(200);
      expect([...groupsOf(response.json()).keys()].sort()).toEqual(
        [0, 1, 2, 3, 4].map((index) => `team-a-quiet-${index}`),
      );
    }
    expect((await replicaStates(pushguard))[victim.url]).not.toBe("in-sync");
    expect(pushguard.logs().some((line) => line.reason === "restarted")).toBe(true);
  });
});

describe("repair", () => {
  it("copies every group exactly: types, help, escapes, @base64 and empty grouping-label values", async () => {
    const [healthy, , victim] = replicas as [Replica, Replica, Replica];
    pushguard = await startPushguard(config(urlsOf(replicas)));
    await waitInSync(pushguard, replicas);
    const body = [
      "# HELP requests_total Requests with a \\\\ backslash\\nand a newline.",
      "# TYPE requests_total counter",
      'requests_total{code="200",path="/a \\"quoted\\""} 12',
      'requests_total{code="500",path="/b"} 0.5',
      "# TYPE latency_seconds histogram",
      'latency_seconds_bucket{le="0.1"} 3',
      'latency_seconds_bucket{le="1"} 5',
      'latency_seconds_bucket{le="+Inf"} 6',
      "latency_seconds_sum 2.75",
      "latency_seconds_count 6",
      "# TYPE size_bytes summary",
      'size_bytes{quantile="0.5"} 100',
      'size_bytes{quantile="0.99"} 1e+06',
      "size_bytes_sum 1.5e+06",
      "size_bytes_count 40",
      "# TYPE temperature gauge",
      "temperature NaN",
      "untyped_thing -Inf",
      "",
    ].join("\n");
    const paths = [
      "/metrics/job/team-a-rich/instance/db1",
      "/metrics/job/team-a-rich/instance@base64/YS9i",
      "/metrics/job@base64/dGVhbS1hLcOcbmljb2Rl",
    ];
    for (const path of paths) {
      expect(
        (await send(pushguard.apiUrl, "PUT", path, { headers: bearer(TEAM_A_TOKEN), body })).status,
      ).toBe(200);
    }
    // pushguard refuses empty grouping-label values (they collide with the group without the
    // label), but a store may hold one from before: written to every replica directly here.
    for (const replica of replicas) {
      const direct = await send(replica.url, "PUT", "/metrics/job/team-a-rich/instance@base64/=", { body });
      expect(direct.status).toBe(200);
    }
    expect(
      (await send(pushguard.apiUrl, "PUT", "/metrics/job/team-a-empty", { headers: bearer(TEAM_A_TOKEN) }))
        .status,
    ).toBe(200);
    const repaired = () =>
      (pushguard as TestPushguard)
        .logs()
        .filter(
          (line) => line.msg === "Pushgateway replica repaired: back in sync" && line.replica === victim.url,
        ).length;
    const repairsBefore = repaired();
    await victim.kill();
    await victim.start();
    // No write fails: the health check notices the new start time, and repair follows.
    await vi.waitFor(() => expect(repaired()).toBe(repairsBefore + 1), { timeout: 5_000, interval: 20 });
    await waitInSync(pushguard, replicas);
    const withoutPushTimes = (text: string) =>
      text
        .split("\n")
        .filter(
          (line) =>
            !/^(go_|process_|pushgateway_|promhttp_|# (HELP|TYPE) (go_|process_|pushgateway_|promhttp_))/.test(
              line,
            ),
        )
        .filter((line) => !/^push_(failure_)?time_seconds\{/.test(line))
        .join("\n");
    expect(withoutPushTimes(await victim.metricsText())).toBe(withoutPushTimes(await healthy.metricsText()));
    const count = async (replica: Replica) =>
      ((await (await fetch(`${replica.url}/api/v1/metrics`)).json()) as { data: unknown[] }).data.length;
    expect(await count(victim)).toBe(5);
  });

  it("skips (and warns about) a group the text format cannot carry, and repairs every other group", async () => {
    const [healthy, , victim] = replicas as [Replica, Replica, Replica];
    pushguard = await startPushguard(config(urlsOf(replicas)));
    await waitInSync(pushguard, replicas);
    // A gauge histogram only travels as protobuf; Pushgateway stores it, the text format has no such type.
    const gaugeHistogram = encodeDelimitedGaugeHistogramFamilies([
      {
        name: "queue_depth",
        help: "Items waiting.",
        metrics: [
          {
            sampleCount: 6,
            sampleSum: 2.75,
            buckets: [
              { upperBound: 0.1, cumulativeCount: 3 },
              { upperBound: 1, cumulativeCount: 5 },
            ],
          },
        ],
      },
    ]);
    // pushguard refuses the type (Prometheus cannot scrape it as text), so it was written before
    // pushguard or around it: here straight to every replica.
    for (const replica of replicas) {
      const pushedProtobuf = await send(replica.url, "PUT", "/metrics/job/team-a-gauge-histogram", {
        headers: { "content-type": PROTOBUF_CONTENT_TYPE },
        body: gaugeHistogram,
      });
      expect(pushedProtobuf.status).toBe(200);
    }
    expect((await push(pushguard, "team-a-plain", "load_value 5\n")).status).toBe(200);
    const stored = (await (await fetch(`${healthy.url}/api/v1/metrics`)).json()) as {
      data: Array<Record<string, { type?: string }>>;
    };
    expect(stored.data.map((group) => group.queue_depth?.type).filter(Boolean)).toEqual(["GAUGE_HISTOGRAM"]);

    const repairsStarted = () =>
      (pushguard as TestPushguard)
        .logs()
        .filter((line) => line.msg === "repairing Pushgateway replica" && line.replica === victim.url).length;
    const startedBefore = repairsStarted();
    await victim.kill();
    await victim.start();
    await vi.waitFor(() => expect(repairsStarted()).toBeGreaterThan(startedBefore), {
      timeout: 5_000,
      interval: 20,
    });
    // The restarted replica gets back in sync instead of staying out of sync on that one group.
    await waitInSync(pushguard, replicas);
    const repaired = await victim.groups();
    expect(repaired.get("team-a-plain")?.value).toBe(5);
    // The skipped group is not guessed at: the restarted replica simply lacks it.
    expect([...repaired.keys()]).toEqual(["team-a-plain"]);
    expect(
      pushguard.logs().filter((line) => line.msg === "repair skipped a group the text format cannot carry"),
    ).toContainEqual(
      expect.objectContaining({
        replica: victim.url,
        group: "/metrics/job/team-a-gauge-histogram",
        reason: expect.stringContaining("GAUGE_HISTOGRAM"),
      }),
    );
    expect(
      pushguard
        .logs()
        .some(
          (line) => line.msg === "Pushgateway replica repaired: back in sync" && line.replica === victim.url,
        ),
    ).toBe(true);
  });
});

describe("write policy", () => {
  it("majority acknowledges with one replica down; all refuses with ERR_UPSTREAM_UNAVAILABLE", async () => {
    const victim = replicas[0] as Replica;
    pushguard = await startPushguard(
      config(urlsOf(replicas), "writePolicy: majority, healthCheckIntervalMs: 100, bootstrapWaitMs: 0"),
    );
    await waitInSync(pushguard, replicas);
    await victim.kill();
    try {
      expect((await push(pushguard, "team-a-majority", "load_value 1\n")).status).toBe(200);
      await pushguard.close();
      pushguard = await startPushguard(
        config(urlsOf(replicas), "writePolicy: all, healthCheckIntervalMs: 100, bootstrapWaitMs: 0"),
      );
      await vi.waitFor(async () =>
        expect(await replicaStates(pushguard as TestPushguard)).toHaveProperty(
          [replicas[1]?.url as string],
          "in-sync",
        ),
      );
      const refused = await push(pushguard, "team-a-all", "load_value 1\n");
      expect(refused.status).toBe(502);
      expect(refused.json().code).toBe("ERR_UPSTREAM_UNAVAILABLE");
      // Refused before it was sent anywhere: the audit line says so.
      const audit = pushguard
        .logs()
        .filter((line) => line.msg === "audit")
        .at(-1)?.audit;
      expect(audit).toMatchObject({ status: 502, code: "ERR_UPSTREAM_UNAVAILABLE", decision: "deny" });
    } finally {
      await victim.start();
    }
  });
});

describe("a headless Service name", () => {
  it("treats every address the name resolves to as a replica", async () => {
    const port = await freePort();
    const pair = await Promise.all([replicaAt("127.0.0.2", port), replicaAt("127.0.0.3", port)]);
    try {
      pushguard = await startPushguard(
        config(`dns: { name: "pushgateway-headless.monitoring.svc", port: ${port}, refreshMs: 100 }`),
        TOKEN_ENV,
        { resolveHost: async () => ["127.0.0.3", "127.0.0.2"] },
      );
      await waitInSync(pushguard, pair);
      expect((await push(pushguard, "team-a-dns", "load_value 7\n")).status).toBe(200);
      for (const replica of pair) expect((await replica.groups()).get("team-a-dns")?.value).toBe(7);
    } finally {
      await pushguard?.close();
      pushguard = undefined;
      await Promise.all(pair.map((replica) => replica.process.stop()));
    }
  });
});

describe("several pushguards sharing write misses through Redis", () => {
  it("stops every pushguard reading from a replica that missed a write another one acknowledged", async () => {
    const redis = await startRedis();
    const [, , diverged] = replicas as [Replica, Replica, Replica];
    const shared = `healthCheckIntervalMs: 600000, bootstrapWaitMs: 0, redis: { url: "${redis.url}", keyPrefix: "test-repl:" }`;
    let other: TestPushguard | undefined;
    try {
      pushguard = await startPushguard(config(urlsOf(replicas), shared));
      other = await startPushguard(config(urlsOf(replicas), shared));
      await Promise.all([waitInSync(pushguard, replicas), waitInSync(other, replicas)]);
      // Written straight to one replica (bypassing pushguard): the push below clashes with it
      // there, so that replica refuses it while staying up.
      const clash = await send(diverged.url, "PUT", "/metrics/job/team-a-split/instance@base64/=", {
        body: "split_value 1\n",
      });
      expect(clash.status).toBe(200);
      expect((await push(pushguard, "team-a-split", "split_value 2\n")).status).toBe(200);
      expect((await replicaStates(pushguard))[diverged.url]).toBe("out-of-sync");
      // The other pushguard has seen no failure of its own, and checks no health for ten minutes.
      expect((await replicaStates(other))[diverged.url]).toBe("in-sync");

      for (let read = 0; read < 9; read++) {
        const response = await send(other.apiUrl, "GET", "/api/v1/metrics", { headers: bearer(ADMIN_TOKEN) });
        const group = (response.json() as { data: Array<Record<string, unknown>> }).data.find(
          (candidate) => JSON.stringify(candidate.labels) === JSON.stringify({ job: "team-a-split" }),
        ) as { split_value?: { metrics: Array<{ value: string }> } } | undefined;
        expect(group?.split_value?.metrics[0]?.value).toBe("2");
      }
      expect((await replicaStates(other))[diverged.url]).toBe("out-of-sync");
      expect(other.logs().some((line) => line.reason === "missed-elsewhere")).toBe(true);
    } finally {
      await other?.close();
      await redis.stop();
    }
  });
});

describe("a hung replica (a stopped process: it accepts connections and never answers)", () => {
  it("holds no write for the upstream timeout: it is cut off, marked out of sync, and repaired once it answers", async () => {
    const [, hung] = replicas as [Replica, Replica, Replica];
    // An upstream timeout far beyond the test's own: a write that waited for it would fail the test.
    pushguard = await startPushguard(
      config(urlsOf(replicas), "healthCheckIntervalMs: 100, bootstrapWaitMs: 0, stragglerMs: 200").replace(
        "timeoutMs: 2000",
        "timeoutMs: 120000",
      ),
    );
    await waitInSync(pushguard, replicas);
    hung.process.child.kill("SIGSTOP");
    try {
      for (let index = 0; index < 5; index++) {
        expect((await push(pushguard, `team-a-hung-${index}`, `load_value ${index}\n`)).status).toBe(200);
      }
      const states = await replicaStates(pushguard);
      expect(states[hung.url]).not.toBe("in-sync");
      expect(pushguard.logs().some((line) => line.reason === "write-timeout")).toBe(true);
      const read = await send(pushguard.apiUrl, "GET", "/api/v1/metrics", { headers: bearer(ADMIN_TOKEN) });
      expect([...groupsOf(read.json()).keys()].sort()).toEqual(
        [0, 1, 2, 3, 4].map((index) => `team-a-hung-${index}`),
      );
    } finally {
      hung.process.child.kill("SIGCONT");
    }
    await waitInSync(pushguard, replicas, 20_000);
    const stored = await hung.groups();
    expect([...stored.keys()].sort()).toEqual([0, 1, 2, 3, 4].map((index) => `team-a-hung-${index}`));
    expect([...stored.values()].map((group) => group.value).sort()).toEqual([0, 1, 2, 3, 4]);
  });
});

describe("a pushguard restarting while a replica is out of sync (shared state in Redis)", () => {
  it("never takes the replica that missed a write as the source of truth, even when it holds the most groups", async () => {
    const redis = await startRedis();
    const [, stale] = replicas as [Replica, Replica, Replica];
    // No health checks after the first: nothing repairs the stale replica before the restart.
    const shared = `healthCheckIntervalMs: 600000, bootstrapWaitMs: 0, redis: { url: "${redis.url}", keyPrefix: "test-boot:" }`;
    try {
      pushguard = await startPushguard(config(urlsOf(replicas), shared));
      await waitInSync(pushguard, replicas);
      // Straight to one replica: groups nobody acknowledged, and one that makes it refuse the
      // next push of team-a-report (the same series under another grouping key).
      for (const job of ["team-a-extra-1", "team-a-extra-2"]) {
        expect((await send(stale.url, "PUT", `/metrics/job/${job}`, { body: "load_value 9\n" })).status).toBe(
          200,
        );
      }
      expect(
        (
          await send(stale.url, "PUT", "/metrics/job/team-a-report/instance@base64/=", {
            body: "load_value 9\n",
          })
        ).status,
      ).toBe(200);
      expect((await push(pushguard, "team-a-report", "load_value 2\n")).status).toBe(200);
      expect((await replicaStates(pushguard))[stale.url]).toBe("out-of-sync");
      await pushguard.close();

      // A new pushguard knows nothing but what Redis says; the stale replica holds the most groups.
      pushguard = await startPushguard(config(urlsOf(replicas), shared));
      await waitInSync(pushguard, replicas);
      await expectEveryReplicaHoldsOnly("team-a-report", 2);
    } finally {
      await redis.stop();
    }
  });
});

describe("a hung Redis for the shared state", () => {
  it("costs one command timeout per second of reads, not one per read", async () => {
    const redis = await startRedis();
    const shared = `healthCheckIntervalMs: 600000, bootstrapWaitMs: 0, redis: { url: "${redis.url}", keyPrefix: "test-hung:", timeoutMs: 100 }`;
    try {
      pushguard = await startPushguard(config(urlsOf(replicas), shared));
      await waitInSync(pushguard, replicas);
      redis.process.child.kill("SIGSTOP");
      const errors = async () =>
        Number(
          /^pushguard_upstream_replication_state_errors_total (\d+)$/m.exec(
            await (pushguard as TestPushguard).metrics.registry.metrics(),
          )?.[1] ?? 0,
        );
      const before = await errors();
      for (let read = 0; read < 8; read++) {
        const response = await send(pushguard.apiUrl, "GET", "/api/v1/metrics", {
          headers: bearer(ADMIN_TOKEN),
        });
        expect(response.status).toBe(200);
      }
      // The first read pays the timeout and falls back to this pushguard's own view; the next ones
      // skip Redis for a second (eight reads take far less, but allow for a slow machine).
      expect((await errors()) - before).toBeGreaterThanOrEqual(1);
      expect((await errors()) - before).toBeLessThanOrEqual(3);
    } finally {
      redis.process.child.kill("SIGCONT");
      await redis.stop();
    }
  });
});

describe("a replica restarted while no pushguard ran (shared state in Redis)", () => {
  it("is not the source of truth: its in-sync mark names another process", async () => {
    const redis = await startRedis();
    const [, , restarted] = replicas as [Replica, Replica, Replica];
    const shared = `healthCheckIntervalMs: 600000, bootstrapWaitMs: 0, redis: { url: "${redis.url}", keyPrefix: "test-mark:" }`;
    try {
      pushguard = await startPushguard(config(urlsOf(replicas), shared));
      await waitInSync(pushguard, replicas);
      expect((await push(pushguard, "team-a-kept", "load_value 7\n")).status).toBe(200);
      await vi.waitFor(async () => expect(await redis.command("HLEN", "test-mark:synced")).toBe(":3\r\n"), {
        timeout: 5_000,
      });
      await pushguard.close();

      // Restarted empty, then written to directly: it holds more groups than the others.
      await restarted.kill();
      await restarted.start();
      for (const job of ["team-a-stray-1", "team-a-stray-2"]) {
        expect(
          (await send(restarted.url, "PUT", `/metrics/job/${job}`, { body: "load_value 9\n" })).status,
        ).toBe(200);
      }

      pushguard = await startPushguard(config(urlsOf(replicas), shared));
      await waitInSync(pushguard, replicas);
      await expectEveryReplicaHoldsOnly("team-a-kept", 7);
    } finally {
      await redis.stop();
    }
  });
});

describe("verification of the in-sync replicas", () => {
  it("finds a replica written to behind pushguard's back, marks it out of sync and repairs it", async () => {
    pushguard = await startPushguard(
      config(urlsOf(replicas), "healthCheckIntervalMs: 100, bootstrapWaitMs: 0, verifyIntervalMs: 300"),
    );
    await waitInSync(pushguard, replicas);
    expect((await push(pushguard, "team-a-drift", "load_value 1\n")).status).toBe(200);
    // Reads are served from the first replica; the other two are changed directly.
    const [, changed, added] = replicas as [Replica, Replica, Replica];
    expect(
      (await send(changed.url, "PUT", "/metrics/job/team-a-drift", { body: "load_value 99\n" })).status,
    ).toBe(200);
    expect(
      (await send(added.url, "PUT", "/metrics/job/team-a-stray", { body: "load_value 5\n" })).status,
    ).toBe(200);

    await vi.waitFor(
      async () => {
        expect(pushguard?.logs().filter((line) => line.reason === "diverged")).toHaveLength(2);
        await waitInSync(pushguard as TestPushguard, replicas, 100);
        await expectEveryReplicaHoldsOnly("team-a-drift", 1);
      },
      { timeout: 15_000, interval: 100 },
    );
  });
});

describe("the store index over replicas", () => {
  it("refuses a conflict itself (nothing reaches any replica), and rebuilds from an in-sync replica after a restart", async () => {
    pushguard = await startPushguard(config(urlsOf(replicas)));
    await waitInSync(pushguard, replicas);
    expect((await push(pushguard, "team-a-typed", "# TYPE typed counter\ntyped 1\n")).status).toBe(200);
    const conflict = await push(pushguard, "team-a-other", "# TYPE typed gauge\ntyped 1\n");
    // the replicas check consistency themselves and would answer 400: 409 is the index's answer
    expect(conflict.status).toBe(409);
    expect(conflict.json()).toMatchObject({ code: "ERR_FAMILY_CONFLICT", family: "typed" });
    for (const replica of replicas) expect([...(await replica.groups()).keys()]).toEqual(["team-a-typed"]);

    // A replica restarted empty must not be what a new pushguard builds its index from.
    const [, , victim] = replicas as [Replica, Replica, Replica];
    await pushguard.close();
    await victim.kill();
    await victim.start();
    pushguard = await startPushguard(config(urlsOf(replicas)));
    const again = await push(pushguard, "team-a-other", "# TYPE typed gauge\ntyped 1\n");
    expect(again.status).toBe(409);
    await waitInSync(pushguard, replicas);
    expect([...(await victim.groups()).keys()]).toEqual(["team-a-typed"]);
    expect((await fetch(`${victim.url}/metrics`)).status).toBe(200);
  });
});
