import { existsSync } from "node:fs";
import { freePort, type RunningProcess, startProcess, waitForHttp } from "./processes.js";

export const PUSHGATEWAY_BINARY = process.env.PUSHGATEWAY_BINARY ?? "/usr/bin/prometheus-pushgateway";

export interface Pushgateway {
  readonly url: string;
  readonly port: number;
  readonly process: RunningProcess;
  /** The groups stored right now, as `/api/v1/metrics` reports them (labels of each group). */
  groups(): Promise<Array<Record<string, string>>>;
  /** The text exposition of `/metrics`. */
  metricsText(): Promise<string>;
  stop(): Promise<void>;
}

/**
 * Starts the real Debian `prometheus-pushgateway` on a free loopback port, with the admin API and
 * lifecycle endpoints enabled so tests can prove pushguard keeps them closed.
 */
export async function startPushgateway(extraArgs: readonly string[] = []): Promise<Pushgateway> {
  if (!existsSync(PUSHGATEWAY_BINARY)) {
    throw new Error(
      `${PUSHGATEWAY_BINARY} not found: apt-get install prometheus-pushgateway (npm test does this)`,
    );
  }
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const running = startProcess(PUSHGATEWAY_BINARY, [
    `--web.listen-address=127.0.0.1:${port}`,
    "--web.enable-admin-api",
    "--web.enable-lifecycle",
    "--log.level=warn",
    // Debian's build defaults to /var/lib/prometheus/pushgateway.data, which every instance would
    // share; tests keep state in memory unless they ask for a file.
    ...(extraArgs.some((arg) => arg.startsWith("--persistence.file")) ? [] : ["--persistence.file="]),
    ...extraArgs,
  ]);
  await waitForHttp(`${url}/-/ready`, running);
  return {
    url,
    port,
    process: running,
    async groups() {
      const response = await fetch(`${url}/api/v1/metrics`);
      const body = (await response.json()) as { data: Array<{ labels: Record<string, string> }> };
      return body.data.map((group) => group.labels);
    },
    async metricsText() {
      return (await fetch(`${url}/metrics`)).text();
    },
    async stop() {
      await running.stop();
    },
  };
}
