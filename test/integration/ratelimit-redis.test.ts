import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { MemoryStore } from "../../src/ratelimit/memory-store.js";
import { RedisStore } from "../../src/ratelimit/redis-store.js";
import type { LimitCheck, LimitStore } from "../../src/ratelimit/store.js";
import { startPushguardProcess } from "../e2e/harness.js";
import { bearer, type RawResponse, send } from "../support/http.js";
import { type Pushgateway, startPushgateway } from "../support/pushgateway.js";
import {
  ADMIN_TOKEN,
  standardConfig,
  startPushguard,
  TEAM_A_TOKEN,
  TEAM_B_TOKEN,
  type TestPushguard,
  TOKEN_ENV,
} from "../support/pushguard.js";
import { startRedis, type TestRedis } from "../support/redis.js";

const BODY = "job_last_success_seconds 1700000000\n";

let pushgateway: Pushgateway;
let redis: TestRedis;
const running: TestPushguard[] = [];

beforeAll(async () => {
  [pushgateway, redis] = await Promise.all([startPushgateway(), startRedis()]);
});

afterAll(async () => {
  await Promise.all([pushgateway?.stop(), redis?.stop()]);
});

beforeEach(async () => {
  expect(await redis.command("FLUSHALL")).toBe("+OK\r\n");
  expect((await send(pushgateway.url, "PUT", "/api/v1/admin/wipe")).status).toBe(202);
});

afterEach(async () => {
  await Promise.all(running.splice(0).map((gateway) => gateway.close()));
});

/**
 * A pushguard replica sharing Redis: each team may push 6 times in all. The rate (one per 1000 s)
 * is low enough that nothing refills during a test, so every count is exact without a fake clock:
 * the Redis store takes its time from the Redis server.
 */
async function replica(onStoreError: "failOpen" | "failClosed" = "failOpen"): Promise<TestPushguard> {
  const gateway = await startPushguard(replicaConfig(onStoreError));
  running.push(gateway);
  return gateway;
}

function replicaConfig(onStoreError: "failOpen" | "failClosed" = "failOpen"): string {
  return standardConfig(
    pushgateway.url,
    `
rateLimit:
  store: redis
  onStoreError: ${onStoreError}
  redis: { url: "${redis.url}", timeoutMs: 200 }
  rules:
    - { scope: team, rate: 0.001, burst: 6 }
`,
  );
}

let jobCounter = 0;
function push(gateway: TestPushguard, token = TEAM_A_TOKEN, team = "team-a"): Promise<RawResponse> {
  jobCounter += 1;
  return send(gateway.apiUrl, "PUT", `/metrics/job/${team}-${jobCounter}`, {
    headers: bearer(token),
    body: BODY,
  });
}

async function metric(gateway: TestPushguard, line: RegExp): Promise<number | undefined> {
  const match = line.exec(await gateway.metrics.registry.metrics());
  return match ? Number(match[1]) : undefined;
}

/** Pushes (as team-b, whose budget these tests do not count) until the replica uses Redis again. */
async function untilRecovered(gateway: TestPushguard): Promise<void> {
  for (let attempt = 0; attempt < 150; attempt++) {
    const response = await push(gateway, TEAM_B_TOKEN, "team-b");
    if (response.status !== 503 && (await storeAvailable(gateway)) === 1) return;
    await sleep(100);
  }
  throw new Error(`the replica never used Redis again:\n${gateway.logText()}`);
}

const storeAvailable = (gateway: TestPushguard) =>
  metric(gateway, /^pushguard_ratelimit_store_available\{store="redis"\} (\d+)$/m);

describe("one budget shared by two replicas through Redis", () => {
  it("admits exactly the team's burst across both replicas", async () => {
    const [first, second] = await Promise.all([replica(), replica()]);
    const responses: RawResponse[] = [];
    for (let index = 0; index < 6; index++) responses.push(await push(index % 2 === 0 ? first : second));
    expect(responses.map((response) => response.status)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(responses.map((response) => response.headers.ratelimit)).toEqual(
      [5, 4, 3, 2, 1, 0].map((remaining) => expect.stringMatching(`^"team-write";r=${remaining};t=\\d+$`)),
    );
    const refused = await Promise.all([push(first), push(second)]);
    expect(refused.map((response) => response.status)).toEqual([429, 429]);
    expect(refused[0]?.json()["violated-policies"]).toEqual(["team-write"]);
    expect(Number(refused[0]?.headers["retry-after"])).toBeGreaterThan(900);
    // team-b has its own budget, on either replica.
    expect((await push(second, TEAM_B_TOKEN, "team-b")).status).toBe(200);
    expect((await pushgateway.groups()).filter((group) => group.job?.startsWith("team-a-"))).toHaveLength(6);
  });

  it("holds across separate processes: an in-process replica and a `pushguard serve` process", async () => {
    const inProcess = await replica();
    const separate = await startPushguardProcess(
      replicaConfig().replace(
        'listen: { api: "127.0.0.1:0", metrics: "127.0.0.1:0" }',
        'listen: { api: "{{API}}", metrics: "{{METRICS}}" }',
      ),
      TOKEN_ENV,
    );
    try {
      const statuses: number[] = [];
      for (let index = 0; index < 8; index++) {
        const target = index % 2 === 0 ? inProcess : separate;
        jobCounter += 1;
        const response = await send(target.apiUrl, "PUT", `/metrics/job/team-a-${jobCounter}`, {
          headers: bearer(TEAM_A_TOKEN),
          body: BODY,
        });
        statuses.push(response.status);
      }
      expect(statuses).toEqual([200, 200, 200, 200, 200, 200, 429, 429]);
      expect((await pushgateway.groups()).filter((group) => group.job?.startsWith("team-a-"))).toHaveLength(
        6,
      );
    } finally {
      await separate.stop();
    }
  });

  it("loads the script again when Redis forgot it (EVALSHA falls back to EVAL)", async () => {
    const gateway = await replica();
    expect((await push(gateway)).headers.ratelimit).toMatch(/r=5;/);
    expect(await redis.command("SCRIPT", "FLUSH")).toBe("+OK\r\n");
    const after = await push(gateway);
    expect(after.status).toBe(200);
    expect(after.headers.ratelimit).toMatch(/r=4;/);
  });

  it("leaves nothing in Redis but buckets in debt, each expiring when full again", async () => {
    const gateway = await replica();
    await push(gateway);
    expect(await redis.command("DBSIZE")).toBe(":1\r\n");
    expect(await redis.command("PTTL", "pushguard:rl:team:write:team-a")).toMatch(/^:(99\d{4}|1000000)\r\n$/);
  });
});

describe("the Redis store itself", () => {
  const store = () => new RedisStore({ url: redis.url, keyPrefix: "test:", timeoutMs: 500 });

  it("makes the same decisions as the memory store (the Lua script is gcra.ts)", async () => {
    const redisStore = store();
    expect(await redisStore.connect(5_000)).toBe(true);
    const decisions = async (target: LimitStore) => {
      const identity = (name: string): LimitCheck => ({
        key: `identity:${name}`,
        policy: { name: "identity-write", rate: 0.001, burst: 3 },
      });
      const team: LimitCheck = { key: "team:t", policy: { name: "team-write", rate: 0.001, burst: 5 } };
      const seen: string[] = [];
      for (const name of ["a", "a", "a", "a", "b", "b", "b", "c"]) {
        const result = await target.take([identity(name), team], Date.now());
        seen.push(
          `${result.allowed}:${result.states.map((state) => `${state.fits}/${state.remaining}`).join(",")}`,
        );
      }
      return seen;
    };
    try {
      const expected = await decisions(new MemoryStore({ maxKeys: 100 }));
      expect(expected).toEqual([
        "true:true/2,true/4",
        "true:true/1,true/3",
        "true:true/0,true/2",
        "false:false/0,true/2",
        "true:true/2,true/1",
        "true:true/1,true/0",
        "false:true/1,false/0",
        "false:true/3,false/0",
      ]);
      expect(await decisions(redisStore)).toEqual(expected);
    } finally {
      await redisStore.close();
    }
  });

  it("starts without Redis and connects once it appears", async () => {
    await redis.stop();
    const redisStore = store();
    try {
      expect(await redisStore.connect(300)).toBe(false);
      expect(redisStore.available()).toBe(false);
      await redis.restart();
      for (let attempt = 0; attempt < 100 && !redisStore.available(); attempt++) await sleep(50);
      expect(redisStore.available()).toBe(true);
      const result = await redisStore.take([{ key: "k", policy: { name: "p", rate: 1, burst: 2 } }]);
      expect(result.allowed).toBe(true);
    } finally {
      await redisStore.close();
    }
  });
});

describe("Redis down and back", () => {
  it("fail open (default): limits locally per replica, logs once, counts errors, recovers by itself", async () => {
    const gateway = await replica("failOpen");
    for (let index = 0; index < 6; index++) await push(gateway);
    expect((await push(gateway)).status).toBe(429);

    await redis.stop();
    // A fresh local budget in this replica: the same 6, then 429 again.
    const local: number[] = [];
    for (let index = 0; index < 7; index++) local.push((await push(gateway)).status);
    expect(local).toEqual([200, 200, 200, 200, 200, 200, 429]);
    expect(await storeAvailable(gateway)).toBe(0);
    expect(
      await metric(
        gateway,
        /^pushguard_ratelimit_store_errors_total\{store="redis",reason="disconnected"\} (\d+)$/m,
      ),
    ).toBeGreaterThanOrEqual(7);
    const outage = gateway
      .logs()
      .filter((line) => String(line.msg).startsWith("rate-limit store unavailable"));
    expect(outage).toHaveLength(1);
    expect(outage[0]).toMatchObject({ level: "warn", store: "redis", mode: "failOpen" });

    await redis.restart();
    await untilRecovered(gateway);
    expect(gateway.logs().some((line) => line.msg === "rate-limit store available again")).toBe(true);
    // Redis came back empty: the shared budget is whole again and shared again.
    const other = await replica("failOpen");
    const shared: number[] = [];
    for (let index = 0; index < 7; index++)
      shared.push((await push(index % 2 === 0 ? gateway : other)).status);
    expect(shared).toEqual([200, 200, 200, 200, 200, 200, 429]);
  });

  it("fail open also covers a Redis that hangs: the command times out and the replica limits locally", async () => {
    const gateway = await replica("failOpen");
    expect((await push(gateway)).status).toBe(200);
    redis.process.child.kill("SIGSTOP");
    try {
      expect((await push(gateway)).status).toBe(200);
      expect(
        await metric(
          gateway,
          /^pushguard_ratelimit_store_errors_total\{store="redis",reason="timeout"\} (\d+)$/m,
        ),
      ).toBe(1);
      // Within the cooldown the next request does not wait for Redis at all.
      expect((await push(gateway)).status).toBe(200);
      expect(
        await metric(
          gateway,
          /^pushguard_ratelimit_store_errors_total\{store="redis",reason="cooling-down"\} (\d+)$/m,
        ),
      ).toBe(1);
    } finally {
      redis.process.child.kill("SIGCONT");
    }
    await untilRecovered(gateway);
  });

  it("fail closed: 503 ERR_RATE_LIMIT_STORE for limited requests only, until Redis returns", async () => {
    const gateway = await replica("failClosed");
    expect((await push(gateway)).status).toBe(200);

    await redis.stop();
    const refused = await push(gateway);
    expect(refused.status).toBe(503);
    expect(refused.headers["retry-after"]).toBe("1");
    expect(refused.json()).toMatchObject({ code: "ERR_RATE_LIMIT_STORE", status: 503 });
    expect(await pushgateway.groups()).toHaveLength(1);
    // No rule limits reads here, and a bad token is still a plain 401.
    expect(
      (await send(gateway.apiUrl, "GET", "/api/v1/status", { headers: bearer(ADMIN_TOKEN) })).status,
    ).toBe(200);
    const guess = await send(gateway.apiUrl, "PUT", "/metrics/job/team-a-x", {
      headers: bearer("not-a-token-0123456789"),
      body: BODY,
    });
    expect(guess.status).toBe(401);
    expect(
      gateway.logs().find((line) => String(line.msg).startsWith("rate-limit store unavailable")),
    ).toMatchObject({ mode: "failClosed" });

    await redis.restart();
    await untilRecovered(gateway);
    expect((await push(gateway)).status).toBe(200);
  });
});

describe("a password-protected Redis", () => {
  it("reads a rotated password file on reconnect, and never logs the password", async () => {
    const guarded = await startRedis();
    const dir = mkdtempSync(join(tmpdir(), "pushguard-redis-password-"));
    const passwordFile = join(dir, "password");
    const admin = (password: string) =>
      new Redis(guarded.url, { password, lazyConnect: true, maxRetriesPerRequest: 0 });
    try {
      writeFileSync(passwordFile, "old-redis-secret\n");
      expect(await guarded.command("CONFIG", "SET", "requirepass", "old-redis-secret")).toBe("+OK\r\n");
      const gateway = await startPushguard(
        standardConfig(
          pushgateway.url,
          `
rateLimit:
  store: redis
  onStoreError: failClosed
  redis: { url: "${guarded.url}", passwordFile: "${passwordFile}", timeoutMs: 200 }
  rules:
    - { scope: team, rate: 0.001, burst: 1000 }
`,
        ),
      );
      running.push(gateway);
      expect((await push(gateway)).status).toBe(200);

      // Redis gets a new password and drops every client before the Secret's file catches up:
      // pushguard's reconnects fail (failing closed, limited pushes get 503) and nothing is stored.
      const rotator = admin("old-redis-secret");
      await rotator.connect();
      expect(await rotator.config("SET", "requirepass", "new-redis-secret")).toBe("OK");
      expect(await rotator.call("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")).toBeGreaterThanOrEqual(
        1,
      );
      rotator.disconnect();
      let refused: RawResponse | undefined;
      for (let attempt = 0; attempt < 100 && refused === undefined; attempt++) {
        const response = await push(gateway);
        if (response.status === 503) refused = response;
        else await sleep(50);
      }
      expect(refused?.json()).toMatchObject({ code: "ERR_RATE_LIMIT_STORE" });
      await sleep(300); // a few reconnects with the old password, each logged
      expect(gateway.logText()).toContain("WRONGPASS");

      // The file catches up: the next reconnect reads it, no restart, no reload.
      writeFileSync(passwordFile, "new-redis-secret\n");
      await untilRecovered(gateway);
      expect((await push(gateway)).status).toBe(200);
      expect(await storeAvailable(gateway)).toBe(1);
      expect(gateway.logText()).not.toContain("redis-secret");
    } finally {
      await guarded.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
