import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bearer, send } from "../support/http.js";
import { freePort, type RunningProcess, startProcess, waitForHttp } from "../support/processes.js";
import { type Pushgateway, startPushgateway } from "../support/pushgateway.js";

const TOKEN_A = "reload-team-a-token-0123456789";
const TOKEN_A_ROTATED = "reload-team-a-token-rotated-999";
const BODY = "reload_metric 1\n";

/**
 * A directory laid out the way the kubelet mounts a ConfigMap or Secret: files are symlinks into
 * `..data`, itself a symlink to a timestamped directory that is swapped atomically on update.
 */
class KubeletVolume {
  #generation = 0;

  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  write(files: Record<string, string>): void {
    this.#generation += 1;
    const target = `..${this.#generation}`;
    mkdirSync(join(this.dir, target));
    for (const [name, content] of Object.entries(files)) writeFileSync(join(this.dir, target, name), content);
    symlinkSync(target, join(this.dir, "..data_tmp"));
    renameSync(join(this.dir, "..data_tmp"), join(this.dir, "..data"));
    for (const name of Object.keys(files)) {
      try {
        symlinkSync(join("..data", name), join(this.dir, name));
      } catch {
        // already linked through ..data
      }
    }
  }
}

function configYaml(
  ports: { api: number; metrics: number },
  upstream: string,
  jobs: string,
  secretDir: string,
): string {
  return `
listen: { api: "127.0.0.1:${ports.api}", metrics: "127.0.0.1:${ports.metrics}" }
upstream: { url: "${upstream}" }
identities:
  static:
    - { name: team-a-ci, tokenFile: "${secretDir}/team-a-ci" }
teams:
  - { name: team-a, members: [team-a-ci], jobs: ["${jobs}"], actions: [push, delete] }
`;
}

let pushgateway: Pushgateway;
let pushguard: RunningProcess;
let workdir: string;
let configVolume: KubeletVolume;
let secretVolume: KubeletVolume;
let ports: { api: number; metrics: number };
let apiUrl: string;
let metricsUrl: string;

const push = (job: string, token = TOKEN_A) =>
  send(apiUrl, "PUT", `/metrics/job/${job}`, { headers: bearer(token), body: BODY });

async function waitFor(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    if (await check()) return;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}:\n${pushguard.output()}`);
}

async function reloadCount(result: "success" | "failure"): Promise<number> {
  const text = await (await fetch(`${metricsUrl}/metrics`)).text();
  const match = new RegExp(`pushguard_config_reloads_total\\{result="${result}"\\} (\\d+)`).exec(text);
  return Number(match?.[1] ?? 0);
}

beforeAll(async () => {
  pushgateway = await startPushgateway();
  workdir = mkdtempSync(join(tmpdir(), "pushguard-reload-"));
  configVolume = new KubeletVolume(join(workdir, "config"));
  secretVolume = new KubeletVolume(join(workdir, "secrets"));
  ports = { api: await freePort(), metrics: await freePort() };
  apiUrl = `http://127.0.0.1:${ports.api}`;
  metricsUrl = `http://127.0.0.1:${ports.metrics}`;
  secretVolume.write({ "team-a-ci": `${TOKEN_A}\n` });
  configVolume.write({ "pushguard.yaml": configYaml(ports, pushgateway.url, "team-a-*", secretVolume.dir) });
  pushguard = startProcess("node", [
    "dist/main.js",
    "serve",
    "--config",
    join(configVolume.dir, "pushguard.yaml"),
  ]);
  await waitForHttp(`${metricsUrl}/readyz`, pushguard);
});

afterAll(async () => {
  await pushguard?.stop();
  await pushgateway?.stop();
  if (workdir) rmSync(workdir, { recursive: true, force: true });
});

describe("live reload", () => {
  it("applies a ConfigMap-style atomic swap of the config without a restart", async () => {
    expect((await push("team-a-one")).status).toBe(200);
    expect((await push("ops-one")).status).toBe(403);
    configVolume.write({ "pushguard.yaml": configYaml(ports, pushgateway.url, "ops-*", secretVolume.dir) });
    await waitFor(async () => (await push("ops-two")).status === 200, "the new rule");
    expect((await push("team-a-two")).status).toBe(403);
    expect(pushguard.output()).toContain('"msg":"config reloaded"');
  });

  it("rejects a broken config, keeps serving the old one, and counts the failure", async () => {
    const failuresBefore = await reloadCount("failure");
    configVolume.write({ "pushguard.yaml": "teams: [ { name: oops } ]\nnot_a_key: 1\n" });
    await waitFor(async () => (await reloadCount("failure")) > failuresBefore, "the rejected reload");
    expect((await push("ops-three")).status).toBe(200);
    expect(pushguard.output()).toContain("config reload rejected");
    const gauge = await (await fetch(`${metricsUrl}/metrics`)).text();
    expect(gauge).toMatch(/pushguard_config_last_reload_successful 0/);
    configVolume.write({ "pushguard.yaml": configYaml(ports, pushgateway.url, "ops-*", secretVolume.dir) });
  });

  it("applies a config whose Kubernetes caFile cannot be read here, as serve would start with it", async () => {
    // The CA is read at the first key fetch: only that issuer's tokens fail (503), nothing else.
    const successesBefore = await reloadCount("success");
    const unreadableCa = `${configYaml(ports, pushgateway.url, "ops-*", secretVolume.dir)}
`.replace(
      "identities:\n",
      `identities:
  kubernetes:
    - { name: cluster, audiences: [pushguard], apiServer: "https://127.0.0.1:1", caFile: "${workdir}/no-such-ca.crt" }
`,
    );
    configVolume.write({ "pushguard.yaml": unreadableCa });
    await waitFor(async () => (await reloadCount("success")) > successesBefore, "the reload");
    expect(pushguard.child.exitCode).toBeNull();
    expect((await push("ops-still-served")).status).toBe(200);
    configVolume.write({ "pushguard.yaml": configYaml(ports, pushgateway.url, "ops-*", secretVolume.dir) });
  });

  it("rejects body limits the running body budget cannot hold (overload.* needs a restart)", async () => {
    const failuresBefore = await reloadCount("failure");
    const bigger = `${configYaml(ports, pushgateway.url, "ops-*", secretVolume.dir)}
body: { maxBytes: 67108864, maxDecompressedBytes: 268435456 }
overload: { maxBufferedBodyBytes: 335544320 }
`;
    configVolume.write({ "pushguard.yaml": bigger });
    await waitFor(async () => (await reloadCount("failure")) > failuresBefore, "the rejected reload");
    expect(pushguard.output()).toContain("exceed the running overload.maxBufferedBodyBytes (134217728)");
    expect((await push("ops-budget")).status).toBe(200);
    configVolume.write({ "pushguard.yaml": configYaml(ports, pushgateway.url, "ops-*", secretVolume.dir) });
  });

  it("picks up a rotated token from the Secret volume", async () => {
    secretVolume.write({ "team-a-ci": `${TOKEN_A_ROTATED}\n` });
    await waitFor(
      async () => (await push("ops-rotated", TOKEN_A_ROTATED)).status === 200,
      "the rotated token",
    );
    const old = await push("ops-old-token");
    expect(old.status).toBe(401);
    expect(old.json().code).toBe("ERR_AUTH_INVALID");
  });

  it("reloads on SIGHUP", async () => {
    const successesBefore = await reloadCount("success");
    // Write the file in place (no watch event is guaranteed to be seen before the signal).
    configVolume.write({ "pushguard.yaml": configYaml(ports, pushgateway.url, "hup-*", secretVolume.dir) });
    pushguard.child.kill("SIGHUP");
    await waitFor(async () => (await reloadCount("success")) > successesBefore, "the SIGHUP reload");
    expect((await push("hup-one", TOKEN_A_ROTATED)).status).toBe(200);
  });

  it("fails no request while the config is swapped under load", async () => {
    configVolume.write({ "pushguard.yaml": configYaml(ports, pushgateway.url, "load-*", secretVolume.dir) });
    await waitFor(async () => (await push("load-warmup", TOKEN_A_ROTATED)).status === 200, "the load config");
    const statuses: number[] = [];
    let running = true;
    const workers = Array.from({ length: 8 }, async (_, worker) => {
      let i = 0;
      while (running) {
        statuses.push((await push(`load-${worker}-${i++ % 5}`, TOKEN_A_ROTATED)).status);
      }
    });
    for (let swap = 0; swap < 6; swap++) {
      // Equivalent configs that differ in content, so every swap is a real reload.
      const jobs = swap % 2 === 0 ? "load-?*" : "load-*";
      const before = await reloadCount("success");
      configVolume.write({ "pushguard.yaml": configYaml(ports, pushgateway.url, jobs, secretVolume.dir) });
      await waitFor(async () => (await reloadCount("success")) > before, `reload ${swap + 1}`);
    }
    running = false;
    await Promise.all(workers);
    expect(statuses.length).toBeGreaterThan(50);
    expect(statuses.filter((status) => status !== 200)).toEqual([]);
  });
});
