import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { bearer, send } from "../support/http.js";
import { type Pushgateway, startPushgateway } from "../support/pushgateway.js";
import {
  ADMIN_TOKEN,
  standardConfig,
  startPushguard,
  TEAM_A_TOKEN,
  TEAM_B_TOKEN,
  type TestPushguard,
} from "../support/pushguard.js";

/**
 * The store index in front of a Pushgateway that checks nothing (`--push.disable-consistency-check`):
 * what pushguard accepts is all that stands between one team's push and every team's `/metrics`.
 */

let pushgateway: Pushgateway;
let pushguard: TestPushguard;

const config = (url: string) =>
  standardConfig(url, "store: { index: { enabled: true, resyncIntervalMs: 1000 } }");

beforeAll(async () => {
  pushgateway = await startPushgateway(["--push.disable-consistency-check"]);
  pushguard = await startPushguard(config(pushgateway.url));
});

afterAll(async () => {
  await pushguard?.close();
  await pushgateway?.stop();
});

beforeEach(async () => {
  await send(pushguard.apiUrl, "PUT", "/api/v1/admin/wipe", { headers: bearer(ADMIN_TOKEN) });
});

const push = (token: string, path: string, body: string, method = "PUT") =>
  send(pushguard.apiUrl, method, path, { headers: bearer(token), body });

async function metricsStatus(): Promise<number> {
  const response = await fetch(`${pushgateway.url}/metrics`);
  await response.arrayBuffer();
  return response.status;
}

describe("team quotas", () => {
  it("refuses a team's group past its quota with 429, and exports usage and quota", async () => {
    const quoted = await startPushguard(
      standardConfig(pushgateway.url, "store: { index: { enabled: true }, quotas: { groupsPerTeam: 2 } }"),
    );
    try {
      const via = (path: string) =>
        send(quoted.apiUrl, "PUT", path, { headers: bearer(TEAM_A_TOKEN), body: "q 1\n" });
      expect((await via("/metrics/job/team-a-q1")).status).toBe(202);
      expect((await via("/metrics/job/team-a-q2/instance/i")).status).toBe(202);
      const third = await via("/metrics/job/team-a-q3");
      expect(third.status).toBe(429);
      expect(third.json()).toMatchObject({
        code: "ERR_QUOTA_EXCEEDED",
        rule: "team-groups",
        limit: 2,
        actual: 3,
      });
      expect((await via("/metrics/job/team-a-q1")).status).toBe(202); // an existing group is no new one
      const metrics = await (await fetch(`${quoted.metricsUrl}/metrics`)).text();
      expect(metrics).toContain('pushguard_team_groups{team="team-a"} 2');
      expect(metrics).toContain('pushguard_team_series{team="team-a"} 2');
      expect(metrics).toContain('pushguard_team_groups_quota{team="team-a"} 2');
      expect(metrics).toContain('pushguard_team_series_quota{team="team-b"} 200000');
    } finally {
      await quoted.close();
      await send(pushgateway.url, "PUT", "/api/v1/admin/wipe");
    }
  });
});

describe("the store index and the janitor", () => {
  it("frees the names of a group the janitor expired", async () => {
    let now = Date.now();
    const expiring = await startPushguard(
      standardConfig(
        pushgateway.url,
        "store: { index: { enabled: true } }\njanitor: { enabled: true, defaultTtl: 1h, intervalMs: 86400000 }",
      ),
      undefined,
      { clock: () => now },
    );
    try {
      const via = (token: string, path: string, body: string) =>
        send(expiring.apiUrl, "PUT", path, { headers: bearer(token), body });
      expect(
        (await via(TEAM_A_TOKEN, "/metrics/job/team-a-old", "# TYPE aging counter\naging 1\n")).status,
      ).toBe(202);
      expect(
        (await via(TEAM_B_TOKEN, "/metrics/job/team-b-new", "# TYPE aging gauge\naging 1\n")).status,
      ).toBe(409);
      now += 2 * 3_600_000;
      expect((await expiring.janitor?.runOnce())?.expired).toHaveLength(1);
      expect(
        (await via(TEAM_B_TOKEN, "/metrics/job/team-b-new", "# TYPE aging gauge\naging 1\n")).status,
      ).toBe(202);
    } finally {
      await expiring.close();
    }
  });
});

describe("the store index", () => {
  it("refuses another team's type for a family one team stores, naming the group", async () => {
    expect(
      (await push(TEAM_A_TOKEN, "/metrics/job/team-a-x", "# TYPE shared_rt counter\nshared_rt 1\n")).status,
    ).toBe(202);
    const clash = await push(TEAM_B_TOKEN, "/metrics/job/team-b-y", "# TYPE shared_rt gauge\nshared_rt 1\n");
    expect(clash.status).toBe(409);
    expect(clash.json()).toMatchObject({
      code: "ERR_FAMILY_CONFLICT",
      rule: "type-conflict",
      family: "shared_rt",
      // Another team's group is named by its team only: its jobs and labels are not team-b's to read.
      holder: "a group of team team-a",
    });
    expect(await metricsStatus()).toBe(200);
    expect((await pushgateway.groups()).map((group) => group.job)).toEqual(["team-a-x"]);
  });

  it("refuses the same series from two groups, which would make /metrics answer 500", async () => {
    expect((await push(TEAM_A_TOKEN, "/metrics/job/team-a-x/instance/i", "m 1\n")).status).toBe(202);
    const clash = await push(TEAM_A_TOKEN, "/metrics/job/team-a-x", 'm{instance="i"} 2\n');
    expect(clash.json()).toMatchObject({ code: "ERR_FAMILY_CONFLICT", rule: "series-conflict" });
    expect(await metricsStatus()).toBe(200);
  });

  it("frees a name when its group is deleted, and undoes nothing that was stored", async () => {
    expect(
      (await push(TEAM_A_TOKEN, "/metrics/job/team-a-x", "# TYPE h histogram\nh_count 1\nh_sum 1\n")).status,
    ).toBe(202);
    expect((await push(TEAM_B_TOKEN, "/metrics/job/team-b-y", "h_count 5\n")).json()).toMatchObject({
      rule: "suffix-conflict",
    });
    expect(
      (await send(pushguard.apiUrl, "DELETE", "/metrics/job/team-a-x", { headers: bearer(TEAM_A_TOKEN) }))
        .status,
    ).toBe(202);
    expect((await push(TEAM_B_TOKEN, "/metrics/job/team-b-y", "h_count 5\n")).status).toBe(202);
    expect(await metricsStatus()).toBe(200);
  });

  it("reads what it did not see: a group written around pushguard is known after a resync", async () => {
    // Written straight to the Pushgateway, as before pushguard (or by another writer).
    expect(
      (
        await send(pushgateway.url, "PUT", "/metrics/job/legacy/instance/i", {
          body: '# TYPE legacy_rt gauge\nlegacy_rt{a="1"} 1\n',
        })
      ).status,
    ).toBe(202);
    // The next resync (every second here) reads it; until then the index cannot know it.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    const typeClash = await push(
      TEAM_A_TOKEN,
      "/metrics/job/team-a-x",
      "# TYPE legacy_rt counter\nlegacy_rt 1\n",
    );
    // Read back from the store, the group counts against the first team whose rules could have
    // pushed it (admins, jobs "*"): to team-a it is named by that team only.
    expect(typeClash.json()).toMatchObject({ rule: "type-conflict", holder: "a group of team admins" });
    // The series the resync read hash like the ones a push computes: the same series from
    // another group of the same job clashes, another label value does not.
    const gauge = (a: string) => `# TYPE legacy_rt gauge\nlegacy_rt{a="${a}",instance="i"} 1\n`;
    expect((await push(ADMIN_TOKEN, "/metrics/job/legacy", gauge("1"))).json()).toMatchObject({
      rule: "series-conflict",
      holder: "group /metrics/job/legacy/instance/i",
    });
    expect((await push(ADMIN_TOKEN, "/metrics/job/legacy", gauge("2"))).status).toBe(202);
    expect(await metricsStatus()).toBe(200);
  });
});
