import { ProblemError } from "../errors.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { connectionCount, watchConnections } from "./connection-watch.js";
import type { UpstreamOptions, UpstreamResponse } from "./forward.js";
import {
  discard,
  type Gateway,
  type GatewayRequest,
  isWrite,
  ordered,
  type ReplicaStatus,
} from "./gateway.js";
import type { GroupLocks } from "./group-locks.js";
import { lastActivity } from "./groups.js";
import { Replica } from "./replica.js";
import { findDivergence, repairReplica } from "./replicated-repair.js";
import type { SharedMisses } from "./replication-state.js";

export type WritePolicy = "allInSync" | "majority" | "all";

export interface ReplicationSettings {
  /** When a write counts as stored (see docs/high-availability.md). */
  readonly writePolicy: WritePolicy;
  /** Milliseconds between health checks (and repair attempts). */
  readonly healthCheckIntervalMs: number;
  /** At first start, how long to wait for every replica before choosing the source of truth. */
  readonly bootstrapWaitMs: number;
  /** Milliseconds a status probe may take before the replica counts as down. */
  readonly probeTimeoutMs: number;
  /** Once a write meets the policy, how long it still waits for the other replicas. */
  readonly stragglerMs: number;
  /** Milliseconds between two comparisons of the in-sync replicas (0: never). */
  readonly verifyIntervalMs: number;
}

export interface ReplicatedUpstreamOptions {
  /** The current replica URLs: a fixed list, or a DNS name resolved again on each call. */
  readonly discover: () => Promise<readonly string[]>;
  /** Milliseconds between two `discover` calls (a fixed list is read once). */
  readonly discoverEveryMs: number | undefined;
  readonly upstream: Omit<UpstreamOptions, "url">;
  readonly replication: ReplicationSettings;
  readonly locks: GroupLocks;
  /** Write misses shared with the other pushguard processes (Redis), if configured. */
  readonly shared?: SharedMisses;
  readonly logger: Logger;
  readonly metrics: Metrics;
}

interface Outcome {
  readonly replica: Replica;
  readonly response?: UpstreamResponse;
  readonly error?: unknown;
  /** Stored, but the replica turned out to be a restarted (empty) process. */
  restarted?: boolean;
}

const MAX_REPAIR_BACKOFF_MS = 30_000;

/**
 * After the shared state failed to answer, client requests (reads, and writes checking before
 * they mark a replica) skip reading it for this long: a hung Redis would otherwise add its command
 * timeout to each of them. Recording misses, health checks, repair and bootstrap always ask.
 */
const SHARED_COOLDOWN_MS = 1_000;

/**
 * A replica cut off mid-write may still apply that write once it answers again (the request can
 * sit in its socket buffer): it is repaired only this long after its first answer.
 */
const SETTLE_AFTER_CUT_OFF_MS = 1_000;

/**
 * Several Pushgateways kept identical by pushguard. Writes (push, delete, wipe) go to every
 * reachable replica, in the same order per group (`GroupLocks`); a write is acknowledged when
 * the write policy is met, and every in-sync replica that did not store it is marked out of sync
 * before the client hears back. Reads go to one in-sync replica, confirmed to be the same process
 * that was in sync (a restarted Pushgateway comes back empty). Out-of-sync replicas keep getting
 * writes and are repaired from an in-sync one in the background (`repairReplica`).
 */
export class ReplicatedUpstream implements Gateway {
  readonly locks: GroupLocks;
  readonly #options: ReplicatedUpstreamOptions;
  readonly #startedAt = Date.now();
  #replicas: Replica[] = [];
  #timer: NodeJS.Timeout | undefined;
  #tick: Promise<void> | undefined;
  #repair: Promise<void> | undefined;
  #verification: Promise<void> | undefined;
  #lastVerification = performance.now();
  #repairFailures = 0;
  #nextRepairAt = 0;
  #lastDiscovery = Number.NEGATIVE_INFINITY;
  /** The replica that served the last read: reads stay on it while it is in sync. */
  #reader: Replica | undefined;
  #closed = false;
  #sharedFailing = false;
  #sharedSkipUntil = 0;
  /** The miss counts last read from the shared state, for when it cannot be read. */
  #lastCounts: ReadonlyMap<string, number> = new Map();

  private constructor(options: ReplicatedUpstreamOptions) {
    this.#options = options;
    this.locks = options.locks;
  }

  /** Discovers the replicas and runs the first health check (and bootstrap, if all answer). */
  static async start(options: ReplicatedUpstreamOptions): Promise<ReplicatedUpstream> {
    watchConnections();
    const upstream = new ReplicatedUpstream(options);
    await upstream.#healthRound();
    upstream.#schedule();
    return upstream;
  }

  request(request: GatewayRequest): Promise<UpstreamResponse> {
    return isWrite(request.method)
      ? ordered(this.locks, request, () => this.#write(request))
      : this.#read(request);
  }

  async ready(): Promise<boolean> {
    return this.#replicas.some((replica) => replica.inSync && replica.up);
  }

  replicas(): readonly ReplicaStatus[] {
    return this.#replicas.map((replica) => ({ url: replica.url, up: replica.up, state: replica.state }));
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#tick;
    await this.#repair?.catch(() => undefined);
    await this.#verification;
    await this.#options.shared?.close();
    await Promise.all(this.#replicas.map((replica) => replica.upstream.close()));
  }

  async #read(request: GatewayRequest): Promise<UpstreamResponse> {
    await this.#syncShared(true);
    const candidates = this.#readable();
    let failure: unknown;
    for (const replica of candidates) {
      if (request.signal?.aborted) break;
      if (replica.unverified() && !(await this.#confirm(replica))) continue;
      let response: UpstreamResponse;
      try {
        response = await replica.upstream.request(request);
      } catch (error) {
        failure = error;
        this.#failed(replica, error);
        continue;
      }
      // The answer counts only if it came from the process known to be in sync: a new connection
      // may have reached a restarted, empty Pushgateway.
      if ((replica.unverified() && !(await this.#confirm(replica))) || !replica.inSync) {
        void discard(response);
        continue;
      }
      this.#reader = replica;
      return response;
    }
    throw failure ?? noReplica("no in-sync Pushgateway replica can serve reads", "no-in-sync-replica");
  }

  async #write(request: GatewayRequest): Promise<UpstreamResponse> {
    const replicas = this.#replicas;
    const inSync = new Set(replicas.filter((replica) => replica.inSync && replica.up));
    const { writePolicy } = this.#options.replication;
    if (inSync.size === 0) {
      throw noReplica("no in-sync Pushgateway replica can take writes", "no-in-sync-replica");
    }
    if (writePolicy === "all" && inSync.size < replicas.length) {
      throw noReplica(
        `only ${inSync.size} of ${replicas.length} replicas are in sync; upstream.replication.writePolicy all needs every one`,
        "replicas-out-of-sync",
      );
    }
    const outcomes = await this.#fanOut(
      replicas.filter((replica) => replica.up),
      request,
      inSync,
      required(writePolicy, replicas.length),
    );
    await Promise.all(
      outcomes
        .filter((outcome) => stored(outcome) && inSync.has(outcome.replica) && outcome.replica.unverified())
        .map(async (outcome) => {
          if (!(await this.#confirm(outcome.replica))) outcome.restarted = true;
        }),
    );
    // Someone will be marked out of sync: first learn what the other pushguards marked.
    if (
      [...inSync].some(
        (replica) => !outcomes.some((outcome) => outcome.replica === replica && stored(outcome)),
      )
    ) {
      await this.#syncShared(true);
    }
    const storedInSync = outcomes.filter(
      (outcome) => stored(outcome) && inSync.has(outcome.replica) && outcome.replica.inSync,
    );
    const acknowledged = storedInSync.length >= required(writePolicy, replicas.length);
    const missed: Replica[] = [];
    for (const replica of replicas) {
      const outcome = outcomes.find((candidate) => candidate.replica === replica);
      if (outcome?.error !== undefined) this.#failed(replica, outcome.error);
      const storedHere = outcome !== undefined && stored(outcome);
      if (inSync.has(replica)) {
        // Nothing is lost when no in-sync replica stored it: the write was not acknowledged. But
        // one that did not answer in time may have applied it, and differ from the others now.
        if (!storedHere && (storedInSync.length > 0 || timedOut(outcome))) missed.push(replica);
      } else if (acknowledged ? !storedHere : storedHere || outcome?.error !== undefined) {
        missed.push(replica);
      }
    }
    for (const replica of missed) {
      this.#missed(replica, missReason(outcomes.find((candidate) => candidate.replica === replica)));
    }
    await this.#recordShared(missed);
    const answer = acknowledged
      ? storedInSync[0]
      : outcomes.find((outcome) => inSync.has(outcome.replica) && outcome.response && !outcome.restarted);
    for (const outcome of outcomes) {
      if (outcome !== answer && outcome.response) void discard(outcome.response);
    }
    if (answer?.response && (acknowledged || storedInSync.length === 0)) return answer.response;
    if (answer?.response) void discard(answer.response);
    if (storedInSync.length > 0) {
      throw noReplica(
        `stored on ${storedInSync.length} of ${replicas.length} replicas; upstream.replication.writePolicy ${writePolicy} needs ${required(writePolicy, replicas.length)}`,
        "write-policy",
      );
    }
    const failure = outcomes.find((outcome) => inSync.has(outcome.replica) && outcome.error !== undefined);
    throw failure?.error ?? noReplica("no in-sync Pushgateway replica stored the write", "not-stored");
  }

  /**
   * Sends a write to every target at once. Once `needed` in-sync replicas stored it, the others
   * get `stragglerMs` more; one still silent then is cut off (its request aborted) and reported as
   * timed out, so a hung replica costs each write at most that, not the whole upstream timeout.
   */
  #fanOut(
    targets: readonly Replica[],
    request: GatewayRequest,
    inSync: ReadonlySet<Replica>,
    needed: number,
  ): Promise<Outcome[]> {
    const { stragglerMs } = this.#options.replication;
    const settled = new Map<Replica, Outcome>();
    const cutOffs = new Map<Replica, AbortController>();
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      let done = false;
      let storedInSync = 0;
      const finish = () => {
        done = true;
        clearTimeout(timer);
        const outcomes = targets.map((replica): Outcome => {
          const outcome = settled.get(replica);
          if (outcome) return outcome;
          cutOffs.get(replica)?.abort();
          replica.cutOff = true;
          const error = new ProblemError(
            "ERR_UPSTREAM_TIMEOUT",
            `the replica did not answer within ${stragglerMs} ms of the others`,
            { reason: "straggler" },
          );
          return { replica, error };
        });
        resolve(outcomes);
      };
      const settle = (outcome: Outcome) => {
        if (done) {
          // Cut off already: too late to count.
          if (outcome.response) void discard(outcome.response);
          return;
        }
        settled.set(outcome.replica, outcome);
        if (settled.size === targets.length) return finish();
        if (stored(outcome) && inSync.has(outcome.replica)) storedInSync += 1;
        if (storedInSync >= needed && timer === undefined) timer = setTimeout(finish, stragglerMs);
      };
      if (targets.length === 0) return resolve([]);
      for (const replica of targets) {
        const cutOff = new AbortController();
        cutOffs.set(replica, cutOff);
        const signal = request.signal ? AbortSignal.any([request.signal, cutOff.signal]) : cutOff.signal;
        replica.upstream.request({ ...request, signal }).then(
          (response) => settle({ replica, response }),
          (error: unknown) => settle({ replica, error }),
        );
      }
    });
  }

  /** In-sync, reachable replicas; the one that served the last read first, while it qualifies. */
  #readable(): Replica[] {
    const readable = this.#replicas.filter((replica) => replica.inSync && replica.up);
    const reader = this.#reader;
    if (reader === undefined || !readable.includes(reader)) return readable;
    return [reader, ...readable.filter((replica) => replica !== reader)];
  }

  /** Re-reads the start time; a different one means the replica restarted and lost its groups. */
  async #confirm(replica: Replica): Promise<boolean> {
    const startTime = await replica.probe(this.#probeTimeoutMs());
    if (startTime === undefined) return false;
    if (startTime !== replica.syncedStartTime) this.#demote(replica, "restarted");
    return replica.inSync;
  }

  #probeTimeoutMs(): number {
    return Math.min(this.#options.replication.probeTimeoutMs, this.#options.upstream.timeoutMs);
  }

  /** Unreachable or hung: no more requests to it until a probe gets an answer again. */
  #failed(replica: Replica, error: unknown): void {
    const { code } = error as ProblemError;
    if (code === "ERR_UPSTREAM_UNAVAILABLE" || code === "ERR_UPSTREAM_TIMEOUT") replica.up = false;
  }

  /** The replica lacks an acknowledged write (or holds one that was refused): it must be repaired. */
  #missed(replica: Replica, reason: string): void {
    replica.generation += 1;
    this.#demote(replica, reason);
  }

  #demote(replica: Replica, reason: string): void {
    if (!replica.inSync) return;
    replica.inSync = false;
    replica.generation += 1;
    this.#options.metrics.replicaDemotions.inc({ replica: replica.url, reason });
    this.#options.metrics.replicaInSync.set({ replica: replica.url }, 0);
    this.#options.logger.warn(
      { replica: replica.url, reason },
      "Pushgateway replica out of sync: no reads from it until it is repaired",
    );
  }

  /**
   * `counted`: whether `sharedMisses` was just read from the shared state (else it is this
   * process's last reading, and recording it as the replica's in-sync mark could be wrong).
   */
  #promote(
    replica: Replica,
    startTime: string,
    connectsBefore: number,
    sharedMisses: number,
    counted: boolean,
  ): void {
    replica.inSync = true;
    replica.syncedStartTime = startTime;
    replica.verifiedConnects = connectsBefore;
    replica.sharedMisses = sharedMisses;
    this.#options.metrics.replicaInSync.set({ replica: replica.url }, 1);
    replica.unmarked = counted ? { misses: sharedMisses, startTime } : undefined;
    void this.#mark(replica);
  }

  /** Records the replica's in-sync mark; one that fails is tried again at the next health check. */
  async #mark(replica: Replica): Promise<void> {
    const mark = replica.unmarked;
    if (!mark) return;
    const stored = await this.#sharedCall(async (shared) => {
      await shared.markSynced(replica.url, mark.misses, mark.startTime);
      return true;
    });
    if (stored && replica.unmarked === mark) replica.unmarked = undefined;
  }

  /**
   * Marks out of sync every replica another pushguard recorded a miss for since this one last
   * knew it in sync. Without Redis (or while it fails) this process's own view is all there is.
   */
  async #syncShared(skipWhileCooling = false): Promise<ReadonlyMap<string, number> | undefined> {
    const counts = await this.#sharedCounts(skipWhileCooling);
    for (const replica of this.#replicas) {
      if (replica.inSync && (counts?.get(replica.url) ?? 0) > replica.sharedMisses) {
        this.#demote(replica, "missed-elsewhere");
      }
    }
    return counts;
  }

  /**
   * Of `replicas`, those the shared state says may lack a write: a miss recorded since their
   * in-sync mark, or a process other than the one marked (it restarted, empty or from an older
   * persistence file). Without a mark, any recorded miss. Empty when the state cannot be read.
   */
  async #staleShared(replicas: readonly Replica[]): Promise<ReadonlySet<Replica>> {
    const marks = await this.#sharedCall((shared) => shared.marks());
    if (!marks) return new Set();
    return new Set(
      replicas.filter((replica) => {
        const count = marks.misses.get(replica.url) ?? 0;
        const mark = marks.synced.get(replica.url);
        if (mark === undefined) return count > 0;
        return count > mark.misses || mark.startTime !== replica.startTime;
      }),
    );
  }

  /** A replica's miss count: as just read, else as last read, else 0. */
  #missesOf(url: string, counts: ReadonlyMap<string, number> | undefined): number {
    return counts?.get(url) ?? this.#lastCounts.get(url) ?? 0;
  }

  async #sharedCounts(skipWhileCooling = false): Promise<ReadonlyMap<string, number> | undefined> {
    if (skipWhileCooling && performance.now() < this.#sharedSkipUntil) return undefined;
    const counts = await this.#sharedCall((shared) => shared.read());
    if (counts) this.#lastCounts = counts;
    else if (this.#options.shared) this.#sharedSkipUntil = performance.now() + SHARED_COOLDOWN_MS;
    return counts;
  }

  /** Tells the other pushguards, before the client is answered, which replicas missed a write. */
  async #recordShared(missed: readonly Replica[]): Promise<void> {
    if (missed.length === 0) return;
    await this.#sharedCall((shared) => shared.record(missed.map((replica) => replica.url)));
  }

  /** One call to the shared state, if there is one; `undefined` when it fails (logged once). */
  async #sharedCall<T>(call: (shared: SharedMisses) => Promise<T>): Promise<T | undefined> {
    const { shared } = this.#options;
    if (!shared) return undefined;
    try {
      const result = await call(shared);
      this.#sharedUp();
      return result;
    } catch (error) {
      this.#sharedDown(error);
      return undefined;
    }
  }

  #sharedUp(): void {
    if (!this.#sharedFailing) return;
    this.#sharedFailing = false;
    this.#options.logger.info("replication state store reachable again");
  }

  #sharedDown(error: unknown): void {
    this.#options.metrics.replicationStateErrors.inc();
    if (this.#sharedFailing) return;
    this.#sharedFailing = true;
    this.#options.logger.warn(
      { err: error },
      "replication state store unreachable: write misses seen by other pushguard replicas are not known here",
    );
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      void this.#healthRound()
        .catch((error: unknown) => this.#options.logger.error({ err: error }, "replica health round failed"))
        .finally(() => this.#schedule());
    }, this.#options.replication.healthCheckIntervalMs);
    this.#timer.unref();
  }

  /**
   * One health round: rediscover if due, probe every replica, choose a source of truth if none is
   * in sync, and start repairing an out-of-sync replica. One round at a time.
   */
  #healthRound(): Promise<void> {
    this.#tick ??= this.#check().finally(() => {
      this.#tick = undefined;
    });
    return this.#tick;
  }

  async #check(): Promise<void> {
    if (this.#closed) return;
    const { logger, metrics } = this.#options;
    await this.#discover();
    await Promise.all(
      this.#replicas.map(async (replica) => {
        const wasUp = replica.up;
        const startTime = await replica.probe(this.#probeTimeoutMs());
        if (startTime === undefined) {
          if (wasUp) logger.warn({ replica: replica.url }, "Pushgateway replica does not answer");
          return;
        }
        if (!wasUp) logger.info({ replica: replica.url, startTime }, "Pushgateway replica answers");
        if (replica.cutOff) {
          replica.cutOff = false;
          replica.settleUntil =
            Date.now() + Math.max(SETTLE_AFTER_CUT_OFF_MS, this.#options.replication.healthCheckIntervalMs);
        }
        if (replica.inSync && startTime !== replica.syncedStartTime) this.#demote(replica, "restarted");
        if (replica.inSync) await this.#mark(replica);
      }),
    );
    await this.#syncShared();
    if (!this.#replicas.some((replica) => replica.inSync)) await this.#bootstrap();
    this.#startRepair();
    this.#startVerification();
    for (const replica of this.#replicas) {
      metrics.replicaUp.set({ replica: replica.url }, replica.up ? 1 : 0);
      metrics.replicaInSync.set({ replica: replica.url }, replica.inSync ? 1 : 0);
    }
  }

  async #discover(): Promise<void> {
    const { discover, discoverEveryMs, upstream, logger, metrics } = this.#options;
    const due =
      this.#replicas.length === 0 ||
      (discoverEveryMs !== undefined && Date.now() - this.#lastDiscovery >= discoverEveryMs);
    if (!due) return;
    this.#lastDiscovery = Date.now();
    let urls: readonly string[];
    try {
      urls = await discover();
    } catch (error) {
      logger.warn({ err: error }, "cannot discover Pushgateway replicas; keeping the current ones");
      return;
    }
    if (urls.length === 0) return;
    const known = new Map(this.#replicas.map((replica) => [replica.url, replica]));
    const next = urls.map((url) => known.get(url) ?? new Replica(url, upstream));
    for (const replica of this.#replicas) {
      if (next.includes(replica)) continue;
      logger.info({ replica: replica.url }, "Pushgateway replica removed");
      metrics.replicaUp.remove({ replica: replica.url });
      metrics.replicaInSync.remove({ replica: replica.url });
      void replica.upstream.close();
    }
    for (const replica of next) {
      if (!known.has(replica.url)) logger.info({ replica: replica.url }, "Pushgateway replica added");
    }
    this.#replicas = next;
  }

  /**
   * With no replica in sync (first start, or every in-sync one lost), one must define the truth.
   * With shared state, never a replica that missed a write since it was last in sync, or is no
   * longer the process it was in sync as (`#staleShared`), unless every one is; among the rest, the one holding the most groups (a replica that restarted
   * empty or missed pushes has fewer), then the most recently written. At first start this waits
   * up to `bootstrapWaitMs` for every replica to answer.
   */
  async #bootstrap(): Promise<void> {
    const reachable = this.#replicas.filter((replica) => replica.up);
    if (reachable.length === 0) return;
    const waiting = Date.now() - this.#startedAt < this.#options.replication.bootstrapWaitMs;
    if (reachable.length < this.#replicas.length && waiting) return;
    const stale = await this.#staleShared(reachable);
    const fresh = reachable.filter((replica) => !stale.has(replica));
    const up = fresh.length > 0 ? fresh : reachable;
    const candidates = await Promise.all(
      up.map(async (replica) => {
        try {
          const groups = await replica.snapshot(this.#options.upstream.timeoutMs);
          const latest = Math.max(0, ...[...groups.values()].map(lastActivity));
          return { replica, count: groups.size, latest };
        } catch {
          return undefined;
        }
      }),
    );
    const best = candidates
      .filter((candidate) => candidate !== undefined)
      .sort((a, b) => b.count - a.count || b.latest - a.latest)[0];
    const shared = await this.#sharedCounts();
    if (!best?.replica.startTime || this.#replicas.some((replica) => replica.inSync)) return;
    const { url } = best.replica;
    this.#promote(
      best.replica,
      best.replica.startTime,
      -1,
      this.#missesOf(url, shared),
      shared !== undefined,
    );
    this.#options.logger.warn(
      { replica: best.replica.url, groups: best.count },
      "no Pushgateway replica was in sync: this one now defines the stored groups; the others are repaired from it",
    );
  }

  /**
   * Every `verifyIntervalMs`, while nothing is being repaired, compares each in-sync replica with
   * the one reads are served from (`findDivergence`). A replica holding a group the source does
   * not (a push sent to it directly, or two pushguards' writes to one group applied in different
   * orders) is marked out of sync, for every pushguard, and repaired from the source.
   */
  #startVerification(): void {
    const { verifyIntervalMs } = this.#options.replication;
    const now = performance.now();
    if (verifyIntervalMs === 0 || this.#verification || this.#repair) return;
    if (now - this.#lastVerification < verifyIntervalMs) return;
    const readable = this.#readable();
    const source = readable[0];
    if (!source || readable.length < 2) return;
    this.#lastVerification = now;
    this.#verification = this.#verify(source, readable.slice(1)).finally(() => {
      this.#verification = undefined;
    });
  }

  async #verify(source: Replica, targets: readonly Replica[]): Promise<void> {
    const { logger, upstream } = this.#options;
    for (const target of targets) {
      if (this.#closed || this.#repair) return;
      try {
        const groups = await findDivergence(target, source, {
          timeoutMs: upstream.timeoutMs,
          logger,
          rounds: 3,
          stillValid: () =>
            this.#closed
              ? "shutting down"
              : !target.inSync || !source.inSync
                ? "a replica left sync"
                : undefined,
        });
        if (groups.length === 0 || !target.inSync || !source.inSync) continue;
        logger.warn(
          { replica: target.url, source: source.url, groups: groups.slice(0, 10), differing: groups.length },
          "Pushgateway replica differs from the one reads are served from: it is repaired from it",
        );
        this.#missed(target, "diverged");
        await this.#recordShared([target]);
      } catch (error) {
        if (this.#closed) return;
        logger.warn({ replica: target.url, source: source.url, err: error }, "replica comparison stopped");
      }
    }
  }

  #startRepair(): void {
    if (this.#repair || Date.now() < this.#nextRepairAt) return;
    const now = Date.now();
    const target = this.#replicas.find(
      (replica) => replica.up && !replica.inSync && !replica.cutOff && now >= replica.settleUntil,
    );
    const source = this.#replicas.find((replica) => replica.up && replica.inSync);
    if (!target || !source) return;
    this.#repair = this.#runRepair(target, source).finally(() => {
      this.#repair = undefined;
      // The next out-of-sync replica need not wait for a health check.
      if (!this.#closed) this.#startRepair();
    });
  }

  async #runRepair(target: Replica, source: Replica): Promise<void> {
    const { logger, metrics, upstream } = this.#options;
    const started = performance.now();
    target.repairing = true;
    try {
      const targetStart = await target.probe(this.#probeTimeoutMs());
      const targetGeneration = target.generation;
      const sourceGeneration = source.generation;
      const stillValid = () =>
        this.#closed
          ? "shutting down"
          : target.generation !== targetGeneration
            ? "the target missed a write during the repair"
            : !source.inSync || source.generation !== sourceGeneration
              ? "the source went out of sync"
              : undefined;
      if (targetStart === undefined) throw new Error("the target does not answer");
      const countedAtStart = await this.#sharedCounts();
      const sharedAtStart = this.#missesOf(target.url, countedAtStart);
      logger.info({ replica: target.url, source: source.url }, "repairing Pushgateway replica");
      const result = await repairReplica(target, source, {
        timeoutMs: upstream.timeoutMs,
        logger,
        stillValid,
      });
      const connectsBefore = connectionCount(target.origin);
      const startNow = await target.probe(this.#probeTimeoutMs());
      const sharedNow = await this.#syncShared();
      const invalid =
        startNow !== targetStart
          ? "the target restarted during the repair"
          : this.#missesOf(target.url, sharedNow) !== sharedAtStart
            ? "the target missed a write through another pushguard during the repair"
            : stillValid();
      if (invalid) throw new Error(invalid);
      const counted = countedAtStart !== undefined && sharedNow !== undefined;
      this.#promote(target, targetStart, connectsBefore, sharedAtStart, counted);
      this.#repairFailures = 0;
      const seconds = (performance.now() - started) / 1000;
      metrics.replicaRepairs.inc({ replica: target.url, result: "success" });
      metrics.replicaGroupsCopied.inc({ replica: target.url }, result.copied);
      metrics.replicaRepairDuration.observe(seconds);
      logger.info(
        { replica: target.url, source: source.url, ...result, durationMs: Math.round(seconds * 1000) },
        "Pushgateway replica repaired: back in sync",
      );
    } catch (error) {
      this.#repairFailures += 1;
      const backoff = Math.min(
        MAX_REPAIR_BACKOFF_MS,
        this.#options.replication.healthCheckIntervalMs * 2 ** (this.#repairFailures - 1),
      );
      this.#nextRepairAt = Date.now() + backoff;
      metrics.replicaRepairs.inc({ replica: target.url, result: "failure" });
      logger.warn(
        { replica: target.url, source: source.url, err: error, retryInMs: backoff },
        "Pushgateway replica repair failed; it stays out of sync",
      );
    } finally {
      target.repairing = false;
    }
  }
}

function stored(outcome: Outcome): boolean {
  const status = outcome.response?.status ?? 0;
  return status >= 200 && status < 300 && !outcome.restarted;
}

function missReason(outcome: Outcome | undefined): string {
  if (outcome === undefined) return "down";
  if (outcome.restarted) return "restarted";
  if (timedOut(outcome)) return "write-timeout";
  return outcome.error !== undefined ? "write-failed" : "write-rejected";
}

/** No answer in time: the write may or may not have been applied there. */
function timedOut(outcome: Outcome | undefined): boolean {
  return (outcome?.error as ProblemError | undefined)?.code === "ERR_UPSTREAM_TIMEOUT";
}

/** How many in-sync replicas must store a write for `policy`, out of `total` configured. */
function required(policy: WritePolicy, total: number): number {
  switch (policy) {
    case "all":
      return total;
    case "majority":
      return Math.floor(total / 2) + 1;
    default:
      return 1;
  }
}

function noReplica(detail: string, reason: string): ProblemError {
  return new ProblemError("ERR_UPSTREAM_UNAVAILABLE", detail, { reason });
}
