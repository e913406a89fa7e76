import { Readable, Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import { parseTtl } from "../../src/janitor/duration.js";
import { Janitor } from "../../src/janitor/janitor.js";
import { type Lease, NoLease } from "../../src/janitor/lease.js";
import { compileOwnership, type TeamRule } from "../../src/janitor/ownership.js";
import { createLogger } from "../../src/observability/logger.js";
import { Metrics } from "../../src/observability/metrics.js";
import type { UpstreamResponse } from "../../src/upstream/forward.js";
import type { Gateway, GatewayRequest } from "../../src/upstream/gateway.js";
import { GroupLocks } from "../../src/upstream/group-locks.js";

const HOUR = 3_600_000;

const team = (name: string, jobs: string[], extra: Partial<TeamRule> = {}): TeamRule => ({
  name,
  actions: ["push", "delete"],
  jobs,
  groupingKey: { require: {}, inject: {} },
  ...extra,
});

describe("parseTtl", () => {
  it.each([
    ["90m", 90 * 60_000],
    ["36h", 36 * HOUR],
    ["7d", 7 * 24 * HOUR],
    ["1h30m", 90 * 60_000],
    ["500ms", 500],
    ["never", Number.POSITIVE_INFINITY],
  ])("%s is %d ms", (text, ms) => {
    expect(parseTtl(text)).toBe(ms);
  });

  it.each(["", "0s", "1", "h", "1 h", "-1h", "1.5h", "1w", "forever", "99999999999999999d"])(
    "refuses %j",
    (text) => {
      expect(parseTtl(text)).toBeUndefined();
    },
  );
});

describe("which team's TTL governs a stored group", () => {
  it("attributes by job pattern and never lets a team's TTL reach another team's jobs", () => {
    const attribute = compileOwnership(
      [team("a", ["team-a-*"], { ttl: "1h" }), team("b", ["team-b-*"])],
      undefined,
    );
    expect(attribute({ job: "team-a-backup" })).toEqual({ owners: ["a"], team: "a", ttlMs: HOUR });
    expect(attribute({ job: "team-b-backup" })).toEqual({ owners: ["b"], team: "b", ttlMs: Infinity });
    expect(attribute({ job: "xteam-a-1" })).toEqual({ owners: [], team: undefined, ttlMs: Infinity });
  });

  it("lets a group shared by overlapping patterns live as long as its longest-lived owner allows", () => {
    const teams = [team("a", ["team-a-*"], { ttl: "1h" }), team("admins", ["*"])];
    expect(compileOwnership(teams, undefined)({ job: "team-a-x" })).toMatchObject({
      owners: ["a", "admins"],
      ttlMs: Infinity,
    });
    expect(compileOwnership(teams, "2d")({ job: "team-a-x" })).toMatchObject({
      team: "admins",
      ttlMs: 48 * HOUR,
    });
    const protectedByNever = [
      team("a", ["team-a-*"], { ttl: "1h" }),
      team("admins", ["*"], { ttl: "never" }),
    ];
    expect(compileOwnership(protectedByNever, "1h")({ job: "team-a-x" }).ttlMs).toBe(Infinity);
  });

  it("uses injected labels: two teams pushing one job name each own only their own group", () => {
    const inject = { require: {}, inject: { team: "{team}" } };
    const attribute = compileOwnership(
      [
        team("alpha", ["backup"], { ttl: "1h", groupingKey: inject }),
        team("bravo", ["backup"], { ttl: "1d", groupingKey: inject }),
      ],
      undefined,
    );
    expect(attribute({ job: "backup", team: "alpha" })).toEqual({
      owners: ["alpha"],
      team: "alpha",
      ttlMs: HOUR,
    });
    expect(attribute({ job: "backup", team: "bravo" })).toMatchObject({ owners: ["bravo"] });
    // Neither team can have pushed a group without the label it injects.
    expect(attribute({ job: "backup" }).owners).toEqual([]);
    expect(attribute({ job: "backup", team: "" }).owners).toEqual([]);
  });

  it("binds placeholders from injected labels and matches unbound ones against anything", () => {
    const attribute = compileOwnership(
      [
        team("namespaces", ["{namespace}-*"], {
          ttl: "1h",
          groupingKey: { require: {}, inject: { namespace: "{namespace}" } },
        }),
        team("ci", ["ci-{claims.repository_owner}-*"], { ttl: "2h" }),
        team("prefixed", ["report"], {
          ttl: "3h",
          groupingKey: { require: { owner: "team-{team}" }, inject: {} },
        }),
      ],
      undefined,
    );
    expect(attribute({ job: "shop-backup", namespace: "shop" }).owners).toEqual(["namespaces"]);
    expect(attribute({ job: "shop-backup", namespace: "billing" }).owners).toEqual([]);
    expect(attribute({ job: "ci-acme-build" }).owners).toEqual(["ci"]);
    expect(attribute({ job: "report", owner: "team-prefixed" }).owners).toEqual(["prefixed"]);
    expect(attribute({ job: "report", owner: "team-other" }).owners).toEqual([]);
  });

  it("ignores teams that may not push: they cannot have created a group", () => {
    const attribute = compileOwnership(
      [team("deleters", ["*"], { actions: ["delete"] }), team("a", ["*"], { ttl: "1h" })],
      undefined,
    );
    expect(attribute({ job: "anything" })).toMatchObject({ owners: ["a"], ttlMs: HOUR });
  });
});

describe("janitor configuration", () => {
  const base = (teamExtra: string, janitor: string) => `
upstream: { url: "http://127.0.0.1:9191" }
identities: { static: [{ name: ci, sha256: "${"a".repeat(64)}" }] }
teams:
  - { name: a, members: [ci], jobs: ["a-*"], actions: [push, delete]${teamExtra} }
  - { name: readers, members: [ci], actions: [read] }
${janitor}`;
  const issues = (yaml: string) => {
    try {
      parseConfig(yaml, "t", {});
      return [];
    } catch (error) {
      return (error as { issues: Array<{ path: string; message: string }> }).issues.map(
        (issue) => issue.path,
      );
    }
  };

  it("accepts team TTLs with the janitor enabled", () => {
    const config = parseConfig(base(", ttl: 36h", "janitor: { enabled: true, dryRun: true }"), "t", {});
    expect(config.janitor).toMatchObject({
      enabled: true,
      dryRun: true,
      intervalMs: 60_000,
      lease: { store: "none" },
    });
    expect(config.teams[0]?.ttl).toBe("36h");
  });

  it.each([
    ["a malformed TTL", ", ttl: 36 hours", "janitor: { enabled: true }", "teams.0.ttl"],
    ["a TTL while the janitor is off", ", ttl: 1h", "", "teams.0.ttl"],
    ["a janitor with nothing to expire", "", "janitor: { enabled: true }", "janitor.enabled"],
    [
      "a Redis lease without Redis",
      ", ttl: 1h",
      "janitor: { enabled: true, lease: { store: redis } }",
      "janitor.lease.redis",
    ],
    [
      "a malformed default TTL",
      ", ttl: 1h",
      "janitor: { enabled: true, defaultTtl: soon }",
      "janitor.defaultTtl",
    ],
  ])("refuses %s, naming the key", (_, teamExtra, janitor, path) => {
    expect(issues(base(teamExtra, janitor))).toContain(path);
  });
});

/** A Pushgateway stand-in: serves the queued `/api/v1/metrics` snapshots in turn, records deletes. */
function fakeGateway(snapshots: Array<Record<string, number>>) {
  const deleted: string[] = [];
  let reads = 0;
  const respond = (status: number, body = ""): UpstreamResponse => ({
    status,
    headers: new Headers(),
    body: Readable.from([Buffer.from(body)]) as UpstreamResponse["body"],
  });
  const gateway: Gateway = {
    locks: new GroupLocks(),
    async request(request: GatewayRequest) {
      if (request.method === "DELETE") {
        deleted.push(request.path);
        return respond(202);
      }
      const groups = snapshots[Math.min(reads++, snapshots.length - 1)] ?? {};
      const data = Object.entries(groups).map(([job, pushed]) => ({
        labels: { job },
        last_push_successful: true,
        push_time_seconds: { type: "GAUGE", metrics: [{ labels: { job }, value: String(pushed) }] },
      }));
      return respond(200, JSON.stringify({ status: "success", data }));
    },
    ready: async () => true,
    replicas: () => [],
    close: async () => undefined,
  };
  return { gateway, deleted, reads: () => reads };
}

function janitorWith(gateway: Gateway, options: { lease?: Lease; dryRun?: boolean; now: number }) {
  let logs = "";
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logs += chunk.toString();
      done();
    },
  });
  const janitor = new Janitor({
    gateway,
    lease: options.lease ?? new NoLease(),
    intervalMs: 60_000,
    dryRun: options.dryRun ?? false,
    attribute: compileOwnership([team("a", ["a-*"], { ttl: "1h" }), team("b", ["b-*"])], undefined),
    clock: () => options.now,
    logger: createLogger("info", sink),
    metrics: new Metrics(),
  });
  const audits = () =>
    logs
      .split("\n")
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { msg: string; audit?: Record<string, unknown> })
      .filter((line) => line.msg === "audit");
  return { janitor, audits };
}

describe("the janitor's decisions", () => {
  const now = 1_800_000_000_000;
  const twoHoursAgo = now / 1000 - 7200;

  it("deletes by canonical path what is past its TTL, with one audit line each", async () => {
    const fake = fakeGateway([{ "a-old": twoHoursAgo, "a-new": now / 1000 - 60, "b-old": twoHoursAgo }]);
    const { janitor, audits } = janitorWith(fake.gateway, { now });
    const run = await janitor.runOnce();
    expect(run.expired.map((expiry) => expiry.path)).toEqual(["/metrics/job/a-old"]);
    expect(fake.deleted).toEqual(["/metrics/job/a-old"]);
    expect(audits()).toHaveLength(1);
    expect(audits()[0]?.audit).toMatchObject({
      team: "a",
      owners: ["a"],
      ageSeconds: 7200,
      ttlSeconds: 3600,
      status: 202,
    });
  });

  it("re-reads under the group locks and spares a group pushed since the first read", async () => {
    const fake = fakeGateway([{ "a-old": twoHoursAgo }, { "a-old": now / 1000 - 1 }]);
    const { janitor } = janitorWith(fake.gateway, { now });
    expect((await janitor.runOnce()).expired).toEqual([]);
    expect(fake.reads()).toBe(2);
    expect(fake.deleted).toEqual([]);
  });

  it("holds back a push to the group until its delete is sent", async () => {
    const fake = fakeGateway([{ "a-old": twoHoursAgo }]);
    const order: string[] = [];
    const request = fake.gateway.request.bind(fake.gateway);
    fake.gateway.request = async (req) => {
      if (req.method === "GET" && fake.reads() === 1) {
        // Between the first read and the delete, a client pushes the same group.
        void fake.gateway.locks.withGroups(["/metrics/job/a-old"], async () => {
          order.push("push");
        });
      }
      if (req.method === "DELETE") order.push("delete");
      return request(req);
    };
    const { janitor } = janitorWith(fake.gateway, { now });
    await janitor.runOnce();
    await new Promise((resolve) => setImmediate(resolve));
    expect(order).toEqual(["delete", "push"]);
  });

  it("stops deleting as soon as the lease is lost", async () => {
    let calls = 0;
    const lease: Lease = {
      kind: "test",
      fence: 7,
      acquire: async () => ++calls === 1,
      release: async () => undefined,
      close: async () => undefined,
    };
    const fake = fakeGateway([{ "a-1": twoHoursAgo, "a-2": twoHoursAgo }]);
    const { janitor } = janitorWith(fake.gateway, { now, lease });
    expect((await janitor.runOnce()).expired).toEqual([]);
    expect(fake.deleted).toEqual([]);
  });

  it("deletes nothing in dry-run mode", async () => {
    const fake = fakeGateway([{ "a-old": twoHoursAgo }]);
    const { janitor, audits } = janitorWith(fake.gateway, { now, dryRun: true });
    expect((await janitor.runOnce()).expired).toHaveLength(1);
    expect(fake.deleted).toEqual([]);
    expect(audits()[0]?.audit).toMatchObject({ dryRun: true, groupingKey: 'job="a-old"' });
  });
});
