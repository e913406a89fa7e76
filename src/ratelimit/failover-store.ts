import { ProblemError } from "../errors.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { MemoryStore } from "./memory-store.js";
import type { LimitCheck, LimitStore, TakeResult } from "./store.js";

/** A shared store that can be down: Redis. */
export interface RemoteStore extends LimitStore {
  available(): boolean;
}

export interface FailoverOptions {
  readonly remote: RemoteStore;
  /** Where buckets go while the remote store is down (fail open); none means fail closed (503). */
  readonly fallback: MemoryStore | undefined;
  readonly logger: Logger;
  readonly metrics: Metrics;
}

/**
 * After a failed call, requests skip Redis for this long: a hung Redis (not a closed one, which is
 * noticed at once) would otherwise cost every request the full command timeout.
 */
const COOLDOWN_MS = 1_000;

/**
 * Puts the remote store first and decides what a request gets while it is unreachable: the local
 * limiter (fail open: each replica enforces the limits on its own, so the fleet allows up to
 * replicas × the limit) or `503 ERR_RATE_LIMIT_STORE` (fail closed). Going down and coming back
 * are each logged once; every request that could not use the store is counted. Recovery needs no
 * action: the client reconnects, and the first request after that uses Redis again.
 */
export class FailoverStore implements LimitStore {
  readonly kind: string;
  readonly #remote: RemoteStore;
  readonly #fallback: MemoryStore | undefined;
  readonly #logger: Logger;
  readonly #metrics: Metrics;
  #up = true;
  #skipUntil = 0;

  constructor(options: FailoverOptions) {
    this.#remote = options.remote;
    this.#fallback = options.fallback;
    this.#logger = options.logger;
    this.#metrics = options.metrics;
    this.kind = options.remote.kind;
    this.#metrics.rateLimitStoreAvailable.set({ store: this.kind }, 1);
  }

  async take(checks: readonly LimitCheck[], now: number): Promise<TakeResult> {
    let failure: { reason: string; error?: unknown };
    if (!this.#remote.available()) {
      failure = { reason: "disconnected" };
    } else if (performance.now() < this.#skipUntil) {
      failure = { reason: "cooling-down" };
    } else {
      try {
        const result = await this.#remote.take(checks, now);
        this.#markUp();
        return result;
      } catch (error) {
        this.#skipUntil = performance.now() + COOLDOWN_MS;
        failure = { reason: isTimeout(error) ? "timeout" : "error", error };
      }
    }
    this.#markDown(failure.reason, failure.error);
    if (this.#fallback) return this.#fallback.takeNow(checks, now);
    throw new ProblemError("ERR_RATE_LIMIT_STORE", "the rate-limit store is unavailable; try again shortly", {
      headers: { "retry-after": "1" },
      reason: failure.reason,
    });
  }

  async close(): Promise<void> {
    await this.#remote.close();
    await this.#fallback?.close();
  }

  #markDown(reason: string, error: unknown): void {
    this.#metrics.rateLimitStoreErrors.inc({ store: this.kind, reason });
    if (!this.#up) return;
    this.#up = false;
    this.#metrics.rateLimitStoreAvailable.set({ store: this.kind }, 0);
    this.#logger.warn(
      { store: this.kind, reason, err: error, mode: this.#fallback ? "failOpen" : "failClosed" },
      this.#fallback
        ? "rate-limit store unavailable: limiting locally in this replica until it returns"
        : "rate-limit store unavailable: refusing limited requests with 503 until it returns",
    );
  }

  #markUp(): void {
    if (this.#up) return;
    this.#up = true;
    this.#metrics.rateLimitStoreAvailable.set({ store: this.kind }, 1);
    this.#logger.info({ store: this.kind }, "rate-limit store available again");
  }
}

function isTimeout(error: unknown): boolean {
  return error instanceof Error && /timed out/i.test(error.message);
}
