import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bearer, send } from "../support/http.js";
import { type Prometheus, type Sample, startPrometheus } from "../support/prometheus.js";
import { type Pushgateway, startPushgateway } from "../support/pushgateway.js";
import { TEAM_A_TOKEN, TEAM_B_TOKEN, TOKEN_ENV } from "../support/pushguard.js";
import { type PushguardProcess, startPushguardProcess } from "./harness.js";

/**
 * The scrape path end to end: pushes go through pushguard into a real Pushgateway, a real
 * Prometheus scrapes it every second with `honor_labels: true`, and the series are read back from
 * Prometheus' HTTP API with the pushed `job` and `instance` and the `team` label pushguard injects
 * (docs/teams-and-policy.md, "Team namespaces enforced by labels"). Deleting a group through pushguard makes its
 * series go stale in Prometheus.
 */

const CONFIG = `
upstream: { url: "{{UPSTREAM}}" }
identities:
  static:
    - { name: team-a-ci, tokenEnv: TEST_TEAM_A_TOKEN }
    - { name: team-b-ci, tokenEnv: TEST_TEAM_B_TOKEN }
teams:
  - name: team-a
    members: [team-a-ci]
    jobs: ["backup", "team-a-*"]
    actions: [push, delete]
    groupingKey: { inject: { team: "{team}" } }
  - name: team-b
    members: [team-b-ci]
    jobs: ["backup", "team-b-*"]
    actions: [push, delete]
    groupingKey: { inject: { team: "{team}" } }
`;

let pushgateway: Pushgateway;
let pushguard: PushguardProcess;
let prometheus: Prometheus;

beforeAll(async () => {
  pushgateway = await startPushgateway();
  [pushguard, prometheus] = await Promise.all([
    startPushguardProcess(CONFIG.replace("{{UPSTREAM}}", pushgateway.url), TOKEN_ENV),
    startPrometheus([new URL(pushgateway.url).host]),
  ]);
  // The first scrape succeeded: Prometheus sees the Pushgateway before anything is pushed.
  await prometheus.waitFor('up{job="pushgateway"}', (samples) => samples[0]?.value === 1);
}, 90_000);

afterAll(async () => {
  await prometheus?.stop();
  await pushguard?.stop();
  await pushgateway?.stop();
});

const push = async (token: string, path: string, body: string) => {
  const response = await send(pushguard.apiUrl, "PUT", path, { headers: bearer(token), body });
  expect(response.status, response.text).toBe(200);
};

const labelsOf = (samples: Sample[]) =>
  samples
    .map((sample): Record<string, string> => ({ ...sample.metric, value: String(sample.value) }))
    .sort((a, b) => (a.team ?? "").localeCompare(b.team ?? ""));

describe("Prometheus scraping the Pushgateway behind pushguard", () => {
  it("sees pushed series with their job, instance and injected team labels, and loses them on delete", async () => {
    const metric = "backup_last_success_seconds";
    await push(
      TEAM_A_TOKEN,
      "/metrics/job/backup/instance/db1",
      `# TYPE ${metric} gauge\n${metric} 1700000000\n`,
    );
    // A client claiming another team's label is overwritten by the injection.
    await push(
      TEAM_B_TOKEN,
      "/metrics/job/backup/instance/db1/team/team-a",
      `# TYPE ${metric} gauge\n${metric} 1700000500\n`,
    );

    const both = await prometheus.waitFor(metric, (samples) => samples.length === 2);
    expect(labelsOf(both)).toEqual([
      { __name__: metric, job: "backup", instance: "db1", team: "team-a", value: "1700000000" },
      { __name__: metric, job: "backup", instance: "db1", team: "team-b", value: "1700000500" },
    ]);
    // honor_labels kept the pushed job: no exported_job, not the scrape job's name.
    expect(both.every((sample) => sample.metric.exported_job === undefined)).toBe(true);
    // The Pushgateway's own per-group series carry the same labels.
    const pushTimes = await prometheus.query('push_time_seconds{job="backup"}');
    expect(pushTimes.map((sample) => sample.metric.team).sort()).toEqual(["team-a", "team-b"]);

    // team-a deletes "its" backup group: only its own series goes away (stale after the next scrape).
    const deleted = await send(pushguard.apiUrl, "DELETE", "/metrics/job/backup/instance/db1", {
      headers: bearer(TEAM_A_TOKEN),
    });
    expect(deleted.status).toBe(202);
    const left = await prometheus.waitFor(metric, (samples) => samples.length === 1);
    expect(left[0]?.metric).toMatchObject({ job: "backup", instance: "db1", team: "team-b" });

    await send(pushguard.apiUrl, "DELETE", "/metrics/job/backup/instance/db1", {
      headers: bearer(TEAM_B_TOKEN),
    });
    await prometheus.waitFor(metric, (samples) => samples.length === 0);
    expect(await prometheus.query('push_time_seconds{job="backup"}')).toEqual([]);
  });

  it("a refused push never shows up in Prometheus", async () => {
    const refused = await send(pushguard.apiUrl, "PUT", "/metrics/job/team-b-secret", {
      headers: bearer(TEAM_A_TOKEN),
      body: "refused_metric 1\n",
    });
    expect(refused.status).toBe(403);
    // A later, allowed push is scraped; by then the refused one would have been too.
    await push(TEAM_A_TOKEN, "/metrics/job/team-a-marker", "marker_metric 1\n");
    const marker = await prometheus.waitFor("marker_metric", (samples) => samples.length === 1);
    expect(marker[0]?.metric).toMatchObject({ job: "team-a-marker", team: "team-a" });
    expect(await prometheus.query("refused_metric")).toEqual([]);
  });
});
