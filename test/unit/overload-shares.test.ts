import { describe, expect, it } from "vitest";
import { ProblemError } from "../../src/errors.js";
import { Metrics } from "../../src/observability/metrics.js";
import { BodyMemory } from "../../src/overload/body-memory.js";
import { UpstreamSlots } from "../../src/overload/upstream-slots.js";

describe("BodyMemory: a team's share", () => {
  it("stops one team at its share while another still gets room", () => {
    const memory = new BodyMemory(100, new Metrics(), 0.5);
    const a1 = memory.reserve();
    a1.assign("team-a");
    a1.take(40);
    const a2 = memory.reserve();
    a2.assign("team-a");
    expect(() => a2.take(20)).toThrow(ProblemError);
    try {
      a2.take(20);
    } catch (error) {
      expect((error as ProblemError).reason).toBe("team-share");
    }
    const b = memory.reserve();
    b.assign("team-b");
    b.take(50);
    a1.release();
    a2.take(50);
  });

  it("moves what was taken before the team was known onto the team", () => {
    const memory = new BodyMemory(100, new Metrics(), 0.5);
    const early = memory.reserve();
    early.take(30);
    early.assign("team-a");
    const other = memory.reserve();
    other.assign("team-a");
    expect(() => other.take(21)).toThrow(ProblemError);
    other.take(20);
    early.release();
    other.release();
    const all = memory.reserve();
    all.assign("team-a");
    all.take(50);
  });
});

describe("UpstreamSlots: a team's share", () => {
  const slots = () =>
    new UpstreamSlots(
      { maxConcurrent: 4, maxQueued: 4, maxQueueWaitMs: 1_000, maxTeamShare: 0.5 },
      new Metrics(),
    );

  it("gives one team at most its share of the slots; the rest stay free for the others", () => {
    const pool = slots();
    const a1 = pool.tryAcquire("team-a");
    const a2 = pool.tryAcquire("team-a");
    expect(a1 && a2).toBeTruthy();
    expect(pool.tryAcquire("team-a")).toBeUndefined();
    expect(pool.tryAcquire("team-b")).toBeDefined();
    expect(pool.state.active).toBe(3);
  });

  it("hands a freed slot to the first waiter whose team is below its share", async () => {
    const pool = slots();
    const a = [pool.tryAcquire("team-a"), pool.tryAcquire("team-a")];
    const b = [pool.tryAcquire("team-b"), pool.tryAcquire("team-b")];
    const order: string[] = [];
    const aWaits = pool.acquire(undefined, "team-a").then((release) => {
      order.push("team-a");
      return release;
    });
    const cWaits = pool.acquire(undefined, "team-c").then((release) => {
      order.push("team-c");
      return release;
    });
    // team-b frees a slot: team-a is still at its share, so team-c, queued behind it, gets it.
    b[0]?.();
    await cWaits;
    expect(order).toEqual(["team-c"]);
    a[0]?.();
    await aWaits;
    expect(order).toEqual(["team-c", "team-a"]);
    expect(pool.state).toEqual({ active: 4, queued: 0 });
  });

  it("caps one team's places in the queue", async () => {
    const pool = slots();
    pool.tryAcquire("team-a");
    pool.tryAcquire("team-a");
    const waiting = [pool.acquire(undefined, "team-a"), pool.acquire(undefined, "team-a")];
    await expect(pool.acquire(undefined, "team-a")).rejects.toMatchObject({
      code: "ERR_OVERLOADED",
      reason: "queue-full",
    });
    expect(pool.state.queued).toBe(2);
    for (const promise of waiting) promise.catch(() => {});
  });
});
