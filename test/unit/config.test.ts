import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  type Config,
  ConfigError,
  type ConfigIssue,
  hashToken,
  loadConfigFile,
  parseConfig,
  resolveConfigPath,
} from "../../src/config/load.js";

const HASH_A = hashToken("token-of-team-a-ci").toString("hex");
const HASH_B = hashToken("token-of-team-b-ci").toString("hex");

const dir = mkdtempSync(join(tmpdir(), "pushguard-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

/** A minimal valid config; `extra` lines are appended (later top-level keys must not repeat). */
function yaml(parts: { identities?: string; teams?: string; extra?: string; upstream?: string }): string {
  return [
    `upstream:\n  url: ${parts.upstream ?? "http://127.0.0.1:9191"}`,
    `identities:\n  static:\n${parts.identities ?? `    - { name: team-a-ci, sha256: "${HASH_A}" }`}`,
    `teams:\n${parts.teams ?? `    - { name: team-a, members: [team-a-ci], jobs: ["team-a-*"], actions: [push] }`}`,
    parts.extra ?? "",
  ].join("\n");
}

/** Parses and returns the issues of the ConfigError it must throw. */
function issuesOf(text: string, env: NodeJS.ProcessEnv = {}): readonly ConfigIssue[] {
  try {
    parseConfig(text, "test.yaml", env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).issues;
  }
  throw new Error("expected a ConfigError, the config was accepted");
}

const pathsOf = (text: string, env: NodeJS.ProcessEnv = {}) => issuesOf(text, env).map((issue) => issue.path);

describe("a valid config", () => {
  const config = parseConfig(yaml({}), "test.yaml", {});

  it("fills every default", () => {
    expect(config.source).toBe("test.yaml");
    expect(config.listen).toEqual({ api: "0.0.0.0:9091", metrics: "0.0.0.0:9092" });
    expect(config.upstream).toMatchObject({
      url: "http://127.0.0.1:9191",
      timeoutMs: 10_000,
      connectTimeoutMs: 2_000,
      connections: 64,
    });
    expect(config.body).toEqual({ maxBytes: 8 * 1024 * 1024, maxDecompressedBytes: 32 * 1024 * 1024 });
    expect(config.server).toMatchObject({
      shutdownGraceMs: 10_000,
      requestTimeoutMs: 30_000,
      headersTimeoutMs: 10_000,
      keepAliveTimeoutMs: 65_000,
    });
    expect(config.anonymous.actions).toEqual([]);
    expect(config.log.level).toBe("info");
    expect(config.teams).toHaveLength(1);
    expect(config.teams[0]).toMatchObject({
      name: "team-a",
      members: ["team-a-ci"],
      jobs: ["team-a-*"],
      actions: ["push"],
    });
  });

  it("keeps only the hash of each identity, as 32 bytes", () => {
    expect(config.identities.static).toHaveLength(1);
    const [identity] = config.identities.static;
    expect(identity?.name).toBe("team-a-ci");
    expect(identity?.sha256.equals(hashToken("token-of-team-a-ci"))).toBe(true);
    expect(Object.keys(identity ?? {}).sort()).toEqual(["name", "sha256"]);
  });

  it("is deeply frozen", () => {
    for (const part of [
      config,
      config.listen,
      config.upstream,
      config.identities,
      config.identities.static,
      config.identities.static[0],
      config.teams,
      config.teams[0],
      config.teams[0]?.members,
      config.teams[0]?.jobs,
      config.teams[0]?.actions,
      config.anonymous.actions,
      config.body,
      config.server,
    ]) {
      expect(Object.isFrozen(part)).toBe(true);
    }
    const writable = config as unknown as { upstream: { url: string }; teams: { jobs: string[] }[] };
    expect(() => {
      writable.upstream.url = "http://elsewhere";
    }).toThrow(TypeError);
    expect(() => writable.teams[0]?.jobs.push("*")).toThrow(TypeError);
    expect(config.upstream.url).toBe("http://127.0.0.1:9191");
  });

  it("accepts explicit values for every section", () => {
    const explicit = parseConfig(
      yaml({
        extra: [
          'listen: { api: "[::1]:19091", metrics: "127.0.0.1:0" }',
          "anonymous: { actions: [read] }",
          "body: { maxBytes: 1024, maxDecompressedBytes: 4096 }",
          "server: { shutdownGraceMs: 0, requestTimeoutMs: 1000, headersTimeoutMs: 500, keepAliveTimeoutMs: 100 }",
          "log: { level: debug }",
        ].join("\n"),
      }),
      "explicit.yaml",
      {},
    );
    expect(explicit.listen).toEqual({ api: "[::1]:19091", metrics: "127.0.0.1:0" });
    expect(explicit.anonymous.actions).toEqual(["read"]);
    expect(explicit.body.maxBytes).toBe(1024);
    expect(explicit.server.shutdownGraceMs).toBe(0);
    expect(explicit.log.level).toBe("debug");
  });
});

describe("every problem at once", () => {
  it("reports four distinct errors as four issues, each with its key path", () => {
    const issues = issuesOf(
      [
        "upstream:\n  url: ftp://127.0.0.1:9191",
        "identities:\n  static:",
        `    - { name: team-a-ci, sha256: "${HASH_A}" }`,
        "    - { name: team-b-ci }",
        "teams:\n  - { name: team-a, members: [nobody], jobs: [team-a-*], actions: [push] }",
        "body:\n  maxBytes: -1",
      ].join("\n"),
    );
    expect(issues.map((issue) => issue.path).sort()).toEqual([
      "body.maxBytes",
      "identities.static.1",
      "teams.0.members.0",
      "upstream.url",
    ]);
    for (const issue of issues) expect(issue.message).not.toBe("");
  });

  it("reports an unreadable secret file alongside schema errors elsewhere", () => {
    const missing = join(dir, "no-such-token");
    const paths = pathsOf(
      yaml({
        identities: `    - { name: team-a-ci, tokenFile: "${missing}" }`,
        extra: "body: { maxBytes: 0 }",
      }),
    );
    expect(paths.sort()).toEqual(["body.maxBytes", "identities.static.0"]);
  });

  it("reports cross-reference errors even when another section has the wrong type", () => {
    const paths = pathsOf(
      yaml({
        teams: "    - { name: team-a, members: [nobody], jobs: [team-a-*], actions: [push] }",
        extra: "body: lots",
      }),
    );
    expect(paths.sort()).toEqual(["body", "teams.0.members.0"]);
  });

  it("names the file and every key path in the error message", () => {
    try {
      parseConfig(yaml({ upstream: "ftp://x", extra: "body: { maxBytes: 0 }" }), "my.yaml", {});
      expect.unreachable();
    } catch (error) {
      expect((error as Error).message).toContain("my.yaml");
      expect((error as Error).message).toContain("upstream.url");
      expect((error as Error).message).toContain("body.maxBytes");
    }
  });
});

describe("strict keys", () => {
  it.each([
    ["top level", "extra: 1", "extra"],
    ["listen", "listen: { api: ':1', admin: ':2' }", "listen.admin"],
    ["upstream", "", "upstream.retries"],
    ["body", "body: { maxbytes: 1 }", "body.maxbytes"],
    ["anonymous", "anonymous: { actions: [read], jobs: ['*'] }", "anonymous.jobs"],
  ])("rejects an unknown key in %s", (_where, extra, key) => {
    const text =
      key === "upstream.retries"
        ? yaml({ upstream: "http://127.0.0.1:9191\n  retries: 3" })
        : yaml({ extra: extra.replaceAll("'", '"') });
    const issues = issuesOf(text);
    expect(issues).toHaveLength(1);
    const issue = issues[0] as ConfigIssue;
    // zod reports unrecognized keys at the parent path and names the key in the message.
    const [parent, name] = [key.split(".").slice(0, -1).join("."), key.split(".").at(-1) as string];
    expect(issue.path).toBe(parent);
    expect(issue.message).toContain(name);
  });

  it("rejects an unknown key in an identity and in a team", () => {
    expect(
      pathsOf(
        yaml({
          identities: `    - { name: team-a-ci, sha256: "${HASH_A}", token: "plain" }`,
          teams: "    - { name: team-a, members: [team-a-ci], jobs: [x], actions: [push], admin: true }",
        }),
      ).sort(),
    ).toEqual(["identities.static.0", "teams.0"]);
  });
});

describe("a typo names the key that was meant", () => {
  it.each([
    ["a top-level section in the wrong case", "ratelimit: { rules: [] }", "", "ratelimit", "rateLimit"],
    ["a key in the wrong case", "body: { maxbytes: 1 }", "body", "maxbytes", "maxBytes"],
    [
      "a dropped letter",
      "body: { maxDecompresedBytes: 1 }",
      "body",
      "maxDecompresedBytes",
      "maxDecompressedBytes",
    ],
    [
      "a key in a nested section",
      "janitor: { enabled: false, lease: { stor: none } }",
      "janitor.lease",
      "stor",
      "store",
    ],
  ])("%s", (_what, extra, path, key, meant) => {
    const issues = issuesOf(yaml({ extra }));
    expect(issues).toContainEqual({ path, message: `unknown key "${key}" (did you mean "${meant}"?)` });
  });

  it("finds the key in a list entry and in a team", () => {
    const issues = issuesOf(
      yaml({
        identities: `    - { name: team-a-ci, tokenFlie: /run/token }`,
        teams: `    - { name: team-a, members: [team-a-ci], jobs: ["team-a-*"], actions: [push], ttll: 1d }`,
      }),
    );
    expect(issues).toContainEqual({
      path: "identities.static.0",
      message: 'unknown key "tokenFlie" (did you mean "tokenFile"?)',
    });
    expect(issues).toContainEqual({ path: "teams.0", message: 'unknown key "ttll" (did you mean "ttl"?)' });
  });

  it("suggests nothing when no key is close, and reports each unknown key on its own", () => {
    const issues = issuesOf(yaml({ extra: "listen: { apii: ':1', banana: 2 }" }));
    expect(issues).toEqual([
      { path: "listen", message: 'unknown key "apii" (did you mean "api"?)' },
      { path: "listen", message: 'unknown key "banana"' },
    ]);
  });
});

describe("no open mode", () => {
  it("needs a config path: no flag and no PUSHGUARD_CONFIG is a ConfigError", () => {
    expect(() => resolveConfigPath(undefined, {})).toThrow(ConfigError);
    expect(() => resolveConfigPath(undefined, { PUSHGUARD_CONFIG: "" })).toThrow(ConfigError);
  });

  it("takes --config before PUSHGUARD_CONFIG", () => {
    expect(resolveConfigPath("flag.yaml", { PUSHGUARD_CONFIG: "env.yaml" })).toBe("flag.yaml");
    expect(resolveConfigPath(undefined, { PUSHGUARD_CONFIG: "env.yaml" })).toBe("env.yaml");
  });

  it("refuses a config that grants nothing", () => {
    expect(pathsOf("upstream: { url: http://127.0.0.1:9191 }")).toEqual(["teams"]);
    expect(
      pathsOf("upstream: { url: http://127.0.0.1:9191 }\nteams: []\nanonymous: { actions: [] }"),
    ).toEqual(["teams"]);
  });

  it("accepts a config that only grants anonymous reads", () => {
    const config = parseConfig(
      "upstream: { url: http://127.0.0.1:9191 }\nanonymous: { actions: [read] }",
      "t.yaml",
      {},
    );
    expect(config.teams).toEqual([]);
    expect(config.anonymous.actions).toEqual(["read"]);
  });

  it.each(["push", "delete", "wipe"])("never grants anonymous callers %s", (action) => {
    expect(
      pathsOf(`upstream: { url: http://127.0.0.1:9191 }\nanonymous: { actions: [read, ${action}] }`),
    ).toEqual(["anonymous.actions.1"]);
  });

  it("refuses an empty file", () => {
    expect(pathsOf("")).toContain("upstream");
  });

  it.each(["hello", "[1, 2]", "42"])("refuses a document that is not a mapping: %s", (text) => {
    expect(pathsOf(text)).toEqual([""]);
  });
});

describe("static token identities", () => {
  it.each([
    ["none", `{ name: team-a-ci }`],
    ["two", `{ name: team-a-ci, sha256: "${HASH_A}", tokenEnv: TOKEN }`],
    ["sha256File and tokenFile", "{ name: team-a-ci, sha256File: /a, tokenFile: /b }"],
  ])("needs exactly one token source (%s given)", (_given, identity) => {
    expect(pathsOf(yaml({ identities: `    - ${identity}` }), { TOKEN: "x" })).toEqual([
      "identities.static.0",
    ]);
  });

  it("accepts an inline hash with a sha256: prefix and upper-case hex", () => {
    const config = parseConfig(
      yaml({ identities: `    - { name: team-a-ci, sha256: "sha256:${HASH_A.toUpperCase()}" }` }),
      "t.yaml",
      {},
    );
    expect(config.identities.static[0]?.sha256.equals(hashToken("token-of-team-a-ci"))).toBe(true);
  });

  it.each([
    ["too short", "abc123"],
    ["not hex", "z".repeat(64)],
    ["the raw token", "token-of-team-a-ci"],
  ])("refuses an inline sha256 that is not a digest (%s)", (_why, value) => {
    expect(pathsOf(yaml({ identities: `    - { name: team-a-ci, sha256: "${value}" }` }))).toEqual([
      "identities.static.0.sha256",
    ]);
  });

  it("hashes tokenFile without its trailing newline", () => {
    const path = file("token-with-newline", "token-of-team-a-ci\n");
    const config = parseConfig(
      yaml({ identities: `    - { name: team-a-ci, tokenFile: "${path}" }` }),
      "t",
      {},
    );
    expect(config.identities.static[0]?.sha256.equals(hashToken("token-of-team-a-ci"))).toBe(true);
    expect(config.identities.static[0]?.sha256.equals(hashToken("token-of-team-a-ci\n"))).toBe(false);
  });

  it("hashes tokenFile without a trailing CRLF", () => {
    const path = file("token-with-crlf", "token-of-team-a-ci\r\n");
    const config = parseConfig(
      yaml({ identities: `    - { name: team-a-ci, tokenFile: "${path}" }` }),
      "t",
      {},
    );
    expect(config.identities.static[0]?.sha256.equals(hashToken("token-of-team-a-ci"))).toBe(true);
  });

  it("hashes tokenEnv", () => {
    const config = parseConfig(
      yaml({ identities: "    - { name: team-a-ci, tokenEnv: TEAM_A_TOKEN }" }),
      "t",
      {
        TEAM_A_TOKEN: "token-of-team-a-ci",
      },
    );
    expect(config.identities.static[0]?.sha256.equals(hashToken("token-of-team-a-ci"))).toBe(true);
  });

  it("reads sha256File (with a trailing newline) and sha256Env", () => {
    const path = file("hash", `${HASH_A}\n`);
    const config = parseConfig(
      yaml({
        identities: [
          `    - { name: team-a-ci, sha256File: "${path}" }`,
          "    - { name: team-b-ci, sha256Env: TEAM_B_SHA256 }",
        ].join("\n"),
      }),
      "t",
      { TEAM_B_SHA256: HASH_B },
    );
    expect(config.identities.static.map((identity) => identity.sha256.toString("hex"))).toEqual([
      HASH_A,
      HASH_B,
    ]);
  });

  it("refuses a sha256File or sha256Env that holds no digest", () => {
    const path = file("not-a-hash", "token-of-team-a-ci\n");
    expect(
      pathsOf(
        yaml({
          identities: [
            `    - { name: team-a-ci, sha256File: "${path}" }`,
            "    - { name: team-b-ci, sha256Env: TEAM_B_SHA256 }",
          ].join("\n"),
        }),
        { TEAM_B_SHA256: "token-of-team-b-ci" },
      ),
    ).toEqual(["identities.static.0", "identities.static.1"]);
  });

  it("names the missing file and env var in the issue", () => {
    const missing = join(dir, "missing-token-file");
    const issues = issuesOf(
      yaml({
        identities: [
          `    - { name: team-a-ci, tokenFile: "${missing}" }`,
          "    - { name: team-b-ci, tokenEnv: TEAM_B_TOKEN_UNSET }",
          "    - { name: team-c-ci, sha256Env: TEAM_C_SHA_EMPTY }",
        ].join("\n"),
      }),
      { TEAM_C_SHA_EMPTY: "" },
    );
    expect(issues.map((issue) => issue.path)).toEqual([
      "identities.static.0",
      "identities.static.1",
      "identities.static.2",
    ]);
    expect(issues[0]?.message).toContain(missing);
    expect(issues[1]?.message).toContain("TEAM_B_TOKEN_UNSET");
    expect(issues[2]?.message).toContain("TEAM_C_SHA_EMPTY");
  });

  it("refuses an empty token file", () => {
    const path = file("empty-token", "\n");
    expect(pathsOf(yaml({ identities: `    - { name: team-a-ci, tokenFile: "${path}" }` }))).toEqual([
      "identities.static.0",
    ]);
  });

  it("never puts the token in an issue", () => {
    const path = file("secret-token", "s3cret-token-value\n");
    const issues = issuesOf(
      yaml({
        identities: [
          `    - { name: team-a-ci, tokenFile: "${path}" }`,
          `    - { name: team-b-ci, sha256File: "${path}" }`,
        ].join("\n"),
      }),
    );
    expect(JSON.stringify(issues)).not.toContain("s3cret-token-value");
  });

  it("refuses duplicate identity names", () => {
    expect(
      pathsOf(
        yaml({
          identities: [
            `    - { name: team-a-ci, sha256: "${HASH_A}" }`,
            `    - { name: team-a-ci, sha256: "${HASH_B}" }`,
          ].join("\n"),
        }),
      ),
    ).toEqual(["identities.static.1.name"]);
  });

  it("refuses two identities with the same token (which one would it be?)", () => {
    const path = file("shared-token", "token-of-team-a-ci\n");
    const issues = issuesOf(
      yaml({
        identities: [
          `    - { name: team-a-ci, sha256: "${HASH_A}" }`,
          `    - { name: team-b-ci, tokenFile: "${path}" }`,
        ].join("\n"),
      }),
    );
    expect(issues.map((issue) => issue.path)).toEqual(["identities.static.1"]);
    expect(JSON.stringify(issues)).not.toContain(HASH_A);
  });

  it.each(["", "-leading-dash", "has space", "x".repeat(129)])("refuses the identity name %j", (name) => {
    expect(pathsOf(yaml({ identities: `    - { name: "${name}", sha256: "${HASH_A}" }` }))).toContain(
      "identities.static.0.name",
    );
  });
});

describe("teams", () => {
  it("refuses duplicate team names", () => {
    expect(
      pathsOf(
        yaml({
          teams: [
            "    - { name: team-a, members: [team-a-ci], jobs: [a-*], actions: [push] }",
            "    - { name: team-a, members: [team-a-ci], actions: [read] }",
          ].join("\n"),
        }),
      ),
    ).toEqual(["teams.1.name"]);
  });

  it("refuses members that are not identities", () => {
    expect(
      pathsOf(
        yaml({ teams: "    - { name: team-a, members: [team-a-ci, ghost], jobs: [a-*], actions: [push] }" }),
      ),
    ).toEqual(["teams.0.members.1"]);
  });

  it.each(["push", "delete"])("refuses %s without job patterns", (action) => {
    expect(
      pathsOf(yaml({ teams: `    - { name: team-a, members: [team-a-ci], actions: [${action}] }` })),
    ).toEqual(["teams.0.jobs"]);
    expect(
      pathsOf(
        yaml({ teams: `    - { name: team-a, members: [team-a-ci], jobs: [], actions: [${action}] }` }),
      ),
    ).toEqual(["teams.0.jobs"]);
  });

  it.each(["wipe", "read"])("allows %s without job patterns", (action) => {
    const config = parseConfig(
      yaml({ teams: `    - { name: team-a, members: [team-a-ci], actions: [${action}] }` }),
      "t",
      {},
    );
    expect(config.teams[0]?.jobs).toEqual([]);
  });

  it("refuses empty members, empty actions, unknown actions and empty job patterns", () => {
    expect(
      pathsOf(
        yaml({
          teams: [
            "    - { name: t0, members: [], jobs: [a], actions: [push] }",
            "    - { name: t1, members: [team-a-ci], jobs: [a], actions: [] }",
            "    - { name: t2, members: [team-a-ci], jobs: [a], actions: [admin] }",
            '    - { name: t3, members: [team-a-ci], jobs: [""], actions: [push] }',
          ].join("\n"),
        }),
      ).sort(),
    ).toEqual(["teams.0.members", "teams.1.actions", "teams.2.actions.0", "teams.3.jobs.0"]);
  });
});

describe("YAML", () => {
  it("reports duplicate keys", () => {
    const issues = issuesOf(`${yaml({})}\nupstream:\n  url: http://127.0.0.1:1`);
    expect(issues).toHaveLength(1);
    expect(issues[0]?.message).toMatch(/unique/i);
    expect(issues[0]?.message).toMatch(/line \d+/);
  });

  it("refuses an alias expansion bomb as a ConfigError", () => {
    const bomb = [
      "a: &a [x, x, x, x, x, x, x, x, x, x]",
      "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]",
      "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]",
      "d: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]",
    ].join("\n");
    expect(pathsOf(bomb)).toEqual([""]);
  });

  it("reports a syntax error", () => {
    const issues = issuesOf("upstream: { url: http://127.0.0.1:9191\nteams: [");
    expect(issues.length).toBeGreaterThan(0);
    expect(issues.every((issue) => issue.message.startsWith("YAML"))).toBe(true);
  });
});

describe("listen addresses", () => {
  it.each([
    "9091",
    "localhost",
    "127.0.0.1:99999",
    "127.0.0.1:-1",
    "a b:1",
    "[::1:9091",
    "[zz]:1",
    "1.2.3.4:",
  ])("refuses %j", (address) => {
    expect(pathsOf(yaml({ extra: `listen: { api: "${address}" }` }))).toEqual(["listen.api"]);
  });

  it.each([":9091", "127.0.0.1:9091", "[::]:9091", "[::1]:0", "localhost:65535"])("accepts %j", (address) => {
    expect(parseConfig(yaml({ extra: `listen: { api: "${address}" }` }), "t", {}).listen.api).toBe(address);
  });

  it.each([
    ["127.0.0.1:9091", "127.0.0.1:9091"],
    [":9091", "127.0.0.1:9091"],
    ["[::]:9091", "127.0.0.1:9091"],
  ])("refuses api %j and metrics %j on the same port", (api, metrics) => {
    expect(pathsOf(yaml({ extra: `listen: { api: "${api}", metrics: "${metrics}" }` }))).toEqual([
      "listen.metrics",
    ]);
  });

  it("allows both listeners on port 0 and on distinct hosts", () => {
    expect(
      parseConfig(yaml({ extra: 'listen: { api: "127.0.0.1:0", metrics: "127.0.0.1:0" }' }), "t", {}).listen,
    ).toEqual({ api: "127.0.0.1:0", metrics: "127.0.0.1:0" });
    expect(
      parseConfig(yaml({ extra: 'listen: { api: "127.0.0.1:9091", metrics: "127.0.0.2:9091" }' }), "t", {})
        .listen.metrics,
    ).toBe("127.0.0.2:9091");
  });
});

describe("upstream URL", () => {
  it.each(["http://127.0.0.1:9191", "https://pushgateway.monitoring.svc:9091", "http://pg:9091/prefix"])(
    "accepts %s",
    (url) => {
      expect(parseConfig(yaml({ upstream: url }), "t", {}).upstream.url).toBe(url);
    },
  );

  it.each([
    ["ftp", "ftp://127.0.0.1:9191"],
    ["ws", "ws://127.0.0.1:9191"],
    ["file", "file:///tmp/x"],
    ["query string", "http://127.0.0.1:9191/?x=1"],
    ["fragment", "http://127.0.0.1:9191/#x"],
    ["credentials", "http://user:pass@127.0.0.1:9191"],
    ["not a URL", "not a url"],
    ["scheme only", '"http:"'],
    ["empty", '""'],
  ])("refuses %s", (_why, url) => {
    expect(pathsOf(yaml({ upstream: url }))).toEqual(["upstream.url"]);
  });

  it("needs an upstream", () => {
    expect(pathsOf("anonymous: { actions: [read] }")).toEqual(["upstream"]);
  });

  it.each([
    ["timeoutMs", 0],
    ["timeoutMs", 1.5],
    ["connectTimeoutMs", -1],
    ["connections", 0],
    ["connections", 5000],
  ])("refuses upstream.%s: %s", (key, value) => {
    expect(pathsOf(yaml({ upstream: `http://127.0.0.1:9191\n  ${key}: ${value}` }))).toEqual([
      `upstream.${key}`,
    ]);
  });
});

describe("limits", () => {
  it.each([
    ["body.maxBytes", "body: { maxBytes: 0 }"],
    ["body.maxBytes", `body: { maxBytes: ${64 * 1024 * 1024 + 1} }`],
    ["body.maxDecompressedBytes", 'body: { maxDecompressedBytes: "1MiB" }'],
    ["server.shutdownGraceMs", "server: { shutdownGraceMs: -1 }"],
    ["log.level", "log: { level: verbose }"],
  ])("refuses an invalid %s", (path, extra) => {
    expect(pathsOf(yaml({ extra }))).toEqual([path]);
  });
});

describe("loadConfigFile", () => {
  it("loads and validates a file, recording its path as the source", () => {
    const path = file("valid.yaml", yaml({}));
    const config: Config = loadConfigFile(path, {});
    expect(config.source).toBe(path);
    expect(config.teams[0]?.name).toBe("team-a");
  });

  it("turns an unreadable file into a ConfigError naming the file", () => {
    const missing = join(dir, "nope.yaml");
    try {
      loadConfigFile(missing, {});
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).issues).toHaveLength(1);
      expect((error as Error).message).toContain(missing);
    }
  });

  it("resolves secrets from the env it is given, not from process.env", () => {
    const path = file(
      "env.yaml",
      yaml({ identities: "    - { name: team-a-ci, tokenEnv: PUSHGUARD_TEST_TOKEN }" }),
    );
    process.env.PUSHGUARD_TEST_TOKEN = "token-of-team-a-ci";
    try {
      expect(() => loadConfigFile(path, {})).toThrow(ConfigError);
      const config = loadConfigFile(path, { PUSHGUARD_TEST_TOKEN: "token-of-team-a-ci" });
      expect(config.identities.static[0]?.sha256.equals(hashToken("token-of-team-a-ci"))).toBe(true);
    } finally {
      delete process.env.PUSHGUARD_TEST_TOKEN;
    }
  });
});
