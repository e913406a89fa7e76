import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort, type RunningProcess, startProcess, waitForHttp } from "./processes.js";

export const PROMETHEUS_BINARY = process.env.PROMETHEUS_BINARY ?? "/usr/bin/prometheus";

export interface Sample {
  readonly metric: Record<string, string>;
  readonly value: number;
}

export interface Prometheus {
  readonly url: string;
  readonly port: number;
  readonly process: RunningProcess;
  /** An instant query through the HTTP API (`/api/v1/query`), as a vector of samples. */
  query(expr: string): Promise<Sample[]>;
  /**
   * Polls `query(expr)` until `done(samples)` holds, and returns those samples; fails after
   * `timeoutMs` with the last result and the target's scrape health.
   */
  waitFor(expr: string, done: (samples: Sample[]) => boolean, timeoutMs?: number): Promise<Sample[]>;
  stop(): Promise<void>;
}

export interface PrometheusOptions {
  /** Prometheus duration, e.g. `1s` (the default) or `200ms`; also the scrape timeout. */
  scrapeInterval?: string;
  jobName?: string;
  /**
   * Extra target labels by target (host:port), e.g. `{ "127.0.0.1:9091": { backend: "direct" } }`.
   * With `honor_labels: true` they are added to every scraped series that does not carry them, so
   * several Pushgateways holding the same jobs can be told apart in queries.
   */
  targetLabels?: Readonly<Record<string, Readonly<Record<string, string>>>>;
}

/**
 * Starts the real Debian `prometheus` on a free loopback port with a throwaway TSDB directory and a
 * generated config scraping `targets` (host:port) every `scrapeInterval` with `honor_labels: true`,
 * as a Pushgateway must be scraped so pushed `job`/`instance` labels survive.
 */
export async function startPrometheus(
  targets: readonly string[],
  options: PrometheusOptions = {},
): Promise<Prometheus> {
  if (!existsSync(PROMETHEUS_BINARY)) {
    throw new Error(`${PROMETHEUS_BINARY} not found: apt-get install prometheus (npm test does this)`);
  }
  const interval = options.scrapeInterval ?? "1s";
  const dir = mkdtempSync(join(tmpdir(), "pushguard-prometheus-"));
  const configFile = join(dir, "prometheus.yml");
  const targetLabels = options.targetLabels ?? {};
  const staticConfigs = targets
    .map(
      (target) =>
        `      - targets: ${JSON.stringify([target])}\n        labels: ${JSON.stringify(targetLabels[target] ?? {})}\n`,
    )
    .join("");
  writeFileSync(
    configFile,
    `global:
  scrape_interval: ${interval}
  evaluation_interval: ${interval}
scrape_configs:
  - job_name: ${JSON.stringify(options.jobName ?? "pushgateway")}
    honor_labels: true
    scrape_interval: ${interval}
    scrape_timeout: ${interval}
    static_configs:
${staticConfigs}`,
  );
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const running = startProcess(PROMETHEUS_BINARY, [
    `--config.file=${configFile}`,
    `--storage.tsdb.path=${join(dir, "data")}`,
    `--web.listen-address=127.0.0.1:${port}`,
    "--storage.tsdb.retention.time=1h",
    "--log.level=warn",
  ]);
  try {
    await waitForHttp(`${url}/-/ready`, running, 30_000);
  } catch (error) {
    await running.stop();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }

  const query = async (expr: string): Promise<Sample[]> => {
    const response = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await response.json()) as {
      status: string;
      error?: string;
      data?: {
        resultType: string;
        result: Array<{ metric: Record<string, string>; value: [number, string] }>;
      };
    };
    if (body.status !== "success" || body.data?.resultType !== "vector") {
      throw new Error(`query ${expr} failed: ${JSON.stringify(body)}`);
    }
    return body.data.result.map((sample) => ({ metric: sample.metric, value: Number(sample.value[1]) }));
  };

  return {
    url,
    port,
    process: running,
    query,
    async waitFor(expr, done, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      let last: Sample[] = [];
      while (Date.now() < deadline) {
        last = await query(expr);
        if (done(last)) return last;
        await sleep(200);
      }
      const targetsState = await (await fetch(`${url}/api/v1/targets`)).text();
      throw new Error(
        `timed out after ${timeoutMs} ms waiting on ${expr}; last result ${JSON.stringify(last)}; targets ${targetsState}`,
      );
    },
    async stop() {
      await running.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
