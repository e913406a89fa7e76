import { type ChildProcess, execFile, spawn } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../support/docs.js";
import { freePort } from "../support/processes.js";

/**
 * `npm run demo` (scripts/demo.sh) as a newcomer meets it: a port clash is reported before
 * anything is installed or built, dist/ is rebuilt only when a source changed, and two demos on
 * different ports each keep their own working directory, so neither reconfigures the other.
 */

const scratch = mkdtempSync(join(tmpdir(), "pushguard-demo-test-"));
const started: ChildProcess[] = [];

afterAll(async () => {
  for (const demo of started) {
    if (demo.pid === undefined || demo.exitCode !== null) continue;
    const exited = new Promise((resolve) => demo.once("exit", resolve));
    process.kill(-demo.pid, "SIGTERM");
    await Promise.race([exited, sleep(10_000)]);
  }
  rmSync(scratch, { recursive: true, force: true });
});

/** A directory of stand-ins for `names` that record each call in `calls.log` and fail. */
function recordingCommands(names: readonly string[]): { dir: string; calls: () => string[] } {
  const dir = mkdtempSync(join(scratch, "bin-"));
  const log = join(dir, "calls.log");
  for (const name of names) {
    const file = join(dir, name);
    writeFileSync(
      file,
      `#!/bin/sh\necho "${name} $*" >> '${log}'\n${name === "npx" ? "mkdir -p dist && touch dist/main.js" : "exit 1"}\n`,
    );
    chmodSync(file, 0o755);
  }
  return {
    dir,
    calls: () => (existsSync(log) ? readFileSync(log, "utf8").trim().split("\n").filter(Boolean) : []),
  };
}

function runScript(
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(
      "bash",
      args,
      { cwd: options.cwd ?? REPO_ROOT, env: { ...process.env, ...options.env }, timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
        resolve({ code, output: stdout + stderr });
      },
    );
  });
}

interface DemoPorts {
  readonly pushgateway: number;
  readonly api: number;
  readonly metrics: number;
  readonly oidc: number;
}

async function demoPorts(): Promise<DemoPorts> {
  return {
    pushgateway: await freePort(),
    api: await freePort(),
    metrics: await freePort(),
    oidc: await freePort(),
  };
}

const portEnv = (ports: DemoPorts) => ({
  PUSHGATEWAY_PORT: String(ports.pushgateway),
  PUSHGUARD_PORT: String(ports.api),
  PUSHGUARD_METRICS_PORT: String(ports.metrics),
  OIDC_PORT: String(ports.oidc),
});

const workdir = (ports: DemoPorts) =>
  join(REPO_ROOT, ".tmp/demo", `${ports.api}-${ports.metrics}-${ports.pushgateway}-${ports.oidc}`);

async function startDemo(ports: DemoPorts): Promise<void> {
  const demo = spawn("bash", ["scripts/demo.sh"], {
    cwd: REPO_ROOT,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...portEnv(ports) },
  });
  started.push(demo);
  let output = "";
  demo.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  demo.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  const deadline = Date.now() + 120_000;
  while (!output.includes("pushguard demo is running")) {
    if (demo.exitCode !== null || Date.now() > deadline) {
      throw new Error(`the demo did not start (exit ${demo.exitCode}):\n${output}`);
    }
    await sleep(100);
  }
}

/** team-c's OIDC flow against one demo: a token from its provider, a push to its pushguard. */
async function oidcPush(ports: DemoPorts): Promise<number> {
  const token = await fetch(`http://127.0.0.1:${ports.oidc}/token`, {
    method: "POST",
    headers: {
      authorization: `Basic ${Buffer.from("demo-team-c:demo-team-c-secret").toString("base64")}`,
      "content-type": "application/x-www-form-urlencoded",
    },
    body: "grant_type=client_credentials",
  });
  const { access_token } = (await token.json()) as { access_token: string };
  const push = await fetch(`http://127.0.0.1:${ports.api}/metrics/job/team-c-report`, {
    method: "POST",
    headers: { authorization: `Bearer ${access_token}` },
    body: "report_rows 1234\n",
  });
  await push.arrayBuffer();
  return push.status;
}

describe("npm run demo", () => {
  it("reports a port in use before it installs or builds anything", async () => {
    const ports = await demoPorts();
    const busy: Server = createServer();
    await new Promise<void>((resolve) => busy.listen(ports.metrics, "127.0.0.1", resolve));
    const shims = recordingCommands(["npx", "npm", "apt-get", "sudo", "tsc"]);
    try {
      const startedAt = Date.now();
      const result = await runScript(["scripts/demo.sh"], {
        env: { ...portEnv(ports), PATH: `${shims.dir}:${process.env.PATH}` },
      });
      expect(result.code, result.output).toBe(1);
      expect(result.output).toContain(`port ${ports.metrics} is already in use`);
      expect(shims.calls()).toEqual([]);
      expect(existsSync(workdir(ports))).toBe(false);
      expect(Date.now() - startedAt).toBeLessThan(5_000);
    } finally {
      busy.close();
    }
  });

  it("refuses ports that are not numbers or not distinct, before anything else", async () => {
    const ports = await demoPorts();
    const shims = recordingCommands(["npx", "npm", "apt-get", "sudo"]);
    const env = { PATH: `${shims.dir}:${process.env.PATH}` };
    const same = await runScript(["scripts/demo.sh"], {
      env: { ...portEnv(ports), PUSHGUARD_METRICS_PORT: String(ports.api), ...env },
    });
    expect(same.code).toBe(1);
    expect(same.output).toContain("the four ports must differ");
    const word = await runScript(["scripts/demo.sh"], {
      env: { ...portEnv(ports), OIDC_PORT: "http", ...env },
    });
    expect(word.code).toBe(1);
    expect(word.output).toContain('"http" is not a port number');
    expect(shims.calls()).toEqual([]);
  });

  it("rebuilds dist/ only when a source changed since the last build", async () => {
    const project = mkdtempSync(join(scratch, "project-"));
    mkdirSync(join(project, "src"));
    for (const file of ["src/main.ts", "tsconfig.json", "tsconfig.build.json", "package-lock.json"]) {
      writeFileSync(join(project, file), "{}\n");
    }
    const shims = recordingCommands(["npx"]);
    const ensureBuild = () =>
      runScript(["-c", `source '${join(REPO_ROOT, "scripts/lib/ensure.sh")}' && ensure_build`], {
        cwd: project,
        env: { PATH: `${shims.dir}:${process.env.PATH}` },
      });
    expect((await ensureBuild()).code).toBe(0);
    expect(shims.calls()).toEqual(["npx tsc -p tsconfig.build.json"]);
    expect((await ensureBuild()).code).toBe(0);
    expect(shims.calls()).toHaveLength(1);
    const later = new Date(Date.now() + 5_000);
    utimesSync(join(project, "src/main.ts"), later, later);
    expect((await ensureBuild()).code).toBe(0);
    expect(shims.calls()).toHaveLength(2);
  });

  it("runs a second demo on other ports without touching the first one's config", async () => {
    const first = await demoPorts();
    const second = await demoPorts();
    await startDemo(first);
    const firstConfig = readFileSync(join(workdir(first), "demo.yaml"), "utf8");
    expect(await oidcPush(first)).toBe(202);

    await startDemo(second);
    expect(readFileSync(join(workdir(first), "demo.yaml"), "utf8")).toBe(firstConfig);
    expect(readFileSync(join(workdir(second), "demo.yaml"), "utf8")).toContain(`127.0.0.1:${second.oidc}`);
    // The first pushguard would have reloaded a shared config and trusted the second's issuer.
    await sleep(1_500);
    expect(await oidcPush(first)).toBe(202);
    expect(await oidcPush(second)).toBe(202);
  }, 180_000);
});
