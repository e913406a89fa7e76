import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ProblemError } from "../../src/errors.js";
import { Metrics } from "../../src/observability/metrics.js";
import { type Release, UpstreamSlots } from "../../src/overload/upstream-slots.js";

/** The problem code a pending acquire was refused with, or "granted". */
async function settle(acquire: Promise<Release>): Promise<string> {
  try {
    await acquire;
    return "granted";
  } catch (error) {
    return error instanceof ProblemError ? `${error.code}:${error.reason}` : String(error);
  }
}

describe("upstream slots: concurrency cap with a bounded queue", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("grants up to the cap, queues up to maxQueued, refuses the rest at once with 503", async () => {
    const slots = new UpstreamSlots({ maxConcurrent: 2, maxQueued: 1, maxQueueWaitMs: 1_000 }, new Metrics());
    const first = await slots.acquire();
    await slots.acquire();
    const queued = slots.acquire();
    expect(slots.state).toEqual({ active: 2, queued: 1 });
    const refused = await slots.acquire().catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(ProblemError);
    expect((refused as ProblemError).code).toBe("ERR_OVERLOADED");
    expect((refused as ProblemError).status).toBe(503);
    expect((refused as ProblemError).headers).toEqual({ "retry-after": "1" });
    first();
    expect(await settle(queued)).toBe("granted");
    expect(slots.state).toEqual({ active: 2, queued: 0 });
  });

  it("hands slots to waiters in arrival order and releases each slot once", async () => {
    const slots = new UpstreamSlots({ maxConcurrent: 1, maxQueued: 3, maxQueueWaitMs: 5_000 }, new Metrics());
    const order: string[] = [];
    const holder = await slots.acquire();
    const waiters = ["a", "b", "c"].map((name) =>
      slots.acquire().then((release) => {
        order.push(name);
        return release;
      }),
    );
    holder();
    holder();
    const a = await waiters[0];
    expect(order).toEqual(["a"]);
    a?.();
    (await waiters[1])?.();
    (await waiters[2])?.();
    expect(order).toEqual(["a", "b", "c"]);
    expect(slots.state).toEqual({ active: 0, queued: 0 });
  });

  it("refuses a waiter after maxQueueWaitMs and one whose client went away", async () => {
    const metrics = new Metrics();
    const slots = new UpstreamSlots({ maxConcurrent: 1, maxQueued: 5, maxQueueWaitMs: 2_500 }, metrics);
    const holder = await slots.acquire();
    const timedOut = settle(slots.acquire());
    const gone = new AbortController();
    const abandoned = settle(slots.acquire(gone.signal));
    gone.abort();
    expect(await abandoned).toBe("ERR_OVERLOADED:client-gone");
    vi.advanceTimersByTime(2_499);
    expect(slots.state.queued).toBe(1);
    vi.advanceTimersByTime(1);
    expect(await timedOut).toBe("ERR_OVERLOADED:queue-timeout");
    expect(slots.state).toEqual({ active: 1, queued: 0 });
    holder();
    expect(slots.state).toEqual({ active: 0, queued: 0 });
    const text = await metrics.registry.metrics();
    expect(text).toContain('pushguard_overload_rejections_total{reason="queue-timeout"} 1');
    expect(text).toContain('pushguard_overload_rejections_total{reason="client-gone"} 1');
    expect(text).toContain("pushguard_upstream_in_flight_requests 0");
    expect(text).toContain("pushguard_upstream_queue_depth 0");
  });

  it("with maxQueued 0, refuses as soon as every slot is taken (Retry-After from the wait)", async () => {
    const slots = new UpstreamSlots({ maxConcurrent: 1, maxQueued: 0, maxQueueWaitMs: 2_500 }, new Metrics());
    await slots.acquire();
    const refused = (await slots.acquire().catch((error: unknown) => error)) as ProblemError;
    expect([refused.code, refused.reason, refused.headers["retry-after"]]).toEqual([
      "ERR_OVERLOADED",
      "queue-full",
      "3",
    ]);
  });
});
