import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * Ports handed out by `freePort`: below Linux's ephemeral range (32768-60999), so no outgoing
 * connection and no `listen(0)` ever takes one, and split into one block per vitest worker, so two
 * workers never hand out the same port. Probing with bind-and-release alone is not enough: another
 * worker's process can take the port between the probe and the spawn, and a test would then talk
 * to that process instead of its own.
 */
// From 11000: fetch refuses the "bad ports" of the Fetch standard, and 10080 is the last of them.
const PORT_BLOCK_START = 11_000;
const PORT_BLOCK_SIZE = 1_000;
const PORT_BLOCKS = 21;
const workerId = Number(process.env.VITEST_POOL_ID ?? "1");
const blockStart = PORT_BLOCK_START + ((workerId - 1) % PORT_BLOCKS) * PORT_BLOCK_SIZE;
// A later test file may run in the same worker slot: start elsewhere in the block than it did.
let nextOffset = Math.floor(Math.random() * PORT_BLOCK_SIZE);

/** A loopback TCP port no other process of this test run uses or will be given. */
export async function freePort(): Promise<number> {
  for (let tries = 0; tries < PORT_BLOCK_SIZE; tries++) {
    const port = blockStart + (nextOffset++ % PORT_BLOCK_SIZE);
    if (await canListen(port)) return port;
  }
  throw new Error(`no free port in ${blockStart}-${blockStart + PORT_BLOCK_SIZE - 1}`);
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

export interface RunningProcess {
  readonly child: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code (null if killed). */
  stop(graceMs?: number): Promise<number | null>;
}

export function startProcess(
  command: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  options: { cwd?: string; uid?: number; gid?: number } = {},
): RunningProcess {
  const child = spawn(command, args, { env, stdio: ["pipe", "pipe", "pipe"], ...options });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    child,
    output: () => output,
    async stop(graceMs = 5_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Polls `url` until it answers 200, or fails with the process output after `timeoutMs`. */
export async function waitForHttp(url: string, running: RunningProcess, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (running.child.exitCode !== null) {
      throw new Error(
        `process exited with ${running.child.exitCode} before ${url} was up:\n${running.output()}`,
      );
    }
    try {
      const response = await fetch(url);
      await response.arrayBuffer();
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${url}:\n${running.output()}`);
}
