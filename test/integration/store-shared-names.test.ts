import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { SharedNames } from "../../src/store/shared-names.js";
import type { PushedFamilies } from "../../src/validation/validate-push.js";
import { PushViolation } from "../../src/validation/violation.js";
import { bearer, send } from "../support/http.js";
import {
  type Pushgateway,
  type StoredGroup,
  startPushgateway,
  storedGroups,
} from "../support/pushgateway.js";
import {
  ADMIN_TOKEN,
  standardConfig,
  startPushguard,
  TEAM_A_TOKEN,
  TEAM_B_TOKEN,
  type TestPushguard,
} from "../support/pushguard.js";
import { startRedis, type TestRedis } from "../support/redis.js";

/**
 * Two pushguard replicas in front of one Pushgateway that checks nothing
 * (`--push.disable-consistency-check`), sharing `store.index.redis`: a push arriving at either is
 * checked against the names pushed through both, in one atomic step.
 */

let redis: TestRedis;
let pushgateway: Pushgateway;
let replicas: TestPushguard[];

const storeConfig = (extra = "") =>
  standardConfig(
    pushgateway.url,
    `store: { index: { resyncIntervalMs: 60000, redis: { url: "${redis.url}", timeoutMs: 1000 } }${extra} }`,
  );

beforeAll(async () => {
  redis = await startRedis();
  pushgateway = await startPushgateway(["--push.disable-consistency-check"]);
  replicas = [await startPushguard(storeConfig()), await startPushguard(storeConfig())];
});

afterAll(async () => {
  for (const replica of replicas ?? []) await replica.close();
  await pushgateway?.stop();
  await redis?.stop();
});

beforeEach(async () => {
  await send(replicas[0]?.apiUrl ?? "", "PUT", "/api/v1/admin/wipe", { headers: bearer(ADMIN_TOKEN) });
});

const push = (via: TestPushguard, token: string, path: string, body: string, method = "PUT") =>
  send(via.apiUrl, method, path, { headers: bearer(token), body });

const jobOf = (group: StoredGroup) => (group.labels as { job?: string } | undefined)?.job ?? "";

async function metricsStatus(): Promise<number> {
  const response = await fetch(`${pushgateway.url}/metrics`);
  await response.arrayBuffer();
  return response.status;
}

describe("two pushguard replicas sharing store.index.redis", () => {
  it("never both accept a new family name with two types, however the pushes interleave", async () => {
    const [a, b] = replicas as [TestPushguard, TestPushguard];
    const rounds = 30;
    const outcomes = await Promise.all(
      Array.from({ length: rounds }, async (_, round) => {
        const [viaA, viaB] = await Promise.all([
          push(
            a,
            TEAM_A_TOKEN,
            `/metrics/job/team-a-r${round}`,
            `# TYPE race_${round} counter\nrace_${round} 1\n`,
          ),
          push(
            b,
            TEAM_B_TOKEN,
            `/metrics/job/team-b-r${round}`,
            `# TYPE race_${round} gauge\nrace_${round} 1\n`,
          ),
        ]);
        return [viaA, viaB];
      }),
    );
    for (const pair of outcomes) {
      const statuses = pair.map((response) => response.status).sort();
      expect(statuses).toEqual([202, 409]);
      const refused = pair.find((response) => response.status === 409);
      expect(refused?.json()).toMatchObject({ code: "ERR_FAMILY_CONFLICT", rule: "type-conflict" });
    }
    // what was accepted is what is stored, and the scrape every team shares still works
    const { groups } = await storedGroups(pushgateway.url);
    expect(groups.filter((group) => jobOf(group).includes("-r"))).toHaveLength(rounds);
    expect(await metricsStatus()).toBe(200);
  });

  it("refuses a histogram beside a family named like its series, pushed through the other replica", async () => {
    const [a, b] = replicas as [TestPushguard, TestPushguard];
    const histogram = '# TYPE lat histogram\nlat_bucket{le="+Inf"} 1\nlat_sum 1\nlat_count 1\n';
    expect((await push(a, TEAM_A_TOKEN, "/metrics/job/team-a-h", histogram)).status).toBe(202);
    const clash = await push(
      b,
      TEAM_B_TOKEN,
      "/metrics/job/team-b-h",
      "# TYPE lat_count counter\nlat_count 1\n",
    );
    expect(clash.status).toBe(409);
    expect(clash.json()).toMatchObject({
      rule: "suffix-conflict",
      family: "lat_count",
      holder: "a group of team team-a",
    });
    expect(await metricsStatus()).toBe(200);
  });

  it("frees a name as soon as the last group holding it is deleted, through either replica", async () => {
    const [a, b] = replicas as [TestPushguard, TestPushguard];
    expect(
      (await push(a, TEAM_A_TOKEN, "/metrics/job/team-a-f", "# TYPE freed counter\nfreed 1\n")).status,
    ).toBe(202);
    expect(
      (await push(b, TEAM_B_TOKEN, "/metrics/job/team-b-f", "# TYPE freed gauge\nfreed 1\n")).status,
    ).toBe(409);
    // a group may change a family's type when nobody else holds it
    expect(
      (await push(b, TEAM_A_TOKEN, "/metrics/job/team-a-f", "# TYPE freed gauge\nfreed 2\n")).status,
    ).toBe(202);
    expect(
      (await send(b.apiUrl, "DELETE", "/metrics/job/team-a-f", { headers: bearer(TEAM_A_TOKEN) })).status,
    ).toBe(202);
    expect(
      (await push(a, TEAM_B_TOKEN, "/metrics/job/team-b-f", "# TYPE freed counter\nfreed 1\n")).status,
    ).toBe(202);
    expect(await metricsStatus()).toBe(200);
  });

  it("refuses pushes with 503 while the Redis is down, stores none of them, and recovers", async () => {
    const [a] = replicas as [TestPushguard];
    await redis.stop();
    try {
      const refused = await push(a, TEAM_A_TOKEN, "/metrics/job/team-a-down", "down 1\n");
      expect(refused.status).toBe(503);
      expect(refused.json()).toMatchObject({ code: "ERR_STORE_UNAVAILABLE" });
      expect(refused.headers["retry-after"]).toBe("2");
    } finally {
      await redis.restart();
    }
    const { groups } = await storedGroups(pushgateway.url);
    expect(groups.some((group) => jobOf(group) === "team-a-down")).toBe(false);
    // A Redis that restarts empty learns the store back at the next resync; pushes work at once.
    let status = 0;
    for (let attempt = 0; attempt < 30 && status !== 202; attempt += 1) {
      status = (await push(a, TEAM_A_TOKEN, "/metrics/job/team-a-down", "down 1\n")).status;
      if (status !== 202) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(status).toBe(202);
  });

  it("with ownership by first team, keeps a stored name for its team across replicas, but not a shared one", async () => {
    const owning = [
      await startPushguard(storeConfig(', names: { ownership: first, shared: ["shared_*"] }')),
      await startPushguard(storeConfig(', names: { ownership: first, shared: ["shared_*"] }')),
    ] as const;
    try {
      const [a, b] = owning;
      expect(
        (await push(b, TEAM_B_TOKEN, "/metrics/job/team-b-o", "team_b_rt 1\nshared_runs 1\n")).status,
      ).toBe(202);
      const squat = await push(a, TEAM_A_TOKEN, "/metrics/job/team-a-o", "team_b_rt 1\n");
      expect(squat.status).toBe(422);
      expect(squat.json()).toMatchObject({
        code: "ERR_METRIC_NAME_DENIED",
        rule: "metric-name-owned",
        owner: "team-b",
      });
      expect((await push(a, TEAM_A_TOKEN, "/metrics/job/team-a-o", "shared_runs 1\n")).status).toBe(202);
    } finally {
      for (const replica of owning) await replica.close();
    }
  });
});

describe("SharedNames against a real Redis", () => {
  const family = (name: string, type: "counter" | "gauge"): PushedFamilies[number] => ({
    name,
    type,
    series: [],
    samples: 1,
    at: { line: 1 },
  });
  const none = () => false;
  const ruleOf = async (promise: Promise<unknown>) => {
    try {
      await promise;
      return "accepted";
    } catch (error) {
      if (error instanceof PushViolation) return error.rule;
      throw error;
    }
  };

  it("undoes a push the Pushgateway refused, and gives back what the group held before", async () => {
    const names = new SharedNames({ url: redis.url, keyPrefix: "t-rollback:", timeoutMs: 1000 });
    try {
      await names.reserve("/metrics/job/x", "PUT", [family("kept", "counter")], "team-a", none);
      const refused = await names.reserve(
        "/metrics/job/x",
        "PUT",
        [family("fresh", "gauge")],
        "team-a",
        none,
      );
      await refused.rollback();
      // "fresh" is free again; "kept" is held again as a counter
      expect(
        await ruleOf(names.reserve("/metrics/job/y", "PUT", [family("fresh", "counter")], "team-b", none)),
      ).toBe("accepted");
      expect(
        await ruleOf(names.reserve("/metrics/job/z", "PUT", [family("kept", "gauge")], "team-b", none)),
      ).toBe("type-conflict");
    } finally {
      await names.close();
    }
  });

  it("corrects from a read of the store what a crashed replica recorded and never sent", async () => {
    const names = new SharedNames({ url: redis.url, keyPrefix: "t-reconcile:", timeoutMs: 1000 });
    try {
      await names.reserve("/metrics/job/ghost", "PUT", [family("ghost", "counter")], "team-a", none);
      const stored = new Map([
        ["/metrics/job/real", { team: "team-b", families: new Map([["real", "gauge" as const]]) }],
      ]);
      // a read that started just now does not correct a push recorded just before it (still on its way)
      expect(await names.reconcile(stored, await names.now(), 60_000)).toBe(1);
      expect(
        await ruleOf(names.reserve("/metrics/job/g2", "PUT", [family("ghost", "gauge")], "team-b", none)),
      ).toBe("type-conflict");
      // once settled, the ghost goes; the group Redis never heard of is recorded
      expect(await names.reconcile(stored, (await names.now()) + 120_000, 60_000)).toBe(1);
      expect(
        await ruleOf(names.reserve("/metrics/job/g3", "PUT", [family("ghost", "gauge")], "team-b", none)),
      ).toBe("accepted");
      expect(
        await ruleOf(names.reserve("/metrics/job/g4", "PUT", [family("real", "counter")], "team-a", none)),
      ).toBe("type-conflict");
    } finally {
      await names.close();
    }
  });
});
