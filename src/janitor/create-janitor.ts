import type { Config } from "../config/load.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { Clock } from "../ratelimit/store.js";
import { redisPassword } from "../redis-client.js";
import type { Gateway } from "../upstream/gateway.js";
import { Janitor } from "./janitor.js";
import { type Lease, NoLease, RedisLease } from "./lease.js";
import { type Attribute, compileOwnership } from "./ownership.js";

export interface JanitorDeps {
  readonly gateway: Gateway;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly env?: NodeJS.ProcessEnv;
}

/** The janitor for a config, or `undefined` when `janitor.enabled` is false. Not started. */
export function createJanitor(config: Config, deps: JanitorDeps): Janitor | undefined {
  const settings = config.janitor;
  if (!settings.enabled) return undefined;
  return new Janitor({
    gateway: deps.gateway,
    lease: createLease(settings, deps),
    intervalMs: settings.intervalMs,
    dryRun: settings.dryRun,
    attribute: janitorAttribution(config),
    clock: deps.clock,
    logger: deps.logger,
    metrics: deps.metrics,
  });
}

/** Team TTLs as the janitor applies them; rebuilt on every config reload. */
export function janitorAttribution(config: Config): Attribute {
  return compileOwnership(config.teams, config.janitor.defaultTtl);
}

function createLease(settings: Config["janitor"], deps: JanitorDeps): Lease {
  const { lease } = settings;
  if (lease.store === "none" || lease.redis === undefined) return new NoLease();
  const redis = lease.redis;
  return new RedisLease(
    {
      url: redis.url,
      password: () => redisPassword(redis, "janitor.lease.redis", deps.env ?? process.env),
      keyPrefix: redis.keyPrefix,
      // Held across runs by renewing each run: it must outlive one interval.
      ttlMs: lease.ttlMs ?? settings.intervalMs * 3,
      timeoutMs: redis.timeoutMs,
    },
    (error) => deps.logger.debug({ err: error }, "janitor lease store connection error"),
  );
}
