import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { Redis as RedisClient, RedisOptions } from "ioredis";

export type { RedisClient, RedisOptions };

/**
 * Reads the Redis password: once when the client is made (a failure stops startup) and again
 * before every reconnect, so a rotated Secret is used from the next connection on, no restart.
 */
export type RedisPassword = () => string | undefined;

export interface RedisClientOptions {
  readonly url: string;
  readonly password?: RedisPassword;
  /** Milliseconds one command may take. */
  readonly timeoutMs: number;
  /** Shown by `CLIENT LIST`, so operators can tell pushguard's connections apart. */
  readonly connectionName: string;
}

/**
 * A Redis client that fails fast instead of queueing: commands time out, nothing waits for a
 * connection, nothing is retried, and reconnects back off to once a second, so every caller can
 * fall back (or refuse) at once while Redis is away. ioredis is loaded on first use: it costs
 * ~15 MiB of memory that a single pushguard without Redis never needs.
 */
export function createRedisClient(options: RedisClientOptions): RedisClient {
  const { Redis } = createRequire(import.meta.url)("ioredis") as typeof import("ioredis");
  const readPassword = options.password ?? (() => undefined);
  const client = new Redis(options.url, {
    password: readPassword(),
    commandTimeout: options.timeoutMs,
    connectTimeout: Math.max(1_000, options.timeoutMs * 10),
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    retryStrategy: (attempt) => Math.min(attempt * 100, 1_000),
    lazyConnect: true,
    connectionName: options.connectionName,
    // How long `disconnect()` waits for a socket to close; ioredis also waits this long for a
    // socket that already failed, which would hold up shutdown by its 2 s default.
    disconnectTimeout: 100,
  });
  // ioredis reads `options.password` on every connect; "reconnecting" comes just before one.
  // Connections already authenticated stay so when the password changes, so only new ones need it.
  client.on("reconnecting", () => {
    try {
      client.options.password = readPassword();
    } catch {
      // A Secret being swapped can be missing for a moment: keep the last password read.
    }
  });
  return client;
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
