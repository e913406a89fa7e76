import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort, type RunningProcess, startProcess } from "./processes.js";

export const REDIS_BINARY = process.env.REDIS_BINARY ?? "/usr/bin/redis-server";

export interface TestRedis {
  readonly url: string;
  readonly port: number;
  /** The running process (replaced by `restart`). */
  readonly process: RunningProcess;
  /** Sends one command with a one-line reply (PING, SCRIPT FLUSH, DBSIZE) and returns it raw. */
  command(...args: string[]): Promise<string>;
  /** Stops the server (SIGTERM). Nothing is persisted, so a restart starts empty. */
  stop(): Promise<void>;
  /** Starts a fresh, empty server on the same port (after `stop`, or in place of the running one). */
  restart(): Promise<void>;
}

/**
 * Starts the real Debian `redis-server` on a free loopback port, in memory only
 * (`--save "" --appendonly no`), and waits until it answers PING.
 */
export async function startRedis(): Promise<TestRedis> {
  if (!existsSync(REDIS_BINARY)) {
    throw new Error(`${REDIS_BINARY} not found: apt-get install redis-server (npm test does this)`);
  }
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "pushguard-redis-"));
  const launch = async () => {
    mkdirSync(dir, { recursive: true });
    const running = startProcess(REDIS_BINARY, [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      dir,
    ]);
    await waitForPong(port, running);
    return running;
  };
  let running = await launch();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    get process() {
      return running;
    },
    command: (...args) => resp(port, args),
    async stop() {
      await running.stop();
      rmSync(dir, { recursive: true, force: true });
    },
    async restart() {
      await running.stop();
      running = await launch();
    },
  };
}

async function waitForPong(port: number, running: RunningProcess, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (running.child.exitCode !== null) {
      throw new Error(`redis-server exited with ${running.child.exitCode}:\n${running.output()}`);
    }
    try {
      if ((await resp(port, ["PING"])).startsWith("+PONG")) return;
    } catch {
      // not listening yet
    }
    await sleep(25);
  }
  throw new Error(`redis-server did not answer PING on port ${port}:\n${running.output()}`);
}

/** One command over a fresh connection; resolves with the reply's first line. */
function resp(port: number, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    let reply = "";
    socket.setTimeout(2_000, () => socket.destroy(new Error("redis command timed out")));
    socket.on("connect", () => {
      socket.write(
        `*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join("")}`,
      );
    });
    socket.on("data", (chunk: Buffer) => {
      reply += chunk.toString("utf8");
      if (reply.endsWith("\r\n")) {
        socket.end();
        resolve(reply);
      }
    });
    socket.on("error", reject);
  });
}
