import { setTimeout as sleep } from "node:timers/promises";
import type { Prometheus } from "./prometheus.js";

/** One scrape of one target, as Prometheus recorded it. */
export interface ScrapeOutcome {
  /** When the scrape started: the timestamp (ms) Prometheus gave its samples. */
  readonly at: number;
  /** Whether it succeeded (`up` was 1). */
  readonly up: boolean;
  /** `scrape_samples_scraped`: samples the scrape read (0 when it failed). */
  readonly samples: number;
  /** The target's `lastError` when the scrape was seen (for messages; a later scrape may have set it). */
  readonly error: string;
}

export interface ScrapeCheck {
  /**
   * Waits for the first scrape of `target` (host:port) that started after `since` (ms since the
   * epoch) and reports it. Fails after `timeoutMs`.
   */
  scrapeAfter(target: string, since: number, timeoutMs?: number): Promise<ScrapeOutcome>;
  /**
   * The first scrape after `since`, or, when it failed, the one after it: on a loaded machine a
   * scrape can time out now and then (with a short interval, so is the timeout), while what
   * breaks a scrape breaks every one.
   */
  healthyScrapeAfter(target: string, since: number): Promise<ScrapeOutcome>;
  /**
   * The series matching `selector` in the TSDB at `at` (ms), counted by the values of `by` — the
   * series one scrape at `at` stored (those it no longer had are stale from that instant on).
   */
  countBy(selector: string, by: string, at: number): Promise<Map<string, number>>;
}

/**
 * Answers "did a scrape that started after T succeed, and how many samples did it get" from
 * Prometheus's own series: `up` and `scrape_samples_scraped` are written in the same commit as the
 * scrape's samples and carry its start time, so once both exist past T, that scrape is complete and
 * queryable (the targets API reports a scrape before its samples are committed).
 */
export function scrapeCheck(prometheus: Prometheus): ScrapeCheck {
  async function api<T>(path: string, params: Record<string, string>): Promise<T> {
    const url = `${prometheus.url}${path}?${new URLSearchParams(params)}`;
    // A polled keep-alive connection is now and then closed by the server as it is reused: retry once.
    const response = await fetch(url).catch(() => fetch(url));
    const body = (await response.json()) as { status: string; data: T; error?: string };
    if (body.status !== "success") throw new Error(`${path} ${JSON.stringify(params)}: ${body.error}`);
    return body.data;
  }

  async function lastError(target: string): Promise<string> {
    const data = await api<{ activeTargets: Array<{ labels: Record<string, string>; lastError: string }> }>(
      "/api/v1/targets",
      { state: "active" },
    );
    return data.activeTargets.find((t) => t.labels.instance === target)?.lastError ?? "(target not found)";
  }

  async function scrapeAfter(target: string, since: number, timeoutMs = 10_000): Promise<ScrapeOutcome> {
    // Prometheus may align a scrape's timestamp to its schedule by up to a few ms either way.
    const after = since + 10;
    const deadline = Date.now() + timeoutMs;
    const selector = `{__name__=~"up|scrape_samples_scraped",instance=${JSON.stringify(target)}}[30s]`;
    while (Date.now() < deadline) {
      const series = await api<{
        resultType: string;
        result: Array<{ metric: Record<string, string>; values: Array<[number, string]> }>;
      }>("/api/v1/query", { query: selector });
      const byName = new Map(
        series.result.map((s) => [
          s.metric.__name__,
          new Map(s.values.map(([t, v]) => [Math.round(t * 1000), v])),
        ]),
      );
      const up = byName.get("up");
      const samples = byName.get("scrape_samples_scraped");
      const at = [...(up?.keys() ?? [])].filter((t) => t > after && samples?.has(t)).sort((a, b) => a - b)[0];
      if (at !== undefined) {
        return {
          at,
          up: up?.get(at) === "1",
          samples: Number(samples?.get(at)),
          error: await lastError(target),
        };
      }
      await sleep(40);
    }
    throw new Error(
      `no scrape of ${target} started after ${new Date(since).toISOString()} within ${timeoutMs} ms`,
    );
  }

  return {
    scrapeAfter,
    async healthyScrapeAfter(target, since) {
      const first = await scrapeAfter(target, since);
      return first.up ? first : scrapeAfter(target, first.at);
    },

    async countBy(selector, by, at) {
      const data = await api<{ result: Array<{ metric: Record<string, string>; value: [number, string] }> }>(
        "/api/v1/query",
        { query: `count by (${by}) (${selector})`, time: (at / 1000).toFixed(3) },
      );
      return new Map(data.result.map((r) => [r.metric[by] ?? "", Number(r.value[1])]));
    },
  };
}
