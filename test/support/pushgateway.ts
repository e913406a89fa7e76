import { existsSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { send } from "./http.js";
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

// ---------------------------------------------------------------------------------------------
// Reading what a Pushgateway stores, and waiting for its queued writes.
// ---------------------------------------------------------------------------------------------

/** The job of the barrier group `settle` writes; leave it out when judging what is stored. */
export const BARRIER_JOB = "pushguard_test_write_barrier";

/** One group of `/api/v1/metrics`, as read: a push may have broken its shape. */
export interface StoredGroup {
  readonly labels?: unknown;
  readonly last_push_successful?: unknown;
  readonly [family: string]: unknown;
}

export const isBarrier = (group: StoredGroup) =>
  (group.labels as Record<string, unknown> | undefined)?.job === BARRIER_JOB;

// Reads go through `send` (a connection each): thousands of reads over one keep-alive connection
// now and then met a connection the Pushgateway had just closed.
// Status 0: the connection was closed without an answer (1.5.1 panics serving a summary or histogram
// metric that carries no such value, which only --push.disable-consistency-check lets in).
/** `/api/v1/metrics` read leniently: what a broken store still answers, instead of throwing. */
export async function storedGroups(url: string): Promise<{ status: number; groups: StoredGroup[] }> {
  const response = await send(url, "GET", "/api/v1/metrics").catch(() => undefined);
  if (response === undefined) return { status: 0, groups: [] };
  try {
    return {
      status: response.status,
      groups: (JSON.parse(response.text) as { data: StoredGroup[] }).data ?? [],
    };
  } catch {
    return { status: response.status, groups: [] };
  }
}

/** The stored groups (barrier excluded) in a stable order, to tell whether a write changed anything. */
export async function snapshot(url: string): Promise<string> {
  const { groups } = await storedGroups(url);
  return JSON.stringify(
    groups
      .filter((g) => !isBarrier(g))
      .map((g) => JSON.stringify(g))
      .sort(),
  );
}

/** Wipes the Pushgateway and waits until the queued deletions are done. */
export async function wipe(url: string): Promise<void> {
  const response = await send(url, "PUT", "/api/v1/admin/wipe");
  if (response.status !== 202) throw new Error(`${url}: wipe answered ${response.status}`);
  for (let attempt = 0; attempt < 400; attempt++) {
    const { status, groups } = await storedGroups(url);
    if (status === 200 && groups.length === 0) return;
    await sleep(5);
  }
  throw new Error(`${url} still has groups after a wipe`);
}

let barrierMark = 0;

/**
 * Returns once every write sent so far is applied, when `pending` says some may not be: with
 * --push.disable-consistency-check every write is answered 202 and applied later, and a DELETE
 * always is. The Pushgateway applies writes in order from one queue, so a barrier group's new
 * value being visible means all earlier writes are done. (With the check, pushes are applied
 * before the answer.) The value is looked up in `/api/v1/metrics`, or in `/metrics` when a stored
 * push broke the API.
 */
export async function settle(url: string, pending: boolean): Promise<void> {
  if (!pending) return;
  const mark = String(++barrierMark);
  await send(url, "PUT", `/metrics/job/${BARRIER_JOB}`, { body: `write_barrier ${mark}\n` });
  const line = `write_barrier{instance="",job="${BARRIER_JOB}"} ${mark}`;
  for (let attempt = 0; attempt < 400; attempt++) {
    const { status, groups } = await storedGroups(url);
    const barrier = groups.find(isBarrier) as
      | { write_barrier?: { metrics?: Array<{ value?: string }> } }
      | undefined;
    if (barrier?.write_barrier?.metrics?.[0]?.value === mark) return;
    if (status !== 200) {
      const metrics = await send(url, "GET", "/metrics").catch(() => undefined);
      if (metrics?.text.split("\n").includes(line)) return;
      // Neither answers: wait a little, and let the observation show what is broken.
      if (metrics?.status !== 200 && attempt >= 40) return;
    }
    await sleep(5);
  }
  throw new Error(`${url}: the write barrier was not applied`);
}
