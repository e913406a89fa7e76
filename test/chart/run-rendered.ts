import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort, type RunningProcess, startProcess } from "../support/processes.js";
import { REDIS_BINARY } from "../support/redis.js";
import { type Loose, REPO } from "./helm.js";

/**
 * Running what the chart renders outside Kubernetes: only what a pod gets from Kubernetes is
 * replaced. Listen addresses and Service URLs become loopback ports, and mounted files (Secrets,
 * the ServiceAccount token, volumes) become files in a temp directory.
 */

export const MAIN = join(REPO, "dist/main.js");

/** `node dist/main.js` as a user runs it (vitest's global setup builds it; this covers a lone run). */
export function ensureBuilt(): void {
  if (existsSync(MAIN)) return;
  const build = spawnSync("npx", ["tsc", "-p", "tsconfig.build.json"], { cwd: REPO, encoding: "utf8" });
  if (build.status !== 0)
    throw new Error(`npx tsc -p tsconfig.build.json failed:\n${build.stdout}${build.stderr}`);
}

/** The files a pod sees, kept under `root`. */
export class PodFiles {
  constructor(readonly root: string) {}

  /** Where a path the pod would see lives here. */
  local(podPath: string): string {
    return join(this.root, "pod", podPath);
  }

  write(podPath: string, content: string): string {
    const file = this.local(podPath);
    mkdirSync(join(file, ".."), { recursive: true });
    writeFileSync(file, content);
    return file;
  }
}

/**
 * The pushgateway's rendered arguments for a loopback port, with `--persistence.file` moved into
 * `volume` (the directory standing in for this replica's own volume).
 */
export function localPushgatewayArgs(
  args: readonly string[],
  port: number,
  volume: PodFiles,
): { args: string[]; dataFile?: string } {
  let dataFile: string | undefined;
  const local = args.map((arg) => {
    if (arg.startsWith("--web.listen-address=")) return `--web.listen-address=127.0.0.1:${port}`;
    if (arg.startsWith("--persistence.file=")) {
      dataFile = volume.local(arg.slice("--persistence.file=".length));
      mkdirSync(join(dataFile, ".."), { recursive: true });
      return `--persistence.file=${dataFile}`;
    }
    return arg;
  });
  return { args: local, dataFile };
}

/**
 * Gives every static identity of `config` a fresh token, written where the rendered config reads
 * it (a raw token, or its SHA-256 for `sha256File`), and points the config at those files.
 */
export function writeTokens(config: Loose, files: PodFiles): Record<string, string> {
  const tokens: Record<string, string> = {};
  for (const identity of config.identities.static) {
    const token = `${identity.name}-${randomBytes(16).toString("hex")}`;
    tokens[identity.name] = token;
    if (identity.tokenFile) {
      identity.tokenFile = files.write(identity.tokenFile, `${token}\n`);
    } else if (identity.sha256File) {
      identity.sha256File = files.write(
        identity.sha256File,
        createHash("sha256").update(token).digest("hex"),
      );
    }
  }
  return tokens;
}

export interface LocalRedis {
  readonly port: number;
  readonly url: string;
  readonly password: string;
  readonly process: RunningProcess;
  /** redis-cli against it, authenticated. */
  cli(...args: string[]): { stdout: string; status: number | null };
}

/** The real redis-server on a free loopback port, in memory only, requiring a password. */
export async function startRedisWithPassword(directory: string): Promise<LocalRedis> {
  const port = await freePort();
  const password = randomBytes(12).toString("hex");
  const running = startProcess(REDIS_BINARY, [
    ...["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    ...["--dir", directory, "--requirepass", password],
  ]);
  const cli = (...args: string[]) =>
    spawnSync("redis-cli", ["-p", String(port), "--no-auth-warning", "-a", password, ...args], {
      encoding: "utf8",
    });
  for (let attempt = 0; attempt < 100; attempt++) {
    if (cli("PING").stdout.trim() === "PONG") {
      return { port, url: `redis://127.0.0.1:${port}/0`, password, process: running, cli };
    }
    await sleep(50);
  }
  throw new Error(`redis-server did not start:\n${running.output()}`);
}

/** Points a rendered Redis section (`{url, passwordFile?}`) at the local Redis. */
export function localRedisSection(section: Loose, redis: LocalRedis, files: PodFiles): void {
  section.url = redis.url;
  if (section.passwordFile) section.passwordFile = files.write(section.passwordFile, redis.password);
}
