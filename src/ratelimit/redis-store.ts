import { createRedisClient, type RedisClient, type RedisPassword } from "../redis-client.js";
import { emissionIntervalMs } from "./gcra.js";
import { GCRA_SCRIPT, GCRA_SCRIPT_SHA1 } from "./redis-script.js";
import type { LimitCheck, LimitStore, TakeResult } from "./store.js";

export interface RedisStoreOptions {
  /** `redis://[user@]host:port[/db]` or `rediss://` for TLS. */
  readonly url: string;
  readonly password?: RedisPassword;
  /** Prepended to every key, so several deployments can share one Redis. */
  readonly keyPrefix: string;
  /** Milliseconds one script call may take before the store counts as failing. */
  readonly timeoutMs: number;
}

/** Reconnection backoff: quick at first, then every second, forever. */
/**
 * Buckets in Redis, shared by every replica. Each request is one EVALSHA of the GCRA script
 * (EVAL when the server does not know it yet, e.g. after a restart or SCRIPT FLUSH). Commands are
 * never queued while disconnected and never retried: a request must not wait for Redis, so every
 * failure is immediate and the caller decides (fail open or closed). The client reconnects on
 * its own; `available()` says whether it is connected now.
 */
export class RedisStore implements LimitStore {
  readonly kind = "redis";
  readonly #client: RedisClient;
  readonly #keyPrefix: string;

  /** @param onError receives connection errors (the client reports one per failed reconnect). */
  constructor(options: RedisStoreOptions, onError: (error: Error) => void = () => {}) {
    this.#keyPrefix = options.keyPrefix;
    this.#client = createRedisClient({ ...options, connectionName: "pushguard" });
    this.#client.on("error", onError);
  }

  /** Whether the connection is up; when it is not, `take` would fail at once. */
  available(): boolean {
    return this.#client.status === "ready";
  }

  /** Connects, waiting at most `timeoutMs`; false when Redis did not answer (it keeps trying). */
  async connect(timeoutMs: number): Promise<boolean> {
    const ready = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.#client.once("ready", () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    this.#client.connect().catch(() => {
      // Reported through the error listener; the client retries by itself.
    });
    return ready;
  }

  async take(checks: readonly LimitCheck[]): Promise<TakeResult> {
    const keys = checks.map((check) => this.#keyPrefix + check.key);
    const args = checks.flatMap((check) => [
      String(emissionIntervalMs(check.policy)),
      String(check.policy.burst),
    ]);
    let reply: unknown;
    try {
      reply = await this.#client.evalsha(GCRA_SCRIPT_SHA1, keys.length, ...keys, ...args);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith("NOSCRIPT")) throw error;
      reply = await this.#client.eval(GCRA_SCRIPT, keys.length, ...keys, ...args);
    }
    return parseReply(reply, checks.length);
  }

  async close(): Promise<void> {
    if (this.#client.status === "ready") {
      await this.#client.quit().catch(() => this.#client.disconnect());
    } else {
      this.#client.disconnect();
    }
  }
}

function parseReply(reply: unknown, count: number): TakeResult {
  if (!Array.isArray(reply) || reply.length !== 1 + count * 4) {
    throw new Error(`unexpected reply from the rate-limit script: ${JSON.stringify(reply)}`);
  }
  const numbers = reply.map(Number);
  const states = Array.from({ length: count }, (_, index) => {
    const at = 1 + index * 4;
    return {
      fits: numbers[at] === 1,
      remaining: numbers[at + 1] as number,
      resetMs: numbers[at + 2] as number,
      retryAfterMs: numbers[at + 3] as number,
    };
  });
  return { allowed: numbers[0] === 1, states };
}
