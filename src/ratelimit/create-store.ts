import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { redisPassword } from "../redis-client.js";
import { FailoverStore } from "./failover-store.js";
import { MemoryStore } from "./memory-store.js";
import { RedisStore } from "./redis-store.js";
import type { LimitStore } from "./store.js";

export interface LimitStoreConfig {
  readonly store: "memory" | "redis";
  readonly onStoreError: "failOpen" | "failClosed";
  readonly memory: { readonly maxKeys: number };
  readonly redis?: {
    readonly url: string;
    readonly passwordFile?: string;
    readonly passwordEnv?: string;
    readonly keyPrefix: string;
    readonly timeoutMs: number;
  };
}

export interface LimitStoreDeps {
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly env?: NodeJS.ProcessEnv;
}

/** How long startup waits for Redis before serving anyway (with the configured failure mode). */
const STARTUP_CONNECT_MS = 2_000;

/**
 * The store behind every limit: memory for one replica, Redis (with a local fallback when failing
 * open) for several. Built once per process; config reloads keep it, so buckets survive them.
 */
export async function createLimitStore(config: LimitStoreConfig, deps: LimitStoreDeps): Promise<LimitStore> {
  const memory = new MemoryStore({ maxKeys: config.memory.maxKeys });
  if (config.store === "memory" || config.redis === undefined) return memory;
  const { logger, metrics } = deps;
  const redisConfig = config.redis;
  const redis = new RedisStore(
    {
      url: redisConfig.url,
      password: () => redisPassword(redisConfig, "rateLimit.redis", deps.env ?? process.env),
      keyPrefix: redisConfig.keyPrefix,
      timeoutMs: redisConfig.timeoutMs,
    },
    // One error per reconnect attempt: the failover logs the outage once, these only at debug.
    (error) => logger.debug({ err: error, store: "redis" }, "rate-limit store connection error"),
  );
  const store = new FailoverStore({
    remote: redis,
    fallback: config.onStoreError === "failOpen" ? memory : undefined,
    logger,
    metrics,
  });
  if (!(await redis.connect(STARTUP_CONNECT_MS))) {
    logger.warn(
      { store: "redis", mode: config.onStoreError },
      "rate-limit store not reachable at startup; serving anyway and reconnecting in the background",
    );
  }
  return store;
}

/** The settings a running store cannot change: a reload that changes them needs a restart. */
export function storeSettings(config: LimitStoreConfig): LimitStoreConfig {
  return {
    store: config.store,
    onStoreError: config.onStoreError,
    memory: config.memory,
    redis: config.redis,
  };
}
