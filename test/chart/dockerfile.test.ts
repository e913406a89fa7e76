import { spawnSync } from "node:child_process";
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { stringify as stringifyYaml } from "yaml";
import { freePort, type RunningProcess, startProcess, waitForHttp } from "../support/processes.js";
import { HELMS, PROFILES, pushguardConfig, REPO, render } from "./helm.js";
import { PodFiles, writeTokens } from "./run-rendered.js";

/**
 * No Docker engine runs here, so this replays the Dockerfile: every stage gets a directory standing
 * in for its root filesystem, COPY copies from a clean copy of the build context (filtered by
 * .dockerignore) or from an earlier stage, and RUN runs the stage's commands there, in its WORKDIR.
 * The last stage's ENTRYPOINT then checks the secured profile's rendered config.
 */

interface Instruction {
  readonly keyword: string;
  readonly args: string;
}

/** Dockerfile instructions, with comments dropped and continuation lines joined. */
function parseDockerfile(text: string): Instruction[] {
  const logical = text
    .split("\n")
    .filter((line) => !line.trimStart().startsWith("#"))
    .join("\n")
    .replace(/\\\n/g, " ");
  return logical
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const [keyword = "", ...rest] = line.split(/\s+/);
      return { keyword: keyword.toUpperCase(), args: rest.join(" ") };
    });
}

/** .dockerignore patterns as predicates, last match wins (Docker's semantics, approximated). */
function dockerignore(text: string): (path: string) => boolean {
  const rules = text
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith("#"))
    .map((line) => {
      const negated = line.startsWith("!");
      const pattern = (negated ? line.slice(1) : line).replace(/^\/+|\/+$/g, "");
      const source = pattern
        .split("/")
        .map((part) =>
          part === "**"
            ? ".*"
            : part
                .replace(/[.+^${}()|[\]\\]/g, "\\$&")
                .replace(/\*/g, "[^/]*")
                .replace(/\?/g, "[^/]"),
        )
        .join("/")
        .replace(/\.\*\//g, "(?:.*/)?");
      // A pattern matching a directory excludes everything below it too.
      return { negated, regex: new RegExp(`^${source}(?:/.*)?$`) };
    });
  return (path) => {
    let ignored = false;
    for (const rule of rules) if (rule.regex.test(path)) ignored = !rule.negated;
    return ignored;
  };
}

function listFiles(root: string, directory = root): string[] {
  return readdirSync(directory, { withFileTypes: true }).flatMap((entry) => {
    const path = join(directory, entry.name);
    if (entry.name === "node_modules" || entry.name === ".git" || entry.name === ".tmp") return [];
    return entry.isDirectory() ? listFiles(root, path) : [relative(root, path)];
  });
}

/** Every file and directory below `root`, with its size and modification time. */
function snapshot(root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true }).map((entry) => {
    const path = join(entry.parentPath, entry.name);
    const { size, mtimeMs } = statSync(path);
    return `${relative(root, path)} ${size} ${mtimeMs}`;
  });
}

/**
 * Starts `command` the way the container runtime would: in `cwd`, with only `env`, and as `uid`:`gid`
 * when this test runs as root (root ignores file modes, so a read-only tree would not bind it).
 */
function startAsImageUser(
  command: readonly string[],
  options: { cwd: string; env: NodeJS.ProcessEnv; uid: number; gid: number },
): RunningProcess {
  const asRoot = process.getuid?.() === 0;
  return startProcess(command[0] as string, command.slice(1), options.env, {
    cwd: options.cwd,
    ...(asRoot ? { uid: options.uid, gid: options.gid } : {}),
  });
}

const work = mkdtempSync(join(tmpdir(), "pushguard-image-"));
// The image's user must be able to read (never write) what the replay builds here.
chmodSync(work, 0o755);
afterAll(() => {
  spawnSync("chmod", ["-R", "u+w", work]);
  rmSync(work, { recursive: true, force: true });
});

describe("the Dockerfile, replayed without a Docker engine", () => {
  const instructions = parseDockerfile(readFileSync(join(REPO, "Dockerfile"), "utf8"));
  const ignored = dockerignore(readFileSync(join(REPO, ".dockerignore"), "utf8"));
  const context = join(work, "context");
  const stages = new Map<string, string>();

  it("sends only what the build needs as its context", () => {
    for (const file of listFiles(REPO)) {
      if (ignored(file)) continue;
      mkdirSync(dirname(join(context, file)), { recursive: true });
      cpSync(join(REPO, file), join(context, file));
    }
    const sent = listFiles(context);
    expect(sent).toEqual(
      expect.arrayContaining(["package.json", "package-lock.json", "tsconfig.build.json", "src/main.ts"]),
    );
    expect(
      sent.filter((file) => /^(test|chart|docs|scripts|examples)\/|\.test\.ts$|^\.env/.test(file)),
    ).toEqual([]);
  });

  let entrypoint: string[] = [];
  let finalRoot = "";
  let user = "";
  let labels: Record<string, string> = {};
  /** `--build-arg`s of a release build: the base image pinned by digest. */
  const NODE_DIGEST = `sha256:${"4e".repeat(32)}`;
  const buildArgs: Record<string, string> = {
    NODE_IMAGE: `node:24-bookworm-slim@${NODE_DIGEST}`,
    VERSION: "1.2.3",
  };

  it("builds every stage: npm ci, tsc, then production dependencies only", () => {
    // ARGs before the first FROM are seen only by FROM lines; a stage sees the ARGs it declares.
    const globalArgs = new Map<string, string>();
    let args = globalArgs;
    let root = "";
    let workdir = "/";
    let env: Record<string, string> = {};
    const at = (path: string) => join(root, path.startsWith("/") ? path : join(workdir, path));
    for (const { keyword, args: rest } of instructions) {
      const expand = (text: string) =>
        text.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a, b) => args.get(a ?? b) ?? "");
      switch (keyword) {
        case "ARG": {
          const [name = "", ...value] = rest.split("=");
          const fallback =
            value.length > 0 ? value.join("=").replace(/^"(.*)"$/, "$1") : globalArgs.get(name);
          args.set(name, buildArgs[name] ?? fallback ?? "");
          break;
        }
        case "FROM": {
          const alias = /\bAS\s+(\S+)/i.exec(rest)?.[1] ?? `stage${stages.size}`;
          args = globalArgs;
          expect(expand(rest.split(/\s+/)[0] ?? "")).toMatch(/^node:24[-.\w]*(@sha256:[0-9a-f]{64})?$/);
          args = new Map();
          root = join(work, "stages", alias);
          mkdirSync(root, { recursive: true });
          stages.set(alias, root);
          [workdir, env, user, entrypoint, labels] = ["/", {}, "", [], {}];
          break;
        }
        case "LABEL":
          for (const [, name = "", value = ""] of rest.matchAll(/([\w.-]+)="([^"]*)"/g))
            labels[name] = expand(value);
          break;
        case "WORKDIR":
          workdir = rest;
          mkdirSync(at("."), { recursive: true });
          break;
        case "ENV": {
          const [name = "", value = ""] = rest.split("=");
          env[name] = value;
          break;
        }
        case "COPY": {
          const parts = rest.split(/\s+/);
          const from = parts.find((part) => part.startsWith("--from="))?.slice("--from=".length);
          const paths = parts.filter((part) => !part.startsWith("--"));
          const destination = paths.pop() as string;
          const sourceRoot = from ? (stages.get(from) as string) : context;
          expect(sourceRoot, `COPY --from=${from}`).toBeDefined();
          for (const source of paths) {
            const target = destination.endsWith("/")
              ? join(at(destination), source.split("/").pop() as string)
              : at(destination);
            cpSync(join(sourceRoot, source), target, { recursive: true });
          }
          break;
        }
        case "RUN": {
          const result = spawnSync("sh", ["-ec", rest], {
            cwd: at("."),
            encoding: "utf8",
            // The image builds from the registry; here npm reuses the local cache when it can.
            env: {
              ...process.env,
              ...env,
              npm_config_prefer_offline: "true",
              npm_config_update_notifier: "false",
            },
          });
          expect(result.status, `RUN ${rest}\n${result.stdout}${result.stderr}`).toBe(0);
          break;
        }
        case "USER":
          user = rest;
          break;
        case "ENTRYPOINT":
          entrypoint = JSON.parse(rest);
          break;
        case "CMD":
          entrypoint = [...entrypoint, ...JSON.parse(rest)];
          break;
      }
    }
    finalRoot = root;
    const installed = readdirSync(join(finalRoot, "app/node_modules"));
    expect(installed).toContain("hono");
    expect(
      installed.filter((name) => ["typescript", "vitest", "@biomejs", "@aws-cdk"].includes(name)),
    ).toEqual([]);
    expect(statSync(join(finalRoot, "app/dist/main.js")).isFile()).toBe(true);
    expect(existsSync(join(finalRoot, "app/src"))).toBe(false);
  }, 180_000);

  it("carries the OCI labels, naming the pinned base image and where the source is", () => {
    expect(labels).toMatchObject({
      "org.opencontainers.image.title": "pushguard",
      "org.opencontainers.image.version": "1.2.3",
      "org.opencontainers.image.base.name": buildArgs.NODE_IMAGE,
    });
    for (const name of ["source", "url"]) {
      expect(labels[`org.opencontainers.image.${name}`], name).toMatch(/^https:\/\/\S+$/);
    }
  });

  it("runs as a numeric non-root user, the one the chart's pods run as", () => {
    const [uid, gid] = user.split(":").map(Number);
    expect(uid).toBeGreaterThan(0);
    expect(gid).toBeGreaterThan(0);
    const pod = render(HELMS[1], PROFILES.secured).find((object) => object.kind === "Deployment")?.spec
      .template.spec;
    expect([pod.securityContext.runAsUser, pod.securityContext.runAsGroup]).toEqual([uid, gid]);
  });

  it("starts `node /app/dist/main.js` and accepts the secured profile's rendered config", () => {
    // node, its flags (the same as the bin's shebang), the entry point, then the default command.
    const mainIndex = entrypoint.indexOf("/app/dist/main.js");
    expect(entrypoint[0]).toBe("node");
    const nodeFlags = entrypoint.slice(1, mainIndex);
    expect(nodeFlags.every((flag) => flag.startsWith("--"))).toBe(true);
    const shebang = readFileSync(join(finalRoot, "app/dist/main.js"), "utf8").split("\n", 1)[0];
    expect(shebang).toBe(`#!/usr/bin/env -S node ${nodeFlags.join(" ")}`.trimEnd());
    expect(entrypoint.slice(mainIndex + 1)).toEqual([
      "serve",
      "--config",
      "/etc/pushguard/config/config.yaml",
    ]);
    const config = pushguardConfig(render(HELMS[1], PROFILES.secured));
    // Mounted files become local ones; check must be able to read and hash every secret.
    const files = join(work, "mounted");
    const relocate = (path: string, content: string) => {
      const local = join(files, path);
      mkdirSync(dirname(local), { recursive: true });
      writeFileSync(local, content);
      return local;
    };
    for (const identity of config.identities.static) {
      if (identity.tokenFile)
        identity.tokenFile = relocate(identity.tokenFile, `${identity.name}-token-0123456789`);
      if (identity.sha256File) identity.sha256File = relocate(identity.sha256File, "ab".repeat(32));
    }
    for (const issuer of config.identities.kubernetes) {
      if (issuer.caFile) issuer.caFile = relocate(issuer.caFile, "ca");
      if (issuer.tokenFile) issuer.tokenFile = relocate(issuer.tokenFile, "token");
    }
    if (config.rateLimit?.redis?.passwordFile) {
      config.rateLimit.redis.passwordFile = relocate(config.rateLimit.redis.passwordFile, "password");
    }
    const configFile = relocate("/etc/pushguard/config/config.yaml", stringifyYaml(config));
    const result = spawnSync(
      "node",
      [...nodeFlags, join(finalRoot, "/app/dist/main.js"), "check", "--config", configFile],
      {
        cwd: join(finalRoot, "app"),
        encoding: "utf8",
        env: { PATH: process.env.PATH, NODE_ENV: "production" },
      },
    );
    expect(result.stderr).toBe("");
    expect(result.stdout).toContain("is valid");
    expect(result.status).toBe(0);
  });

  it("serves as ENTRYPOINT and CMD start it, from a read-only tree with only /tmp writable", async () => {
    const [uid = 0, gid = 0] = user.split(":").map(Number);
    const files = new PodFiles(join(work, "serve"));
    const config = pushguardConfig(render(HELMS[1], PROFILES.default));
    config.listen = { api: `127.0.0.1:${await freePort()}`, metrics: `127.0.0.1:${await freePort()}` };
    // Nothing listens there: liveness does not depend on the pushgateway.
    config.upstream.url = `http://127.0.0.1:${await freePort()}`;
    config.server.shutdownGraceMs = 1000;
    writeTokens(config, files);
    const configFile = files.write("/etc/pushguard/config/config.yaml", stringifyYaml(config));
    // The pod's /tmp (an emptyDir): the only place the process may write.
    const podTmp = join(work, "pod-tmp");
    mkdirSync(podTmp);
    chmodSync(podTmp, 0o1777);
    // ENTRYPOINT + CMD, with the image's paths mapped to the replayed tree and the mounted config.
    const command = entrypoint.map((arg) => {
      if (arg === "/etc/pushguard/config/config.yaml") return configFile;
      return arg.startsWith("/app/") ? join(finalRoot, arg) : arg;
    });
    expect(command).toContain(configFile);
    const before = snapshot(finalRoot);
    expect(spawnSync("chmod", ["-R", "a-w", finalRoot]).status).toBe(0);
    try {
      const running = startAsImageUser(command, {
        cwd: join(finalRoot, "app"),
        // What the image sets, HOME as the runtime gives a user without a passwd entry (/, read-only).
        env: { PATH: process.env.PATH, NODE_ENV: "production", HOME: finalRoot, TMPDIR: podTmp },
        uid,
        gid,
      });
      try {
        await waitForHttp(`http://${config.listen.metrics}/healthz`, running, 15_000);
      } finally {
        expect(await running.stop(5_000), running.output()).toBe(0);
      }
      expect(running.output()).not.toMatch(/EACCES|EROFS|EPERM/);
    } finally {
      spawnSync("chmod", ["-R", "u+w", finalRoot]);
    }
    expect(snapshot(finalRoot)).toEqual(before);
  }, 30_000);
});

describe(".dockerignore semantics", () => {
  const ignored = dockerignore("**\n!package.json\n!src/**\n**/*.test.ts\n");
  it.each([
    ["package.json", false],
    ["src/main.ts", false],
    ["src/deep/er/file.ts", false],
    ["src/main.test.ts", true],
    ["test/chart/helm.ts", true],
    [".env", true],
    ["README.md", true],
  ])("%s ignored: %s", (path, expected) => {
    expect(ignored(path)).toBe(expected);
  });
});
