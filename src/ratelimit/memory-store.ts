import { admit, describe, fits } from "./gcra.js";
import type { LimitCheck, LimitStore, TakeResult } from "./store.js";

export interface MemoryStoreOptions {
  /** Most buckets kept; beyond it the least recently used is dropped (it starts full again). */
  readonly maxKeys: number;
}

/** How many idle buckets one `take` may sweep, so the cost per request stays constant. */
const SWEEP_PER_TAKE = 8;

/**
 * Buckets in one process. A bucket whose TAT has passed is full, which is the same as having no
 * entry, so idle keys are dropped as traffic flows; `maxKeys` bounds memory when many identities
 * or addresses are active at once. The Map's insertion order is kept as recency order by
 * re-inserting on every write.
 */
export class MemoryStore implements LimitStore {
  readonly kind = "memory";
  readonly #tats = new Map<string, number>();
  readonly #maxKeys: number;

  constructor(options: MemoryStoreOptions) {
    this.#maxKeys = options.maxKeys;
  }

  /** Buckets currently held (for tests and bounds checks). */
  get size(): number {
    return this.#tats.size;
  }

  async take(checks: readonly LimitCheck[], now: number): Promise<TakeResult> {
    return this.takeNow(checks, now);
  }

  /** The synchronous core, also used as the local fallback when Redis is unreachable. */
  takeNow(checks: readonly LimitCheck[], now: number): TakeResult {
    this.#sweep(now);
    const tats = checks.map((check) => this.#tats.get(check.key));
    const verdicts = checks.map((check, index) => fits(tats[index], check.policy, now));
    const allowed = verdicts.every(Boolean);
    const states = checks.map((check, index) => {
      let tat = tats[index];
      if (allowed) {
        tat = admit(tat, check.policy, now);
        this.#tats.delete(check.key);
        this.#tats.set(check.key, tat);
      }
      return describe(tat, check.policy, now, verdicts[index] as boolean);
    });
    while (this.#tats.size > this.#maxKeys) this.#dropOldest();
    return { allowed, states };
  }

  async close(): Promise<void> {
    this.#tats.clear();
  }

  #sweep(now: number): void {
    let budget = SWEEP_PER_TAKE;
    for (const [key, tat] of this.#tats) {
      if (budget-- === 0 || tat > now) return;
      this.#tats.delete(key);
    }
  }

  #dropOldest(): void {
    const oldest = this.#tats.keys().next();
    if (!oldest.done) this.#tats.delete(oldest.value);
  }
}
