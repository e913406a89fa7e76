import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CodeBlock,
  codeBlocks,
  documentationPages,
  REPO_ROOT,
  readme,
  readPage,
  type ShellExample,
  section,
  shellExamples,
} from "../support/docs.js";
import { freePort } from "../support/processes.js";
import { settle, snapshot } from "../support/pushgateway.js";

/**
 * Every shell block of the README and of docs/ runs here, in page order, against one demo that
 * the Quick start's own `npm run demo` starts on free ports (conventions: test/support/docs.ts).
 * Only the demo's addresses are replaced.
 */

const DEFAULT_PORTS = { pushgateway: 9191, api: 9091, metrics: 9092, oidc: 9093 };
const SHELL_INFOS = new Set(["bash", "shell", "console", "zsh", "shell-session", "terminal"]);

let ports: typeof DEFAULT_PORTS;
let demo: ChildProcess | undefined;
let demoOutput = "";
let scratch: string;

/** The Quick start's first block: `git clone … && cd pushguard`, then `npm run demo`. */
function quickStartCommands(): { clone: string; start: string } {
  const block = codeBlocks(section(readme(), "## Quick start")).find((b) => b.info === "sh");
  const lines = (block?.body ?? "").trim().split("\n");
  expect(lines, "the Quick start begins with the clone and `npm run demo`").toHaveLength(2);
  return { clone: lines[0] as string, start: lines[1] as string };
}

/** The demo's addresses as the docs write them, replaced by this run's. */
function localize(text: string): string {
  const defaults = `${DEFAULT_PORTS.api}-${DEFAULT_PORTS.metrics}-${DEFAULT_PORTS.pushgateway}-${DEFAULT_PORTS.oidc}`;
  return text
    .replaceAll(
      `.tmp/demo/${defaults}`,
      `.tmp/demo/${ports.api}-${ports.metrics}-${ports.pushgateway}-${ports.oidc}`,
    )
    .replaceAll(`127.0.0.1:${DEFAULT_PORTS.api}`, `127.0.0.1:${ports.api}`)
    .replaceAll(`127.0.0.1:${DEFAULT_PORTS.metrics}`, `127.0.0.1:${ports.metrics}`)
    .replaceAll(`127.0.0.1:${DEFAULT_PORTS.oidc}`, `127.0.0.1:${ports.oidc}`)
    .replaceAll(`127.0.0.1:${DEFAULT_PORTS.pushgateway}`, `127.0.0.1:${ports.pushgateway}`);
}

const pushgatewayUrl = () => `http://127.0.0.1:${ports.pushgateway}`;

beforeAll(async () => {
  ports = {
    pushgateway: await freePort(),
    api: await freePort(),
    metrics: await freePort(),
    oidc: await freePort(),
  };
  scratch = mkdtempSync(join(tmpdir(), "pushguard-docs-"));
  const { clone, start } = quickStartCommands();
  // This checkout is the clone; the command that starts the demo runs as written.
  expect(clone).toMatch(/^git clone https:\/\/\S+ && cd pushguard$/);
  expect(start).toBe("npm run demo");
  demo = spawn("bash", ["-c", start], {
    cwd: REPO_ROOT,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      ...process.env,
      PUSHGATEWAY_PORT: String(ports.pushgateway),
      PUSHGUARD_PORT: String(ports.api),
      PUSHGUARD_METRICS_PORT: String(ports.metrics),
      OIDC_PORT: String(ports.oidc),
    },
  });
  demo.stdout?.on("data", (chunk: Buffer) => {
    demoOutput += chunk.toString();
  });
  demo.stderr?.on("data", (chunk: Buffer) => {
    demoOutput += chunk.toString();
  });
  const deadline = Date.now() + 150_000;
  while (!demoOutput.includes("pushguard demo is running")) {
    if (demo.exitCode !== null || Date.now() > deadline) {
      throw new Error(`npm run demo did not start (exit ${demo.exitCode}):\n${demoOutput}`);
    }
    await sleep(100);
  }
}, 180_000);

afterAll(async () => {
  if (demo?.pid !== undefined && demo.exitCode === null) {
    const exited = new Promise((resolve) => demo?.once("exit", resolve));
    // The demo's own process group: npm, the script and the three processes it started.
    process.kill(-demo.pid, "SIGTERM");
    await Promise.race([exited, sleep(10_000)]);
  }
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

interface Run {
  readonly code: number;
  readonly output: string;
  readonly stdout: string;
}

/** Variables an example exported, for the examples after it (as in one terminal). */
const carried: Record<string, string> = {};
const VARIABLES_OF_BASH = new Set(["_", "PWD", "OLDPWD", "SHLVL"]);

/** Runs one example as a script; exported variables carry over to the next one. */
function run(command: string): Promise<Run> {
  const envFile = join(scratch, "env");
  const script = `trap "env -0 > '${envFile}'" EXIT\n${command}\n`;
  return new Promise((resolve) => {
    const child = execFile(
      "bash",
      ["-o", "pipefail", "-c", script],
      { cwd: REPO_ROOT, env: { ...process.env, ...carried }, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
        for (const entry of readFileSync(envFile, "utf8").split("\0")) {
          const equals = entry.indexOf("=");
          const [name, value] = [entry.slice(0, equals), entry.slice(equals + 1)];
          if (equals > 0 && !VARIABLES_OF_BASH.has(name) && (carried[name] ?? process.env[name]) !== value) {
            carried[name] = value;
          }
        }
        resolve({ code, stdout, output: stdout + stderr });
      },
    );
    child.stdin?.end();
  });
}

function lastStatus(stdout: string): number | undefined {
  const statuses = [...stdout.matchAll(/^HTTP\/[\d.]+ (\d{3})/gm)].map((match) => Number(match[1]));
  return statuses.at(-1);
}

/** Whether `expected`'s lines appear in `output`, in order (trailing spaces ignored). */
function containsLinesInOrder(output: string, expected: string): boolean {
  const lines = output.split("\n").map((line) => line.trimEnd());
  let at = 0;
  for (const want of expected.split("\n").map((line) => line.trimEnd())) {
    if (want === "") continue;
    const found = lines.indexOf(want, at);
    if (found < 0) return false;
    at = found + 1;
  }
  return true;
}

async function check(page: string, block: CodeBlock, example: ShellExample, isLast: boolean) {
  const command = localize(example.command);
  const refusal = (example.expectStatus ?? 0) >= 400 && (command.match(/\bcurl\b/g) ?? []).length === 1;
  if (refusal) await settle(pushgatewayUrl(), true);
  const before = refusal ? await snapshot(pushgatewayUrl()) : "";
  const result = await run(command);
  const context = `${page}:${block.line}: # ${example.comment}\n$ ${command}\n--- exit ${result.code}\n${result.output}`;
  expect(result.code, context).toBe(example.expectExit);
  if (example.expectStatus !== undefined)
    expect(lastStatus(result.stdout), context).toBe(example.expectStatus);
  if (example.expectCode) expect(result.stdout, context).toContain(`"code":"${example.expectCode}"`);
  for (const text of example.expectPrints) expect(result.output, context).toContain(localize(text));
  if (isLast && block.next?.info === "text") {
    const expected = localize(block.next.body);
    expect(
      containsLinesInOrder(result.output, expected),
      `${context}\n--- expected, in order:\n${expected}`,
    ).toBe(true);
  }
  if (refusal) {
    await settle(pushgatewayUrl(), true);
    expect(await snapshot(pushgatewayUrl()), `${context}\nnothing may reach the Pushgateway`).toBe(before);
  }
}

describe("every shell block of the README and docs/ runs against the demo", () => {
  const pages = documentationPages();

  it("covers the README and every page in docs/ but the chart's", () => {
    expect(pages[0]).toBe("README.md");
    for (const page of ["configuration", "identities", "teams-and-policy", "rate-limits", "errors"]) {
      expect(pages).toContain(`docs/${page}.md`);
    }
  });

  it.each(pages)("%s: shell blocks are ```sh, so they all run here", (page) => {
    const other = codeBlocks(readPage(page)).filter((block) => SHELL_INFOS.has(block.info));
    expect(other.map((block) => `${page}:${block.line} (${block.info})`)).toEqual([]);
  });

  it.each(pages)(
    "%s",
    async (page) => {
      let blocks = codeBlocks(readPage(page)).filter((block) => block.info === "sh");
      // The Quick start's clone and `npm run demo` are what started the demo.
      if (page === "README.md") blocks = blocks.slice(1);
      for (const block of blocks) {
        const examples = shellExamples(block.body);
        expect(examples.length, `${page}:${block.line} has no command`).toBeGreaterThan(0);
        for (const [index, example] of examples.entries()) {
          await check(page, block, example, index === examples.length - 1);
        }
      }
    },
    240_000,
  );
});
