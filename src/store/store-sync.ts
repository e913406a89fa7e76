import { randomUUID } from "node:crypto";
import { ProblemError } from "../errors.js";
import { type MetricType, metricTypeNamed } from "../exposition/types.js";
import type { Logger } from "../observability/logger.js";
import type { Gateway } from "../upstream/gateway.js";
import { readBody } from "../upstream/gateway.js";
import { type PushedGroup, parseGroups } from "../upstream/groups.js";
import { seriesHash } from "./series-hash.js";
import type { SharedNames } from "./shared-names.js";
import type { StoreIndex } from "./store-index.js";

/** A resync after an unknown outcome waits this long, so a burst of failures costs one read. */
const DEBOUNCE_MS = 1_000;

/**
 * Keeps the store index equal to the Pushgateway: builds it from `/api/v1/metrics` before
 * pushguard is ready, again every `intervalMs`, and soon after any write whose outcome is unknown
 * (a timeout, a 5xx: it may or may not have been stored). Until the first build succeeds the
 * index is not `ready` and pushes are refused, since they cannot be checked.
 */
export class StoreSync {
  readonly #index: StoreIndex;
  readonly #gateway: Gateway;
  readonly #logger: Logger;
  readonly #intervalMs: number;
  readonly #owner: (labels: Readonly<Record<string, string>>) => string | undefined;
  readonly #shared: SharedSync | undefined;
  #ready = false;
  /** Why the last read failed, for the refusals while the index is not built. */
  #failure = "the first read of the store has not finished";
  #running: Promise<boolean> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #soon: NodeJS.Timeout | undefined;

  /**
   * @param owner the team a stored group counts against (its pusher is not known after a re-read)
   * @param shared the names every replica records in Redis, corrected from each read
   */
  constructor(
    index: StoreIndex,
    gateway: Gateway,
    logger: Logger,
    intervalMs: number,
    owner: (labels: Readonly<Record<string, string>>) => string | undefined,
    shared?: SharedSync,
  ) {
    this.#owner = owner;
    this.#shared = shared;
    this.#index = index;
    this.#gateway = gateway;
    this.#logger = logger;
    this.#intervalMs = intervalMs;
  }

  get ready(): boolean {
    return this.#ready;
  }

  get failure(): string {
    return this.#failure;
  }

  /** Reads the whole store into the index; one read at a time. */
  resync(): Promise<boolean> {
    this.#running ??= this.#read().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  /** Schedules a resync: a write's outcome is unknown. */
  resyncSoon(): void {
    if (this.#soon) return;
    this.#soon = setTimeout(() => {
      this.#soon = undefined;
      void this.resync();
    }, DEBOUNCE_MS);
    this.#soon.unref();
  }

  start(): void {
    const schedule = () => {
      // Retried every few seconds until the first build succeeds.
      this.#timer = setTimeout(
        () => void this.resync().then(schedule),
        this.#ready ? this.#intervalMs : 2_000,
      );
      this.#timer.unref();
    };
    schedule();
  }

  stop(): void {
    clearTimeout(this.#timer);
    clearTimeout(this.#soon);
  }

  async #read(): Promise<boolean> {
    this.#index.beginResync();
    // Redis's clock when the read starts: what was recorded well before it, the read must show.
    const readAt = await this.#shared?.names.now().catch(() => undefined);
    try {
      const response = await this.#gateway.request({
        method: "GET",
        path: "/api/v1/metrics",
        headers: {},
        clientAddress: undefined,
        requestId: `store-index-${randomUUID()}`,
      });
      const body = await readBody(response);
      if (response.status !== 200) throw new Error(`/api/v1/metrics answered ${response.status}`);
      const { groups, unreadable } = parseGroups(JSON.parse(body.toString("utf8")));
      const indexed = [...groups.values()].map((group) => indexedGroup(group, this.#owner(group.labels)));
      this.#index.load(indexed);
      if (this.#shared && readAt !== undefined) await reconcile(indexed, readAt, this.#shared, this.#logger);
      if (unreadable > 0)
        this.#logger.warn(
          { unreadable },
          "store index: groups without a readable grouping key were left out",
        );
      this.#ready = true;
      return true;
    } catch (error) {
      this.#failure =
        error instanceof ProblemError
          ? `the Pushgateway is unreachable (${error.code})`
          : `its /api/v1/metrics could not be read (${(error as Error).message})`;
      this.#index.abandonResync();
      this.#logger.warn({ err: error }, "store index: could not read the Pushgateway's store; trying again");
      return false;
    }
  }
}

/**
 * Corrects what Redis records from a read of the store (a replica that died between recording a
 * push and sending it, a delete not recorded): the read is the truth for every group not changed
 * just before it.
 */
async function reconcile(
  groups: ReturnType<typeof indexedGroup>[],
  readAt: number,
  shared: SharedSync,
  logger: Logger,
): Promise<void> {
  const stored = new Map(
    groups.map((group) => [
      group.path,
      { team: group.team, families: new Map(group.families.map(([name, family]) => [name, family.type])) },
    ]),
  );
  try {
    const corrected = await shared.names.reconcile(stored, readAt, shared.graceMs);
    if (corrected > 0)
      logger.info({ corrected }, "store index: groups recorded in Redis corrected from the store");
  } catch (error) {
    logger.warn({ err: error }, "store index: could not correct the names recorded in Redis; next resync");
  }
}

/** The names shared in Redis, and how long a recorded push may take to show in a read. */
export interface SharedSync {
  readonly names: SharedNames;
  readonly graceMs: number;
}

interface IndexedFamily {
  type: MetricType;
  series: number[];
  samples: number;
}

/** A group as `/api/v1/metrics` reports it, reduced to what the index keeps. */
export function indexedGroup(
  group: PushedGroup,
  team: string | undefined,
): { path: string; team: string | undefined; families: Array<[string, IndexedFamily]> } {
  const families: Array<[string, IndexedFamily]> = [];
  for (const [name, family] of Object.entries(group.families)) {
    const type = metricTypeNamed(family.type);
    // GAUGE_HISTOGRAM and the like were stored around pushguard; nothing pushed through it can match them.
    if (type === undefined || !Array.isArray(family.metrics)) continue;
    let samples = 0;
    const series = family.metrics.map((metric) => {
      samples += scrapeSeries(type, metric);
      const pairs = Object.entries((metric.labels ?? {}) as Record<string, string>)
        .filter(([, value]) => value !== "")
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      return seriesHash(name, pairs);
    });
    families.push([name, { type, series, samples }]);
  }
  return { path: group.path, team, families };
}

/** As `seriesOf`, from the API's form of a metric: buckets and quantiles are objects by bound. */
function scrapeSeries(type: MetricType, metric: Readonly<Record<string, unknown>>): number {
  if (type === "histogram") {
    const bounds = Object.keys((metric.buckets ?? {}) as Record<string, unknown>);
    return bounds.length + (bounds.includes("+Inf") ? 0 : 1) + 2;
  }
  if (type === "summary") return Object.keys((metric.quantiles ?? {}) as Record<string, unknown>).length + 2;
  return 1;
}
