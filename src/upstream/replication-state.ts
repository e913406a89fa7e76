import { createRedisClient, type RedisClient, type RedisPassword } from "../redis-client.js";

/**
 * Write misses shared by every pushguard process in front of the same replicas: how many writes
 * each replica (by URL) failed to store, ever. A pushguard that sees a count grow beyond the one
 * it last knew a replica in sync at stops reading from it: it missed a write some other
 * pushguard acknowledged. Beside the counts, the count each replica was last brought in sync at:
 * a pushguard that starts with no replica in sync never chooses one that missed a write since.
 */
export interface SharedMisses {
  /** Adds one miss for each replica; resolves once stored (before the client is answered). */
  record(urls: readonly string[]): Promise<void>;
  /** Every replica's miss count (0 when absent). */
  read(): Promise<Map<string, number>>;
  /** Notes that `url` holds every acknowledged write as of miss count `misses`. */
  markSynced(url: string, misses: number): Promise<void>;
  /** The replicas that missed a write since they were last in sync (by any pushguard). */
  stale(): Promise<Set<string>>;
  close(): Promise<void>;
}

export interface RedisMissesOptions {
  readonly url: string;
  readonly password?: RedisPassword;
  readonly keyPrefix: string;
  readonly timeoutMs: number;
}

/**
 * The counts in one Redis hash, `<prefix>misses`, field = replica URL, and the in-sync marks in
 * `<prefix>synced`. Never queued, never retried.
 */
export class RedisMisses implements SharedMisses {
  readonly #client: RedisClient;
  readonly #key: string;
  readonly #syncedKey: string;

  constructor(options: RedisMissesOptions, onError: (error: Error) => void = () => {}) {
    this.#key = `${options.keyPrefix}misses`;
    this.#syncedKey = `${options.keyPrefix}synced`;
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

  async markSynced(url: string, misses: number): Promise<void> {
    await this.#connected();
    await this.#client.hset(this.#syncedKey, url, misses);
  }

  async stale(): Promise<Set<string>> {
    await this.#connected();
    const [misses, synced] = await Promise.all([
      this.#client.hgetall(this.#key),
      this.#client.hgetall(this.#syncedKey),
    ]);
    return new Set(
      Object.entries(misses)
        .filter(([url, count]) => Number(count) > Number(synced[url] ?? 0))
        .map(([url]) => url),
    );
  }

  async close(): Promise<void> {
    if (this.#client.status === "ready") await this.#client.quit().catch(() => this.#client.disconnect());
    else this.#client.disconnect();
  }

  async #connected(): Promise<void> {
    if (this.#client.status === "wait") await this.#client.connect();
  }
}
