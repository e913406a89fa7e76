import { createRequire } from "node:module";
import type { Redis as RedisClient, RedisOptions } from "ioredis";

export type { RedisClient, RedisOptions };

/**
 * Creates an ioredis client, loading the library on first use: it costs ~15 MiB of memory, which
 * a single pushguard without Redis-backed limits, leases or replication state never needs.
 */
export function createRedisClient(url: string, options: RedisOptions): RedisClient {
  const { Redis } = createRequire(import.meta.url)("ioredis") as typeof import("ioredis");
  return new Redis(url, options);
}
