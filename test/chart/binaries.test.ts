import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
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
  REPO,
  render,
} from "./helm.js";

/**
 * The secured profile, run for real: the pushgateway with exactly the rendered arguments and
 * pushguard (built from this checkout) with exactly the rendered config. Only what a pod gets from
 * Kubernetes is rewritten: listen addresses and Service URLs become loopback ports, and mounted
 * files (Secrets, the ServiceAccount token, the volume) become files in a temp directory.
 */
const helm = HELMS[HELMS.length - 1] as (typeof HELMS)[number];
const REDIS_BINARY = process.env.REDIS_BINARY ?? "/usr/bin/redis-server";
const MAIN = join(REPO, "dist/main.js");

let objects: K8sObject[];
let work: string;
let tokens: Record<string, string>;
let pushgatewayUrl: string;
let pushguardUrl: string;
let metricsUrl: string;
let dataFile: string;
let redisPort: number;
const redisPassword = randomBytes(12).toString("hex");
const running: RunningProcess[] = [];

/** A path the pod would see, moved into the temp directory. */
const local = (podPath: string) => join(work, "pod", podPath);

function writeLocal(podPath: string, content: string): void {
  mkdirSync(join(local(podPath), ".."), { recursive: true });
  writeFileSync(local(podPath), content);
}

async function startPushgateway(): Promise<void> {
  const port = await freePort();
  pushgatewayUrl = `http://127.0.0.1:${port}`;
  const args = pushgatewayArgs(objects).map((arg) => {
    if (arg.startsWith("--web.listen-address=")) return `--web.listen-address=127.0.0.1:${port}`;
    if (arg.startsWith("--persistence.file=")) {
      dataFile = local(arg.slice("--persistence.file=".length));
      mkdirSync(join(dataFile, ".."), { recursive: true });
      return `--persistence.file=${dataFile}`;
    }
    return arg;
  });
  const pushgateway = startProcess(PUSHGATEWAY_BINARY, args);
  running.push(pushgateway);
  await waitForHttp(`${pushgatewayUrl}/-/ready`, pushgateway);
}

async function startRedisWithPassword(): Promise<void> {
  redisPort = await freePort();
  const redis = startProcess(REDIS_BINARY, [
    "--port",
    String(redisPort),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    work,
    "--requirepass",
    redisPassword,
  ]);
  running.push(redis);
  for (let attempt = 0; attempt < 100; attempt++) {
    if (redisCli("PING").stdout.trim() === "PONG") return;
    await sleep(50);
  }
  throw new Error(`redis-server did not start:\n${redis.output()}`);
}

function redisCli(...args: string[]) {
  return spawnSync(
    "redis-cli",
    ["-p", String(redisPort), "--no-auth-warning", "-a", redisPassword, ...args],
    {
      encoding: "utf8",
    },
  );
}

/** The rendered config, with what Kubernetes provides replaced by local equivalents. */
async function localConfig(): Promise<Loose> {
  const config = pushguardConfig(objects);
  config.listen = { api: `127.0.0.1:${await freePort()}`, metrics: `127.0.0.1:${await freePort()}` };
  pushguardUrl = `http://${config.listen.api}`;
  metricsUrl = `http://${config.listen.metrics}`;
  config.upstream.url = pushgatewayUrl;
  tokens = {};
  for (const identity of config.identities.static) {
    const token = `${identity.name}-${randomBytes(16).toString("hex")}`;
    tokens[identity.name] = token;
    if (identity.tokenFile) {
      writeLocal(identity.tokenFile, `${token}\n`);
      identity.tokenFile = local(identity.tokenFile);
    } else if (identity.sha256File) {
      writeLocal(identity.sha256File, createHash("sha256").update(token).digest("hex"));
      identity.sha256File = local(identity.sha256File);
    }
  }
  for (const issuer of config.identities.kubernetes) {
    for (const key of ["caFile", "tokenFile"] as const) {
      if (!issuer[key]) continue;
      writeLocal(issuer[key], "placeholder: keys are fetched only when a ServiceAccount token arrives\n");
      issuer[key] = local(issuer[key]);
    }
  }
  if (config.rateLimit?.redis) {
    config.rateLimit.redis.url = `redis://127.0.0.1:${redisPort}/0`;
    writeLocal(config.rateLimit.redis.passwordFile, redisPassword);
    config.rateLimit.redis.passwordFile = local(config.rateLimit.redis.passwordFile);
  }
  return config;
}

function ensureBuilt(): void {
  if (existsSync(MAIN)) return;
  const build = spawnSync("npx", ["tsc", "-p", "tsconfig.build.json"], { cwd: REPO, encoding: "utf8" });
  if (build.status !== 0)
    throw new Error(`npx tsc -p tsconfig.build.json failed:\n${build.stdout}${build.stderr}`);
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
  ensureBuilt();
  await startPushgateway();
  await startRedisWithPassword();
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
      .replaceAll("/etc/pushguard-test/token", local("/etc/pushguard/secrets/helm-test"));
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
    const keys = redisCli("--scan", "--pattern", "pushguard:rl:*").stdout.trim().split("\n");
    expect(keys.filter(Boolean).length).toBeGreaterThan(0);
  });

  it("writes the pushgateway's persistence file where the rendered flag and volume say", async () => {
    const pushgateway = running[0] as RunningProcess;
    await pushgateway.stop();
    expect(dataFile.startsWith(local("/data/"))).toBe(true);
    expect(existsSync(dataFile)).toBe(true);
  });
});
