import { describe, expect, it } from "vitest";
import { ANONYMOUS, type Identity } from "../../src/auth/identity.js";
import { type ProblemCode, ProblemError, problemResponse } from "../../src/errors.js";
import { Metrics } from "../../src/observability/metrics.js";
import { createAuthFailureLimiter } from "../../src/ratelimit/auth-failures.js";
import type { RatePolicy } from "../../src/ratelimit/gcra.js";
import { limitField, policyField, refusalHeaders, retryAfterSeconds } from "../../src/ratelimit/headers.js";
import { createRateLimiter, type RateLimitRequest } from "../../src/ratelimit/limiter.js";
import { MemoryStore } from "../../src/ratelimit/memory-store.js";
import type { RateLimitRule } from "../../src/ratelimit/rules.js";

/** A clock the test moves by hand: no sleeps, exact counts. */
function manualClock(start = 1_700_000_000_000) {
  let now = start;
  return {
    now: () => now,
    advance(ms: number) {
      now += ms;
    },
  };
}

const policy = (rate: number, burst: number, name = "p"): RatePolicy => ({ name, rate, burst });

function staticIdentity(name: string): Identity {
  return { name, via: "static-token", groups: [], claims: {} };
}

function push(identity: Identity, team: string | undefined, job = "job-1"): RateLimitRequest {
  return { identity, team, action: "push", job, clientAddress: "192.0.2.1" };
}

/** Runs `request` through the limiter: "ok" or the problem code. */
async function outcome(limit: (request: RateLimitRequest) => Promise<unknown>, request: RateLimitRequest) {
  try {
    await limit(request);
    return "ok";
  } catch (error) {
    if (error instanceof ProblemError) return error.code;
    throw error;
  }
}

async function outcomes(
  limit: (request: RateLimitRequest) => Promise<unknown>,
  request: RateLimitRequest,
  count: number,
) {
  const results: string[] = [];
  for (let index = 0; index < count; index++) results.push(await outcome(limit, request));
  return results;
}

const ok = (count: number) => Array<string>(count).fill("ok");
const limited = (count: number) => Array<string>(count).fill("ERR_RATE_LIMITED");

describe("GCRA in the memory store", () => {
  it("admits exactly the burst at once, then one request per emission interval", () => {
    const store = new MemoryStore({ maxKeys: 100 });
    const clock = manualClock();
    const check = [{ key: "k", policy: policy(5, 10) }];
    const admitted = () => store.takeNow(check, clock.now()).allowed;

    expect(Array.from({ length: 11 }, admitted)).toEqual([...Array(10).fill(true), false]);
    clock.advance(199);
    expect(admitted()).toBe(false);
    clock.advance(1);
    expect([admitted(), admitted()]).toEqual([true, false]);
    clock.advance(2_000);
    expect(Array.from({ length: 11 }, admitted)).toEqual([...Array(10).fill(true), false]);
  });

  it("reports remaining, reset and retry-after for every decision", () => {
    const store = new MemoryStore({ maxKeys: 100 });
    const clock = manualClock();
    const check = [{ key: "k", policy: policy(5, 10) }];
    expect(store.takeNow(check, clock.now()).states[0]).toEqual({
      fits: true,
      remaining: 9,
      resetMs: 200,
      retryAfterMs: 0,
    });
    for (let index = 0; index < 9; index++) store.takeNow(check, clock.now());
    expect(store.takeNow(check, clock.now()).states[0]).toEqual({
      fits: false,
      remaining: 0,
      resetMs: 2_000,
      retryAfterMs: 200,
    });
    clock.advance(50);
    expect(store.takeNow(check, clock.now()).states[0]).toMatchObject({ fits: false, retryAfterMs: 150 });
  });

  it("stays exact with intervals that are not whole milliseconds (3 per second)", () => {
    const store = new MemoryStore({ maxKeys: 100 });
    let now = 1_700_000_000_000;
    const check = [{ key: "k", policy: policy(3, 1) }];
    let admitted = 0;
    // 3000 seconds in steps of a third of a second: exactly one request fits per step.
    for (let step = 0; step < 9_000; step++) {
      now = 1_700_000_000_000 + (step * 1000) / 3;
      if (store.takeNow(check, now).allowed) admitted++;
      expect(store.takeNow(check, now).allowed).toBe(false);
    }
    expect(admitted).toBe(9_000);
  });

  it("is all or nothing: a request refused by one bucket takes nothing from the others", () => {
    const store = new MemoryStore({ maxKeys: 100 });
    const clock = manualClock();
    const identity = { key: "identity", policy: policy(0.001, 3) };
    const team = { key: "team", policy: policy(0.001, 5) };
    for (let index = 0; index < 3; index++)
      expect(store.takeNow([identity, team], clock.now()).allowed).toBe(true);
    const refused = store.takeNow([identity, team], clock.now());
    expect(refused.allowed).toBe(false);
    expect(refused.states.map((state) => [state.fits, state.remaining])).toEqual([
      [false, 0],
      [true, 2],
    ]);
    expect(store.takeNow([team], clock.now()).states[0]?.remaining).toBe(1);
  });

  it("stays bounded with 10k identities and forgets buckets once they are full again", () => {
    const store = new MemoryStore({ maxKeys: 1_000 });
    const clock = manualClock();
    for (let index = 0; index < 10_000; index++) {
      store.takeNow([{ key: `identity-${index}`, policy: policy(10, 5) }], clock.now());
    }
    expect(store.size).toBe(1_000);
    // Every bucket refills within 100 ms; traffic sweeps the idle ones (8 per request).
    clock.advance(1_000);
    for (let index = 0; index < 200; index++) {
      store.takeNow([{ key: "busy", policy: policy(1_000, 1_000) }], clock.now());
    }
    expect(store.size).toBe(1);
  });
});

describe("rules: per identity and per team", () => {
  const rules: RateLimitRule[] = [
    { scope: "identity", kind: "write", rate: 1, burst: 3 },
    { scope: "team", kind: "write", rate: 1, burst: 5 },
    { scope: "team", kind: "write", team: "team-b", rate: 5, burst: 10 },
    { scope: "identity", kind: "read", rate: 1, burst: 2 },
    { scope: "job", kind: "write", jobs: ["loop-*"], rate: 1, burst: 1 },
  ];

  function limiter() {
    const clock = manualClock();
    const metrics = new Metrics();
    const limit = createRateLimiter({
      rules,
      store: new MemoryStore({ maxKeys: 1_000 }),
      metrics,
      clock: clock.now,
    });
    return { limit, clock, metrics };
  }

  it("limits each identity to its burst and the team to its own across members", async () => {
    const { limit, clock } = limiter();
    const alice = staticIdentity("alice");
    const bob = staticIdentity("bob");
    expect(await outcomes(limit, push(alice, "team-a"), 4)).toEqual([...ok(3), ...limited(1)]);
    // bob has his own identity budget of 3, but the team has only 2 of its 5 left.
    expect(await outcomes(limit, push(bob, "team-a"), 3)).toEqual([...ok(2), ...limited(1)]);
    // One second refills one request for everyone: the team's one goes to whoever asks first.
    clock.advance(1_000);
    expect(await outcomes(limit, push(bob, "team-a"), 2)).toEqual(["ok", "ERR_RATE_LIMITED"]);
    expect(await outcome(limit, push(alice, "team-a"))).toBe("ERR_RATE_LIMITED");
  });

  it("applies a team's own rule instead of the default, and keeps teams apart", async () => {
    const { limit } = limiter();
    // team-b: 10 at once by its team rule, but each identity still only 3.
    const results = [];
    for (const name of ["b1", "b2", "b3", "b4"]) {
      results.push(...(await outcomes(limit, push(staticIdentity(name), "team-b"), 3)));
    }
    expect(results).toEqual([...ok(10), ...limited(2)]);
    expect(await outcome(limit, push(staticIdentity("a1"), "team-a"))).toBe("ok");
  });

  it("counts reads and writes in separate buckets", async () => {
    const { limit } = limiter();
    const admin = staticIdentity("admin");
    const read: RateLimitRequest = { ...push(admin, "admins"), action: "read", job: undefined };
    expect(await outcomes(limit, read, 3)).toEqual([...ok(2), ...limited(1)]);
    expect(await outcomes(limit, push(admin, "admins"), 4)).toEqual([...ok(3), ...limited(1)]);
  });

  it("gives each job matching a job rule its own bucket", async () => {
    const { limit } = limiter();
    const ci = staticIdentity("ci");
    expect(await outcomes(limit, push(ci, "team-x", "loop-a"), 2)).toEqual(["ok", "ERR_RATE_LIMITED"]);
    expect(await outcome(limit, push(ci, "team-x", "loop-b"))).toBe("ok");
    expect(await outcome(limit, push(ci, "team-x", "steady"))).toBe("ok");
  });

  it("keys anonymous callers by client address and never limits probes", async () => {
    const { limit } = limiter();
    const read = (clientAddress: string): RateLimitRequest => ({
      identity: ANONYMOUS,
      team: undefined,
      action: "read",
      job: undefined,
      clientAddress,
    });
    expect(await outcomes(limit, read("192.0.2.1"), 3)).toEqual([...ok(2), ...limited(1)]);
    expect(await outcome(limit, read("192.0.2.2"))).toBe("ok");
    const probe: RateLimitRequest = { ...read("192.0.2.1"), action: "probe" };
    expect(await outcomes(limit, probe, 10)).toEqual(ok(10));
    expect(await limit(probe)).toEqual({});
  });

  it("qualifies JWT subjects by issuer: two issuers' alice are two callers", async () => {
    const { limit } = limiter();
    const fromA: Identity = { ...staticIdentity("alice"), via: "oidc", issuer: "idp-a" };
    const fromB: Identity = { ...staticIdentity("alice"), via: "oidc", issuer: "idp-b" };
    expect(await outcomes(limit, push(fromA, "t1"), 3)).toEqual(ok(3));
    expect(await outcomes(limit, push(fromB, "t2"), 3)).toEqual(ok(3));
  });

  it("refuses with 429, Retry-After, both RateLimit fields and the violated policies", async () => {
    const { limit, metrics } = limiter();
    const alice = staticIdentity("alice");
    const allowed = await limit(push(alice, "team-a"));
    expect(allowed).toEqual({
      "ratelimit-policy": '"identity-write";q=3;w=3, "team-write";q=5;w=5',
      ratelimit: '"identity-write";r=2;t=1, "team-write";r=4;t=1',
    });
    await limit(push(alice, "team-a"));
    await limit(push(alice, "team-a"));
    const refusal = await limit(push(alice, "team-a")).catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(ProblemError);
    const problem = refusal as ProblemError;
    expect(problem.code).toBe("ERR_RATE_LIMITED");
    expect(problem.status).toBe(429);
    // team-write still has room, but its time to full (3 s) would outlast Retry-After: only the
    // empty bucket is reported, so no advertised window ends after Retry-After.
    expect(problem.headers).toEqual({
      "retry-after": "1",
      "ratelimit-policy": '"identity-write";q=3;w=3, "team-write";q=5;w=5',
      ratelimit: '"identity-write";r=0;t=1',
    });
    expect(problem.details).toEqual({ "violated-policies": ["identity-write"] });
    const text = await metrics.registry.metrics();
    expect(text).toContain('pushguard_rate_limited_total{team="team-a",reason="identity"} 1');
  });

  it("no rules, no limits and no headers", async () => {
    const limit = createRateLimiter({
      rules: [],
      store: new MemoryStore({ maxKeys: 10 }),
      metrics: new Metrics(),
      clock: Date.now,
    });
    expect(await outcomes(limit, push(staticIdentity("x"), "t"), 100)).toEqual(ok(100));
    expect(await limit(push(staticIdentity("x"), "t"))).toEqual({});
  });
});

describe("RateLimit header fields (draft-ietf-httpapi-ratelimit-headers-11)", () => {
  it("advertises a bucket as its burst over the seconds it takes to refill", () => {
    expect(policyField([policy(5, 10, "team-write")])).toBe('"team-write";q=10;w=2');
    expect(policyField([policy(100, 10, "fast")])).toBe('"fast";q=10;w=1');
    expect(policyField([policy(0.5, 3, "slow"), policy(1, 1, "one")])).toBe('"slow";q=3;w=6, "one";q=1;w=1');
  });

  it("t is the time to a full bucket while r > 0, and the time to the next request at r = 0", () => {
    const p = policy(5, 10, "x");
    expect(limitField([p], [{ fits: true, remaining: 3, resetMs: 1_400, retryAfterMs: 0 }])).toBe(
      '"x";r=3;t=2',
    );
    expect(limitField([p], [{ fits: false, remaining: 0, resetMs: 2_000, retryAfterMs: 200 }])).toBe(
      '"x";r=0;t=1',
    );
    expect(limitField([p], [{ fits: true, remaining: 10, resetMs: 0, retryAfterMs: 0 }])).toBe(
      '"x";r=10;t=0',
    );
  });

  it("a refusal reports only the empty buckets, and Retry-After is never before any of their t", () => {
    const policies = [policy(5, 10, "roomy"), policy(1, 5, "short"), policy(0.5, 3, "long")];
    const headers = refusalHeaders(policies, [
      { fits: true, remaining: 3, resetMs: 7_000, retryAfterMs: 0 },
      { fits: false, remaining: 0, resetMs: 4_400, retryAfterMs: 400 },
      { fits: false, remaining: 0, resetMs: 5_500, retryAfterMs: 1_500 },
    ]);
    expect(headers).toEqual({
      "ratelimit-policy": '"roomy";q=10;w=2, "short";q=5;w=5, "long";q=3;w=6',
      ratelimit: '"short";r=0;t=1, "long";r=0;t=2',
      "retry-after": "2",
    });
    const windows = [...(headers.ratelimit as string).matchAll(/;t=(\d+)/g)].map((match) => Number(match[1]));
    expect(Math.max(...windows)).toBeLessThanOrEqual(Number(headers["retry-after"]));
  });

  it("Retry-After is whole seconds, rounded up, at least 1", () => {
    expect([0, 1, 999.9999999, 1000, 1001, 2500].map(retryAfterSeconds)).toEqual([1, 1, 1, 1, 2, 3]);
  });
});

describe("problem types (draft-ietf-httpapi-ratelimit-headers-11, section 5)", () => {
  const IANA = "https://iana.org/assignments/http-problem-types";
  it.each<[ProblemCode, string, string]>([
    ["ERR_RATE_LIMITED", `${IANA}#quota-exceeded`, "Quota Exceeded"],
    ["ERR_OVERLOADED", `${IANA}#temporary-reduced-capacity`, "Temporary Reduced Capacity"],
    ["ERR_RATE_LIMIT_STORE", `${IANA}#temporary-reduced-capacity`, "Temporary Reduced Capacity"],
    ["ERR_ACL_DENIED", "https://github.com/pushguard/pushguard#err_acl_denied", "Not allowed"],
  ])("%s has type %s, and keeps its code", async (code, type, title) => {
    const response = problemResponse(new ProblemError(code, "detail"), "request-1");
    expect(await response.json()).toMatchObject({ type, title, code, requestId: "request-1" });
  });
});

describe("failed-authentication limiter", () => {
  const invalid = () => new ProblemError("ERR_AUTH_INVALID", "bad token", { reason: "unknown-token" });
  const missing = () => new ProblemError("ERR_AUTH_MISSING", "no token", { reason: "missing" });

  function limiter(store = new MemoryStore({ maxKeys: 100 })) {
    const clock = manualClock();
    const metrics = new Metrics();
    return {
      limit: createAuthFailureLimiter({ rate: 1, burst: 3, store, metrics, clock: clock.now }),
      clock,
      metrics,
    };
  }

  it("passes the first failures through, then answers 429 per address", async () => {
    const { limit, clock, metrics } = limiter();
    const codes = [];
    for (const error of [invalid(), missing(), invalid(), invalid(), missing()]) {
      codes.push(((await limit(error, "192.0.2.7")) as ProblemError).code);
    }
    expect(codes).toEqual([
      "ERR_AUTH_INVALID",
      "ERR_AUTH_MISSING",
      "ERR_AUTH_INVALID",
      "ERR_RATE_LIMITED",
      "ERR_RATE_LIMITED",
    ]);
    expect(((await limit(invalid(), "192.0.2.8")) as ProblemError).code).toBe("ERR_AUTH_INVALID");
    const refusal = (await limit(invalid(), "192.0.2.7")) as ProblemError;
    expect(refusal.headers).toMatchObject({
      "retry-after": "1",
      "ratelimit-policy": '"auth-failures";q=3;w=3',
      ratelimit: '"auth-failures";r=0;t=1',
    });
    clock.advance(1_000);
    expect(((await limit(invalid(), "192.0.2.7")) as ProblemError).code).toBe("ERR_AUTH_INVALID");
    expect(await metrics.registry.metrics()).toContain(
      'pushguard_rate_limited_total{team="",reason="auth-failures"} 3',
    );
  });

  it("counts only missing or invalid credentials", async () => {
    const { limit } = limiter();
    const denied = new ProblemError("ERR_ACL_DENIED", "no");
    for (let index = 0; index < 10; index++) expect(await limit(denied, "192.0.2.9")).toBe(denied);
    const crash = new Error("boom");
    expect(await limit(crash, "192.0.2.9")).toBe(crash);
    expect(((await limit(invalid(), "192.0.2.9")) as ProblemError).code).toBe("ERR_AUTH_INVALID");
  });

  it("still answers 401 when the store is down and fails closed", async () => {
    const broken = new MemoryStore({ maxKeys: 1 });
    broken.take = () => Promise.reject(new ProblemError("ERR_RATE_LIMIT_STORE", "down"));
    const { limit } = limiter(broken);
    expect(((await limit(invalid(), "192.0.2.10")) as ProblemError).code).toBe("ERR_AUTH_INVALID");
  });
});
