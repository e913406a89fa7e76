import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../../src/config/load.js";

const BASE = `
upstream: { url: "http://127.0.0.1:9091" }
identities: { static: [ { name: ci, sha256: "${"ab".repeat(32)}" } ] }
teams: [ { name: team-a, members: [ci], jobs: ["team-a-*"], actions: [push] } ]
`;

function issues(extra: string): string[] {
  try {
    parseConfig(BASE + extra, "test.yaml", {});
    return [];
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return error.issues.map((issue) => `${issue.path}: ${issue.message}`);
  }
}

describe("rate-limit and overload configuration", () => {
  it("defaults to no rules, a memory store, an auth-failure limit and a bounded upstream queue", () => {
    const config = parseConfig(BASE, "test.yaml", {});
    expect(config.rateLimit).toEqual({
      rules: [],
      authFailures: { rate: 1, burst: 30 },
      store: "memory",
      onStoreError: "failOpen",
      memory: { maxKeys: 100_000 },
    });
    expect(config.overload).toEqual({
      maxConcurrent: 64,
      maxQueued: 64,
      maxQueueWaitMs: 1_000,
      maxTeamShare: 0.5,
      maxBufferedBodyBytes: 128 * 1024 * 1024,
    });
    expect(config.server.trustedProxies).toEqual([]);
  });

  it("accepts a full Redis setup", () => {
    const config = parseConfig(
      `${BASE}
rateLimit:
  store: redis
  onStoreError: failClosed
  redis: { url: "rediss://redis.example:6380/2", passwordEnv: REDIS_PASSWORD }
  rules:
    - { scope: team, team: team-a, rate: 0.5, burst: 3 }
    - { scope: job, jobs: ["team-a-loop-*"], rate: 1, burst: 1 }
server: { trustedProxies: ["10.0.0.0/8", "fd00::/8", "192.0.2.1"] }
`,
      "test.yaml",
      {},
    );
    expect(config.rateLimit.redis).toEqual({
      url: "rediss://redis.example:6380/2",
      passwordEnv: "REDIS_PASSWORD",
      keyPrefix: "pushguard:rl:",
      timeoutMs: 200,
    });
    expect(config.rateLimit.rules[1]).toEqual({
      scope: "job",
      kind: "write",
      jobs: ["team-a-loop-*"],
      rate: 1,
      burst: 1,
    });
  });

  it.each([
    [
      "rateLimit: { rules: [ { scope: team, team: team-z, rate: 1, burst: 1 } ] }",
      'rateLimit.rules.0.team: unknown team "team-z"',
    ],
    [
      "rateLimit: { rules: [ { scope: job, rate: 1, burst: 1 } ] }",
      "rateLimit.rules.0.jobs: a job-scoped rule needs job patterns",
    ],
    [
      "rateLimit: { rules: [ { scope: team, jobs: [x], rate: 1, burst: 1 } ] }",
      "rateLimit.rules.0.jobs: only job-scoped rules",
    ],
    [
      'rateLimit: { rules: [ { scope: job, jobs: ["{team}-*"], rate: 1, burst: 1 } ] }',
      "rateLimit.rules.0.jobs.0: placeholders such as {namespace} work in team jobs and groupingKey, not in rate-limit rules",
    ],
    [
      "rateLimit: { rules: [ { scope: job, kind: read, jobs: [x], rate: 1, burst: 1 } ] }",
      "rateLimit.rules.0.kind: reads have no job",
    ],
    ["rateLimit: { rules: [ { scope: team, rate: 0, burst: 1 } ] }", "rateLimit.rules.0.rate: Too small"],
    ["rateLimit: { rules: [ { scope: team, rate: 1, burst: 2.5 } ] }", "rateLimit.rules.0.burst: "],
    ["rateLimit: { rules: [ { scope: everyone, rate: 1, burst: 1 } ] }", "rateLimit.rules.0.scope: "],
    ["rateLimit: { store: redis }", "rateLimit.redis: store: redis needs rateLimit.redis.url"],
    [
      'rateLimit: { redis: { url: "http://redis:6379" } }',
      "rateLimit.redis.url: must be a redis:// or rediss:// URL",
    ],
    [
      'rateLimit: { redis: { url: "redis://r", passwordFile: /f, passwordEnv: E } }',
      "rateLimit.redis: give at most one of passwordFile, passwordEnv",
    ],
    ["rateLimit: { onStoreError: ignore }", "rateLimit.onStoreError: "],
    ["rateLimit: { authFailures: { burst: 0 } }", "rateLimit.authFailures.burst: Too small"],
    [
      'server: { trustedProxies: ["10.0.0.0/33"] }',
      "server.trustedProxies.0: must be an IP address or CIDR block",
    ],
    ["overload: { maxConcurrent: 65 }", "overload.maxConcurrent: must not exceed upstream.connections (64)"],
    ["overload: { maxQueued: -1 }", "overload.maxQueued: Too small"],
    ["overload: { maxQueueWaitMs: 0 }", "overload.maxQueueWaitMs: Too small"],
    [
      "overload: { maxBufferedBodyBytes: 41943039 }",
      "overload.maxBufferedBodyBytes: must be at least body.maxBytes + body.maxDecompressedBytes (41943040)",
    ],
  ])("%s → %s", (extra, expected) => {
    expect(issues(extra)).toEqual([expect.stringContaining(expected)]);
  });
});
