import type { Upstream, UpstreamRequest, UpstreamResponse } from "./forward.js";
import type { GroupLocks } from "./group-locks.js";

/** A request to the Pushgateway (one, or every replica of a replicated set). */
export interface GatewayRequest extends UpstreamRequest {
  /** The caller already holds this group's lock (the janitor's re-check and delete). */
  readonly groupLockHeld?: boolean;
}

/** What one replica looks like from the outside: for `/readyz` and logs. */
export interface ReplicaStatus {
  readonly url: string;
  readonly up: boolean;
  readonly state: "in-sync" | "out-of-sync" | "repairing";
}

/**
 * The Pushgateway as the pipeline and the janitor see it: a single upstream, or a replicated set
 * that fans writes out and serves reads from an in-sync replica. Both order writes per group.
 */
export interface Gateway {
  request(request: GatewayRequest): Promise<UpstreamResponse>;
  /** Whether reads and writes can be served now. */
  ready(): Promise<boolean>;
  /** Replica states for a replicated upstream; empty for a single one. */
  replicas(): readonly ReplicaStatus[];
  readonly locks: GroupLocks;
  close(): Promise<void>;
}

export const WIPE_PATH = "/api/v1/admin/wipe";

/**
 * `reason`s of an `ERR_UPSTREAM_UNAVAILABLE` for a write a replicated upstream refused before
 * sending it anywhere (no in-sync replica, or fewer than `writePolicy: all` needs); after sending
 * it the reasons are `write-policy` and `not-stored`.
 */
export const NOT_SENT_REASONS: ReadonlySet<string> = new Set(["no-in-sync-replica", "replicas-out-of-sync"]);

/** Whether a request changes stored groups (push, delete, wipe), by method. */
export function isWrite(method: string): boolean {
  return method === "PUT" || method === "POST" || method === "DELETE";
}

/**
 * Runs a write under the right lock: a wipe alone, a group write after earlier writes to the same
 * group. Reads take no lock.
 */
export function ordered<T>(locks: GroupLocks, request: GatewayRequest, fn: () => Promise<T>): Promise<T> {
  if (!isWrite(request.method) || request.groupLockHeld) return fn();
  if (request.path === WIPE_PATH) return locks.exclusive(fn);
  return locks.withGroups([request.path], fn);
}

/** A single Pushgateway: the pooled `Upstream`, with writes ordered per group. */
export class SingleGateway implements Gateway {
  readonly #upstream: Upstream;
  readonly locks: GroupLocks;

  constructor(upstream: Upstream, locks: GroupLocks) {
    this.#upstream = upstream;
    this.locks = locks;
  }

  request(request: GatewayRequest): Promise<UpstreamResponse> {
    return ordered(this.locks, request, () => this.#upstream.request(request));
  }

  ready(): Promise<boolean> {
    return this.#upstream.ready();
  }

  replicas(): readonly ReplicaStatus[] {
    return [];
  }

  close(): Promise<void> {
    return this.#upstream.close();
  }
}

/** Reads and discards a response body so its connection returns to the pool. */
export async function discard(response: UpstreamResponse): Promise<void> {
  try {
    for await (const _ of response.body) {
      // drain
    }
  } catch {
    // the connection is gone either way
  }
}

/** Reads a whole response body. */
export async function readBody(response: UpstreamResponse): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of response.body) chunks.push(chunk);
  return Buffer.concat(chunks);
}
