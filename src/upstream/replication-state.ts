import { createRedisClient, type RedisClient, type RedisPassword } from "../redis-client.js";

/**
 * Write misses shared by every pushguard process in front of the same replicas: how many writes
 * each replica (by URL) failed to store, ever. A pushguard that sees a count grow beyond the one
 * it last knew a replica in sync at stops reading from it: it missed a write some other
 * pushguard acknowledged. Beside the counts, the count and process start time each replica was
 * last brought in sync at: a pushguard that starts with no replica in sync never chooses one that
 * missed a write, or restarted, since.
 */
export interface SharedMisses {
  /** Adds one miss for each replica; resolves once stored (before the client is answered). */
  record(urls: readonly string[]): Promise<void>;
  /** Every replica's miss count (0 when absent). */
  read(): Promise<Map<string, number>>;
  /** Notes that `url`, the process started at `startTime`, holds every write as of count `misses`. */
  markSynced(url: string, misses: number, startTime: string): Promise<void>;
  /** Every replica's miss count and its last in-sync mark (absent when it never had one). */
  marks(): Promise<{ misses: Map<string, number>; synced: Map<string, SyncedMark> }>;
  close(): Promise<void>;
}

export interface SyncedMark {
  readonly misses: number;
  readonly startTime: string;
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

  async markSynced(url: string, misses: number, startTime: string): Promise<void> {
    await this.#connected();
    await this.#client.hset(this.#syncedKey, url, `${misses} ${startTime}`);
  }

  async marks(): Promise<{ misses: Map<string, number>; synced: Map<string, SyncedMark> }> {
    await this.#connected();
    const [misses, synced] = await Promise.all([
      this.#client.hgetall(this.#key),
      this.#client.hgetall(this.#syncedKey),
    ]);
    return {
      misses: new Map(Object.entries(misses).map(([url, count]) => [url, Number(count)])),
      synced: new Map(
        Object.entries(synced).map(([url, mark]) => {
          const [count = "0", startTime = ""] = mark.split(" ");
          return [url, { misses: Number(count), startTime }];
        }),
      ),
    };
  }

  async close(): Promise<void> {
    if (this.#client.status === "ready") await this.#client.quit().catch(() => this.#client.disconnect());
    else this.#client.disconnect();
  }

  async #connected(): Promise<void> {
    if (this.#client.status === "wait") await this.#client.connect();
  }
}
