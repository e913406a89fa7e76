// Process helpers for the benchmark: free ports, starting and stopping the peers, reading a
// process's RSS and CPU time from /proc. Loopback only.
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

export async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Spawns a long-running process; output goes to `logFile`'s fd or is kept in memory (tail only). */
export function start(command, args, { env = process.env, stdout = "pipe" } = {}) {
  const child = spawn(command, args, { env, stdio: ["ignore", stdout, "pipe"] });
  let tail = "";
  const keep = (chunk) => {
    tail = (tail + chunk.toString()).slice(-8000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  return {
    child,
    pid: child.pid,
    output: () => tail,
    exited,
    async stop(graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  };
}

export async function waitForHttp(url, running, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (running.child.exitCode !== null) {
      throw new Error(
        `process exited (${running.child.exitCode}) before ${url} was up:\n${running.output()}`,
      );
    }
    try {
      const response = await fetch(url);
      await response.arrayBuffer();
      if (response.ok) return;
    } catch {
      // not up yet
    }
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${url}:\n${running.output()}`);
}

/** Runs a command to completion, collecting output. */
export function run(command, args, { env = process.env, input } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
    });
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

const PAGE_TICKS = 100; // USER_HZ on Linux

/** Resident set size and its peak, in MiB, from /proc/<pid>/status. */
export function memory(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN);
  return { rssMiB: kib("VmRSS") / 1024, peakMiB: kib("VmHWM") / 1024 };
}

/**
 * User and system CPU seconds of `pid` and, with `children`, of its direct children (nginx's
 * workers), from /proc/<pid>/stat.
 */
export function cpuTimes(pid, { children = false } = {}) {
  const times = (id) => {
    try {
      const stat = readFileSync(`/proc/${id}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      return { ppid: Number(fields[1]), user: Number(fields[11]), sys: Number(fields[12]) }; // fields 4, 14, 15
    } catch {
      return undefined;
    }
  };
  const own = times(pid) ?? { user: 0, sys: 0 };
  let user = own.user;
  let sys = own.sys;
  if (children) {
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      const child = times(entry);
      if (child?.ppid === pid) {
        user += child.user;
        sys += child.sys;
      }
    }
  }
  return { user: user / PAGE_TICKS, sys: sys / PAGE_TICKS };
}

export function cpuSeconds(pid, options) {
  const { user, sys } = cpuTimes(pid, options);
  return user + sys;
}
