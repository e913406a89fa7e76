import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { bearer, send } from "../support/http.js";
import { type Pushgateway, startPushgateway } from "../support/pushgateway.js";
import {
  startPushguard,
  TEAM_A_TOKEN,
  TEAM_B_TOKEN,
  type TestPushguard,
  TOKEN_ENV,
} from "../support/pushguard.js";
import { startRedis, type TestRedis } from "../support/redis.js";

const TOKENS = {
  ...TOKEN_ENV,
  TEST_ALPHA_TOKEN: "test-alpha-token-0123456789",
  TEST_BRAVO_TOKEN: "test-bravo-token-0123456789",
};
const HOUR = 3_600_000;

/**
 * team-a's groups live an hour, team-b's forever; alpha and bravo both push job `backup`, kept
 * apart by an injected `team` label, and live an hour and a day. Runs are triggered by the test.
 */
function config(upstreamUrl: string, janitor = ""): string {
  return `
listen: { api: "127.0.0.1:0", metrics: "127.0.0.1:0" }
upstream: { url: "${upstreamUrl}" }
identities:
  static:
    - { name: team-a-ci, tokenEnv: TEST_TEAM_A_TOKEN }
    - { name: team-b-ci, tokenEnv: TEST_TEAM_B_TOKEN }
    - { name: alpha-ci, tokenEnv: TEST_ALPHA_TOKEN }
    - { name: bravo-ci, tokenEnv: TEST_BRAVO_TOKEN }
    - { name: admin, tokenEnv: TEST_ADMIN_TOKEN }
teams:
  - { name: team-a, members: [team-a-ci], jobs: ["team-a-*"], actions: [push, delete], ttl: 1h }
  - { name: team-b, members: [team-b-ci], jobs: ["team-b-*"], actions: [push, delete] }
  - name: alpha
    members: [alpha-ci]
    jobs: [backup]
    actions: [push, delete]
    groupingKey: { inject: { team: "{team}" } }
    ttl: 1h
  - name: bravo
    members: [bravo-ci]
    jobs: [backup]
    actions: [push, delete]
    groupingKey: { inject: { team: "{team}" } }
    ttl: 1d
  - { name: admins, members: [admin], actions: [wipe, read] }
janitor: { enabled: true, intervalMs: 3600000${janitor ? `, ${janitor}` : ""} }
`;
}

let pushgateway: Pushgateway;
let now = Date.now();
const clock = () => now;

beforeAll(async () => {
  pushgateway = await startPushgateway();
});

afterAll(async () => {
  await pushgateway?.stop();
});

beforeEach(async () => {
  now = Date.now();
  expect((await send(pushgateway.url, "PUT", "/api/v1/admin/wipe")).status).toBe(202);
  await vi.waitFor(async () => expect(await pushgateway.groups()).toEqual([]));
});

const push = async (path: string, token: string) => {
  const response = await send(pushgatewayProxy().apiUrl, "PUT", path, {
    headers: bearer(token),
    body: "last_success 1\n",
  });
  expect(response.status).toBe(200);
};

/** Seconds since the epoch at which the Pushgateway stored each group, by `job` and `team`. */
async function pushTimes(): Promise<Map<string, number>> {
  const body = (await (await fetch(`${pushgateway.url}/api/v1/metrics`)).json()) as {
    data: Array<{ labels: Record<string, string>; push_time_seconds: { metrics: Array<{ value: string }> } }>;
  };
  return new Map(
    body.data.map((group) => [
      [group.labels.job, group.labels.team].filter(Boolean).join("/"),
      Number(group.push_time_seconds.metrics[0]?.value),
    ]),
  );
}

const stored = async () =>
  (await pushgateway.groups()).map((labels) => [labels.job, labels.team].filter(Boolean).join("/")).sort();

const audits = (server: TestPushguard) =>
  server
    .logs()
    .filter((line) => line.msg === "audit" && (line.audit as { via?: string }).via === "janitor")
    .map((line) => line.audit as Record<string, unknown>);

const metric = async (server: TestPushguard, pattern: RegExp) =>
  Number(pattern.exec(await (await fetch(`${server.metricsUrl}/metrics`)).text())?.[1] ?? 0);

let current: TestPushguard | undefined;
const pushgatewayProxy = () => current as TestPushguard;

afterEach(async () => {
  await current?.close();
  current = undefined;
});

/** Pushes the five groups of the scenario, `team-a-old` measurably first. */
async function pushScenario(): Promise<Map<string, number>> {
  await push("/metrics/job/team-a-old", TEAM_A_TOKEN);
  await sleep(50);
  await push("/metrics/job/team-a-fresh", TEAM_A_TOKEN);
  await push("/metrics/job/team-b-forever", TEAM_B_TOKEN);
  await push("/metrics/job/backup", TOKENS.TEST_ALPHA_TOKEN);
  await push("/metrics/job/backup", TOKENS.TEST_BRAVO_TOKEN);
  return pushTimes();
}

describe("stale-group expiry with an injected clock", () => {
  it("deletes groups past their owner's TTL, keeps fresh ones and never touches another team's", async () => {
    current = await startPushguard(config(pushgateway.url), TOKENS, { clock });
    const times = await pushScenario();
    const old = times.get("team-a-old") as number;
    const fresh = times.get("team-a-fresh") as number;
    expect(fresh).toBeGreaterThan(old);

    // Between the two team-a pushes, an hour later: only team-a-old is past its TTL.
    now = ((old + fresh) / 2) * 1000 + HOUR;
    const first = await current.janitor?.runOnce();
    expect(first?.expired.map((expiry) => expiry.groupingKey)).toEqual(['job="team-a-old"']);
    await vi.waitFor(async () =>
      expect(await stored()).toEqual(["backup/alpha", "backup/bravo", "team-a-fresh", "team-b-forever"]),
    );

    // Two hours later: alpha's backup goes, bravo's (same job, a day's TTL) and team-b's stay.
    now = Math.max(...times.values()) * 1000 + 2 * HOUR;
    const second = await current.janitor?.runOnce();
    expect(second?.expired.map((expiry) => [expiry.team, expiry.groupingKey]).sort()).toEqual([
      ["alpha", 'job="backup",team="alpha"'],
      ["team-a", 'job="team-a-fresh"'],
    ]);
    await vi.waitFor(async () => expect(await stored()).toEqual(["backup/bravo", "team-b-forever"]));

    // A week later, still: team-b set no TTL, and bravo's day is not up... until it is.
    now = Math.max(...times.values()) * 1000 + 23 * HOUR;
    expect((await current.janitor?.runOnce())?.expired).toEqual([]);

    const lines = audits(current);
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatchObject({
      identity: "pushguard-janitor",
      team: "team-a",
      action: "delete",
      method: "DELETE",
      groupingKey: 'job="team-a-old"',
      reason: "expired",
      ttlSeconds: 3600,
      dryRun: false,
      status: 202,
    });
    expect(
      await metric(current, /pushguard_janitor_groups_expired_total\{team="team-a",mode="delete"\} (\d+)/),
    ).toBe(2);
    expect(
      await metric(current, /pushguard_janitor_groups_expired_total\{team="alpha",mode="delete"\} (\d+)/),
    ).toBe(1);
    expect(await metric(current, /pushguard_janitor_runs_total\{result="success"\} (\d+)/)).toBe(3);
    expect(
      await metric(current, /pushguard_janitor_oldest_group_age_seconds\{team="team-b"\} ([\d.e+]+)/),
    ).toBeGreaterThan(22 * 3600);
  });

  it("in dry-run mode logs and counts what would expire but deletes nothing", async () => {
    current = await startPushguard(config(pushgateway.url, "dryRun: true"), TOKENS, { clock });
    const times = await pushScenario();
    now = Math.max(...times.values()) * 1000 + 2 * HOUR;
    const run = await current.janitor?.runOnce();
    expect(run?.expired.map((expiry) => expiry.groupingKey).sort()).toEqual([
      'job="backup",team="alpha"',
      'job="team-a-fresh"',
      'job="team-a-old"',
    ]);
    await sleep(100);
    expect(await stored()).toEqual([
      "backup/alpha",
      "backup/bravo",
      "team-a-fresh",
      "team-a-old",
      "team-b-forever",
    ]);
    expect(audits(current).map((line) => [line.dryRun, line.status])).toEqual([
      [true, undefined],
      [true, undefined],
      [true, undefined],
    ]);
    expect(
      await metric(current, /pushguard_janitor_groups_expired_total\{team="team-a",mode="dry-run"\} (\d+)/),
    ).toBe(2);
  });
});

describe("janitor lease in Redis", () => {
  let redis: TestRedis;
  const others: TestPushguard[] = [];

  beforeAll(async () => {
    redis = await startRedis();
  });

  afterAll(async () => {
    await Promise.all(others.map((server) => server.close()));
    await redis?.stop();
  });

  it("lets exactly one of two pushguards act, and the other take over when it leaves", async () => {
    const lease = `lease: { store: redis, redis: { url: "${redis.url}", keyPrefix: "test-lease:" } }`;
    current = await startPushguard(config(pushgateway.url, lease), TOKENS, { clock });
    const second = await startPushguard(config(pushgateway.url, lease), TOKENS, { clock });
    others.push(second);
    const times = await pushScenario();
    now = Math.max(...times.values()) * 1000 + 2 * HOUR;

    const runs = await Promise.all([current.janitor?.runOnce(), second.janitor?.runOnce()]);
    expect(runs.map((run) => run?.role).sort()).toEqual(["leader", "standby"]);
    const [leader, standby] = runs[0]?.role === "leader" ? [current, second] : [second, current];
    expect(audits(leader)).toHaveLength(3);
    expect(audits(standby)).toHaveLength(0);
    expect(await metric(standby, /pushguard_janitor_runs_total\{result="standby"\} (\d+)/)).toBe(1);
    expect(await metric(leader, /pushguard_janitor_leader (\d+)/)).toBe(1);
    // The leader keeps the lease across runs.
    expect((await standby.janitor?.runOnce())?.role).toBe("standby");

    await leader.close();
    if (leader === current) current = undefined;
    await push_via(standby, "/metrics/job/team-a-late", TEAM_A_TOKEN);
    now = Date.now() + 2 * HOUR;
    const takeover = await standby.janitor?.runOnce();
    expect(takeover?.role).toBe("leader");
    expect(takeover?.expired.map((expiry) => expiry.groupingKey)).toContain('job="team-a-late"');
    expect(audits(standby).every((line) => typeof line.leaseFence === "number")).toBe(true);
  });

  it("acts nowhere while Redis is down: no lease, no deletes", async () => {
    const lease = `lease: { store: redis, redis: { url: "${redis.url}", keyPrefix: "test-down:", timeoutMs: 200 } }`;
    current = await startPushguard(config(pushgateway.url, lease), TOKENS, { clock });
    await push("/metrics/job/team-a-old", TEAM_A_TOKEN);
    now = Date.now() + 2 * HOUR;
    await redis.stop();
    await expect(current.janitor?.runOnce()).rejects.toThrow();
    expect(await stored()).toEqual(["team-a-old"]);
    expect(await metric(current, /pushguard_janitor_errors_total\{stage="lease"\} (\d+)/)).toBe(1);
    await redis.restart();
  });
});

async function push_via(server: TestPushguard, path: string, token: string): Promise<void> {
  const response = await send(server.apiUrl, "PUT", path, {
    headers: bearer(token),
    body: "last_success 1\n",
  });
  expect(response.status).toBe(200);
}
