import { ProblemError } from "../errors.js";
import type { Metrics } from "../observability/metrics.js";
import type { RatePolicy } from "./gcra.js";
import { refusalHeaders } from "./headers.js";
import type { Clock, LimitStore, TakeResult } from "./store.js";

/**
 * Given the error that ended authentication, returns the error to answer with: the same one, or
 * `429 ERR_RATE_LIMITED` once the client address has failed too often.
 */
export type LimitAuthFailures = (error: unknown, clientAddress: string) => Promise<unknown>;

export interface AuthFailureLimiterOptions {
  readonly rate: number;
  readonly burst: number;
  readonly store: LimitStore;
  readonly metrics: Metrics;
  readonly clock: Clock;
}

const COUNTED = new Set(["ERR_AUTH_MISSING", "ERR_AUTH_INVALID"]);

/**
 * Credential guessing protection. Only failures are counted, per client address, and only a
 * failure can be refused: a request whose credential verifies never consults this bucket, so
 * an address that is over the limit (a NAT full of CI jobs, one of them with a stale token) never
 * locks out the valid credentials sent from it. What an address over the limit gets is a 429
 * with `Retry-After` instead of another 401; the failures show in
 * `pushguard_rate_limited_total{reason="auth-failures"}`.
 */
export function createAuthFailureLimiter(options: AuthFailureLimiterOptions): LimitAuthFailures {
  const { store, metrics, clock } = options;
  const policy: RatePolicy = { name: "auth-failures", rate: options.rate, burst: options.burst };

  return async function limitAuthFailures(error, clientAddress) {
    if (!(error instanceof ProblemError) || !COUNTED.has(error.code)) return error;
    let result: TakeResult;
    try {
      result = await store.take([{ key: `auth-failures:${clientAddress}`, policy }], clock());
    } catch {
      // The store is down and fails closed: the request is refused with its 401 all the same.
      return error;
    }
    if (result.allowed) return error;
    const headers = refusalHeaders([policy], result.states);
    metrics.rateLimited.inc({ team: "", reason: "auth-failures" });
    return new ProblemError(
      "ERR_RATE_LIMITED",
      `too many failed authentications from this address; retry in ${headers["retry-after"]} s`,
      {
        headers,
        details: { "violated-policies": [policy.name] },
        reason: "auth-failures",
      },
    );
  };
}
