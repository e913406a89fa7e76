import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { stringify as stringifyYaml } from "yaml";
import { freePort, type RunningProcess, startProcess, waitForHttp } from "../support/processes.js";
import { PUSHGATEWAY_BINARY } from "../support/pushgateway.js";
import {
  HELMS,
  type K8sObject,
  type Loose,
  PROFILES,
  pushgatewayArgs,
  pushgatewayPodUrl,
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
 * The HA profile, run for real: three pushgateways with exactly the rendered arguments (each with
 * its own data directory standing in for its volume), two pushguard processes with exactly the
 * rendered config sharing a password-protected Redis, and Prometheus' read through pushguard as
 * the ScrapeConfig does it. Only what Kubernetes provides is rewritten (see run-rendered.ts): the
 * replicas' DNS names become loopback ports, in the order of the rendered upstream.urls.
 */
const helm = HELMS[HELMS.length - 1] as (typeof HELMS)[number];

interface Replica {
  readonly url: string;
  readonly args: string[];
  readonly dataFile: string | undefined;
  process: RunningProcess;
}

interface Pushguard {
  readonly apiUrl: string;
  readonly metricsUrl: string;
  readonly process: RunningProcess;
}

let objects: K8sObject[];
let work: string;
let tokens: Record<string, string>;
let redis: LocalRedis;
let keyPrefix: string;
const replicas: Replica[] = [];
const pushguards: Pushguard[] = [];

async function startReplica(index: number): Promise<Replica> {
  const port = await freePort();
  const volume = new PodFiles(join(work, `pushgateway-${index}`));
  const { args, dataFile } = localPushgatewayArgs(pushgatewayArgs(objects), port, volume);
  const replica: Replica = { url: `http://127.0.0.1:${port}`, args, dataFile, process: launch(args) };
  await waitForHttp(`${replica.url}/-/ready`, replica.process);
  return replica;
}

function launch(args: readonly string[]): RunningProcess {
  return startProcess(PUSHGATEWAY_BINARY, args);
}

/** The rendered config for one pushguard process: its own listeners, the replicas on loopback. */
async function startPushguard(rendered: Loose, name: string): Promise<Pushguard> {
  const config = structuredClone(rendered);
  config.listen = { api: `127.0.0.1:${await freePort()}`, metrics: `127.0.0.1:${await freePort()}` };
  const file = join(work, `${name}.yaml`);
  writeFileSync(file, stringifyYaml(config));
  const process = startProcess("node", [MAIN, "serve", "--config", file]);
  const pushguard = {
    apiUrl: `http://${config.listen.api}`,
    metricsUrl: `http://${config.listen.metrics}`,
    process,
  };
  await waitForHttp(`${pushguard.metricsUrl}/readyz`, process, 30_000);
  return pushguard;
}

async function jobsOn(replica: Replica): Promise<string[]> {
  const body = (await (await fetch(`${replica.url}/api/v1/metrics`)).json()) as {
    data: Array<{ labels: Record<string, string> }>;
  };
  return body.data.map((group) => group.labels.job as string).sort();
}

async function replicaStates(pushguard: Pushguard): Promise<string[]> {
  const body = (await (await fetch(`${pushguard.metricsUrl}/readyz`)).json()) as {
    replicas: Array<{ url: string; state: string }>;
  };
  const states = new Map(body.replicas.map((replica) => [replica.url, replica.state]));
  return replicas.map((replica) => states.get(replica.url) ?? "unknown");
}

async function request(
  pushguard: Pushguard,
  method: string,
  path: string,
  token?: string,
): Promise<{ status: number; text: string }> {
  const headers: Record<string, string> = { "content-type": "text/plain" };
  if (token) headers.authorization = `Bearer ${token}`;
  const body = method === "PUT" ? "# TYPE chart_ha_test gauge\nchart_ha_test 1\n" : undefined;
  const response = await fetch(`${pushguard.apiUrl}${path}`, { method, headers, body });
  return { status: response.status, text: await response.text() };
}

beforeAll(async () => {
  objects = render(helm, PROFILES.ha);
  work = mkdtempSync(join(tmpdir(), "pushguard-chart-ha-"));
  ensureBuilt();
  const rendered = pushguardConfig(objects);
  for (let index = 0; index < rendered.upstream.urls.length; index++)
    replicas.push(await startReplica(index));
  redis = await startRedisWithPassword(work);
  const files = new PodFiles(work);
  tokens = writeTokens(rendered, files);
  // The rendered URLs name pods pushgateway-0, -1, -2: each becomes the replica started for it.
  expect(rendered.upstream.urls).toEqual(replicas.map((_, index) => pushgatewayPodUrl(index)));
  rendered.upstream.urls = replicas.map((replica) => replica.url);
  keyPrefix = rendered.upstream.replication.redis.keyPrefix;
  localRedisSection(rendered.upstream.replication.redis, redis, files);
  localRedisSection(rendered.store.index.redis, redis, files);
  for (const name of ["pushguard-a", "pushguard-b"]) pushguards.push(await startPushguard(rendered, name));
}, 90_000);

afterAll(async () => {
  for (const pushguard of pushguards) await pushguard.process.stop();
  for (const replica of replicas) await replica.process.stop();
  await redis?.process.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("the HA profile's rendered pushgateway args and pushguard config, run for real", () => {
  it("starts every replica with identical flags, each writing to its own volume", () => {
    const withoutOwnPaths = (replica: Replica) =>
      replica.args.filter(
        (arg) => !arg.startsWith("--web.listen-address=") && !arg.startsWith("--persistence.file="),
      );
    expect(new Set(replicas.map((replica) => JSON.stringify(withoutOwnPaths(replica)))).size).toBe(1);
    const dataFiles = replicas.map((replica) => replica.dataFile);
    expect(dataFiles.every(Boolean)).toBe(true);
    expect(new Set(dataFiles).size).toBe(replicas.length);
  });

  it("writes a push through one pushguard to all three replicas", async () => {
    const [first] = pushguards as [Pushguard];
    // 200: with two pushguard replicas the replicas keep their consistency check.
    expect((await request(first, "PUT", "/metrics/job/team-a-nightly", tokens["team-a-ci"])).status).toBe(
      200,
    );
    for (const replica of replicas) expect(await jobsOn(replica)).toContain("team-a-nightly");
  });

  it("serves Prometheus' scrape through the other pushguard, each series once, only to the scrape identity", async () => {
    const [, second] = pushguards as [Pushguard, Pushguard];
    const scrape = await request(second, "GET", "/metrics", tokens["prometheus-scraper"]);
    expect(scrape.status).toBe(200);
    const series = scrape.text.split("\n").filter((line) => line.startsWith("chart_ha_test{"));
    expect(series).toHaveLength(1);
    expect(series[0]).toContain('job="team-a-nightly"');
    expect((await request(second, "GET", "/metrics")).status).toBe(401);
    expect((await request(second, "GET", "/metrics", tokens["team-a-ci"])).status).toBe(403);
    expect((await request(second, "PUT", "/metrics/job/team-a-x", tokens["prometheus-scraper"])).status).toBe(
      403,
    );
  });

  it("repairs a replica that restarted empty, and both pushguards serve reads only from in-sync replicas", async () => {
    const [first, second] = pushguards as [Pushguard, Pushguard];
    const restarted = replicas[2] as Replica;
    restarted.process.child.kill("SIGKILL");
    await restarted.process.stop();
    rmSync(join(restarted.dataFile as string, ".."), { recursive: true, force: true });
    // Acknowledged by the in-sync replicas (writePolicy allInSync) while one is down.
    expect((await request(first, "PUT", "/metrics/job/team-b-nightly", tokens["team-b-ci"])).status).toBe(
      200,
    );
    restarted.process = launch(restarted.args);
    await waitForHttp(`${restarted.url}/-/ready`, restarted.process);
    for (const pushguard of [first, second]) {
      await vi.waitFor(
        async () => expect(await replicaStates(pushguard)).toEqual(["in-sync", "in-sync", "in-sync"]),
        { timeout: 30_000, interval: 100 },
      );
    }
    for (const replica of replicas) {
      expect(await jobsOn(replica)).toEqual(["team-a-nightly", "team-b-nightly"]);
    }
    const scrape = await request(second, "GET", "/metrics", tokens["prometheus-scraper"]);
    expect(scrape.text.split("\n").filter((line) => line.startsWith("chart_ha_test{"))).toHaveLength(2);
  });

  it("keeps the replicas' shared state in Redis under the release's prefix, with the password from its Secret", () => {
    expect(keyPrefix).toBe("pushguard:monitoring:pg-pushguard:replication:");
    const keys = redis.cli("--scan", "--pattern", `${keyPrefix}*`).stdout.trim().split("\n").filter(Boolean);
    expect(keys.sort()).toEqual([`${keyPrefix}misses`, `${keyPrefix}synced`]);
    const misses = redis.cli("HGETALL", `${keyPrefix}misses`).stdout.trim().split("\n");
    expect(misses[0]).toBe((replicas[2] as Replica).url);
  });
});
