import type { BucketState, RatePolicy } from "./gcra.js";

/** One bucket a request must fit: its key (e.g. `team:write:team-b`) and its policy. */
export interface LimitCheck {
  readonly key: string;
  readonly policy: RatePolicy;
}

export interface TakeResult {
  /** True when every bucket had room; only then was one request taken from each. */
  readonly allowed: boolean;
  /** One state per check, in the order given. */
  readonly states: readonly BucketState[];
}

/**
 * Where buckets live. `take` is all or nothing: a request refused by one bucket (say its team's)
 * consumes nothing from the others (its identity's), so counts stay exact.
 */
export interface LimitStore {
  /** `memory` or `redis`, for metric labels and logs. */
  readonly kind: string;
  /** @param now milliseconds since the epoch (the Redis store uses the server's clock instead). */
  take(checks: readonly LimitCheck[], now: number): Promise<TakeResult>;
  close(): Promise<void>;
}

/** Milliseconds since the epoch; injected so tests can move time without sleeping. */
export type Clock = () => number;
