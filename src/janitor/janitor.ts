import { randomUUID } from "node:crypto";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { describeGroupingKey } from "../pushgateway/grouping-key.js";
import type { Clock } from "../ratelimit/store.js";
import { discard, type Gateway, readBody } from "../upstream/gateway.js";
import { lastActivity, type PushedGroup, parseGroups } from "../upstream/groups.js";
import type { Lease } from "./lease.js";
import type { Attribute } from "./ownership.js";

export interface JanitorOptions {
  /** Reads groups from, and deletes through, the same upstream path as client requests. */
  readonly gateway: Gateway;
  readonly lease: Lease;
  /** Milliseconds between runs. */
  readonly intervalMs: number;
  /** Log and count what would expire, delete nothing. */
  readonly dryRun: boolean;
  readonly attribute: Attribute;
  /** Milliseconds since the epoch; tests move it instead of waiting for groups to age. */
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: Metrics;
}

export interface Expiry {
  readonly path: string;
  readonly groupingKey: string;
  readonly team: string;
  readonly owners: readonly string[];
  readonly ageSeconds: number;
  readonly ttlSeconds: number;
  /** Upstream status of the delete; undefined in dry-run. */
  readonly status?: number;
}

export interface JanitorRun {
  /** `standby` when another replica holds the lease and nothing was read. */
  readonly role: "leader" | "standby";
  readonly expired: readonly Expiry[];
}

const AUDIT_IDENTITY = "pushguard-janitor";

/**
 * Deletes groups nobody pushed within their TTL (see `compileOwnership` for whose TTL applies).
 * Each run: take the lease, read every group, pick the expired ones, then — holding their group
 * locks, so no push through this process lands in between — read again and delete those still
 * expired, through the same canonical path and upstream (every replica) as a client's DELETE,
 * with one audit line each.
 */
export class Janitor {
  readonly #options: Omit<JanitorOptions, "attribute">;
  #attribute: Attribute;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<JanitorRun> | undefined;
  #stopped = false;

  constructor(options: JanitorOptions) {
    this.#options = options;
    this.#attribute = options.attribute;
  }

  /** Runs every `intervalMs` (the first run one interval after start). */
  start(): void {
    this.#stopped = false;
    this.#timer = setInterval(() => {
      void this.runOnce().catch(() => undefined);
    }, this.#options.intervalMs);
    this.#timer.unref();
  }

  /** New team rules (a config reload) apply from the next run. */
  setAttribution(attribute: Attribute): void {
    this.#attribute = attribute;
  }

  /** One run; a run already in progress is joined rather than doubled. */
  runOnce(): Promise<JanitorRun> {
    this.#running ??= this.#run().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    await this.#running?.catch(() => undefined);
    await this.#options.lease.close();
  }

  async #run(): Promise<JanitorRun> {
    const { lease, metrics, logger, dryRun } = this.#options;
    try {
      let leader: boolean;
      try {
        leader = !this.#stopped && (await lease.acquire());
      } catch (error) {
        metrics.janitorErrors.inc({ stage: "lease" });
        throw error;
      }
      metrics.janitorLeader.set(leader ? 1 : 0);
      if (!leader) {
        metrics.janitorRuns.inc({ result: "standby" });
        return { role: "standby", expired: [] };
      }
      const candidates = this.#expired(await this.#read(), true);
      const expired = dryRun ? candidates : await this.#delete(candidates);
      for (const expiry of expired) {
        metrics.janitorExpired.inc({ team: expiry.team, mode: dryRun ? "dry-run" : "delete" });
      }
      metrics.janitorRuns.inc({ result: "success" });
      metrics.janitorLastRun.set(Date.now() / 1000);
      return { role: "leader", expired };
    } catch (error) {
      metrics.janitorRuns.inc({ result: "error" });
      logger.warn({ err: error }, "janitor run failed; nothing more was deleted in this run");
      throw error;
    }
  }

  async #read(): Promise<Map<string, PushedGroup>> {
    try {
      const response = await this.#options.gateway.request({
        method: "GET",
        path: "/api/v1/metrics",
        headers: {},
        clientAddress: undefined,
        requestId: `janitor-${randomUUID()}`,
      });
      const body = await readBody(response);
      if (response.status !== 200) throw new Error(`/api/v1/metrics answered ${response.status}`);
      return parseGroups(JSON.parse(body.toString("utf8"))).groups;
    } catch (error) {
      this.#options.metrics.janitorErrors.inc({ stage: "read" });
      throw error;
    }
  }

  /** The groups past their TTL now; with `record`, also updates the oldest-age gauge per team. */
  #expired(groups: ReadonlyMap<string, PushedGroup>, record: boolean): Expiry[] {
    const now = this.#options.clock();
    const oldest = new Map<string, number>();
    const expired: Expiry[] = [];
    for (const group of groups.values()) {
      const pushed = lastActivity(group);
      if (pushed <= 0) continue;
      const ageSeconds = Math.max(0, now / 1000 - pushed);
      const attribution = this.#attribute(group.labels);
      const team = attribution.team ?? "";
      oldest.set(team, Math.max(oldest.get(team) ?? 0, ageSeconds));
      if (attribution.team === undefined || ageSeconds * 1000 <= attribution.ttlMs) continue;
      expired.push({
        path: group.path,
        groupingKey: describeGroupingKey(group.groupingKey),
        team: attribution.team,
        owners: attribution.owners,
        ageSeconds: Math.round(ageSeconds),
        ttlSeconds: attribution.ttlMs / 1000,
      });
    }
    if (record) {
      this.#options.metrics.janitorOldestGroupAge.reset();
      for (const [team, age] of oldest) this.#options.metrics.janitorOldestGroupAge.set({ team }, age);
      if (this.#options.dryRun) for (const expiry of expired) this.#audit(expiry);
    }
    return expired;
  }

  /**
   * Holding the candidates' group locks, reads again and deletes what is still expired: a push
   * through this process cannot land between that read and the delete. One through another
   * replica can (docs/expiry.md states the race).
   */
  async #delete(candidates: readonly Expiry[]): Promise<Expiry[]> {
    if (candidates.length === 0) return [];
    const { gateway, lease, metrics } = this.#options;
    return gateway.locks.withGroups(
      candidates.map((candidate) => candidate.path),
      async () => {
        const wanted = new Set(candidates.map((candidate) => candidate.path));
        const still = this.#expired(await this.#read(), false).filter((expiry) => wanted.has(expiry.path));
        const done: Expiry[] = [];
        for (const expiry of still) {
          // Renewing right before each delete keeps a replica that lost the lease from acting on.
          if (!(await lease.acquire())) break;
          const requestId = `janitor-${randomUUID()}`;
          let status: number;
          try {
            const response = await gateway.request({
              method: "DELETE",
              path: expiry.path,
              headers: {},
              clientAddress: undefined,
              requestId,
              groupLockHeld: true,
            });
            status = response.status;
            await discard(response);
          } catch (error) {
            metrics.janitorErrors.inc({ stage: "delete" });
            this.#audit(expiry, requestId, (error as { status?: number }).status ?? 502, error);
            continue;
          }
          if (status < 200 || status >= 300) metrics.janitorErrors.inc({ stage: "delete" });
          const result = { ...expiry, status };
          this.#audit(result, requestId, status);
          if (status >= 200 && status < 300) done.push(result);
        }
        return done;
      },
    );
  }

  /** One audit line per expiry, shaped like a client's DELETE audit line. */
  #audit(expiry: Expiry, requestId = `janitor-${randomUUID()}`, status?: number, error?: unknown): void {
    const { logger, dryRun, lease } = this.#options;
    logger.info(
      {
        audit: {
          requestId,
          identity: AUDIT_IDENTITY,
          via: "janitor",
          team: expiry.team,
          action: "delete",
          method: "DELETE",
          groupingKey: expiry.groupingKey,
          decision: "allow",
          reason: "expired",
          owners: expiry.owners,
          ageSeconds: expiry.ageSeconds,
          ttlSeconds: expiry.ttlSeconds,
          dryRun,
          leaseFence: lease.fence,
          status,
          code: (error as { code?: string } | undefined)?.code,
        },
      },
      "audit",
    );
  }
}
