import { Writable } from "node:stream";
import { parseConfig } from "../../src/config/load.js";
import { createLogger } from "../../src/observability/logger.js";
import { type RunningServer, type ServerOptions, startServer } from "../../src/server.js";

export interface TestPushguard extends RunningServer {
  /** Every log line written so far, parsed. */
  logs(): Array<Record<string, unknown>>;
  /** The raw log text (to prove what never appears in it). */
  logText(): string;
}

export const TEAM_A_TOKEN = "test-team-a-token-0123456789";
export const TEAM_B_TOKEN = "test-team-b-token-0123456789";
export const ADMIN_TOKEN = "test-admin-token-0123456789";

/**
 * A config with three static identities and teams mirroring the demo. `extra` is appended YAML;
 * `upstreamOptions` is added inside the `upstream` map (e.g. `timeoutMs: 300`).
 */
export function standardConfig(upstreamUrl: string, extra = "", upstreamOptions = ""): string {
  return `
listen: { api: "127.0.0.1:0", metrics: "127.0.0.1:0" }
upstream: { url: "${upstreamUrl}"${upstreamOptions ? `, ${upstreamOptions}` : ""} }
identities:
  static:
    - { name: team-a-ci, tokenEnv: TEST_TEAM_A_TOKEN }
    - { name: team-b-ci, tokenEnv: TEST_TEAM_B_TOKEN }
    - { name: admin, tokenEnv: TEST_ADMIN_TOKEN }
teams:
  - { name: team-a, members: [team-a-ci], jobs: ["team-a-*"], actions: [push, delete] }
  - { name: team-b, members: [team-b-ci], jobs: ["team-b-*"], actions: [push, delete] }
  - { name: admins, members: [admin], jobs: ["*"], actions: [push, delete, wipe, read] }
${extra}`;
}

export const TOKEN_ENV = {
  TEST_TEAM_A_TOKEN: TEAM_A_TOKEN,
  TEST_TEAM_B_TOKEN: TEAM_B_TOKEN,
  TEST_ADMIN_TOKEN: ADMIN_TOKEN,
};

/**
 * Starts pushguard in-process on ephemeral loopback ports, capturing its JSON logs. `options`
 * injects the outside world (e.g. a `clock` the test moves).
 */
export async function startPushguard(
  configYaml: string,
  env: NodeJS.ProcessEnv = TOKEN_ENV,
  options: Omit<ServerOptions, "logger"> = {},
): Promise<TestPushguard> {
  const config = parseConfig(configYaml, "test-config.yaml", env);
  let text = "";
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      text += chunk.toString();
      callback();
    },
  });
  const server = await startServer(config, { ...options, logger: createLogger("debug", sink) });
  return {
    ...server,
    close: () => server.close(),
    logText: () => text,
    logs: () =>
      text
        .split("\n")
        .filter((line) => line.trim() !== "")
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}
