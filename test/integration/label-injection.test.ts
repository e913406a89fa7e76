import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { basic, bearer, send } from "../support/http.js";
import { type Pushgateway, startPushgateway } from "../support/pushgateway.js";
import { startPushguard, type TestPushguard } from "../support/pushguard.js";
import { afterPendingWrites } from "../support/write-barrier.js";

/** Pushgateway answers DELETE with 202 before it applies it: wait for the stored groups to settle. */
const eventually = (assertion: () => Promise<void>) => vi.waitFor(assertion, { timeout: 3000, interval: 20 });

const TOKENS = {
  TEST_ALPHA_TOKEN: "test-alpha-token-0123456789",
  TEST_BRAVO_TOKEN: "test-bravo-token-0123456789",
  TEST_CHARLIE_TOKEN: "test-charlie-token-0123456789",
  TEST_READER_TOKEN: "test-reader-token-0123456789",
};
const ALPHA = TOKENS.TEST_ALPHA_TOKEN;
const BRAVO = TOKENS.TEST_BRAVO_TOKEN;
const CHARLIE = TOKENS.TEST_CHARLIE_TOKEN;

/** Two teams that both own job `backup` (separated by an injected `team` label), and one that must set it. */
function config(upstreamUrl: string): string {
  return `
listen: { api: "127.0.0.1:0", metrics: "127.0.0.1:0" }
upstream: { url: "${upstreamUrl}" }
identities:
  static:
    - { name: alpha-ci, tokenEnv: TEST_ALPHA_TOKEN }
    - { name: bravo-ci, tokenEnv: TEST_BRAVO_TOKEN }
    - { name: charlie-ci, tokenEnv: TEST_CHARLIE_TOKEN }
    - { name: reader, tokenEnv: TEST_READER_TOKEN }
teams:
  - name: alpha
    members: [alpha-ci]
    jobs: [backup, "alpha-*"]
    actions: [push, delete]
    groupingKey: { inject: { team: "{team}" } }
  - name: bravo
    members: [bravo-ci]
    jobs: [backup]
    actions: [push, delete]
    groupingKey: { inject: { team: "{team}" } }
  - name: charlie
    members: [charlie-ci]
    jobs: [report]
    actions: [push, delete]
    groupingKey: { require: { team: "{team}" } }
  - { name: readers, members: [reader], actions: [read] }
`;
}

let pushgateway: Pushgateway;
let pushguard: TestPushguard;

beforeAll(async () => {
  pushgateway = await startPushgateway();
  pushguard = await startPushguard(config(pushgateway.url), TOKENS);
});

afterAll(async () => {
  await pushguard?.close();
  await pushgateway?.stop();
});

beforeEach(async () => {
  expect((await send(pushgateway.url, "PUT", "/api/v1/admin/wipe")).status).toBe(202);
  await eventually(async () => expect(await pushgateway.groups()).toEqual([]));
});

const sortGroups = (groups: Array<Record<string, string>>) =>
  groups.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));

function push(token: string, path: string, body: string, method = "PUT") {
  return send(pushguard.apiUrl, method, path, { headers: bearer(token), body });
}

describe("injected team labels keep teams apart in one Pushgateway", () => {
  it("two teams pushing job backup land in two groups, each series labelled with its team", async () => {
    expect((await push(ALPHA, "/metrics/job/backup", "backup_ok 1\n")).status).toBe(200);
    expect((await push(BRAVO, "/metrics/job/backup", "backup_ok 2\n", "POST")).status).toBe(200);
    expect(sortGroups(await pushgateway.groups())).toEqual([
      { job: "backup", team: "alpha" },
      { job: "backup", team: "bravo" },
    ]);
    const text = await pushgateway.metricsText();
    expect(text).toMatch(/backup_ok\{instance="",job="backup",team="alpha"\} 1/);
    expect(text).toMatch(/backup_ok\{instance="",job="backup",team="bravo"\} 2/);
    // A second push by alpha replaces alpha's group only.
    expect((await push(ALPHA, "/metrics/job/backup", "backup_ok 3\n")).status).toBe(200);
    const after = await pushgateway.metricsText();
    expect(after).toMatch(/backup_ok\{instance="",job="backup",team="alpha"\} 3/);
    expect(after).toMatch(/backup_ok\{instance="",job="backup",team="bravo"\} 2/);
  });

  it("extra labels are kept and the team label is added beside them", async () => {
    const response = await push(ALPHA, "/metrics/job/backup/instance/db1", "backup_ok 1\n");
    expect(response.status).toBe(200);
    expect(await pushgateway.groups()).toEqual([{ job: "backup", instance: "db1", team: "alpha" }]);
  });

  it("a DELETE of job backup by one team removes only that team's group", async () => {
    await push(ALPHA, "/metrics/job/backup", "backup_ok 1\n");
    await push(BRAVO, "/metrics/job/backup", "backup_ok 2\n");
    const deleted = await send(pushguard.apiUrl, "DELETE", "/metrics/job/backup", { headers: bearer(ALPHA) });
    expect(deleted.status).toBe(202);
    await eventually(async () =>
      expect(await pushgateway.groups()).toEqual([{ job: "backup", team: "bravo" }]),
    );
    const audit = pushguard
      .logs()
      .filter((line) => line.msg === "audit")
      .map((line) => line.audit as Record<string, unknown>)
      .at(-1);
    expect(audit).toMatchObject({
      team: "alpha",
      action: "delete",
      groupingKey: 'job="backup",team="alpha"',
    });
  });

  it.each([
    ["plain", "/metrics/job/backup/team/bravo"],
    ["base64", `/metrics/job/backup/team@base64/${Buffer.from("bravo").toString("base64url")}`],
    ["percent-encoded", "/metrics/job/backup/%74eam/bravo"],
    ["repeated", "/metrics/job/backup/team/alpha/team/bravo"],
  ])("a team cannot escape injection with its own team=<other> label (%s)", async (_, path) => {
    await push(BRAVO, "/metrics/job/backup", "backup_ok 2\n");
    const response = await push(ALPHA, path, "backup_ok 666\n");
    expect(response.status).toBe(200);
    expect(sortGroups(await pushgateway.groups())).toEqual([
      { job: "backup", team: "alpha" },
      { job: "backup", team: "bravo" },
    ]);
    const text = await pushgateway.metricsText();
    expect(text).toMatch(/backup_ok\{instance="",job="backup",team="alpha"\} 666/);
    expect(text).toMatch(/backup_ok\{instance="",job="backup",team="bravo"\} 2/);
    // Nor delete the other team's group that way.
    const deleted = await send(pushguard.apiUrl, "DELETE", path, { headers: basic("ci", ALPHA) });
    expect(deleted.status).toBe(202);
    await eventually(async () =>
      expect(await pushgateway.groups()).toEqual([{ job: "backup", team: "bravo" }]),
    );
  });

  it("a team label in the body cannot override the injected grouping key", async () => {
    const response = await push(ALPHA, "/metrics/job/backup", 'backup_ok{team="bravo"} 7\n');
    // Pushgateway overwrites body labels that clash with the grouping key, which pushguard set.
    expect(response.status).toBe(200);
    expect(await pushgateway.groups()).toEqual([{ job: "backup", team: "alpha" }]);
    const text = await pushgateway.metricsText();
    expect(text).toMatch(/backup_ok\{instance="",job="backup",team="alpha"\} 7/);
    expect(text).not.toMatch(/team="bravo"/);
  });

  it("a team's other jobs are still limited by its patterns", async () => {
    expect((await push(ALPHA, "/metrics/job/alpha-nightly", "x 1\n")).status).toBe(200);
    const denied = await push(BRAVO, "/metrics/job/alpha-nightly", "x 1\n");
    expect(denied.status).toBe(403);
    expect(denied.json().code).toBe("ERR_ACL_DENIED");
    expect(await pushgateway.groups()).toEqual([{ job: "alpha-nightly", team: "alpha" }]);
  });

  it("reads and wipe stay separate grants", async () => {
    await push(ALPHA, "/metrics/job/backup", "backup_ok 1\n");
    const read = await send(pushguard.apiUrl, "GET", "/api/v1/metrics", { headers: bearer(ALPHA) });
    expect(read.status).toBe(403);
    const wipe = await send(pushguard.apiUrl, "PUT", "/api/v1/admin/wipe", { headers: bearer(ALPHA) });
    expect(wipe.status).toBe(403);
    expect(await pushgateway.groups()).toHaveLength(1);
    const reader = await send(pushguard.apiUrl, "GET", "/api/v1/metrics", {
      headers: bearer(TOKENS.TEST_READER_TOKEN),
    });
    expect(reader.status).toBe(200);
  });
});

describe("required labels", () => {
  it("a push without the required label is 403, with it 200", async () => {
    const without = await push(CHARLIE, "/metrics/job/report", "rows 1\n");
    expect(without.status).toBe(403);
    expect(without.json().code).toBe("ERR_ACL_DENIED");
    expect(await pushgateway.groups()).toEqual([]);

    const withLabel = await push(CHARLIE, "/metrics/job/report/team/charlie", "rows 1\n");
    expect(withLabel.status).toBe(200);
    expect(await pushgateway.groups()).toEqual([{ job: "report", team: "charlie" }]);
  });

  it("the required label must carry the team's own value, for pushes and deletes", async () => {
    await push(CHARLIE, "/metrics/job/report/team/charlie", "rows 1\n");
    for (const path of [
      "/metrics/job/report/team/alpha",
      "/metrics/job/report/team/",
      "/metrics/job/report/Team/charlie",
    ]) {
      const response = await push(CHARLIE, path, "rows 2\n");
      expect(response.status, path).toBe(403);
    }
    // Groups charlie may not delete: one without the team label, and another team's.
    for (const path of ["/metrics/job/report", "/metrics/job/report/team/alpha"]) {
      expect((await send(pushgateway.url, "PUT", path, { body: "rows 9\n" })).status).toBe(200);
      const refused = await send(pushguard.apiUrl, "DELETE", path, { headers: bearer(CHARLIE) });
      expect(refused.status, path).toBe(403);
    }
    // A forwarded DELETE is answered 202 and applied later: wait until it would have been.
    await afterPendingWrites(pushgateway.url);
    expect(sortGroups(await pushgateway.groups())).toEqual([
      { job: "report", team: "alpha" },
      { job: "report", team: "charlie" },
      { job: "report" },
    ]);
    const deleteWith = await send(pushguard.apiUrl, "DELETE", "/metrics/job/report/team/charlie", {
      headers: bearer(CHARLIE),
    });
    expect(deleteWith.status).toBe(202);
    await eventually(async () =>
      expect(sortGroups(await pushgateway.groups())).toEqual([
        { job: "report", team: "alpha" },
        { job: "report" },
      ]),
    );
  });
});
