import { readFileSync } from "node:fs";
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

export interface RedisPasswordSource {
  readonly passwordFile?: string;
  readonly passwordEnv?: string;
}

/**
 * The password of a coordination Redis, from a file (a mounted Secret; trailing newlines are not
 * part of it) or an environment variable. `key` names the config section in errors.
 */
export function redisPassword(
  source: RedisPasswordSource,
  key: string,
  env: NodeJS.ProcessEnv,
): string | undefined {
  if (source.passwordFile !== undefined) {
    try {
      return readFileSync(source.passwordFile, "utf8").replace(/[\r\n]+$/, "");
    } catch (error) {
      throw new Error(
        `${key}.passwordFile: cannot read ${source.passwordFile}: ${(error as NodeJS.ErrnoException).code ?? "error"}`,
      );
    }
  }
  if (source.passwordEnv === undefined) return undefined;
  const value = env[source.passwordEnv];
  if (!value) throw new Error(`${key}.passwordEnv: environment variable ${source.passwordEnv} is not set`);
  return value;
}
