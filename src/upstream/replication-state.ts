import { createRedisClient, type RedisClient, type RedisPassword } from "../redis-client.js";

/**
 * Write misses shared by every pushguard process in front of the same replicas: how many writes
 * each replica (by URL) failed to store, ever. A pushguard that sees a count grow beyond the one
 * it last knew a replica in sync at stops reading from it: it missed a write some other
 * pushguard acknowledged.
 */
export interface SharedMisses {
  /** Adds one miss for each replica; resolves once stored (before the client is answered). */
  record(urls: readonly string[]): Promise<void>;
  /** Every replica's miss count (0 when absent). */
  read(): Promise<Map<string, number>>;
  close(): Promise<void>;
}

export interface RedisMissesOptions {
  readonly url: string;
  readonly password?: RedisPassword;
  readonly keyPrefix: string;
  readonly timeoutMs: number;
}

/** The counts in one Redis hash, `<prefix>misses`, field = replica URL. Never queued, never retried. */
export class RedisMisses implements SharedMisses {
  readonly #client: RedisClient;
  readonly #key: string;

  constructor(options: RedisMissesOptions, onError: (error: Error) => void = () => {}) {
    this.#key = `${options.keyPrefix}misses`;
    this.#client = createRedisClient({ ...options, connectionName: "pushguard-replication" });
    this.#client.on("error", onError);
  }

  async record(urls: readonly string[]): Promise<void> {
    if (urls.length === 0) return;
    await this.#connected();
    const transaction = this.#client.multi();
    for (const url of urls) transaction.hincrby(this.#key, url, 1);
    const results = await transaction.exec();
    const failed = results?.find(([error]) => error !== null)?.[0];
    if (failed || results === null) throw failed ?? new Error("replication state transaction aborted");
  }

  async read(): Promise<Map<string, number>> {
    await this.#connected();
    const counts = await this.#client.hgetall(this.#key);
    return new Map(Object.entries(counts).map(([url, count]) => [url, Number(count)]));
  }

  async close(): Promise<void> {
    if (this.#client.status === "ready") await this.#client.quit().catch(() => this.#client.disconnect());
    else this.#client.disconnect();
  }

  async #connected(): Promise<void> {
    if (this.#client.status === "wait") await this.#client.connect();
  }
}
