import { randomUUID } from "node:crypto";
import { createRedisClient, type RedisClient, type RedisPassword } from "../redis-client.js";

/** Who may expire groups right now. */
export interface Lease {
  /** `redis`, or `none` when every replica's janitor acts. */
  readonly kind: string;
  /**
   * Takes or renews the lease; true when this replica holds it until at least `ttlMs` from now.
   * A fencing token (increasing with every new holder) is in `fence` while held.
   */
  acquire(): Promise<boolean>;
  /** The current holder's fencing token, when this replica holds the lease. */
  readonly fence: number | undefined;
  /** Gives the lease up (on shutdown), so another replica takes over at its next run. */
  release(): Promise<void>;
  close(): Promise<void>;
}

/** Without a lease store every replica's janitor acts; see docs/expiry.md for why that is safe. */
export class NoLease implements Lease {
  readonly kind = "none";
  readonly fence = undefined;
  async acquire(): Promise<boolean> {
    return true;
  }
  async release(): Promise<void> {}
  async close(): Promise<void> {}
}

export interface RedisLeaseOptions {
  readonly url: string;
  readonly password?: RedisPassword;
  readonly keyPrefix: string;
  /** Milliseconds the lease lasts unless renewed. */
  readonly ttlMs: number;
  /** Milliseconds one Redis command may take. */
  readonly timeoutMs: number;
}

/** Renews only while the key still holds our value; returns 1 when renewed. */
const RENEW = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) else return 0 end`;
/** Deletes only our own lease. */
const RELEASE = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end`;

/**
 * A lease in Redis: `SET key value NX PX ttl` takes it, a compare-and-PEXPIRE script renews it,
 * a compare-and-DEL script gives it up. The value is `<fence>:<uuid>`, where the fence comes from
 * INCR on a counter, so every new holder has a larger token (written into each expiry's audit
 * line). The Pushgateway cannot check a fencing token: a holder paused past its TTL could still
 * send a delete it decided on earlier, which is why the janitor renews right before deleting.
 * When Redis does not answer, nobody holds the lease and no janitor acts.
 */
export class RedisLease implements Lease {
  readonly kind = "redis";
  readonly #client: RedisClient;
  readonly #options: RedisLeaseOptions;
  readonly #key: string;
  #value: string | undefined;
  #fence: number | undefined;

  constructor(options: RedisLeaseOptions, onError: (error: Error) => void = () => {}) {
    this.#options = options;
    this.#key = `${options.keyPrefix}lease`;
    this.#client = createRedisClient({ ...options, connectionName: "pushguard-janitor" });
    this.#client.on("error", onError);
  }

  get fence(): number | undefined {
    return this.#value === undefined ? undefined : this.#fence;
  }

  async acquire(): Promise<boolean> {
    await this.#connected();
    const ttl = String(this.#options.ttlMs);
    if (this.#value !== undefined) {
      if (Number(await this.#client.eval(RENEW, 1, this.#key, this.#value, ttl)) === 1) return true;
      this.#value = undefined;
    }
    const fence = await this.#client.incr(`${this.#options.keyPrefix}fence`);
    const value = `${fence}:${randomUUID()}`;
    if ((await this.#client.set(this.#key, value, "PX", this.#options.ttlMs, "NX")) !== "OK") return false;
    this.#value = value;
    this.#fence = fence;
    return true;
  }

  async release(): Promise<void> {
    const value = this.#value;
    this.#value = undefined;
    if (value === undefined || this.#client.status !== "ready") return;
    await this.#client.eval(RELEASE, 1, this.#key, value).catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.release();
    if (this.#client.status === "ready") await this.#client.quit().catch(() => this.#client.disconnect());
    else this.#client.disconnect();
  }

  async #connected(): Promise<void> {
    if (this.#client.status === "wait") await this.#client.connect();
  }
}
