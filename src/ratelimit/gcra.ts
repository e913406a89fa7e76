/**
 * The Generic Cell Rate Algorithm: a token bucket kept as one number per key, the theoretical
 * arrival time (TAT) of the next request. A bucket of `burst` requests refilling at `rate` per
 * second allows a request when the debt it would leave (TAT after it, minus now) is at most
 * `burst` emission intervals. No timers, no background refill, exact for any clock.
 *
 * The Redis store runs the same arithmetic in Lua (redis-script.ts); a test holds both to it.
 */

/** A limit as configured: a bucket of `burst` requests refilled at `rate` requests per second. */
export interface RatePolicy {
  /** The policy's name in the `RateLimit-Policy` and `RateLimit` fields, e.g. `team-write`. */
  readonly name: string;
  /** Requests per second (fractions allowed: 0.5 is one every two seconds). */
  readonly rate: number;
  /** Requests allowed at once when the bucket is full. */
  readonly burst: number;
}

/** The state of one bucket after a decision, in the terms the response headers need. */
export interface BucketState {
  /** Whether this bucket had room for the request (the request passes only if every bucket had). */
  readonly fits: boolean;
  /** Requests that would fit right now. */
  readonly remaining: number;
  /** Milliseconds until the bucket is full again. */
  readonly resetMs: number;
  /** Milliseconds until one more request fits (0 while `remaining` > 0). */
  readonly retryAfterMs: number;
}

/**
 * Absorbs float rounding so counts stay exact: epoch milliseconds (~1.7e12) carry only about
 * 0.0002 ms of precision, and intervals like 1000/3 ms are inexact. One microsecond is far below
 * any timing that matters and far above the rounding.
 */
const EPSILON_MS = 1e-3;

export function emissionIntervalMs(policy: RatePolicy): number {
  return 1000 / policy.rate;
}

/** Whether one more request fits a bucket whose TAT is `tat` (undefined: never used, full). */
export function fits(tat: number | undefined, policy: RatePolicy, now: number): boolean {
  const interval = emissionIntervalMs(policy);
  const start = Math.max(tat ?? now, now);
  return start + interval - now <= interval * policy.burst + EPSILON_MS;
}

/** The TAT after admitting one request. */
export function admit(tat: number | undefined, policy: RatePolicy, now: number): number {
  return Math.max(tat ?? now, now) + emissionIntervalMs(policy);
}

/** Describes a bucket whose TAT is `tat` at time `now`. */
export function describe(
  tat: number | undefined,
  policy: RatePolicy,
  now: number,
  bucketFits: boolean,
): BucketState {
  const interval = emissionIntervalMs(policy);
  const debt = Math.max(0, (tat ?? now) - now);
  const remaining = Math.max(0, Math.floor((interval * policy.burst - debt + EPSILON_MS) / interval));
  const retryAfterMs = remaining > 0 ? 0 : Math.max(0, debt - interval * (policy.burst - 1));
  return { fits: bucketFits, remaining, resetMs: debt, retryAfterMs };
}
