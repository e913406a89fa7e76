import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders } from "node:http";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  buildGoClient,
  clientEnv,
  NODE_CLIENT,
  PYTHON,
  PYTHON_CLIENT,
  REPO_ROOT,
  requirePython,
  runProgram,
} from "../support/clients/index.js";
import { onlyBlock, readme } from "../support/docs.js";
import { send } from "../support/http.js";
import { PROTOBUF_CONTENT_TYPE } from "../support/protobuf.js";
import { type Pushgateway, startPushgateway } from "../support/pushgateway.js";
import { ADMIN_TOKEN, TEAM_A_TOKEN, TEAM_B_TOKEN, TOKEN_ENV } from "../support/pushguard.js";
import { type PushguardProcess, startPushguardProcess } from "./harness.js";

/**
 * The clients the README documents, each run as its own process against pushguard (run as
 * `node dist/main.js serve`) in front of a real Pushgateway; every result is checked in the
 * Pushgateway itself. The README's own examples are extracted and run with only host and port
 * replaced, so the documentation cannot rot.
 */

const CONFIG = `
upstream: { url: "{{UPSTREAM}}" }
identities:
  static:
    - { name: team-a-ci, tokenEnv: TEST_TEAM_A_TOKEN }
    - { name: team-b-ci, tokenEnv: TEST_TEAM_B_TOKEN }
    - { name: admin, tokenEnv: TEST_ADMIN_TOKEN }
teams:
  - { name: team-a, members: [team-a-ci], jobs: ["team-a-*"], actions: [push, delete] }
  - { name: team-b, members: [team-b-ci], jobs: ["team-b-*"], actions: [push, delete] }
  - { name: admins, members: [admin], jobs: ["*"], actions: [push, delete, wipe, read] }
`;

const WRONG_TOKEN = "not-a-known-token-0123456789";
const SCRATCH = join(REPO_ROOT, ".tmp", "e2e");

let pushgateway: Pushgateway;
let pushguard: PushguardProcess;
let goClient: string;

beforeAll(async () => {
  requirePython();
  mkdirSync(SCRATCH, { recursive: true });
  const building = buildGoClient(onlyBlock(readme(), "### Go (`client_golang`)", "go"));
  pushgateway = await startPushgateway();
  pushguard = await startPushguardProcess(CONFIG.replace("{{UPSTREAM}}", pushgateway.url), TOKEN_ENV);
  goClient = await building;
}, 300_000);

afterAll(async () => {
  await pushguard?.stop();
  await pushgateway?.stop();
});

beforeEach(async () => {
  expect((await send(pushgateway.url, "PUT", "/api/v1/admin/wipe")).status).toBe(202);
});

/** Groups in the Pushgateway as sorted `k=v,k=v` strings (labels sorted), for exact comparisons. */
async function groups(): Promise<string[]> {
  return (await pushgateway.groups())
    .map((labels) =>
      Object.entries(labels)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([name, value]) => `${name}=${value}`)
        .join(","),
    )
    .sort();
}

/** The value of the one sample of `name` whose labels include `labels`, from the Pushgateway's /metrics. */
async function sample(name: string, labels: Record<string, string>): Promise<number | undefined> {
  const text = await pushgateway.metricsText();
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = Object.fromEntries(
      [...(match[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((m) => [
        m[1],
        m[2],
      ]),
    );
    if (Object.entries(labels).every(([key, value]) => found[key] === value)) return Number(match[3]);
  }
  return undefined;
}

const python = (token: string | undefined, args: string[]) =>
  runProgram(PYTHON, [PYTHON_CLIENT, "--gateway", pushguard.apiAddress, ...args], { env: clientEnv(token) });

const go = (token: string | undefined, args: string[], extraEnv: NodeJS.ProcessEnv = {}) =>
  runProgram(goClient, ["-url", pushguard.apiUrl, ...args], { env: clientEnv(token, extraEnv) });

const node = (token: string | undefined, args: string[]) =>
  runProgram(process.execPath, [NODE_CLIENT, "--url", pushguard.apiUrl, ...args], { env: clientEnv(token) });

describe("Python prometheus_client", () => {
  it("push_to_gateway with basic_auth_handler stores the group", async () => {
    const result = await python(TEAM_A_TOKEN, [
      "--job=team-a-backup",
      "--op=push",
      "--auth=basic",
      "--grouping=instance=db1",
      "--value=42",
    ]);
    expect(result).toMatchObject({ code: 0, stderr: "" });
    expect(await groups()).toEqual(["instance=db1,job=team-a-backup"]);
    expect(await sample("backup_last_success_seconds", { job: "team-a-backup", instance: "db1" })).toBe(42);
  });

  it("pushadd_to_gateway with a bearer-token handler adds a family, delete_from_gateway removes the group", async () => {
    const job = ["--job=team-a-etl", "--grouping=instance=db2"];
    expect(
      (await python(TEAM_A_TOKEN, [...job, "--op=push", "--auth=bearer", "--metric=rows_read"])).code,
    ).toBe(0);
    const added = await python(TEAM_A_TOKEN, [
      ...job,
      "--op=pushadd",
      "--auth=bearer",
      "--metric=rows_written",
    ]);
    expect(added).toMatchObject({ code: 0, stderr: "" });
    expect(await sample("rows_read", { job: "team-a-etl", instance: "db2" })).toBe(1);
    expect(await sample("rows_written", { job: "team-a-etl", instance: "db2" })).toBe(1);

    const deleted = await python(TEAM_A_TOKEN, [...job, "--op=delete", "--auth=basic"]);
    expect(deleted).toMatchObject({ code: 0, stderr: "" });
    expect(await groups()).toEqual([]);
  });

  it.each([
    ["a wrong token", WRONG_TOKEN, "basic", 401, "ERR_AUTH_INVALID"],
    ["no credential", undefined, "none", 401, "ERR_AUTH_MISSING"],
    ["another team's token", TEAM_B_TOKEN, "bearer", 403, "ERR_ACL_DENIED"],
  ])("with %s the client reports the refusal and nothing is stored", async (_, token, auth, status, code) => {
    for (const op of ["push", "pushadd", "delete"]) {
      const result = await python(token, ["--job=team-a-backup", `--op=${op}`, `--auth=${auth}`]);
      expect(result.code, result.stderr).toBe(3);
      expect(result.stderr).toContain(`HTTP ${status}`);
      expect(result.stderr).toContain(code);
    }
    expect(await groups()).toEqual([]);
  });

  it("the README example runs verbatim (host replaced), with its Basic and its Bearer handler", async () => {
    const example = onlyBlock(readme(), "### Python (`prometheus_client`)", "python").replaceAll(
      "pushguard.example:9091",
      pushguard.apiAddress,
    );
    // The README defines bearer_handler without calling it: call it the same way, for another job.
    const bearerCall = `\npush_to_gateway("${pushguard.apiAddress}", job="team-a-bearer", registry=registry, handler=bearer_handler)\n`;
    const file = join(SCRATCH, `readme-example-${process.pid}.py`);
    writeFileSync(file, example + bearerCall);
    try {
      const before = Date.now() / 1000;
      const result = await runProgram(PYTHON, [file], { env: clientEnv(TEAM_A_TOKEN) });
      expect(result).toMatchObject({ code: 0, stderr: "" });
      expect(await groups()).toEqual(["job=team-a-backup", "job=team-a-bearer"]);
      const value = await sample("backup_last_success_seconds", { job: "team-a-backup" });
      expect(value).toBeGreaterThanOrEqual(Math.floor(before));

      const denied = await runProgram(PYTHON, [file], { env: clientEnv(TEAM_B_TOKEN) });
      expect(denied.code).not.toBe(0);
      expect(denied.stderr).toMatch(/HTTP Error 403/);
      // The client's exception names only the status; the README's except block shows why.
      expect(denied.stderr).toContain('"code":"ERR_ACL_DENIED"');
      expect(denied.stderr).toContain("may not push job");
    } finally {
      rmSync(file, { force: true });
    }
  });
});

describe("Go client_golang push", () => {
  it("sends delimited protobuf bodies with Basic auth (checked on a recording server)", async () => {
    const seen: Array<{ method: string; url: string; headers: IncomingHttpHeaders }> = [];
    const recorder = createServer((req, res) => {
      seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers });
      req.resume();
      req.on("end", () => res.writeHead(200).end());
    });
    await new Promise<void>((resolve) => recorder.listen(0, "127.0.0.1", resolve));
    const { port } = recorder.address() as { port: number };
    try {
      const result = await runProgram(
        goClient,
        ["-url", `http://127.0.0.1:${port}`, "-job", "team-a-backup", "-grouping", "instance=db1"],
        { env: clientEnv(TEAM_A_TOKEN) },
      );
      expect(result).toMatchObject({ code: 0, stderr: "" });
    } finally {
      recorder.close();
    }
    expect(seen).toHaveLength(1);
    expect(seen[0]?.method).toBe("PUT");
    expect(seen[0]?.url).toBe("/metrics/job/team-a-backup/instance/db1");
    expect(seen[0]?.headers["content-type"]).toBe(PROTOBUF_CONTENT_TYPE);
    expect(seen[0]?.headers.authorization).toBe(
      `Basic ${Buffer.from(`ci:${TEAM_A_TOKEN}`).toString("base64")}`,
    );
  });

  it("Push (PUT), Add (POST) and Delete through pushguard land in the Pushgateway", async () => {
    const group = ["-job", "team-a-backup", "-grouping", "instance=db1"];
    expect(await go(TEAM_A_TOKEN, [...group, "-op", "push", "-value", "7"])).toMatchObject({
      code: 0,
      stderr: "",
    });
    expect(await groups()).toEqual(["instance=db1,job=team-a-backup"]);
    expect(await sample("backup_last_success_seconds", { job: "team-a-backup", instance: "db1" })).toBe(7);

    const added = await go(TEAM_A_TOKEN, [
      ...group,
      "-op",
      "add",
      "-metric",
      "backup_bytes",
      "-value",
      "1024",
    ]);
    expect(added).toMatchObject({ code: 0, stderr: "" });
    expect(await sample("backup_last_success_seconds", { job: "team-a-backup", instance: "db1" })).toBe(7);
    expect(await sample("backup_bytes", { job: "team-a-backup", instance: "db1" })).toBe(1024);

    expect(await go(TEAM_A_TOKEN, [...group, "-op", "delete"])).toMatchObject({ code: 0, stderr: "" });
    expect(await groups()).toEqual([]);
  });

  it.each([
    ["a wrong token", WRONG_TOKEN, 401, "ERR_AUTH_INVALID"],
    ["no credential", undefined, 401, "ERR_AUTH_MISSING"],
    ["another team's token", TEAM_B_TOKEN, 403, "ERR_ACL_DENIED"],
  ])("with %s the client reports the refusal and nothing is stored", async (_, token, status, code) => {
    for (const op of ["push", "add", "delete"]) {
      const result = await go(token, ["-job", "team-a-backup", "-op", op]);
      expect(result.code, result.stderr).toBe(1);
      expect(result.stderr).toMatch(
        new RegExp(`unexpected status code ${status} while (pushing to|deleting)`),
      );
      expect(result.stderr).toContain(code);
    }
    expect(await groups()).toEqual([]);
  });

  it("the README example compiles and runs verbatim (pushguard.example:9091 dialed locally)", async () => {
    const env = { PUSHGUARD_ADDR: pushguard.apiAddress };
    const result = await go(TEAM_A_TOKEN, ["-op", "readme"], env);
    expect(result).toMatchObject({ code: 0, stderr: "" });
    expect(await groups()).toEqual(["instance=db1,job=team-a-backup"]);
    const denied = await go(WRONG_TOKEN, ["-op", "readme"], env);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toContain("unexpected status code 401");
  });
});

describe("Node prom-client Pushgateway", () => {
  it("push, pushAdd and delete with an Authorization header land in the Pushgateway", async () => {
    const group = ["--job=team-b-report", "--grouping=instance=web1"];
    expect(await node(TEAM_B_TOKEN, [...group, "--op=push", "--value=3"])).toMatchObject({
      code: 0,
      stderr: "",
    });
    expect(await groups()).toEqual(["instance=web1,job=team-b-report"]);
    expect(await sample("backup_last_success_seconds", { job: "team-b-report", instance: "web1" })).toBe(3);

    const added = await node(TEAM_B_TOKEN, [...group, "--op=pushAdd", "--metric=report_rows", "--value=9"]);
    expect(added).toMatchObject({ code: 0, stderr: "" });
    expect(await sample("backup_last_success_seconds", { job: "team-b-report", instance: "web1" })).toBe(3);
    expect(await sample("report_rows", { job: "team-b-report", instance: "web1" })).toBe(9);

    expect(await node(TEAM_B_TOKEN, [...group, "--op=delete"])).toMatchObject({ code: 0, stderr: "" });
    expect(await groups()).toEqual([]);
  });

  it.each([
    ["a wrong token", WRONG_TOKEN, 401, "ERR_AUTH_INVALID"],
    ["no credential", undefined, 401, "ERR_AUTH_MISSING"],
    ["another team's token", TEAM_A_TOKEN, 403, "ERR_ACL_DENIED"],
  ])("with %s the client reports the refusal and nothing is stored", async (_, token, status, code) => {
    for (const op of ["push", "pushAdd", "delete"]) {
      const result = await node(token, ["--job=team-b-report", `--op=${op}`]);
      expect(result.code, result.stderr).toBe(1);
      expect(result.stderr).toContain(`push failed with status ${status}`);
      expect(result.stderr).toContain(code);
    }
    expect(await groups()).toEqual([]);
  });

  it("the README example runs verbatim (host replaced)", async () => {
    const example = onlyBlock(readme(), "### Node (`prom-client`)", "js").replaceAll(
      "http://pushguard.example:9091",
      pushguard.apiUrl,
    );
    // Inside the repository, so `import "prom-client"` resolves to the project's dependency.
    const file = join(SCRATCH, `readme-example-${process.pid}.mjs`);
    writeFileSync(file, example);
    try {
      const result = await runProgram(process.execPath, [file], { env: clientEnv(TEAM_A_TOKEN) });
      expect(result).toMatchObject({ code: 0, stderr: "" });
      expect(await groups()).toEqual(["instance=db1,job=team-a-backup"]);
      const denied = await runProgram(process.execPath, [file], { env: clientEnv(WRONG_TOKEN) });
      expect(denied.code).not.toBe(0);
      expect(denied.stderr).toContain("push failed with status 401");
    } finally {
      rmSync(file, { force: true });
    }
  });
});

describe("curl, as the README shows it", () => {
  const bash = (script: string, env: NodeJS.ProcessEnv) =>
    runProgram("/bin/bash", ["-o", "pipefail", "-c", script], { env });

  it('the "Pushing through pushguard" curl example works with only a token (and fails without one)', async () => {
    const block = onlyBlock(readme(), "### curl", "sh").replaceAll("http://127.0.0.1:9091", pushguard.apiUrl);
    const ok = await bash(block, clientEnv(TEAM_A_TOKEN));
    expect(ok, ok.stderr).toMatchObject({ code: 0 });
    expect(await groups()).toEqual(["instance=db1,job=team-a-backup"]);
    expect(await sample("backup_duration_seconds", { job: "team-a-backup", instance: "db1" })).toBe(42.5);

    expect((await send(pushgateway.url, "PUT", "/api/v1/admin/wipe")).status).toBe(202);
    const denied = await bash(block, clientEnv(WRONG_TOKEN));
    expect(denied.code).toBe(22); // --fail-with-body: HTTP >= 400
    expect(denied.stdout).toContain('"code":"ERR_AUTH_INVALID"');
    expect(denied.stdout).not.toContain(WRONG_TOKEN);
    expect(await groups()).toEqual([]);
    // The admin token pushes anywhere, the same way.
    expect((await bash(block, clientEnv(ADMIN_TOKEN))).code).toBe(0);
  });
});
