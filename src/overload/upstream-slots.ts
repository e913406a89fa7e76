import { ProblemError } from "../errors.js";
import type { Metrics } from "../observability/metrics.js";

export interface UpstreamSlotsOptions {
  /** Requests forwarded to the Pushgateway at once. */
  readonly maxConcurrent: number;
  /** Requests waiting for a slot; one more is refused at once. */
  readonly maxQueued: number;
  /** Milliseconds a request may wait for a slot before it is refused. */
  readonly maxQueueWaitMs: number;
  /**
   * The fraction of the slots, and of the queue, one team may hold at once (at least one of
   * each), so that one team's slow requests cannot lock the others out. 1: no per-team cap.
   */
  readonly maxTeamShare?: number;
}

/** Gives the slot back; calling it again does nothing. */
export type Release = () => void;

interface Waiter {
  readonly team: string;
  readonly grant: (release: Release) => void;
  readonly timer: NodeJS.Timeout;
  readonly detach: () => void;
}

/**
 * A cap on concurrent upstream requests with a short, bounded FIFO queue. The Pushgateway takes
 * writes through a fixed queue of 1000 and spends O(stored metrics) on each, so past a point more
 * concurrency only adds latency, then lost writes. Beyond the cap a request waits at most
 * `maxQueueWaitMs`, behind at most `maxQueued` others; otherwise it gets
 * `503 ERR_OVERLOADED` with `Retry-After` at once. Bodies are read (and checked) before a slot is
 * taken, so a slow client never holds one; the memory of bodies being read is bounded by
 * `BodyMemory` instead.
 */
export class UpstreamSlots {
  readonly #options: UpstreamSlotsOptions;
  readonly #metrics: Metrics;
  readonly #queue: Waiter[] = [];
  #active = 0;
  readonly #activeByTeam = new Map<string, number>();
  readonly #maxTeamActive: number;
  readonly #maxTeamQueued: number;

  constructor(options: UpstreamSlotsOptions, metrics: Metrics) {
    this.#options = options;
    this.#metrics = metrics;
    const share = options.maxTeamShare ?? 1;
    this.#maxTeamActive = Math.max(1, Math.floor(options.maxConcurrent * share));
    this.#maxTeamQueued = Math.max(1, Math.floor(options.maxQueued * share));
  }

  /**
   * A slot right away if one is free and `team` is below its share; `undefined` otherwise (then
   * `acquire` queues). `undefined` team: the callers without a team, together.
   */
  tryAcquire(team?: string): Release | undefined {
    const key = team ?? "";
    if (this.#active >= this.#options.maxConcurrent || !this.#belowShare(key)) return undefined;
    this.#active++;
    this.#take(key);
    this.#report();
    return this.#release(key);
  }

  /** Waits for a slot. `signal` (the client went away) gives up the place in the queue. */
  acquire(signal?: AbortSignal, team?: string): Promise<Release> {
    const free = this.tryAcquire(team);
    if (free) return Promise.resolve(free);
    const key = team ?? "";
    const queuedForTeam = this.#queue.filter((waiter) => waiter.team === key).length;
    if (this.#queue.length >= this.#options.maxQueued || queuedForTeam >= this.#maxTeamQueued) {
      return Promise.reject(this.#overloaded("queue-full"));
    }
    return new Promise<Release>((resolve, reject) => {
      const onAbort = () => leave(this.#overloaded("client-gone"));
      const waiter: Waiter = {
        team: key,
        grant: resolve,
        timer: setTimeout(() => leave(this.#overloaded("queue-timeout")), this.#options.maxQueueWaitMs),
        detach: () => signal?.removeEventListener("abort", onAbort),
      };
      const leave = (problem: ProblemError) => {
        const index = this.#queue.indexOf(waiter);
        if (index === -1) return;
        this.#queue.splice(index, 1);
        this.#settle(waiter);
        this.#report();
        reject(problem);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#queue.push(waiter);
      this.#report();
    });
  }

  /** Slots in use and requests waiting (for tests and the metrics). */
  get state(): { active: number; queued: number } {
    return { active: this.#active, queued: this.#queue.length };
  }

  #release(team: string): Release {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#give(team);
      // The first waiter whose team is below its share: one team's queue cannot hold up another's.
      const index = this.#queue.findIndex((waiter) => this.#belowShare(waiter.team));
      const next = index === -1 ? undefined : this.#queue.splice(index, 1)[0];
      if (next) {
        // The slot passes straight to the next waiter: `active` stays as it is.
        this.#settle(next);
        this.#take(next.team);
        next.grant(this.#release(next.team));
      } else {
        this.#active--;
      }
      this.#report();
    };
  }

  #belowShare(team: string): boolean {
    return (this.#activeByTeam.get(team) ?? 0) < this.#maxTeamActive;
  }

  #take(team: string): void {
    this.#activeByTeam.set(team, (this.#activeByTeam.get(team) ?? 0) + 1);
  }

  #give(team: string): void {
    const left = (this.#activeByTeam.get(team) ?? 1) - 1;
    if (left === 0) this.#activeByTeam.delete(team);
    else this.#activeByTeam.set(team, left);
  }

  #settle(waiter: Waiter): void {
    clearTimeout(waiter.timer);
    waiter.detach();
  }

  #overloaded(reason: "queue-full" | "queue-timeout" | "client-gone"): ProblemError {
    this.#metrics.overloadRejections.inc({ reason });
    const retryAfter = Math.max(1, Math.ceil(this.#options.maxQueueWaitMs / 1000));
    return new ProblemError(
      "ERR_OVERLOADED",
      reason === "queue-full"
        ? "the Pushgateway is saturated and the queue in front of it is full"
        : "the Pushgateway is saturated: no upstream slot freed up in time",
      { headers: { "retry-after": String(retryAfter) }, reason },
    );
  }

  #report(): void {
    this.#metrics.upstreamInFlight.set(this.#active);
    this.#metrics.upstreamQueueDepth.set(this.#queue.length);
  }
}
