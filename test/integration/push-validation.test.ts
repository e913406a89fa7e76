import { gzipSync } from "node:zlib";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CONTENT_TYPES } from "../../src/exposition/content-type.js";
import { bearer, send } from "../support/http.js";
import { encodeDelimitedGaugeFamilies } from "../support/protobuf.js";
import { type Pushgateway, startPushgateway } from "../support/pushgateway.js";
import {
  standardConfig,
  startPushguard,
  TEAM_A_TOKEN,
  TEAM_B_TOKEN,
  type TestPushguard,
} from "../support/pushguard.js";

/**
 * The validate stage at the level a client feels it: through pushguard's listener to a real
 * Pushgateway. Every refusal is a problem+json naming the rule, and the Pushgateway never sees
 * the push: its store stays as it was and its `/metrics` keeps answering.
 */

const TEAM_C_TOKEN = "test-team-c-token-0123456789";

let pushgateway: Pushgateway;
let pushguard: TestPushguard;

beforeAll(async () => {
  pushgateway = await startPushgateway();
  pushguard = await startPushguard(
    standardConfig(
      pushgateway.url,
      `
  - name: team-c
    members: [team-c-ci]
    jobs: ["team-c-*"]
    actions: [push]
    groupingKey: { inject: { team: "{team}" } }
    validation:
      limits: { seriesPerPush: 50 }
      metricNames: { allow: ["team_c_*"] }
validation:
  limits: { seriesPerPush: 20 }
`,
    ).replace(
      "    - { name: admin, tokenEnv: TEST_ADMIN_TOKEN }",
      "    - { name: admin, tokenEnv: TEST_ADMIN_TOKEN }\n    - { name: team-c-ci, tokenEnv: TEST_TEAM_C_TOKEN }",
    ),
    {
      TEST_TEAM_A_TOKEN: TEAM_A_TOKEN,
      TEST_TEAM_B_TOKEN: TEAM_B_TOKEN,
      TEST_ADMIN_TOKEN: "unused-admin-token-0123456789",
      TEST_TEAM_C_TOKEN: TEAM_C_TOKEN,
    },
  );
});

afterAll(async () => {
  await pushguard?.close();
  await pushgateway?.stop();
});

afterEach(async () => {
  await send(pushgateway.url, "PUT", "/api/v1/admin/wipe");
});

const push = (
  path: string,
  body: string | Buffer,
  headers: Record<string, string> = {},
  token = TEAM_A_TOKEN,
) => send(pushguard.apiUrl, "PUT", path, { headers: { ...bearer(token), ...headers }, body });

async function expectScrapeable(): Promise<string> {
  const response = await fetch(`${pushgateway.url}/metrics`);
  const text = await response.text();
  expect(response.status).toBe(200);
  expect(text).toContain("pushgateway_build_info");
  return text;
}

async function storedJobs(): Promise<string[]> {
  return (await pushgateway.groups()).map((labels) => labels.job as string).sort();
}

describe("refused pushes never reach the Pushgateway", () => {
  it.each([
    ["a syntax error", "x 1", {}, 400, "ERR_BAD_EXPOSITION", "syntax"],
    ["a duplicate series", 'x{a="1"} 1\nx{a="1"} 2\n', {}, 400, "ERR_INVALID_METRIC", "duplicate-series"],
    ["a timestamp", "x 1 1700000000000\n", {}, 400, "ERR_INVALID_METRIC", "timestamp"],
    ["a family named labels", "labels 1\n", {}, 400, "ERR_INVALID_METRIC", "reserved-metric-name"],
    ["up", "up 1\n", {}, 422, "ERR_METRIC_NAME_DENIED", "metric-name-denied"],
    [
      "team-c's injected label in the body",
      'x{team="team-c"} 1\n',
      {},
      422,
      "ERR_LABEL_RESERVED",
      "reserved-label",
    ],
    [
      "a gzip body over the series limit",
      gzipSync(Array.from({ length: 21 }, (_, index) => `x{i="${index}"} 1\n`).join("")),
      { "content-encoding": "gzip" },
      413,
      "ERR_PUSH_TOO_LARGE",
      "too-many-series",
    ],
  ])("%s", async (_name, body, headers, status, code, rule) => {
    const response = await push("/metrics/job/team-a-refused", body, headers);
    expect(response.status).toBe(status);
    expect(response.headers["content-type"]).toBe("application/problem+json");
    expect(response.json()).toMatchObject({ code, rule, status });
    await expectScrapeable();
    expect(await storedJobs()).toEqual([]);
  });

  it("names the family and line, and counts the rejection per team and rule", async () => {
    const response = await push(
      "/metrics/job/team-a-x",
      '# TYPE good gauge\ngood 1\nbad{a="1"} 1\nbad{a="1"} 1\n',
    );
    expect(response.json()).toMatchObject({ rule: "duplicate-series", family: "bad", line: 4 });
    const metrics = await (await fetch(`${pushguard.metricsUrl}/metrics`)).text();
    expect(metrics).toMatch(/pushguard_push_rejections_total\{team="team-a",rule="duplicate-series"\} [1-9]/);
    expect(metrics).toMatch(
      /pushguard_requests_total\{action="push",team="team-a",outcome="ERR_INVALID_METRIC",code="400"\} [1-9]/,
    );
  });

  it("refuses an empty grouping-label value, and every team keeps pushing", async () => {
    expect((await push("/metrics/job/team-a-p", "x 1\n")).status).toBe(200);
    const second = await push("/metrics/job/team-a-p/instance@base64/=", "x 1\n");
    expect(second.status).toBe(400);
    expect(second.json()).toMatchObject({
      code: "ERR_BAD_GROUPING_KEY",
      rule: "empty-grouping-value",
      label: "instance",
    });
    // What the refusal prevents: without pushguard every later push of every team would be 400.
    expect((await push("/metrics/job/team-b-q", "y 1\n", {}, TEAM_B_TOKEN)).status).toBe(200);
    await expectScrapeable();
    expect(await storedJobs()).toEqual(["team-a-p", "team-b-q"]);
  });

  it("refuses le in the grouping key of a histogram", async () => {
    const response = await push("/metrics/job/team-a-h/le/1", "# TYPE h histogram\nh_count 1\nh_sum 1\n");
    expect(response.json()).toMatchObject({ code: "ERR_INVALID_METRIC", rule: "bucket-label", family: "h" });
    await expectScrapeable();
    expect(await storedJobs()).toEqual([]);
  });

  it("refuses team-c's injected label in another team's grouping key", async () => {
    const response = await push("/metrics/job/team-a-x/team/team-c", "x 1\n");
    expect(response.status).toBe(422);
    expect(response.json()).toMatchObject({ code: "ERR_LABEL_RESERVED", label: "team" });
  });
});

describe("what only the Pushgateway knows", () => {
  it("answers its consistency refusal as a problem too (store index off)", async () => {
    const unindexed = await startPushguard(
      standardConfig(pushgateway.url, "store: { index: { enabled: false } }"),
    );
    try {
      const via = (path: string, body: string) =>
        send(unindexed.apiUrl, "PUT", path, { headers: bearer(TEAM_A_TOKEN), body });
      expect((await via("/metrics/job/team-a-one", "# TYPE shared_x counter\nshared_x 1\n")).status).toBe(
        200,
      );
      const conflict = await via("/metrics/job/team-a-two", "# TYPE shared_x gauge\nshared_x 1\n");
      expect(conflict.status).toBe(400);
      expect(conflict.headers["content-type"]).toBe("application/problem+json");
      expect(conflict.json()).toMatchObject({ code: "ERR_UPSTREAM_REFUSED" });
      expect(conflict.json<{ detail: string }>().detail).toContain("shared_x");
      // The refused push leaves a failed group behind (the Pushgateway records the failure).
      expect(await storedJobs()).toEqual(["team-a-one", "team-a-two"]);
    } finally {
      await unindexed.close();
    }
  });

  it("with the store index (the default), refuses the same push itself, and nothing reaches the Pushgateway", async () => {
    expect((await push("/metrics/job/team-a-one", "# TYPE shared_x counter\nshared_x 1\n")).status).toBe(200);
    const conflict = await push("/metrics/job/team-a-two", "# TYPE shared_x gauge\nshared_x 1\n");
    expect(conflict.status).toBe(409);
    expect(conflict.json()).toMatchObject({ code: "ERR_FAMILY_CONFLICT", family: "shared_x" });
    expect(await storedJobs()).toEqual(["team-a-one"]);
  });
});

describe("team limits and names", () => {
  it("gives team-c its own series limit and metric names, and lets it set the label it injects", async () => {
    const forty = Array.from({ length: 40 }, (_, index) => `team_c_rows{i="${index}",team="x"} 1\n`).join("");
    expect((await push("/metrics/job/team-c-report", forty, {}, TEAM_C_TOKEN)).status).toBe(200);
    const other = await push("/metrics/job/team-c-report", "rows 1\n", {}, TEAM_C_TOKEN);
    expect(other.status).toBe(422);
    expect(other.json()).toMatchObject({ code: "ERR_METRIC_NAME_DENIED", family: "rows" });
    // team-a's limit is the global 20
    const tooMany = await push("/metrics/job/team-a-x", forty.replaceAll(',team="x"', ""));
    expect(tooMany.json()).toMatchObject({ code: "ERR_PUSH_TOO_LARGE", limit: 20 });
    expect(await pushgateway.groups()).toEqual([{ job: "team-c-report", team: "team-c" }]);
  });
});

describe("accepted pushes", () => {
  it("forwards a valid body unchanged, under the Content-Type it was validated as", async () => {
    const body =
      '# HELP q_total Quoted \\\\ and \\n.\n# TYPE q_total counter\nq_total{path="/a \\"b\\""} 3\n';
    // A content type the Pushgateway would also read as text: pushguard sends the canonical one.
    expect((await push("/metrics/job/team-a-q", body, { "content-type": "text/whatever" })).status).toBe(200);
    const text = await expectScrapeable();
    expect(text).toContain("# HELP q_total Quoted \\\\ and \\n.");
    expect(text).toContain('q_total{instance="",job="team-a-q",path="/a \\"b\\""} 3');
  });

  it("validates protobuf bodies as protobuf, whatever the spelling of the media type", async () => {
    const body = encodeDelimitedGaugeFamilies([
      { name: "pb_gauge", metrics: [{ labels: { a: "1" }, value: 2 }] },
    ]);
    for (const contentType of [
      CONTENT_TYPES.protobuf,
      "Application/Vnd.Google.Protobuf; Encoding=delimited; PROTO=io.prometheus.client.MetricFamily",
    ]) {
      expect((await push("/metrics/job/team-a-pb", body, { "content-type": contentType })).status).toBe(200);
    }
    expect(await expectScrapeable()).toContain('pb_gauge{a="1",instance="",job="team-a-pb"} 2');
    const duplicate = encodeDelimitedGaugeFamilies([
      { name: "pb_gauge", metrics: [{ value: 1 }] },
      { name: "pb_gauge", metrics: [{ value: 2 }] },
    ]);
    const refused = await push("/metrics/job/team-a-pb2", duplicate, {
      "content-type": CONTENT_TYPES.protobuf,
    });
    expect(refused.json()).toMatchObject({ code: "ERR_INVALID_METRIC", rule: "duplicate-family" });
  });

  it("treats protobuf bytes sent as text as text (and refuses them), so the Pushgateway never reads them otherwise", async () => {
    const body = encodeDelimitedGaugeFamilies([{ name: "pb_gauge", metrics: [{ value: 2 }] }]);
    const response = await push("/metrics/job/team-a-pb", body, {
      "content-type": "application/vnd.google.protobuf",
    });
    expect(response.json()).toMatchObject({ code: "ERR_BAD_EXPOSITION" });
    expect(await storedJobs()).toEqual([]);
  });
});
