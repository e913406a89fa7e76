import { type ClientRequest, request } from "node:http";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { bearer, type RawResponse, send } from "../support/http.js";
import { type Pushgateway, startPushgateway } from "../support/pushgateway.js";
import {
  standardConfig,
  startPushguard,
  TEAM_A_TOKEN,
  TEAM_B_TOKEN,
  type TestPushguard,
} from "../support/pushguard.js";
import { afterPendingWrites } from "../support/write-barrier.js";

/** Valid text exposition of exactly `bytes` bytes: one gauge line, padded with a comment. */
function body(bytes: number, value = 1): Buffer {
  const line = `held_value ${value}\n# `;
  return Buffer.from(`${line}${"x".repeat(bytes - line.length - 1)}\n`);
}

let pushgateway: Pushgateway;
let pushguard: TestPushguard;

beforeAll(async () => {
  pushgateway = await startPushgateway();
  pushguard = await startPushguard(
    standardConfig(
      pushgateway.url,
      `
body: { maxBytes: 2000, maxDecompressedBytes: 500 }
# One team fills the whole budget here; the per-team share has its own test below.
overload: { maxBufferedBodyBytes: 2500, maxTeamShare: 1 }
`,
    ),
  );
});

afterAll(async () => {
  await pushguard?.close();
  await pushgateway?.stop();
});

beforeEach(async () => {
  expect((await send(pushgateway.url, "PUT", "/api/v1/admin/wipe")).status).toBe(202);
});

const buffered = async () =>
  Number(/^pushguard_body_buffered_bytes (\d+)$/m.exec(await pushguard.metrics.registry.metrics())?.[1]);

/** A push whose body is sent (chunked) but not finished: its bytes stay held until `finish`. */
function heldPush(job: string, first: Buffer): { finish(rest: Buffer): Promise<number>; abort(): void } {
  const { hostname, port } = new URL(pushguard.apiUrl);
  let req: ClientRequest;
  const answered = new Promise<number>((resolve, reject) => {
    req = request(
      {
        host: hostname,
        port,
        method: "PUT",
        path: `/metrics/job/${job}`,
        headers: bearer(TEAM_A_TOKEN),
        agent: false,
      },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("error", reject);
  });
  answered.catch(() => undefined);
  // biome-ignore lint/style/noNonNullAssertion: assigned synchronously by the Promise executor
  req!.write(first);
  return {
    finish(rest) {
      req.end(rest);
      return answered;
    },
    abort() {
      req.destroy();
    },
  };
}

describe("the process-wide budget for request bodies in memory", () => {
  it("refuses a body that would pass it with 503 ERR_OVERLOADED, forwards nothing, and frees it afterwards", async () => {
    // Budget 2500 = body.maxBytes 2000 + maxDecompressedBytes 500. With 1970 bytes held, an 800-byte
    // body cannot fit (2770), nor a 40-byte gzip body with room for its 500 decoded bytes (2510).
    const held = body(1995);
    const slow = heldPush("team-a-slow", held.subarray(0, 1970));
    await vi.waitFor(async () => expect(await buffered()).toBe(1970), { timeout: 5_000, interval: 10 });

    const refusals: RawResponse[] = [
      await send(pushguard.apiUrl, "PUT", "/metrics/job/team-a-plain", {
        headers: bearer(TEAM_A_TOKEN),
        body: body(800),
      }),
      // Small on the wire, but it may decode to body.maxDecompressedBytes: room for that is taken first.
      await send(pushguard.apiUrl, "PUT", "/metrics/job/team-a-gzip", {
        headers: { ...bearer(TEAM_A_TOKEN), "content-encoding": "gzip" },
        body: gzipSync(body(400)),
      }),
    ];
    for (const refused of refusals) {
      expect(refused.status).toBe(503);
      expect(refused.json().code).toBe("ERR_OVERLOADED");
      expect(refused.headers["retry-after"]).toBe("1");
      expect(refused.headers.connection).toBe("close");
    }
    expect(await buffered()).toBe(1970);

    expect(await slow.finish(held.subarray(1970))).toBe(200);
    expect(await buffered()).toBe(0);
    expect(await pushgateway.groups()).toEqual([{ job: "team-a-slow" }]);
    expect(await pushguard.metrics.registry.metrics()).toMatch(
      /^pushguard_overload_rejections_total\{reason="body-memory"\} 2$/m,
    );

    // With the budget free again, the same two pushes go through.
    for (const [job, headers, payload] of [
      ["team-a-plain", bearer(TEAM_A_TOKEN), body(800)],
      ["team-a-gzip", { ...bearer(TEAM_A_TOKEN), "content-encoding": "gzip" }, gzipSync(body(400))],
    ] as const) {
      const response = await send(pushguard.apiUrl, "PUT", `/metrics/job/${job}`, { headers, body: payload });
      expect(response.status).toBe(200);
    }
    expect(await buffered()).toBe(0);
    expect((await pushgateway.groups()).map((group) => group.job).sort()).toEqual([
      "team-a-gzip",
      "team-a-plain",
      "team-a-slow",
    ]);
  });

  it("gives back what a client held when it goes away mid-body", async () => {
    const gone = heldPush("team-a-gone", body(1500).subarray(0, 1200));
    await vi.waitFor(async () => expect(await buffered()).toBe(1200), { timeout: 5_000, interval: 10 });
    gone.abort();
    await vi.waitFor(async () => expect(await buffered()).toBe(0), { timeout: 5_000, interval: 10 });
    await afterPendingWrites(pushgateway.url);
    expect(await pushgateway.groups()).toEqual([]);
  });

  it("holds only the decoded bytes of a gzip body while it is forwarded", async () => {
    pushgateway.process.child.kill("SIGSTOP");
    try {
      const pending = send(pushguard.apiUrl, "PUT", "/metrics/job/team-a-decoded", {
        headers: { ...bearer(TEAM_A_TOKEN), "content-encoding": "gzip" },
        body: gzipSync(body(400)),
      });
      // The Pushgateway is stopped: the request waits upstream with its decoded body.
      await vi.waitFor(async () => expect(await buffered()).toBe(400), { timeout: 5_000, interval: 10 });
      pushgateway.process.child.kill("SIGCONT");
      expect((await pending).status).toBe(200);
    } finally {
      pushgateway.process.child.kill("SIGCONT");
    }
    expect(await buffered()).toBe(0);
  });
});

describe("a team's share of the budget", () => {
  it("lets another team's small push through while one team's stalled bodies hold their share", async () => {
    // Budget 5000, share 0.5: team-a may hold 2500 (its largest body fits), team-b keeps the rest.
    const shared = await startPushguard(
      standardConfig(
        pushgateway.url,
        "body: { maxBytes: 2000, maxDecompressedBytes: 500 }\noverload: { maxBufferedBodyBytes: 5000, maxTeamShare: 0.5 }",
      ),
    );
    const held = [1, 2].map((index) => {
      const { hostname, port } = new URL(shared.apiUrl);
      const req = request({
        host: hostname,
        port,
        method: "PUT",
        path: `/metrics/job/team-a-stalled-${index}`,
        headers: bearer(TEAM_A_TOKEN),
        agent: false,
      });
      req.on("error", () => undefined);
      req.write(body(1995).subarray(0, 1200));
      return req;
    });
    const sharedBuffered = async () =>
      Number(/^pushguard_body_buffered_bytes (\d+)$/m.exec(await shared.metrics.registry.metrics())?.[1]);
    try {
      await vi.waitFor(async () => expect(await sharedBuffered()).toBe(2400), {
        timeout: 5_000,
        interval: 10,
      });
      const more = await send(shared.apiUrl, "PUT", "/metrics/job/team-a-more", {
        headers: bearer(TEAM_A_TOKEN),
        body: body(800),
      });
      expect(more.status).toBe(503);
      expect(more.json()).toMatchObject({ code: "ERR_OVERLOADED" });
      const other = await send(shared.apiUrl, "PUT", "/metrics/job/team-b-small", {
        headers: bearer(TEAM_B_TOKEN),
        body: "ok 1\n",
      });
      expect(other.status).toBe(200);
      expect(await shared.metrics.registry.metrics()).toMatch(
        /^pushguard_overload_rejections_total\{reason="team-share"\} 1$/m,
      );
    } finally {
      for (const req of held) req.destroy();
      await shared.close();
    }
  });
});
