import { Pushgateway as PromClientPushgateway, Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { send } from "../support/http.js";
import { type Pushgateway, startPushgateway } from "../support/pushgateway.js";
import { standardConfig, startPushguard, TEAM_A_TOKEN, type TestPushguard } from "../support/pushguard.js";

/**
 * Refusals a newcomer meets first say what to do, not only what went wrong: where the token goes,
 * how a job name with "/" is sent, where pushes go when they reach the metrics port.
 */

let pushgateway: Pushgateway;
let pushguard: TestPushguard;

beforeAll(async () => {
  pushgateway = await startPushgateway();
  pushguard = await startPushguard(standardConfig(pushgateway.url));
}, 60_000);

afterAll(async () => {
  await pushguard?.close();
  await pushgateway?.stop();
});

describe("refusals that say what to do", () => {
  it.each(["X-Auth-Token", "X-Api-Key"])(
    "a token in %s: 401 ERR_AUTH_MISSING naming the headers that are read",
    async (header) => {
      const response = await send(pushguard.apiUrl, "POST", "/metrics/job/team-a-backup", {
        headers: { [header]: TEAM_A_TOKEN },
        body: "x 1\n",
      });
      expect(response.status).toBe(401);
      const problem = response.json<{ code: string; detail: string }>();
      expect(problem.code).toBe("ERR_AUTH_MISSING");
      expect(problem.detail).toContain('"Authorization: Bearer <token>"');
      expect(problem.detail).toContain("password of HTTP Basic auth");
      expect(problem.detail).toContain(header);
      expect(response.text).not.toContain(TEAM_A_TOKEN);
    },
  );

  it("Authorization: Token …: 401 ERR_AUTH_INVALID naming Bearer and Basic", async () => {
    const response = await send(pushguard.apiUrl, "POST", "/metrics/job/team-a-backup", {
      headers: { authorization: `Token ${TEAM_A_TOKEN}` },
      body: "x 1\n",
    });
    expect(response.status).toBe(401);
    const problem = response.json<{ code: string; detail: string }>();
    expect(problem.code).toBe("ERR_AUTH_INVALID");
    expect(problem.detail).toMatch(/Bearer.*Basic/);
    expect(response.text).not.toContain(TEAM_A_TOKEN);
  });

  it("prom-client with a job name containing /: 400 ERR_BAD_GROUPING_KEY pointing to @base64", async () => {
    const gateway = new PromClientPushgateway(
      pushguard.apiUrl,
      { headers: { Authorization: `Bearer ${TEAM_A_TOKEN}` } },
      new Registry(),
    );
    const refusal = await gateway.pushAdd({ jobName: "team-a-reports/nightly" }).then(
      () => new Error("the push was accepted"),
      (error: Error) => error,
    );
    expect(refusal.message).toContain("push failed with status 400");
    expect(refusal.message).toContain('"code":"ERR_BAD_GROUPING_KEY"');
    expect(refusal.message).toContain("@base64");
    expect(await pushgateway.groups()).toEqual([]);
  });

  it("a push sent to the metrics listener: a 404 problem that names the API listener", async () => {
    const response = await send(pushguard.metricsUrl, "PUT", "/metrics/job/team-a-backup", {
      headers: { authorization: `Bearer ${TEAM_A_TOKEN}` },
      body: "x 1\n",
    });
    expect(response.status).toBe(404);
    expect(response.headers["content-type"]).toBe("application/problem+json");
    const problem = response.json<{ code: string; detail: string; requestId: string }>();
    expect(problem.code).toBe("ERR_ROUTE_NOT_FOUND");
    expect(problem.detail).toContain(pushguard.apiUrl);
    expect(problem.requestId).toMatch(/^[0-9a-f-]{36}$/);
    // What the listener does serve is unchanged.
    expect((await send(pushguard.metricsUrl, "GET", "/healthz")).status).toBe(200);
  });
});
