import type { BucketState, RatePolicy } from "./gcra.js";

/**
 * The `RateLimit-Policy` and `RateLimit` fields of draft-ietf-httpapi-ratelimit-headers-11
 * (https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/), Structured Field
 * Lists of String items with parameters:
 *
 *   RateLimit-Policy: "team-write";q=10;w=2
 *   RateLimit: "team-write";r=3;t=1
 *
 * A bucket of `burst` refilled at `rate`/s is advertised as a quota of `burst` per window of
 * `burst / rate` seconds, rounded up (the draft has no sub-second windows, and rounding up
 * advertises a slightly lower average rate, never a higher one).
 *
 * `t`: while `r` > 0, seconds until the whole burst is available again; when `r` is 0, seconds
 * until the next request fits, which on a 429 is exactly `Retry-After` (the draft asks that
 * `Retry-After` never point before the end of the effective window).
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

/** Both fields for one decision, as response headers. */
export function rateLimitHeaders(
  policies: readonly RatePolicy[],
  states: readonly BucketState[],
): Record<string, string> {
  return { "ratelimit-policy": policyField(policies), ratelimit: limitField(policies, states) };
}
