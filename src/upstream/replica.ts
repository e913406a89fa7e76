import { randomUUID } from "node:crypto";
import { connectionCount } from "./connection-watch.js";
import { Upstream, type UpstreamOptions, type UpstreamResponse } from "./forward.js";
import { discard, readBody } from "./gateway.js";
import { type PushedGroup, parseGroups } from "./groups.js";

const NO_HEADERS = {};

/**
 * One Pushgateway of a replicated set and what pushguard knows about it. The state is only ever
 * changed by `ReplicatedUpstream` and its repair, on the event loop, so no field is torn.
 */
export class Replica {
  readonly url: string;
  readonly origin: string;
  readonly upstream: Upstream;
  /** Answered its last health check or request. */
  up = false;
  /** Has every acknowledged write (see docs/high-availability.md). */
  inSync = false;
  /** A repair is copying groups to it. */
  repairing = false;
  /** Bumped on every write it missed: a repair that saw it change starts over. */
  generation = 0;
  /** The process start time (`/api/v1/status`) when it was last known in sync. */
  syncedStartTime: string | undefined;
  /** The last start time seen. */
  startTime: string | undefined;
  /** The shared miss count (all pushguards) when this process last knew it in sync. */
  sharedMisses = 0;
  /** `connectionCount(origin)` when `syncedStartTime` was last confirmed. */
  verifiedConnects = -1;
  /** A write to it was cut off (it did not answer in time) and it has not answered since. */
  cutOff = false;
  /** Not repaired before this time (ms): a write cut off from it may still be applied. */
  settleUntil = 0;
  /** Its in-sync mark, while the shared state has not stored it yet. */
  unmarked: { readonly misses: number; readonly startTime: string } | undefined;
  #verifying: Promise<string | undefined> | undefined;

  constructor(url: string, options: Omit<UpstreamOptions, "url">) {
    this.url = url;
    this.upstream = new Upstream({ ...options, url });
    this.origin = this.upstream.origin;
  }

  get state(): "in-sync" | "out-of-sync" | "repairing" {
    return this.inSync ? "in-sync" : this.repairing ? "repairing" : "out-of-sync";
  }

  /** Whether a connection was opened since the start time was last confirmed. */
  unverified(): boolean {
    return connectionCount(this.origin) !== this.verifiedConnects;
  }

  /**
   * The Pushgateway's process start time, or `undefined` when it does not answer. Concurrent
   * callers share one request. Records whether the replica is up.
   */
  probe(timeoutMs: number): Promise<string | undefined> {
    this.#verifying ??= this.#probe(timeoutMs).finally(() => {
      this.#verifying = undefined;
    });
    return this.#verifying;
  }

  async #probe(timeoutMs: number): Promise<string | undefined> {
    const connectsBefore = connectionCount(this.origin);
    try {
      const response = await this.get("/api/v1/status", AbortSignal.timeout(timeoutMs));
      const body = JSON.parse((await readBody(response)).toString("utf8")) as {
        data?: { start_time?: unknown };
      };
      const startTime = body.data?.start_time;
      if (response.status !== 200 || typeof startTime !== "string") throw new Error("no start_time");
      this.up = true;
      this.startTime = startTime;
      if (this.inSync && startTime === this.syncedStartTime) this.verifiedConnects = connectsBefore;
      return startTime;
    } catch {
      this.up = false;
      return undefined;
    }
  }

  /** Every group stored now, by canonical path. */
  async snapshot(timeoutMs: number): Promise<Map<string, PushedGroup>> {
    const response = await this.get("/api/v1/metrics", AbortSignal.timeout(timeoutMs));
    const body = await readBody(response);
    if (response.status !== 200) throw new Error(`${this.url}/api/v1/metrics answered ${response.status}`);
    return parseGroups(JSON.parse(body.toString("utf8"))).groups;
  }

  /** Sends one write to this replica only (repair), returning the status. */
  async write(method: "PUT" | "DELETE", path: string, body?: string): Promise<number> {
    const response = await this.upstream.request({
      method,
      path,
      headers: body === undefined ? NO_HEADERS : { "content-type": "text/plain; version=0.0.4" },
      body: body === undefined ? undefined : Buffer.from(body, "utf8"),
      clientAddress: undefined,
      requestId: `pushguard-repair-${randomUUID()}`,
    });
    await discard(response);
    return response.status;
  }

  get(path: string, signal?: AbortSignal): Promise<UpstreamResponse> {
    return this.upstream.request({
      method: "GET",
      path,
      headers: NO_HEADERS,
      clientAddress: undefined,
      requestId: `pushguard-replication-${randomUUID()}`,
      signal,
    });
  }
}
