import type { Identity } from "../auth/identity.js";
import { ProblemError } from "../errors.js";
import type { Metrics } from "../observability/metrics.js";
import type { Operation } from "../pushgateway/classify.js";
import type { BucketState } from "./gcra.js";
import { rateLimitHeaders, refusalHeaders } from "./headers.js";
import { compileRules, type LimitKind, type RateLimitRule, type ScopedCheck } from "./rules.js";
import type { Clock, LimitStore } from "./store.js";

export interface RateLimitRequest {
  readonly identity: Identity;
  /** The team whose rule authorized the request, if any. */
  readonly team: string | undefined;
  readonly action: Operation["action"];
  /** The job pushed or deleted (as authorized), for job-scoped rules. */
  readonly job: string | undefined;
  readonly clientAddress: string;
}

/**
 * The pipeline's rate-limit stage. Resolves to the `RateLimit-Policy` / `RateLimit` headers for
 * the response (none when no rule applies); throws `429 ERR_RATE_LIMITED` when any bucket is
 * empty, or `503 ERR_RATE_LIMIT_STORE` when the store is down and configured to fail closed.
 */
export type RateLimit = (request: RateLimitRequest) => Promise<Record<string, string>>;

export interface RateLimiterOptions {
  readonly rules: readonly RateLimitRule[];
  readonly store: LimitStore;
  readonly metrics: Metrics;
  readonly clock: Clock;
}

export function createRateLimiter(options: RateLimiterOptions): RateLimit {
  const { store, metrics, clock } = options;
  const checksFor = compileRules(options.rules);

  return async function rateLimit(request) {
    const kind = limitKind(request.action);
    if (kind === undefined) return {};
    const checks = checksFor({
      kind,
      identityKey: identityKey(request.identity, request.clientAddress),
      team: request.team,
      job: request.job,
    });
    if (checks.length === 0) return {};
    const result = await store.take(checks, clock());
    const policies = checks.map((check) => check.policy);
    if (result.allowed) return rateLimitHeaders(policies, result.states);
    throw refusal(checks, result.states, request.team, metrics);
  };
}

function refusal(
  checks: readonly ScopedCheck[],
  states: readonly BucketState[],
  team: string | undefined,
  metrics: Metrics,
): ProblemError {
  const violated = checks.filter((_, index) => !states[index]?.fits);
  const first = violated[0] as ScopedCheck;
  metrics.rateLimited.inc({ team: team ?? "", reason: first.scope });
  const headers = refusalHeaders(
    checks.map((check) => check.policy),
    states,
  );
  return new ProblemError(
    "ERR_RATE_LIMITED",
    `${first.scope} rate limit reached (${first.policy.rate}/s, burst ${first.policy.burst}); retry in ${headers["retry-after"]} s`,
    {
      headers,
      // The member name the ratelimit-headers draft defines for its quota-exceeded problem type.
      details: { "violated-policies": violated.map((check) => check.policy.name) },
      reason: first.scope,
    },
  );
}

function limitKind(action: Operation["action"]): LimitKind | undefined {
  switch (action) {
    case "push":
    case "delete":
    case "wipe":
      return "write";
    case "read":
      return "read";
    case "probe":
      return undefined;
  }
}

/**
 * One bucket per proven identity (JWT subjects are qualified by their issuer, so two issuers'
 * `alice` are two callers); anonymous callers are told apart only by address.
 */
function identityKey(identity: Identity, clientAddress: string): string {
  if (identity.via === "anonymous") return `ip:${clientAddress}`;
  return identity.issuer === undefined ? `id:${identity.name}` : `id:${identity.issuer}/${identity.name}`;
}
