import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Runs the real client libraries the README documents, each as its own process, the way a batch
 * job would: Python `prometheus_client` (Debian's, under /usr/bin/python3), Go `client_golang`
 * (built offline from Debian's packages) and Node `prom-client` (the project's dependency).
 */

export const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const CLIENTS_DIR = fileURLToPath(new URL("./", import.meta.url));

/** Debian's interpreter: a pyenv `python3` earlier on PATH would not see python3-prometheus-client. */
export const PYTHON = process.env.PUSHGUARD_E2E_PYTHON ?? "/usr/bin/python3";
export const PYTHON_CLIENT = join(CLIENTS_DIR, "python_push.py");
export const NODE_CLIENT = join(CLIENTS_DIR, "node-push.mjs");
export const GO_BINARY = process.env.GO_BINARY ?? "/usr/bin/go";
/** GOPATH of Debian's Go library packages (golang-github-prometheus-client-golang-dev and its deps). */
export const DEBIAN_GOPATH = "/usr/share/gocode";
const CLIENT_GOLANG_PUSH = `${DEBIAN_GOPATH}/src/github.com/prometheus/client_golang/prometheus/push/push.go`;

export interface ProgramResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a program to completion (`input` on its stdin); a non-zero exit is a result, not an exception. */
export function runProgram(
  command: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number; input?: string } = {},
): Promise<ProgramResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      command,
      args,
      {
        env: options.env ?? process.env,
        cwd: options.cwd ?? REPO_ROOT,
        timeout: options.timeoutMs ?? 60_000,
        maxBuffer: 16 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== "number") {
          reject(new Error(`${command} ${args.join(" ")} failed to run: ${error.message}\n${stderr}`));
          return;
        }
        resolve({ code: error ? (error.code as number) : 0, stdout, stderr });
      },
    );
    child.stdin?.end(options.input);
  });
}

/** The environment a client gets: ours, plus the token (or none at all when `token` is undefined). */
export function clientEnv(token: string | undefined, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.PUSHGUARD_TOKEN;
  if (token !== undefined) env.PUSHGUARD_TOKEN = token;
  return env;
}

export function requirePython(): void {
  const module = "/usr/lib/python3/dist-packages/prometheus_client/__init__.py";
  if (!existsSync(PYTHON) || !existsSync(module)) {
    throw new Error(
      `${PYTHON} with ${module} needed: apt-get install python3-prometheus-client (npm test does this)`,
    );
  }
}

/**
 * The Go client binary: test/support/clients/go/main.go plus `readme_example.go`, generated from
 * the README's Go example (compiled verbatim inside a function).
 */
export function buildGoClient(readmeGoExample: string): Promise<string> {
  return buildGoProgram("go-pushclient", {
    "main.go": readFileSync(join(CLIENTS_DIR, "go", "main.go"), "utf8"),
    "readme_example.go": readmeExampleSource(readmeGoExample),
  });
}

/** test/support/clients/go-families/main.go: client_golang pushing and encoding MetricFamily messages. */
export function buildGoFamilies(): Promise<string> {
  return buildGoProgram("go-families", {
    "main.go": readFileSync(join(CLIENTS_DIR, "go-families", "main.go"), "utf8"),
  });
}

/**
 * Builds a Go program from its source files offline in GOPATH mode (GO111MODULE=off) against
 * Debian's library packages, with a throwaway GOCACHE, and caches it under .tmp/e2e/ by a hash
 * of the sources and the toolchain, so reruns skip the ~10-60 s build.
 */
async function buildGoProgram(name: string, sources: Record<string, string>): Promise<string> {
  if (!existsSync(GO_BINARY) || !existsSync(CLIENT_GOLANG_PUSH)) {
    throw new Error(
      `${GO_BINARY} and ${CLIENT_GOLANG_PUSH} needed: apt-get install golang-go golang-github-prometheus-client-golang-dev (npm test does this)`,
    );
  }
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    GO111MODULE: "off",
    GOPATH: DEBIAN_GOPATH,
    GOFLAGS: "",
    GOPROXY: "off",
    CGO_ENABLED: "0",
  };
  const version = await runProgram(GO_BINARY, ["version"], { env });
  const hash = createHash("sha256");
  for (const source of Object.values(sources)) hash.update(source);
  hash.update(version.stdout).update(readFileSync(CLIENT_GOLANG_PUSH));
  const cacheDir = join(REPO_ROOT, ".tmp", "e2e");
  const binary = join(cacheDir, `${name}-${hash.digest("hex").slice(0, 16)}`);
  if (existsSync(binary)) return binary;

  mkdirSync(cacheDir, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), `pushguard-${name}-`));
  try {
    const src = join(work, "src");
    mkdirSync(src);
    for (const [file, source] of Object.entries(sources)) writeFileSync(join(src, file), source);
    const output = join(work, name);
    const built = await runProgram(GO_BINARY, ["build", "-o", output, "."], {
      cwd: src,
      env: { ...env, GOCACHE: join(work, "gocache"), HOME: work },
      timeoutMs: 240_000,
    });
    if (built.code !== 0) throw new Error(`go build failed (${built.code}):\n${built.stderr}`);
    // Atomic: a concurrent run either sees no binary or a complete one.
    renameSync(output, binary);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return binary;
}

/** Wraps the README's Go statement(s) in `func readmeExample(lastSuccess) error`, unchanged. */
export function readmeExampleSource(readmeGoExample: string): string {
  return `// Generated from README.md's Go example by test/support/clients/index.ts. Do not edit.
package main

import (
\t"os"

\t"github.com/prometheus/client_golang/prometheus"
\t"github.com/prometheus/client_golang/prometheus/push"
)

var _ = os.Getenv

func readmeExample(lastSuccess prometheus.Collector) error {
${readmeGoExample}
\treturn err
}
`;
}
