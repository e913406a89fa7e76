import { once } from "node:events";
import { request } from "node:http";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { basic, bearer, send } from "../support/http.js";
import { freePort } from "../support/processes.js";
import { encodeDelimitedGaugeFamilies, PROTOBUF_CONTENT_TYPE } from "../support/protobuf.js";
import { type Pushgateway, startPushgateway } from "../support/pushgateway.js";
import {
  ADMIN_TOKEN,
  standardConfig,
  startPushguard,
  TEAM_A_TOKEN,
  TEAM_B_TOKEN,
  type TestPushguard,
} from "../support/pushguard.js";
import { afterPendingWrites } from "../support/write-barrier.js";

const BODY = "# TYPE backup_last_success_seconds gauge\nbackup_last_success_seconds 1700000000\n";

let pushgateway: Pushgateway;
let pushguard: TestPushguard;

beforeAll(async () => {
  pushgateway = await startPushgateway();
  pushguard = await startPushguard(
    standardConfig(pushgateway.url, "body: { maxBytes: 65536, maxDecompressedBytes: 1048576 }"),
  );
});

afterAll(async () => {
  await pushguard?.close();
  await pushgateway?.stop();
});

beforeEach(async () => {
  const wiped = await send(pushgateway.url, "PUT", "/api/v1/admin/wipe");
  expect(wiped.status).toBe(202);
});

describe("allowed writes reach the real Pushgateway", () => {
  it("PUT with a Bearer token stores the group", async () => {
    const response = await send(pushguard.apiUrl, "PUT", "/metrics/job/team-a-backup/instance/db1", {
      headers: bearer(TEAM_A_TOKEN),
      body: BODY,
    });
    expect(response.status).toBe(200);
    expect(response.headers["x-request-id"]).toBeTruthy();
    expect(await pushgateway.groups()).toEqual([{ job: "team-a-backup", instance: "db1" }]);
    expect(await pushgateway.metricsText()).toMatch(
      /backup_last_success_seconds\{instance="db1",job="team-a-backup"\} 1\.7e\+09/,
    );
  });

  it("accepts the Bearer scheme in any letter case and the token as the Basic password", async () => {
    const lower = await send(pushguard.apiUrl, "PUT", "/metrics/job/team-a-one", {
      headers: { authorization: `bEaReR ${TEAM_A_TOKEN}` },
      body: BODY,
    });
    const viaBasic = await send(pushguard.apiUrl, "POST", "/metrics/job/team-b-two", {
      headers: basic("any-user", TEAM_B_TOKEN),
      body: BODY,
    });
    expect([lower.status, viaBasic.status]).toEqual([200, 200]);
    const jobs = (await pushgateway.groups()).map((group) => group.job).sort();
    expect(jobs).toEqual(["team-a-one", "team-b-two"]);
  });

  it("answers Expect: 100-continue itself and forwards the push without it (curl does this for large bodies)", async () => {
    const response = await send(pushguard.apiUrl, "PUT", "/metrics/job/team-a-expect", {
      headers: { ...bearer(TEAM_A_TOKEN), expect: "100-continue" },
      body: BODY,
    });
    expect(response.status).toBe(200);
    expect(await pushgateway.groups()).toEqual([{ job: "team-a-expect" }]);
  });

  it("POST adds families while PUT replaces the group, as upstream semantics say", async () => {
    const path = "/metrics/job/team-a-merge";
    await send(pushguard.apiUrl, "PUT", path, { headers: bearer(TEAM_A_TOKEN), body: "first_metric 1\n" });
    await send(pushguard.apiUrl, "POST", path, { headers: bearer(TEAM_A_TOKEN), body: "second_metric 2\n" });
    let text = await pushgateway.metricsText();
    expect(text).toMatch(/first_metric\{.*job="team-a-merge".*\} 1/);
    expect(text).toMatch(/second_metric\{.*job="team-a-merge".*\} 2/);
    await send(pushguard.apiUrl, "PUT", path, { headers: bearer(TEAM_A_TOKEN), body: "third_metric 3\n" });
    text = await pushgateway.metricsText();
    expect(text).not.toMatch(/first_metric\{/);
    expect(text).toMatch(/third_metric\{.*job="team-a-merge".*\} 3/);
  });

  it("forwards delimited protobuf bodies byte for byte", async () => {
    const body = encodeDelimitedGaugeFamilies([
      { name: "proto_gauge", help: "from protobuf", metrics: [{ labels: { shard: "7" }, value: 42.5 }] },
    ]);
    const response = await send(pushguard.apiUrl, "PUT", "/metrics/job/team-a-proto", {
      headers: { ...bearer(TEAM_A_TOKEN), "content-type": PROTOBUF_CONTENT_TYPE },
      body,
    });
    expect(response.status).toBe(200);
    expect(await pushgateway.metricsText()).toMatch(
      /proto_gauge\{instance="",job="team-a-proto",shard="7"\} 42\.5/,
    );
  });

  it.each(["gzip", "GZIP", "Gzip"])(
    "decodes Content-Encoding %s (Pushgateway 1.5.1 only knows lowercase)",
    async (coding) => {
      const response = await send(pushguard.apiUrl, "PUT", "/metrics/job/team-a-gz", {
        headers: { ...bearer(TEAM_A_TOKEN), "content-encoding": coding },
        body: gzipSync("gz_metric 5\n"),
      });
      expect(response.status).toBe(200);
      expect(await pushgateway.metricsText()).toMatch(/gz_metric\{.*job="team-a-gz".*\} 5/);
    },
  );

  it("DELETE removes only the addressed group and passes upstream's 202 through", async () => {
    await send(pushguard.apiUrl, "PUT", "/metrics/job/team-a-keep", {
      headers: bearer(TEAM_A_TOKEN),
      body: BODY,
    });
    await send(pushguard.apiUrl, "PUT", "/metrics/job/team-a-drop/instance/x", {
      headers: bearer(TEAM_A_TOKEN),
      body: BODY,
    });
    const response = await send(pushguard.apiUrl, "DELETE", "/metrics/job/team-a-drop/instance/x", {
      headers: bearer(TEAM_A_TOKEN),
    });
    expect(response.status).toBe(202);
    // Pushgateway answers 202 before it applies a delete: wait for it to land.
    await vi.waitFor(async () => expect(await pushgateway.groups()).toEqual([{ job: "team-a-keep" }]));
  });

  it("wipe is allowed for the admin team only", async () => {
    await send(pushguard.apiUrl, "PUT", "/metrics/job/team-a-x", {
      headers: bearer(TEAM_A_TOKEN),
      body: BODY,
    });
    const denied = await send(pushguard.apiUrl, "PUT", "/api/v1/admin/wipe", {
      headers: bearer(TEAM_A_TOKEN),
    });
    expect(denied.status).toBe(403);
    expect(denied.json().code).toBe("ERR_ACL_DENIED");
    expect(await pushgateway.groups()).toHaveLength(1);
    const wiped = await send(pushguard.apiUrl, "PUT", "/api/v1/admin/wipe", { headers: bearer(ADMIN_TOKEN) });
    expect(wiped.status).toBe(202);
    await vi.waitFor(async () => expect(await pushgateway.groups()).toEqual([]));
  });

  it("a job label among the other labels cannot redirect a push to another team's job", async () => {
    const response = await send(pushguard.apiUrl, "PUT", "/metrics/job/team-a-real/job/team-b-victim", {
      headers: bearer(TEAM_A_TOKEN),
      body: BODY,
    });
    expect(response.status).toBe(200);
    expect(await pushgateway.groups()).toEqual([{ job: "team-a-real" }]);
  });
});

describe("reads and probes", () => {
  it("serves reads to a team granted read, with query strings kept", async () => {
    await send(pushguard.apiUrl, "PUT", "/metrics/job/team-a-r", {
      headers: bearer(TEAM_A_TOKEN),
      body: BODY,
    });
    const api = await send(pushguard.apiUrl, "GET", "/api/v1/metrics", { headers: bearer(ADMIN_TOKEN) });
    expect(api.status).toBe(200);
    expect(api.json<{ data: Array<{ labels: Record<string, string> }> }>().data[0]?.labels.job).toBe(
      "team-a-r",
    );
    const status = await send(pushguard.apiUrl, "GET", "/api/v1/status", { headers: bearer(ADMIN_TOKEN) });
    expect(status.status).toBe(200);
    const scrape = await send(pushguard.apiUrl, "GET", "/metrics", { headers: bearer(ADMIN_TOKEN) });
    expect(scrape.text).toContain('backup_last_success_seconds{instance="",job="team-a-r"}');
    const ui = await send(pushguard.apiUrl, "GET", "/", { headers: bearer(ADMIN_TOKEN) });
    expect(ui.status).toBe(200);
    expect(ui.text).toContain("<html");
  });

  it("denies reads by default: 401 for anonymous, 403 for a team without read", async () => {
    const anonymous = await send(pushguard.apiUrl, "GET", "/metrics");
    expect(anonymous.status).toBe(401);
    expect(anonymous.json().code).toBe("ERR_AUTH_MISSING");
    const team = await send(pushguard.apiUrl, "GET", "/api/v1/metrics", { headers: bearer(TEAM_A_TOKEN) });
    expect(team.status).toBe(403);
    expect(team.json().code).toBe("ERR_ACL_DENIED");
  });

  it("answers health probes without a credential", async () => {
    expect((await send(pushguard.apiUrl, "GET", "/-/healthy")).status).toBe(200);
    expect((await send(pushguard.apiUrl, "GET", "/-/ready")).status).toBe(200);
  });

  it("grants anonymous reads only when the config says so", async () => {
    const open = await startPushguard(standardConfig(pushgateway.url, "anonymous: { actions: [read] }"));
    try {
      expect((await send(open.apiUrl, "GET", "/api/v1/metrics")).status).toBe(200);
      const push = await send(open.apiUrl, "PUT", "/metrics/job/team-a-anon", { body: BODY });
      expect(push.status).toBe(401);
    } finally {
      await open.close();
    }
    expect(await pushgateway.groups()).toEqual([]);
  });
});

describe("every rejection is problem+json with a stable code and leaves the Pushgateway untouched", () => {
  const gzipBomb = gzipSync(Buffer.alloc(8 * 1024 * 1024));

  const cases: Array<{
    name: string;
    method: string;
    path: string;
    headers?: Record<string, string>;
    body?: string | Buffer;
    status: number;
    code: string;
  }> = [
    {
      name: "no credential",
      method: "PUT",
      path: "/metrics/job/team-a-x",
      body: BODY,
      status: 401,
      code: "ERR_AUTH_MISSING",
    },
    {
      name: "unknown token",
      method: "PUT",
      path: "/metrics/job/team-a-x",
      headers: bearer("not-a-real-token-at-all"),
      body: BODY,
      status: 401,
      code: "ERR_AUTH_INVALID",
    },
    {
      name: "token in the query string is ignored",
      method: "PUT",
      path: `/metrics/job/team-a-x?access_token=${TEAM_A_TOKEN}&token=${TEAM_A_TOKEN}`,
      body: BODY,
      status: 401,
      code: "ERR_AUTH_MISSING",
    },
    {
      name: "malformed Authorization",
      method: "PUT",
      path: "/metrics/job/team-a-x",
      headers: { authorization: "Token abc" },
      body: BODY,
      status: 401,
      code: "ERR_AUTH_INVALID",
    },
    {
      name: "another team's job",
      method: "PUT",
      path: "/metrics/job/team-b-x",
      headers: bearer(TEAM_A_TOKEN),
      body: BODY,
      status: 403,
      code: "ERR_ACL_DENIED",
    },
    {
      name: "another team's job, base64-encoded",
      method: "PUT",
      path: `/metrics/job@base64/${Buffer.from("team-b-x").toString("base64url")}`,
      headers: bearer(TEAM_A_TOKEN),
      body: BODY,
      status: 403,
      code: "ERR_ACL_DENIED",
    },
    {
      name: "another team's job, percent-encoded",
      method: "POST",
      path: "/metrics/job/%74eam-b-x",
      headers: bearer(TEAM_A_TOKEN),
      body: BODY,
      status: 403,
      code: "ERR_ACL_DENIED",
    },
    {
      name: "deleting another team's group",
      method: "DELETE",
      path: "/metrics/job/team-b-x",
      headers: bearer(TEAM_A_TOKEN),
      status: 403,
      code: "ERR_ACL_DENIED",
    },
    {
      name: "a reserved label name",
      method: "PUT",
      path: "/metrics/job/team-a-x/__name__/y",
      headers: bearer(TEAM_A_TOKEN),
      body: BODY,
      status: 400,
      code: "ERR_BAD_GROUPING_KEY",
    },
    {
      name: "a label without value",
      method: "PUT",
      path: "/metrics/job/team-a-x/instance",
      headers: bearer(TEAM_A_TOKEN),
      body: BODY,
      status: 400,
      code: "ERR_BAD_GROUPING_KEY",
    },
    {
      name: "an empty base64 job",
      method: "PUT",
      path: "/metrics/job@base64/=",
      headers: bearer(ADMIN_TOKEN),
      body: BODY,
      status: 400,
      code: "ERR_BAD_GROUPING_KEY",
    },
    {
      name: "/-/quit",
      method: "PUT",
      path: "/-/quit",
      headers: bearer(ADMIN_TOKEN),
      status: 403,
      code: "ERR_ROUTE_FORBIDDEN",
    },
    {
      name: "/-/reload",
      method: "POST",
      path: "/-/reload",
      headers: bearer(ADMIN_TOKEN),
      status: 403,
      code: "ERR_ROUTE_FORBIDDEN",
    },
    {
      name: "pprof",
      method: "GET",
      path: "/debug/pprof/heap",
      headers: bearer(ADMIN_TOKEN),
      status: 403,
      code: "ERR_ROUTE_FORBIDDEN",
    },
    {
      name: "an unknown route",
      method: "GET",
      path: "/nope",
      headers: bearer(ADMIN_TOKEN),
      status: 404,
      code: "ERR_ROUTE_NOT_FOUND",
    },
    {
      name: "a body over maxBytes",
      method: "PUT",
      path: "/metrics/job/team-a-x",
      headers: bearer(TEAM_A_TOKEN),
      body: `${"big_metric 1\n".repeat(6000)}`,
      status: 413,
      code: "ERR_BODY_TOO_LARGE",
    },
    {
      name: "a gzip bomb",
      method: "PUT",
      path: "/metrics/job/team-a-x",
      headers: { ...bearer(TEAM_A_TOKEN), "content-encoding": "gzip" },
      body: gzipBomb,
      status: 413,
      code: "ERR_BODY_TOO_LARGE",
    },
    {
      name: "corrupt gzip",
      method: "PUT",
      path: "/metrics/job/team-a-x",
      headers: { ...bearer(TEAM_A_TOKEN), "content-encoding": "gzip" },
      body: Buffer.concat([gzipSync("ok_metric 1\n").subarray(0, 12), Buffer.from("garbage")]),
      status: 400,
      code: "ERR_BAD_BODY_ENCODING",
    },
    ...["br", "snappy", "deflate", "gzip, gzip"].map((coding) => ({
      name: `Content-Encoding ${coding}`,
      method: "PUT",
      path: "/metrics/job/team-a-x",
      headers: { ...bearer(TEAM_A_TOKEN), "content-encoding": coding },
      body: BODY,
      status: 415,
      code: "ERR_UNSUPPORTED_ENCODING",
    })),
    {
      name: "GET on a push path",
      method: "GET",
      path: "/metrics/job/team-a-x",
      headers: bearer(TEAM_A_TOKEN),
      status: 405,
      code: "ERR_METHOD_NOT_ALLOWED",
    },
  ];

  it.each(cases)("$name → $status $code", async ({ method, path, headers, body, status, code }) => {
    await send(pushgateway.url, "PUT", "/metrics/job/sentinel", { body: "sentinel 1\n" });
    const before = await pushgateway.metricsText();
    const response = await send(pushguard.apiUrl, method, path, { headers, body });
    expect(response.status).toBe(status);
    expect(response.headers["content-type"]).toBe("application/problem+json");
    const problem = response.json();
    expect(problem.code).toBe(code);
    expect(problem.status).toBe(status);
    expect(problem.requestId).toBe(response.headers["x-request-id"]);
    if (status === 401)
      expect(response.headers["www-authenticate"]).toMatch(/^Bearer realm="pushguard".*Basic/);
    // Nothing changed upstream: the same groups, and the pushgateway is alive.
    expect(await pushgateway.groups()).toEqual([{ job: "sentinel" }]);
    expect(stripVolatile(await pushgateway.metricsText())).toBe(stripVolatile(before));
    for (const token of [TEAM_A_TOKEN, TEAM_B_TOKEN, ADMIN_TOKEN]) expect(response.text).not.toContain(token);
  });

  it.each([
    { name: "plainly", path: "/metrics/job/team-b-victim/instance/db1", headers: bearer(TEAM_A_TOKEN) },
    {
      name: "with a base64 job",
      path: `/metrics/job@base64/${Buffer.from("team-b-victim").toString("base64url")}/instance/db1`,
      headers: bearer(TEAM_A_TOKEN),
    },
    {
      name: "percent-encoded",
      path: "/metrics/job/%74eam-b-victim/instance/db1",
      headers: bearer(TEAM_A_TOKEN),
    },
    { name: "without a credential", path: "/metrics/job/team-b-victim/instance/db1", headers: undefined },
  ])("a refused DELETE ($name) leaves the victim's group in place", async ({ path, headers }) => {
    const victim = { job: "team-b-victim", instance: "db1" };
    const created = await send(pushgateway.url, "PUT", "/metrics/job/team-b-victim/instance/db1", {
      body: BODY,
    });
    expect(created.status).toBe(200);
    const response = await send(pushguard.apiUrl, "DELETE", path, { headers });
    expect(response.status).toBe(headers ? 403 : 401);
    // A forwarded DELETE would be answered 202 and applied later: wait until it would have been.
    await afterPendingWrites(pushgateway.url);
    expect(await pushgateway.groups()).toEqual([victim]);
  });
});

/**
 * Sends `body` in `chunkSize` pieces with Transfer-Encoding: chunked and no Content-Length (as a
 * streaming client does), so only the streaming cap can stop it. Write errors after the server
 * has answered (it closes the connection on a 413) are expected and ignored.
 */
function sendChunked(
  path: string,
  headers: Record<string, string>,
  body: Buffer,
  chunkSize = 4096,
): Promise<{ status: number; json: () => Record<string, unknown> }> {
  const { hostname, port } = new URL(pushguard.apiUrl);
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, method: "PUT", path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        resolve({ status: res.statusCode ?? 0, json: () => JSON.parse(text) });
      });
    });
    let answered = false;
    req.on("response", () => {
      answered = true;
    });
    req.on("error", (error) => {
      if (!answered) reject(error);
    });
    (async () => {
      for (let offset = 0; offset < body.length && !answered; offset += chunkSize) {
        if (!req.write(body.subarray(offset, offset + chunkSize))) await once(req, "drain");
        await new Promise((next) => setImmediate(next));
      }
      req.end();
    })().catch(() => {});
  });
}

describe("the streaming body cap (chunked bodies, no Content-Length)", () => {
  it("a chunked body under the limits is forwarded", async () => {
    const response = await sendChunked(
      "/metrics/job/team-a-chunked",
      bearer(TEAM_A_TOKEN),
      Buffer.from(BODY),
      16,
    );
    expect(response.status).toBe(200);
    expect(await pushgateway.groups()).toEqual([{ job: "team-a-chunked" }]);
  });

  it.each([
    {
      name: "a chunked body over maxBytes",
      headers: bearer(TEAM_A_TOKEN),
      body: Buffer.from("big_metric 1\n".repeat(10_000)),
    },
    {
      name: "a chunked gzip bomb",
      headers: { ...bearer(TEAM_A_TOKEN), "content-encoding": "gzip" },
      body: gzipSync(Buffer.from("bomb_metric 1\n".repeat(400_000))),
    },
  ])("$name → 413 ERR_BODY_TOO_LARGE, nothing stored", async ({ headers, body }) => {
    await send(pushgateway.url, "PUT", "/metrics/job/sentinel", { body: "sentinel 1\n" });
    const response = await sendChunked("/metrics/job/team-a-stream", headers, body);
    expect(response.status).toBe(413);
    expect(response.json().code).toBe("ERR_BODY_TOO_LARGE");
    expect(await pushgateway.groups()).toEqual([{ job: "sentinel" }]);
    const audit = pushguard
      .logs()
      .filter((line) => line.msg === "audit")
      .at(-1)?.audit as Record<string, unknown>;
    expect(audit).toMatchObject({
      status: 413,
      code: "ERR_BODY_TOO_LARGE",
      groupingKey: 'job="team-a-stream"',
    });
  });
});

describe("upstream failures", () => {
  it("answers 502 ERR_UPSTREAM_UNAVAILABLE when nothing listens upstream", async () => {
    const deadPort = await freePort();
    const gateway = await startPushguard(
      standardConfig(`http://127.0.0.1:${deadPort}`, "store: { index: { enabled: false } }"),
    );
    try {
      const response = await send(gateway.apiUrl, "PUT", "/metrics/job/team-a-x", {
        headers: bearer(TEAM_A_TOKEN),
        body: BODY,
      });
      expect(response.status).toBe(502);
      expect(response.json().code).toBe("ERR_UPSTREAM_UNAVAILABLE");
      const ready = await fetch(`${gateway.metricsUrl}/readyz`);
      expect(ready.status).toBe(503);
    } finally {
      await gateway.close();
    }
  });

  it("with the store index (the default), answers 503 ERR_STORE_UNAVAILABLE saying the Pushgateway cannot be read", async () => {
    const deadPort = await freePort();
    const gateway = await startPushguard(standardConfig(`http://127.0.0.1:${deadPort}`));
    try {
      const response = await send(gateway.apiUrl, "PUT", "/metrics/job/team-a-x", {
        headers: bearer(TEAM_A_TOKEN),
        body: BODY,
      });
      expect(response.status).toBe(503);
      expect(response.headers["retry-after"]).toBe("2");
      expect(response.json()).toMatchObject({ code: "ERR_STORE_UNAVAILABLE" });
      expect(response.json<{ detail: string }>().detail).toContain("the Pushgateway is unreachable");
      expect((await fetch(`${gateway.metricsUrl}/readyz`)).status).toBe(503);
    } finally {
      await gateway.close();
    }
  });

  it("answers 504 ERR_UPSTREAM_TIMEOUT when the Pushgateway hangs (a stopped process)", async () => {
    const frozen = await startPushgateway();
    const gateway = await startPushguard(standardConfig(frozen.url, "", "timeoutMs: 300"));
    try {
      frozen.process.child.kill("SIGSTOP");
      const response = await send(gateway.apiUrl, "PUT", "/metrics/job/team-a-slow", {
        headers: bearer(TEAM_A_TOKEN),
        body: BODY,
      });
      expect(response.status).toBe(504);
      expect(response.json().code).toBe("ERR_UPSTREAM_TIMEOUT");
    } finally {
      frozen.process.child.kill("SIGCONT");
      await gateway.close();
      await frozen.stop();
    }
  });
});

describe("audit, logs and metrics", () => {
  it("writes exactly one audit line per write attempt, allowed or not, without credentials", async () => {
    const before = pushguard.logs().filter((line) => line.msg === "audit").length;
    await send(pushguard.apiUrl, "PUT", "/metrics/job/team-a-audit/instance/i1", {
      headers: bearer(TEAM_A_TOKEN),
      body: BODY,
    });
    await send(pushguard.apiUrl, "DELETE", "/metrics/job/team-b-audit", {
      headers: basic("u", TEAM_A_TOKEN),
    });
    await send(pushguard.apiUrl, "GET", "/api/v1/status", { headers: bearer(ADMIN_TOKEN) });
    const audits = pushguard
      .logs()
      .filter((line) => line.msg === "audit")
      .slice(before)
      .map((line) => line.audit as Record<string, unknown>);
    expect(audits).toHaveLength(2);
    expect(audits[0]).toMatchObject({
      identity: "team-a-ci",
      team: "team-a",
      action: "push",
      groupingKey: 'job="team-a-audit",instance="i1"',
      decision: "allow",
      status: 200,
      bytes: Buffer.byteLength(BODY),
    });
    expect(typeof audits[0]?.durationMs).toBe("number");
    expect(audits[1]).toMatchObject({
      identity: "team-a-ci",
      action: "delete",
      groupingKey: 'job="team-b-audit"',
      decision: "deny",
      status: 403,
      code: "ERR_ACL_DENIED",
    });
    for (const token of [TEAM_A_TOKEN, TEAM_B_TOKEN, ADMIN_TOKEN])
      expect(pushguard.logText()).not.toContain(token);
  });

  it("audit lines of refused writes say who, how many bytes arrived, and deny", async () => {
    const audits = () =>
      pushguard
        .logs()
        .filter((line) => line.msg === "audit")
        .map((line) => line.audit as Record<string, unknown>);
    const before = audits().length;
    // Refused while classifying, before authentication: the caller is still named.
    await send(pushguard.apiUrl, "PUT", "/metrics/job/team-a-x/__name__/y", {
      headers: bearer(TEAM_A_TOKEN),
      body: BODY,
    });
    const corrupt = Buffer.concat([gzipSync("ok_metric 1\n").subarray(0, 12), Buffer.from("garbage")]);
    await send(pushguard.apiUrl, "PUT", "/metrics/job/team-a-corrupt", {
      headers: { ...bearer(TEAM_A_TOKEN), "content-encoding": "gzip" },
      body: corrupt,
    });
    const large = Buffer.from("big_metric 1\n".repeat(10_000));
    await sendChunked("/metrics/job/team-a-large", bearer(TEAM_A_TOKEN), large);
    const [malformed, badGzip, tooLarge, ...rest] = audits().slice(before);
    expect(rest).toEqual([]);
    expect(malformed).toMatchObject({
      identity: "team-a-ci",
      via: "static-token",
      decision: "deny",
      status: 400,
      code: "ERR_BAD_GROUPING_KEY",
    });
    expect(badGzip).toMatchObject({
      identity: "team-a-ci",
      decision: "deny",
      status: 400,
      code: "ERR_BAD_BODY_ENCODING",
      bytes: corrupt.length,
    });
    expect(tooLarge).toMatchObject({ identity: "team-a-ci", decision: "deny", status: 413 });
    // At least the limit was read before the body was refused.
    expect(tooLarge?.bytes).toBeGreaterThan(65536);
    expect(tooLarge?.bytes).toBeLessThanOrEqual(large.length);
  });

  it("an unverifiable credential on a malformed path is audited as anonymous, still a 400", async () => {
    const response = await send(pushguard.apiUrl, "PUT", "/metrics/job/team-a-x/instance", {
      headers: bearer("not-a-real-token-at-all"),
      body: BODY,
    });
    expect(response.status).toBe(400);
    const audit = pushguard
      .logs()
      .filter((line) => line.msg === "audit")
      .at(-1)?.audit;
    expect(audit).toMatchObject({ identity: "anonymous", decision: "deny", code: "ERR_BAD_GROUPING_KEY" });
  });

  it("a rate-limited write is audited as deny", async () => {
    const limited = await startPushguard(
      standardConfig(pushgateway.url, "rateLimit: { rules: [{ scope: team, rate: 0.001, burst: 1 }] }"),
    );
    try {
      const push = () =>
        send(limited.apiUrl, "PUT", "/metrics/job/team-a-limited", {
          headers: bearer(TEAM_A_TOKEN),
          body: BODY,
        });
      expect((await push()).status).toBe(200);
      expect((await push()).status).toBe(429);
      const audits = limited
        .logs()
        .filter((line) => line.msg === "audit")
        .map((line) => line.audit);
      expect(audits).toMatchObject([
        { decision: "allow", status: 200 },
        { identity: "team-a-ci", team: "team-a", decision: "deny", status: 429, code: "ERR_RATE_LIMITED" },
      ]);
    } finally {
      await limited.close();
    }
  });

  it("exposes pushguard_ metrics, health and readiness on the metrics listener", async () => {
    await send(pushguard.apiUrl, "PUT", "/metrics/job/team-a-m", {
      headers: bearer(TEAM_A_TOKEN),
      body: BODY,
    });
    await send(pushguard.apiUrl, "PUT", "/metrics/job/team-a-m", {
      headers: bearer("wrong-token-xxxxxxxx"),
      body: BODY,
    });
    const text = await (await fetch(`${pushguard.metricsUrl}/metrics`)).text();
    expect(text).toMatch(
      /pushguard_requests_total\{action="push",team="team-a",outcome="forwarded",code="200"\} [1-9]/,
    );
    expect(text).toMatch(
      /pushguard_requests_total\{action="push",team="",outcome="ERR_AUTH_INVALID",code="401"\} [1-9]/,
    );
    expect(text).toMatch(/pushguard_auth_failures_total\{reason="unknown-token"\} [1-9]/);
    expect(text).toMatch(/pushguard_upstream_duration_seconds_count\{action="push"\} [1-9]/);
    expect(text).toMatch(/pushguard_build_info\{version="\d+\.\d+\.\d+",node_version="v\d+/);
    expect(text).toContain("pushguard_process_resident_memory_bytes");
    expect((await fetch(`${pushguard.metricsUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${pushguard.metricsUrl}/readyz`)).status).toBe(200);
    // The API listener never serves pushguard's own metrics.
    expect(await (await fetch(`${pushguard.apiUrl}/-/healthy`)).text()).not.toContain("pushguard_");
  });
});

/** Pushgateway's own process and HTTP metrics move between two reads; compare only stored groups. */
function stripVolatile(text: string): string {
  return text
    .split("\n")
    .filter((line) => !/^(# |go_|process_|pushgateway_|promhttp_)/.test(line))
    .join("\n");
}
