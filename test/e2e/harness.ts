import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "../support/clients/index.js";
import { freePort, type RunningProcess, startProcess, waitForHttp } from "../support/processes.js";

export interface PushguardProcess {
  /** e.g. `http://127.0.0.1:41234` */
  readonly apiUrl: string;
  /** `127.0.0.1:41234`, for clients that take host:port (Python's `gateway`). */
  readonly apiAddress: string;
  readonly metricsUrl: string;
  readonly process: RunningProcess;
  stop(): Promise<void>;
}

/**
 * Runs pushguard as users do, `node dist/main.js serve --config FILE` (dist/ is built by the
 * vitest global setup), on free loopback ports. `configYaml` may contain the placeholders
 * `{{API}}` and `{{METRICS}}` for the listen addresses; without them a `listen` map is prepended.
 */
export async function startPushguardProcess(
  configYaml: string,
  env: NodeJS.ProcessEnv = {},
): Promise<PushguardProcess> {
  const apiAddress = `127.0.0.1:${await freePort()}`;
  const metricsAddress = `127.0.0.1:${await freePort()}`;
  const yaml = configYaml.includes("{{API}}")
    ? configYaml.replaceAll("{{API}}", apiAddress).replaceAll("{{METRICS}}", metricsAddress)
    : `listen: { api: "${apiAddress}", metrics: "${metricsAddress}" }\n${configYaml}`;
  const dir = mkdtempSync(join(tmpdir(), "pushguard-e2e-"));
  const configFile = join(dir, "pushguard.yaml");
  writeFileSync(configFile, yaml);
  const running = startProcess(
    process.execPath,
    [join(REPO_ROOT, "dist", "main.js"), "serve", "--config", configFile],
    {
      ...process.env,
      ...env,
    },
  );
  const metricsUrl = `http://${metricsAddress}`;
  try {
    await waitForHttp(`${metricsUrl}/readyz`, running);
  } catch (error) {
    await running.stop();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    apiUrl: `http://${apiAddress}`,
    apiAddress,
    metricsUrl,
    process: running,
    async stop() {
      await running.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
