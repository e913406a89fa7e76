import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { type AddressInfo, connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, type RunningProcess, startProcess, waitForHttp } from "../support/processes.js";
import { type Pushgateway, startPushgateway } from "../support/pushgateway.js";

const ROOT = new URL("../../", import.meta.url).pathname;
const MAIN = join(ROOT, "dist/main.js");
const VERSION = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;

const TEAM_A_TOKEN = "cli-test-team-a-token-5f2c9e1d";
const ADMIN_TOKEN = "cli-test-admin-token-8a7b6c5d";
const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("hex");

const dir = mkdtempSync(join(tmpdir(), "pushguard-cli-"));

/** The environment every child gets: the test's own, minus any PUSHGUARD_CONFIG it may carry. */
function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  if (!("PUSHGUARD_CONFIG" in extra)) delete env.PUSHGUARD_CONFIG;
  return env;
}

function writeConfig(name: string, yaml: string): string {
  const path = join(dir, name);
  writeFileSync(path, yaml);
  return path;
}

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node dist/main.js ...args`, feeding `input` on stdin (then EOF). */
function runCli(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; input?: string } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { env: options.env ?? childEnv() });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(options.input ?? "");
  });
}

function validConfig(apiPort: number, metricsPort: number, upstreamUrl: string, extra = ""): string {
  const tokenFile = join(dir, "team-a.token");
  writeFileSync(tokenFile, `${TEAM_A_TOKEN}\n`);
  return `
listen:
  api: "127.0.0.1:${apiPort}"
  metrics: "127.0.0.1:${metricsPort}"
upstream:
  url: "${upstreamUrl}"
identities:
  static:
    - { name: team-a-ci, tokenFile: "${tokenFile}" }
    - { name: admin, sha256: "${sha256(ADMIN_TOKEN)}" }
    - { name: dashboard, tokenEnv: CLI_TEST_DASHBOARD_TOKEN }
teams:
  - { name: team-a, members: [team-a-ci], jobs: ["team-a-*"], actions: [push, delete] }
  - { name: admins, members: [admin], jobs: ["*"], actions: [push, delete, wipe, read] }
  - { name: dashboards, members: [dashboard], actions: [read] }
log:
  level: debug
${extra}`;
}

const DASHBOARD_ENV = { CLI_TEST_DASHBOARD_TOKEN: "cli-test-dashboard-token-1234" };

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("pushguard check", () => {
  it("summarizes rate limits, overload protection and the janitor of the demo config", async () => {
    const result = await runCli(["check", "--config", "examples/demo.yaml"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("rate limits (memory, per replica):");
    expect(result.stdout).toContain("writes per team (team team-b only): 1/s, burst 10");
    expect(result.stdout).toContain("store index: on, every push checked against every stored group");
    expect(result.stdout).toContain("failed authentications per client address: 1/s, burst 30");
    expect(result.stdout).toContain("overload: at most 64 upstream requests at once");
    expect(result.stdout).toContain("janitor: off (pushed groups never expire)");
    expect(result.stdout).toContain("issuers: oidc demo-idp (http://127.0.0.1:9093)");
  });

  it("prints a summary of a valid config and exits 0", async () => {
    const path = writeConfig("valid.yaml", validConfig(19391, 19392, "http://127.0.0.1:9191"));
    const result = await runCli(["check", "--config", path], { env: childEnv(DASHBOARD_ENV) });
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const lines = result.stdout.split("\n");
    expect(result.stdout).toContain(path);
    expect(lines.find((line) => line.startsWith("listeners:"))).toMatch(
      /127\.0\.0\.1:19391.*127\.0\.0\.1:19392/,
    );
    expect(lines.find((line) => line.startsWith("upstream:"))).toContain("http://127.0.0.1:9191");
    const identities = lines.find((line) => line.startsWith("identities:")) ?? "";
    for (const name of ["team-a-ci", "admin", "dashboard"]) expect(identities).toContain(name);
    const team = (name: string) => lines.find((line) => line.trim().startsWith(`${name}:`)) ?? "";
    expect(team("team-a")).toMatch(/push, delete/);
    expect(team("team-a")).toContain("team-a-*");
    expect(team("team-a")).toContain("team-a-ci");
    expect(team("admins")).toMatch(/push, delete, wipe, read/);
    expect(team("dashboards")).toMatch(/read/);
    expect(team("dashboards")).not.toMatch(/push|delete|wipe/);
    expect(lines.find((line) => line.startsWith("anonymous:"))).not.toContain("read");
  });

  it("describes issuers, selector members and label rules in readable words", async () => {
    const path = writeConfig(
      "selectors.yaml",
      `upstream: { url: "http://127.0.0.1:9191" }
identities:
  oidc:
    - { name: corp-sso, issuer: "https://sso.example.com", audiences: [pushguard] }
  kubernetes:
    - { name: cluster, audiences: [pushguard] }
teams:
  - name: batch
    members: [{ issuer: cluster, namespace: "batch-*" }, { issuer: corp-sso, group: sre }]
    jobs: ["batch-*"]
    actions: [push]
    groupingKey: { inject: { team: batch } }
`,
    );
    const result = await runCli(["check", "--config", path]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).not.toContain("[object Object]");
    expect(result.stdout).toContain("corp-sso");
    expect(result.stdout).toContain("https://sso.example.com");
    const batch = result.stdout.split("\n").find((line) => line.trim().startsWith("batch:")) ?? "";
    expect(batch).toContain("namespace=batch-*");
    expect(batch).toContain("group=sre");
    expect(batch).toContain("team=batch");
  });

  it("warns, still valid, about a job pattern that does not keep namespaces apart", async () => {
    const path = writeConfig(
      "ambiguous.yaml",
      `upstream: { url: "http://127.0.0.1:9191" }
identities:
  kubernetes:
    - { name: cluster, audiences: [pushguard] }
teams:
  - { name: namespaces, members: [{ issuer: cluster, namespace: "*" }], jobs: ["{namespace}-*"], actions: [push] }
`,
    );
    const result = await runCli(["check", "--config", path]);
    expect(result.code).toBe(0);
    const warnings = result.stdout.slice(result.stdout.indexOf("warnings:"));
    expect(warnings).toMatch(/^warnings:\n {2}- teams\.0\.jobs\.0: "\{namespace\}-\*" .*"\{namespace\}_\*"/);
  });

  it("never prints a token or its hash", async () => {
    const path = writeConfig("valid-secrets.yaml", validConfig(19391, 19392, "http://127.0.0.1:9191"));
    const result = await runCli(["check", "--config", path], { env: childEnv(DASHBOARD_ENV) });
    expect(result.code).toBe(0);
    for (const secret of [
      TEAM_A_TOKEN,
      ADMIN_TOKEN,
      DASHBOARD_ENV.CLI_TEST_DASHBOARD_TOKEN,
      sha256(ADMIN_TOKEN),
    ]) {
      expect(result.stdout).not.toContain(secret);
    }
  });

  it("lists every problem's key path on stderr and exits 1", async () => {
    const path = writeConfig(
      "invalid.yaml",
      `
listen: { api: "nowhere" }
upstream: { url: "ftp://127.0.0.1:9191" }
identities:
  static:
    - { name: team-a-ci, sha256: "${sha256(TEAM_A_TOKEN)}" }
    - { name: team-b-ci }
teams:
  - { name: team-a, members: [nobody], jobs: ["team-a-*"], actions: [push] }
body: { maxBytes: -1 }
`,
    );
    const result = await runCli(["check", "--config", path]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain(path);
    for (const key of [
      "listen.api",
      "upstream.url",
      "identities.static.1",
      "teams.0.members.0",
      "body.maxBytes",
    ]) {
      expect(result.stderr).toContain(key);
    }
  });

  it("names a missing secret file and exits 1", async () => {
    const missing = join(dir, "missing.token");
    const path = writeConfig(
      "missing-secret.yaml",
      `upstream: { url: "http://127.0.0.1:9191" }
identities: { static: [{ name: a, tokenFile: "${missing}" }] }
teams: [{ name: t, members: [a], jobs: [x], actions: [push] }]
`,
    );
    const result = await runCli(["check", "--config", path]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("identities.static.0");
    expect(result.stderr).toContain(missing);
  });

  it("exits 1 when the file does not exist", async () => {
    const result = await runCli(["check", "--config", join(dir, "absent.yaml")]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("absent.yaml");
  });

  it("exits 1 with no --config and no PUSHGUARD_CONFIG", async () => {
    const result = await runCli(["check"]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain("PUSHGUARD_CONFIG");
  });

  it("reads the config named by PUSHGUARD_CONFIG", async () => {
    const path = writeConfig("from-env.yaml", validConfig(19391, 19392, "http://127.0.0.1:9191"));
    const result = await runCli(["check"], { env: childEnv({ ...DASHBOARD_ENV, PUSHGUARD_CONFIG: path }) });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(path);
  });

  it("prefers --config over PUSHGUARD_CONFIG", async () => {
    const valid = writeConfig("flag.yaml", validConfig(19391, 19392, "http://127.0.0.1:9191"));
    const invalid = writeConfig("env-invalid.yaml", "upstream: { url: ftp://x }\n");
    const result = await runCli(["check", "--config", valid], {
      env: childEnv({ ...DASHBOARD_ENV, PUSHGUARD_CONFIG: invalid }),
    });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(valid);
  });
});

describe("pushguard serve refuses to start", () => {
  it("without a config", async () => {
    const result = await runCli(["serve"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("PUSHGUARD_CONFIG");
  });

  it("with an invalid config, binding nothing", async () => {
    const [api, metrics] = [await freePort(), await freePort()];
    const path = writeConfig(
      "serve-invalid.yaml",
      `listen: { api: "127.0.0.1:${api}", metrics: "127.0.0.1:${metrics}" }
upstream: { url: "http://127.0.0.1:9191" }
teams: []
`,
    );
    const result = await runCli(["serve", "--config", path]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("teams");
    expect(await refusesConnections(api)).toBe(true);
    expect(await refusesConnections(metrics)).toBe(true);
  });
});

describe("pushguard serve fails fast", () => {
  it("exits 1 instead of hanging half-started when the metrics port is taken", async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const { port: taken } = blocker.address() as AddressInfo;
    try {
      const api = await freePort();
      const path = writeConfig("port-taken.yaml", validConfig(api, taken, "http://127.0.0.1:9191"));
      const started = Date.now();
      const result = await runCli(["serve", "--config", path], { env: childEnv(DASHBOARD_ENV) });
      expect(result.code).toBe(1);
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(result.stderr).toContain("EADDRINUSE");
      expect(await refusesConnections(api)).toBe(true);
    } finally {
      blocker.close();
    }
  });
});

describe("pushguard hash-token", () => {
  const expected = `${sha256(TEAM_A_TOKEN)}\n`;

  it.each([
    ["without a trailing newline (printf %s)", TEAM_A_TOKEN],
    ["with a trailing newline (echo)", `${TEAM_A_TOKEN}\n`],
    ["with a trailing CRLF", `${TEAM_A_TOKEN}\r\n`],
  ])("prints the SHA-256 of a token read %s", async (_how, input) => {
    const result = await runCli(["hash-token"], { input });
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(expected);
    expect(result.stderr).toBe("");
  });

  it("prints a hash the config accepts", async () => {
    const result = await runCli(["hash-token"], { input: ADMIN_TOKEN });
    expect(result.stdout.trim()).toBe(sha256(ADMIN_TOKEN));
  });

  it("warns about a short token but still hashes it", async () => {
    const result = await runCli(["hash-token"], { input: "short" });
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`${sha256("short")}\n`);
    expect(result.stderr).not.toBe("");
    expect(result.stderr).not.toContain("short\n");
  });

  it.each([
    ["empty", ""],
    ["only a newline", "\n"],
  ])("exits 1 on %s stdin", async (_what, input) => {
    const result = await runCli(["hash-token"], { input });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
  });
});

describe("pushguard --version and --help", () => {
  it.each([["--version"], ["-v"]])("%s prints the package version", async (flag) => {
    const result = await runCli([flag]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`${VERSION}\n`);
  });

  it.each([["--help"], ["-h"], ["help"]])("%s prints usage naming every command", async (flag) => {
    const result = await runCli([flag]);
    expect(result.code).toBe(0);
    for (const command of ["serve", "check", "hash-token", "--config"])
      expect(result.stdout).toContain(command);
  });

  it("prints usage and exits 1 without a command", async () => {
    const result = await runCli([]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain("hash-token");
  });

  it.each([["frobnicate"], ["--no-such-flag"]])("exits 1 on %s", async (arg) => {
    const result = await runCli([arg]);
    expect(result.code).toBe(1);
    expect(result.stderr).not.toBe("");
  });
});

/** Whether a TCP connection to 127.0.0.1:port is refused (nothing listening). */
function refusesConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code === "ECONNREFUSED"));
  });
}

interface PushResult {
  status: number;
  body: string;
}

/** One request on its own connection; resolves with the status, or rejects if the connection dies. */
function push(url: string, job: string, token: string, body: string): Promise<PushResult> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: hostname,
        port,
        method: "PUT",
        path: `/metrics/job/${job}`,
        headers: { authorization: `Bearer ${token}`, "content-type": "text/plain; version=0.0.4" },
        agent: false,
      },
      (res) => {
        let text = "";
        res.on("data", (chunk: Buffer) => {
          text += chunk.toString();
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

async function waitFor(what: string, condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return;
    await sleep(25);
  }
  throw new Error(`timed out waiting for ${what}`);
}

function exited(running: RunningProcess): Promise<number | null> {
  const { child } = running;
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}

describe("pushguard serve: graceful shutdown against a real Pushgateway", () => {
  let pg: Pushgateway;

  beforeAll(async () => {
    pg = await startPushgateway();
  });

  afterAll(async () => {
    pg.process.child.kill("SIGCONT");
    await pg.stop();
  });

  /** Starts `node dist/main.js serve` on free ports and waits until it reports ready. */
  async function startServe(name: string, extra = "") {
    const [apiPort, metricsPort] = [await freePort(), await freePort()];
    const path = writeConfig(name, validConfig(apiPort, metricsPort, pg.url, extra));
    const running = startProcess(
      process.execPath,
      [MAIN, "serve", "--config", path],
      childEnv(DASHBOARD_ENV),
    );
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    const metricsUrl = `http://127.0.0.1:${metricsPort}`;
    await waitForHttp(`${metricsUrl}/readyz`, running);
    return { running, apiPort, apiUrl, metricsUrl };
  }

  /** Resolves once pushguard counts `count` requests in flight. */
  async function waitForInFlight(metricsUrl: string, count: number): Promise<void> {
    await waitFor(`${count} request(s) in flight`, async () => {
      const text = await (await fetch(`${metricsUrl}/metrics`)).text();
      return new RegExp(`^pushguard_in_flight_requests ${count}$`, "m").test(text);
    });
  }

  it("finishes the push in flight, refuses new connections, lands the group and exits 0", async () => {
    const { running, apiPort, apiUrl, metricsUrl } = await startServe("shutdown.yaml");
    try {
      // Warm-up: a push through pushguard works, and wrong credentials are refused.
      expect((await push(apiUrl, "team-a-warmup", TEAM_A_TOKEN, "warmup_metric 1\n")).status).toBe(200);
      expect((await push(apiUrl, "team-a-warmup", "cli-test-wrong-token-0000", "x 1\n")).status).toBe(401);

      pg.process.child.kill("SIGSTOP");
      const inFlight = push(apiUrl, "team-a-shutdown", TEAM_A_TOKEN, "shutdown_metric 42\n");
      inFlight.catch(() => {}); // observed below; avoid an unhandled rejection meanwhile
      await waitForInFlight(metricsUrl, 1);
      await sleep(200); // let the body guard pass the request on to the (stopped) upstream

      running.child.kill("SIGTERM");
      await waitFor("the API listener to close", () => refusesConnections(apiPort), 5_000);
      expect(running.child.exitCode).toBeNull(); // still draining the push

      pg.process.child.kill("SIGCONT");
      const result = await inFlight;
      expect(result.status).toBe(200);
      expect(await exited(running)).toBe(0);

      const groups = await pg.groups();
      expect(groups).toContainEqual(expect.objectContaining({ job: "team-a-shutdown" }));
      expect(await pg.metricsText()).toMatch(/^shutdown_metric\{.*job="team-a-shutdown".*\} 42$/m);

      const output = running.output();
      expect(output).toContain("team-a-shutdown"); // the audit line is there...
      for (const secret of [TEAM_A_TOKEN, ADMIN_TOKEN, "cli-test-wrong-token-0000", sha256(TEAM_A_TOKEN)]) {
        expect(output).not.toContain(secret); // ...and no credential
      }
    } finally {
      pg.process.child.kill("SIGCONT");
      await running.stop();
    }
  });

  it("exits 0 within bounded time when the grace period elapses with the upstream stopped", async () => {
    const { running, apiUrl, metricsUrl } = await startServe(
      "shutdown-grace.yaml",
      "server: { shutdownGraceMs: 300 }",
    );
    try {
      pg.process.child.kill("SIGSTOP");
      const inFlight = push(apiUrl, "team-a-stuck", TEAM_A_TOKEN, "stuck_metric 1\n").then(
        (result) => result.status,
        () => "connection closed",
      );
      await waitForInFlight(metricsUrl, 1);
      await sleep(200);

      const stopping = Date.now();
      running.child.kill("SIGTERM");
      const code = await Promise.race([exited(running), sleep(5_000).then(() => "still running")]);
      const tookMs = Date.now() - stopping;
      expect(code).toBe(0);
      expect(tookMs).toBeGreaterThanOrEqual(250);
      expect(tookMs).toBeLessThan(3_000);
      // The client was cut off (or answered) rather than left hanging.
      expect(await Promise.race([inFlight, sleep(2_000).then(() => "hanging")])).not.toBe("hanging");
    } finally {
      pg.process.child.kill("SIGCONT");
      await running.stop();
    }
  });

  it("also shuts down gracefully on SIGINT", async () => {
    const { running, apiPort } = await startServe("shutdown-int.yaml");
    running.child.kill("SIGINT");
    expect(await exited(running)).toBe(0);
    expect(await refusesConnections(apiPort)).toBe(true);
  });
});
