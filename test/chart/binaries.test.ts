import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify as stringifyYaml } from "yaml";
import { freePort, type RunningProcess, startProcess, waitForHttp } from "../support/processes.js";
import { PUSHGATEWAY_BINARY } from "../support/pushgateway.js";
import {
  FULLNAME,
  find,
  HELMS,
  type K8sObject,
  type Loose,
  PROFILES,
  pushgatewayArgs,
  pushguardConfig,
  render,
} from "./helm.js";
import {
  ensureBuilt,
  type LocalRedis,
  localPushgatewayArgs,
  localRedisSection,
  MAIN,
  PodFiles,
  startRedisWithPassword,
  writeTokens,
} from "./run-rendered.js";

/**
 * The secured profile, run for real: the pushgateway with exactly the rendered arguments and
 * pushguard (built from this checkout) with exactly the rendered config, with only what a pod gets
 * from Kubernetes rewritten (see run-rendered.ts).
 */
const helm = HELMS[HELMS.length - 1] as (typeof HELMS)[number];

let objects: K8sObject[];
let work: string;
let files: PodFiles;
let tokens: Record<string, string>;
let pushgatewayUrl: string;
let pushguardUrl: string;
let metricsUrl: string;
let dataFile: string | undefined;
let redis: LocalRedis;
const running: RunningProcess[] = [];

async function startPushgateway(): Promise<void> {
  const port = await freePort();
  pushgatewayUrl = `http://127.0.0.1:${port}`;
  const local = localPushgatewayArgs(pushgatewayArgs(objects), port, files);
  dataFile = local.dataFile;
  const pushgateway = startProcess(PUSHGATEWAY_BINARY, local.args);
  running.push(pushgateway);
  await waitForHttp(`${pushgatewayUrl}/-/ready`, pushgateway);
}

/** The rendered config, with what Kubernetes provides replaced by local equivalents. */
async function localConfig(): Promise<Loose> {
  const config = pushguardConfig(objects);
  config.listen = { api: `127.0.0.1:${await freePort()}`, metrics: `127.0.0.1:${await freePort()}` };
  pushguardUrl = `http://${config.listen.api}`;
  metricsUrl = `http://${config.listen.metrics}`;
  config.upstream.url = pushgatewayUrl;
  tokens = writeTokens(config, files);
  for (const issuer of config.identities.kubernetes) {
    for (const key of ["caFile", "tokenFile"] as const) {
      if (!issuer[key]) continue;
      issuer[key] = files.write(
        issuer[key],
        "placeholder: keys are fetched only when a ServiceAccount token arrives\n",
      );
    }
  }
  if (config.rateLimit?.redis) localRedisSection(config.rateLimit.redis, redis, files);
  if (config.store.index.redis) localRedisSection(config.store.index.redis, redis, files);
  return config;
}

async function push(job: string, token?: string, method = "PUT"): Promise<number> {
  const headers: Record<string, string> = { "content-type": "text/plain" };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(`${pushguardUrl}/metrics/job/${job}`, {
    method,
    headers,
    body: method === "DELETE" ? undefined : "# TYPE chart_test gauge\nchart_test 1\n",
  });
  await response.arrayBuffer();
  return response.status;
}

beforeAll(async () => {
  objects = render(helm, PROFILES.secured);
  work = mkdtempSync(join(tmpdir(), "pushguard-chart-"));
  files = new PodFiles(work);
  ensureBuilt();
  await startPushgateway();
  redis = await startRedisWithPassword(work);
  running.push(redis.process);
  const configFile = join(work, "config.yaml");
  writeFileSync(configFile, stringifyYaml(await localConfig()));
  const pushguard = startProcess("node", [MAIN, "serve", "--config", configFile]);
  running.push(pushguard);
  await waitForHttp(`${metricsUrl}/readyz`, pushguard);
}, 60_000);

afterAll(async () => {
  for (const process of running.reverse()) await process.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("the secured profile's rendered pushgateway args and pushguard config, run for real", () => {
  it("forwards a push made with a token to the pushgateway", async () => {
    // 200: with two pushguard replicas the pushgateway keeps its consistency check.
    expect(await push("team-a-nightly", tokens["team-a-ci"])).toBe(200);
    const groups = (await (await fetch(`${pushgatewayUrl}/api/v1/metrics`)).json()) as {
      data: Array<{ labels: Record<string, string> }>;
    };
    expect(groups.data.map((group) => group.labels.job)).toContain("team-a-nightly");
  });

  it("refuses a push without a token (401), and another team's job (403)", async () => {
    expect(await push("team-a-nightly")).toBe(401);
    expect(await push("team-b-nightly", tokens["team-a-ci"])).toBe(403);
  });

  it("refuses a push for what it contains with the rule named, and counts it by team and rule", async () => {
    const refuse = async (job: string, body: string) => {
      const response = await fetch(`${pushguardUrl}/metrics/job/${job}`, {
        method: "PUT",
        headers: { "content-type": "text/plain", authorization: `Bearer ${tokens["team-a-ci"]}` },
        body,
      });
      return { status: response.status, problem: (await response.json()) as { code: string; rule: string } };
    };
    // `up` is denied by default; `namespace` is what the batch team injects, so nobody else may set it.
    expect(await refuse("team-a-refused", "up 1\n")).toMatchObject({
      status: 422,
      problem: { code: "ERR_METRIC_NAME_DENIED", rule: "metric-name-denied" },
    });
    expect(await refuse("team-a-refused", 'chart_test{namespace="batch-nightly"} 1\n')).toMatchObject({
      status: 422,
      problem: { code: "ERR_LABEL_RESERVED", rule: "reserved-label" },
    });
    const groups = (await (await fetch(`${pushgatewayUrl}/api/v1/metrics`)).json()) as {
      data: Array<{ labels: Record<string, string> }>;
    };
    expect(groups.data.map((group) => group.labels.job)).not.toContain("team-a-refused");
    const metrics = await (await fetch(`${metricsUrl}/metrics`)).text();
    expect(metrics).toContain('pushguard_push_rejections_total{team="team-a",rule="metric-name-denied"} 1');
    expect(metrics).toContain('pushguard_push_rejections_total{team="team-a",rule="reserved-label"} 1');
  });

  it("keeps the pushgateway's consistency check (two pushguard replicas), and pushguard's store index refuses a clash first", async () => {
    expect(pushgatewayArgs(objects)).not.toContain("--push.disable-consistency-check");
    const put = async (job: string, token: string | undefined, body: string) => {
      const response = await fetch(`${pushguardUrl}/metrics/job/${job}`, {
        method: "PUT",
        headers: { "content-type": "text/plain", authorization: `Bearer ${token}` },
        body,
      });
      return { status: response.status, problem: await response.text() };
    };
    expect(
      await put("team-a-squat", tokens["team-a-ci"], "# TYPE chart_shared counter\nchart_shared 1\n"),
    ).toMatchObject({ status: 200 });
    // Another team's group, the same family as a gauge: what the pushgateway's own check would refuse.
    const clash = await put(
      "team-b-squat",
      tokens["team-b-ci"],
      "# TYPE chart_shared gauge\nchart_shared 2\n",
    );
    expect(clash.status, clash.problem).toBe(409);
    expect(JSON.parse(clash.problem).code).toBe("ERR_FAMILY_CONFLICT");
    const scrape = await fetch(`${pushgatewayUrl}/metrics`);
    expect(scrape.status).toBe(200);
    expect(await scrape.text()).toContain("# TYPE chart_shared counter");
  });

  it("accepts the admin whose Secret holds only a hash, and keeps wipe closed", async () => {
    expect(await push("anything", tokens["platform-admin"])).toBe(200);
    const wipe = await fetch(`${pushguardUrl}/api/v1/admin/wipe`, {
      method: "PUT",
      headers: { authorization: `Bearer ${tokens["platform-admin"]}` },
    });
    expect(wipe.status).toBe(403);
    expect(pushgatewayArgs(objects)).not.toContain("--web.enable-admin-api");
  });

  it("passes the helm test pod's own script", () => {
    const pod = find(objects, "Pod", `${FULLNAME}-push-test`);
    const container = pod.spec.containers[0];
    const scratch = join(work, "test-pod");
    mkdirSync(scratch, { recursive: true });
    const script = (container.args[0] as string)
      .replaceAll("/tmp/", `${scratch}/`)
      .replaceAll("/etc/pushguard-test/token", files.local("/etc/pushguard/secrets/helm-test"));
    const podUrl = new URL(container.env.find((e: { name: string }) => e.name === "PUSH_URL").value);
    const result = spawnSync("sh", ["-ec", script], {
      encoding: "utf8",
      env: { PATH: process.env.PATH, PUSH_URL: `${pushguardUrl}${podUrl.pathname}` },
    });
    expect(result.stdout).toContain("push without a token: 401");
    expect(result.stdout).toContain("push with the token of helm-test: 200");
    expect(result.stdout).toContain("cleanup (delete the test group): 202");
    expect(result.status, result.stdout + result.stderr).toBe(0);
  });

  it("shares rate-limit budgets through Redis, with the password from its Secret", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 40; i++) statuses.push(await push("team-b-burst", tokens["team-b-ci"]));
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill(200));
    expect(statuses).toContain(429);
    const keys = redis.cli("--scan", "--pattern", "pushguard:rl:*").stdout.trim().split("\n");
    expect(keys.filter(Boolean).length).toBeGreaterThan(0);
  });

  it("writes the pushgateway's persistence file where the rendered flag and volume say", async () => {
    const pushgateway = running[0] as RunningProcess;
    await pushgateway.stop();
    expect(dataFile?.startsWith(files.local("/data/"))).toBe(true);
    expect(existsSync(dataFile as string)).toBe(true);
  });
});
