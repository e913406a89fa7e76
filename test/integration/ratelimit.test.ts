import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { bearer, type RawResponse, send } from "../support/http.js";
import { type Pushgateway, startPushgateway } from "../support/pushgateway.js";
import { standardConfig, startPushguard, TEAM_A_TOKEN, type TestPushguard } from "../support/pushguard.js";

const BODY = "job_last_success_seconds 1700000000\n";
const TOKENS = {
  RL_A1: "rl-team-a-first-0123456789",
  RL_A2: "rl-team-a-second-0123456789",
  RL_B1: "rl-team-b-first-0123456789",
};

/** Two members in team-a so the team budget can be seen shared; rate limits appended. */
function limitedConfig(upstreamUrl: string, extra: string): string {
  return `
listen: { api: "127.0.0.1:0", metrics: "127.0.0.1:0" }
upstream: { url: "${upstreamUrl}" }
identities:
  static:
    - { name: a1, tokenEnv: RL_A1 }
    - { name: a2, tokenEnv: RL_A2 }
    - { name: b1, tokenEnv: RL_B1 }
teams:
  - { name: team-a, members: [a1, a2], jobs: ["team-a-*"], actions: [push, delete, read] }
  - { name: team-b, members: [b1], jobs: ["team-b-*"], actions: [push, delete] }
${extra}`;
}

function manualClock() {
  let now = Date.parse("2026-01-01T00:00:00Z");
  return {
    now: () => now,
    advance(ms: number) {
      now += ms;
    },
  };
}

let pushgateway: Pushgateway;

beforeAll(async () => {
  pushgateway = await startPushgateway();
});

afterAll(async () => {
  await pushgateway?.stop();
});

beforeEach(async () => {
  expect((await send(pushgateway.url, "PUT", "/api/v1/admin/wipe")).status).toBe(202);
});

let jobCounter = 0;
/** Pushes a new job each time, so the Pushgateway's groups show exactly which pushes got through. */
function pushNew(gateway: TestPushguard, token: string, team: "team-a" | "team-b"): Promise<RawResponse> {
  jobCounter += 1;
  return send(gateway.apiUrl, "PUT", `/metrics/job/${team}-${jobCounter}`, {
    headers: bearer(token),
    body: BODY,
  });
}

/** The Pushgateway's stored jobs, sorted (its API lists groups in no fixed order). */
async function jobs(target: Pushgateway): Promise<string[]> {
  return (await target.groups()).map((group) => group.job as string).sort();
}

async function statuses(responses: Array<Promise<RawResponse>> | RawResponse[]): Promise<number[]> {
  return (await Promise.all(responses)).map((response) => response.status);
}

async function sequential(count: number, request: () => Promise<RawResponse>): Promise<RawResponse[]> {
  const responses: RawResponse[] = [];
  for (let index = 0; index < count; index++) responses.push(await request());
  return responses;
}

describe("limits per identity and per team (memory store, injected clock)", () => {
  const clock = manualClock();
  let gateway: TestPushguard;

  beforeAll(async () => {
    gateway = await startPushguard(
      limitedConfig(
        pushgateway.url,
        `
rateLimit:
  rules:
    - { scope: identity, rate: 1, burst: 3 }
    - { scope: team, rate: 1, burst: 5 }
    - { scope: team, team: team-b, rate: 5, burst: 10 }
    - { scope: identity, kind: read, rate: 1, burst: 2 }
`,
      ),
      TOKENS,
      { clock: clock.now },
    );
  });

  afterAll(async () => {
    await gateway?.close();
  });

  it("admits exactly each identity's burst and the team's burst across members, then refills by the clock", async () => {
    const a1 = await sequential(4, () => pushNew(gateway, TOKENS.RL_A1, "team-a"));
    expect(await statuses(a1)).toEqual([200, 200, 200, 429]);
    expect(a1[0]?.headers["ratelimit-policy"]).toBe('"identity-write";q=3;w=3, "team-write";q=5;w=5');
    expect(a1.map((response) => response.headers.ratelimit)).toEqual([
      '"identity-write";r=2;t=1, "team-write";r=4;t=1',
      '"identity-write";r=1;t=2, "team-write";r=3;t=2',
      '"identity-write";r=0;t=1, "team-write";r=2;t=3',
      // The 429 reports only the empty bucket, so no t outlasts its Retry-After.
      '"identity-write";r=0;t=1',
    ]);
    // a2 has an identity budget of 3, but team-a has only 2 of its 5 left.
    const a2 = await sequential(3, () => pushNew(gateway, TOKENS.RL_A2, "team-a"));
    expect(await statuses(a2)).toEqual([200, 200, 429]);
    expect(a2[2]?.json()["violated-policies"]).toEqual(["team-write"]);
    expect((await pushgateway.groups()).length).toBe(5);

    clock.advance(1_000);
    expect(await statuses(await sequential(2, () => pushNew(gateway, TOKENS.RL_A2, "team-a")))).toEqual([
      200, 429,
    ]);
    expect((await pushgateway.groups()).length).toBe(6);
  });

  it("answers 429 as problem+json with Retry-After and both RateLimit fields, and never forwards", async () => {
    clock.advance(60_000);
    await sequential(3, () => pushNew(gateway, TOKENS.RL_B1, "team-b"));
    const before = await jobs(pushgateway);
    const response = await pushNew(gateway, TOKENS.RL_B1, "team-b");
    expect(response.status).toBe(429);
    expect(response.headers["content-type"]).toBe("application/problem+json");
    expect(response.headers["retry-after"]).toBe("1");
    // team-b's own rule (5/s, burst 10) replaces the default team rule.
    expect(response.headers["ratelimit-policy"]).toBe('"identity-write";q=3;w=3, "team-write";q=10;w=2');
    expect(response.headers.ratelimit).toBe('"identity-write";r=0;t=1');
    expect(response.json()).toMatchObject({
      type: "https://iana.org/assignments/http-problem-types#quota-exceeded",
      title: "Quota Exceeded",
      status: 429,
      code: "ERR_RATE_LIMITED",
      requestId: response.headers["x-request-id"],
      "violated-policies": ["identity-write"],
    });
    expect(await jobs(pushgateway)).toEqual(before);
    const audit = gateway
      .logs()
      .filter((line) => line.msg === "audit")
      .map((line) => line.audit as Record<string, unknown>)
      .at(-1);
    expect(audit).toMatchObject({ identity: "b1", team: "team-b", status: 429, code: "ERR_RATE_LIMITED" });
    const metrics = await gateway.metrics.registry.metrics();
    expect(metrics).toContain('pushguard_rate_limited_total{team="team-b",reason="identity"} 1');
    expect(metrics).toMatch(
      /pushguard_requests_total\{action="push",[^}]*outcome="ERR_RATE_LIMITED",code="429"\} \d/,
    );
  });

  it("keeps reads in their own bucket, with RateLimit on the forwarded responses", async () => {
    clock.advance(60_000);
    await sequential(3, () => pushNew(gateway, TOKENS.RL_A1, "team-a"));
    expect((await pushNew(gateway, TOKENS.RL_A1, "team-a")).status).toBe(429);
    const reads = await sequential(3, () =>
      send(gateway.apiUrl, "GET", "/api/v1/metrics", { headers: bearer(TOKENS.RL_A1) }),
    );
    expect(await statuses(reads)).toEqual([200, 200, 429]);
    expect(reads[0]?.headers.ratelimit).toBe('"identity-read";r=1;t=1');
    expect(reads[0]?.headers["ratelimit-policy"]).toBe('"identity-read";q=2;w=2');
  });

  it("never limits health probes", async () => {
    expect(await statuses(await sequential(20, () => send(gateway.apiUrl, "GET", "/-/healthy")))).toEqual(
      Array(20).fill(200),
    );
  });
});

describe("credential guessing: failed authentications per client address", () => {
  const clock = manualClock();
  let gateway: TestPushguard;
  let behindProxy: TestPushguard;
  const authFailures = "rateLimit: { authFailures: { rate: 1, burst: 3 } }";

  beforeAll(async () => {
    gateway = await startPushguard(standardConfig(pushgateway.url, authFailures), undefined, {
      clock: clock.now,
    });
    behindProxy = await startPushguard(
      standardConfig(pushgateway.url, `${authFailures}\nserver: { trustedProxies: ["127.0.0.1/32"] }`),
      undefined,
      { clock: clock.now },
    );
  });

  afterAll(async () => {
    await gateway?.close();
    await behindProxy?.close();
  });

  const guess = (target: TestPushguard, headers: Record<string, string> = {}) =>
    send(target.apiUrl, "PUT", "/metrics/job/team-a-guess", {
      headers: { ...bearer("guessed-token-0123456789"), ...headers },
      body: BODY,
    });

  it("answers 429 once an address failed too often, yet lets a valid token from it through", async () => {
    const guesses = await sequential(4, () => guess(gateway));
    expect(await statuses(guesses)).toEqual([401, 401, 401, 429]);
    expect(guesses[3]?.json().code).toBe("ERR_RATE_LIMITED");
    expect(guesses[3]?.headers["retry-after"]).toBe("1");
    expect(guesses[3]?.headers.ratelimit).toBe('"auth-failures";r=0;t=1');
    const missing = await send(gateway.apiUrl, "PUT", "/metrics/job/team-a-guess", { body: BODY });
    expect(missing.status).toBe(429);

    const valid = await send(gateway.apiUrl, "PUT", "/metrics/job/team-a-valid", {
      headers: bearer(TEAM_A_TOKEN),
      body: BODY,
    });
    expect(valid.status).toBe(200);
    expect((await guess(gateway)).status).toBe(429);

    clock.advance(1_000);
    expect(await statuses(await sequential(2, () => guess(gateway)))).toEqual([401, 429]);
    expect(await pushgateway.groups()).toEqual([{ job: "team-a-valid" }]);
    expect(await gateway.metrics.registry.metrics()).toMatch(
      /pushguard_rate_limited_total\{team="",reason="auth-failures"\} 4/,
    );
  });

  it("ignores X-Forwarded-For from untrusted peers: a spoofed address buys no fresh budget", async () => {
    clock.advance(60_000);
    const spoofed = await sequential(5, () =>
      guess(gateway, { "x-forwarded-for": `198.51.100.${jobCounter++}` }),
    );
    expect(await statuses(spoofed)).toEqual([401, 401, 401, 429, 429]);
  });

  it("counts guesses sent on malformed paths too (still answered 400), so they are no way around it", async () => {
    clock.advance(60_000);
    const malformed = await sequential(3, () =>
      send(gateway.apiUrl, "PUT", "/metrics/job/team-a-guess/instance", {
        headers: bearer("guessed-token-0123456789"),
        body: BODY,
      }),
    );
    expect(await statuses(malformed)).toEqual([400, 400, 400]);
    expect((await guess(gateway)).status).toBe(429);
  });

  it("counts per forwarded client address behind a trusted proxy", async () => {
    clock.advance(60_000);
    const first = await sequential(4, () => guess(behindProxy, { "x-forwarded-for": "198.51.100.1" }));
    expect(await statuses(first)).toEqual([401, 401, 401, 429]);
    expect((await guess(behindProxy, { "x-forwarded-for": "198.51.100.2" })).status).toBe(401);
    // The leftmost entry is whatever the client wrote; the proxy's own entry decides.
    expect((await guess(behindProxy, { "x-forwarded-for": "203.0.113.5, 198.51.100.1" })).status).toBe(429);
  });
});

describe("overload: concurrent upstream cap with a bounded queue", () => {
  let frozen: Pushgateway;
  let gateway: TestPushguard;

  beforeAll(async () => {
    frozen = await startPushgateway();
    gateway = await startPushguard(
      standardConfig(
        frozen.url,
        // One team fills every slot here: the per-team share has its own test.
        "overload: { maxConcurrent: 2, maxQueued: 2, maxQueueWaitMs: 20000, maxTeamShare: 1 }",
        "timeoutMs: 30000, connections: 2",
      ),
    );
  });

  afterAll(async () => {
    frozen?.process.child.kill("SIGCONT");
    await gateway?.close();
    await frozen?.stop();
  });

  /** Polls pushguard's own gauges until the slots in use and the queue reach the given numbers. */
  async function waitForSlots(target: TestPushguard, active: number, queued: number): Promise<void> {
    for (let attempt = 0; attempt < 200; attempt++) {
      const text = await target.metrics.registry.metrics();
      if (
        text.includes(`pushguard_upstream_in_flight_requests ${active}\n`) &&
        text.includes(`pushguard_upstream_queue_depth ${queued}\n`)
      ) {
        return;
      }
      await sleep(25);
    }
    throw new Error(`upstream slots never reached ${active} active, ${queued} queued`);
  }

  it("refuses with 503 ERR_OVERLOADED while a stopped Pushgateway holds every slot, then drains", async () => {
    frozen.process.child.kill("SIGSTOP");
    const held = ["one", "two", "three", "four"].map((name) =>
      send(gateway.apiUrl, "PUT", `/metrics/job/team-a-${name}`, {
        headers: bearer(TEAM_A_TOKEN),
        body: BODY,
      }),
    );
    await waitForSlots(gateway, 2, 2);
    const refused = await send(gateway.apiUrl, "PUT", "/metrics/job/team-a-five", {
      headers: bearer(TEAM_A_TOKEN),
      body: BODY,
    });
    expect(refused.status).toBe(503);
    expect(refused.headers["retry-after"]).toBe("20");
    expect(refused.json()).toMatchObject({
      type: "https://iana.org/assignments/http-problem-types#temporary-reduced-capacity",
      code: "ERR_OVERLOADED",
      status: 503,
    });
    expect(await gateway.metrics.registry.metrics()).toContain(
      'pushguard_overload_rejections_total{reason="queue-full"} 1',
    );

    frozen.process.child.kill("SIGCONT");
    expect(await statuses(held)).toEqual([200, 200, 200, 200]);
    expect(await jobs(frozen)).toEqual(["team-a-four", "team-a-one", "team-a-three", "team-a-two"]);
    await waitForSlots(gateway, 0, 0);
  });

  it("refuses a queued request after maxQueueWaitMs", async () => {
    const impatient = await startPushguard(
      standardConfig(
        frozen.url,
        "overload: { maxConcurrent: 1, maxQueued: 1, maxQueueWaitMs: 300 }",
        "timeoutMs: 30000",
      ),
    );
    try {
      frozen.process.child.kill("SIGSTOP");
      const held = send(impatient.apiUrl, "PUT", "/metrics/job/team-a-held", {
        headers: bearer(TEAM_A_TOKEN),
        body: BODY,
      });
      await waitForSlots(impatient, 1, 0);
      const waited = await send(impatient.apiUrl, "PUT", "/metrics/job/team-a-waited", {
        headers: bearer(TEAM_A_TOKEN),
        body: BODY,
      });
      expect(waited.status).toBe(503);
      expect(waited.json().code).toBe("ERR_OVERLOADED");
      expect(waited.headers["retry-after"]).toBe("1");
      frozen.process.child.kill("SIGCONT");
      expect((await held).status).toBe(200);
    } finally {
      frozen.process.child.kill("SIGCONT");
      await impatient.close();
    }
  });
});
