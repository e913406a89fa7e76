import type { BucketState, RatePolicy } from "./gcra.js";

/**
 * The `RateLimit-Policy` and `RateLimit` fields exactly as draft-ietf-httpapi-ratelimit-headers-11
 * (23 May 2026, https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/11/)
 * defines them: Structured Field Lists of String items with parameters,
 *
 *   RateLimit-Policy: "team-write";q=10;w=2
 *   RateLimit: "team-write";r=3;t=1
 *
 * Revision -12 (20 November 2026) exists, but its text could not be read when this was written;
 * the renames proposed for it (ietf-wg-httpapi/ratelimit-headers#166: `r` to `a`, `t` to `w`, a
 * cost parameter `c`, a `RateLimit-Partition` field) wait until a readable revision confirms them.
 *
 * A bucket of `burst` refilled at `rate`/s is advertised as a quota of `burst` per window of
 * `burst / rate` seconds, rounded up (the draft has no sub-second windows, and rounding up
 * advertises a slightly lower average rate, never a higher one).
 *
 * `t`: while `r` > 0, seconds until the whole burst is available again; when `r` is 0, seconds
 * until the next request fits.
 */
export function policyField(policies: readonly RatePolicy[]): string {
  return policies.map((policy) => `"${policy.name}";q=${policy.burst};w=${windowSeconds(policy)}`).join(", ");
}

export function limitField(policies: readonly RatePolicy[], states: readonly BucketState[]): string {
  return policies
    .map((policy, index) => {
      const state = states[index] as BucketState;
      const t = state.remaining > 0 ? ceilSeconds(state.resetMs) : retryAfterSeconds(state.retryAfterMs);
      return `"${policy.name}";r=${state.remaining};t=${t}`;
    })
    .join(", ");
}

/** `Retry-After` as delay-seconds: whole seconds, rounded up, never 0 (0 invites a hot loop). */
export function retryAfterSeconds(ms: number): number {
  return Math.max(1, ceilSeconds(ms));
}

/** Whole seconds, rounded up, ignoring float dust (999.9999999 ms of debt is one second, not two). */
function ceilSeconds(ms: number): number {
  return Math.ceil(ms / 1000 - 1e-9);
}

export function windowSeconds(policy: RatePolicy): number {
  return Math.max(1, Math.ceil(policy.burst / policy.rate));
}

/** Both fields for an admitted request: one `RateLimit` item per bucket it used. */
export function rateLimitHeaders(
  policies: readonly RatePolicy[],
  states: readonly BucketState[],
): Record<string, string> {
  return { "ratelimit-policy": policyField(policies), ratelimit: limitField(policies, states) };
}

/**
 * The fields for a refused request. `Retry-After` is the longest wait among the buckets that had
 * no room, and `RateLimit` lists only those buckets (`r=0`, `t` = their own wait, never more than
 * `Retry-After`): a bucket with room would advertise `t` = seconds until full, possibly later
 * than `Retry-After`, and the draft (section 6) says `Retry-After` SHOULD NOT reference a time
 * earlier than the end of the effective window. `RateLimit-Policy` still lists every bucket, as it
 * is meant to stay the same from response to response.
 */
export function refusalHeaders(
  policies: readonly RatePolicy[],
  states: readonly BucketState[],
): Record<string, string> {
  const empty = states.flatMap((state, index) => (state.fits ? [] : [index]));
  const waitMs = Math.max(...empty.map((index) => (states[index] as BucketState).retryAfterMs));
  return {
    "ratelimit-policy": policyField(policies),
    ratelimit: limitField(
      empty.map((index) => policies[index] as RatePolicy),
      empty.map((index) => states[index] as BucketState),
    ),
    "retry-after": String(retryAfterSeconds(waitMs)),
  };
}
