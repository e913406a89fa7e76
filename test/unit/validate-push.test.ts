import { describe, expect, it } from "vitest";
import { hashToken, parseConfig } from "../../src/config/load.js";
import { parseText } from "../../src/exposition/text.js";
import type { ParsedFamily, ParsedPush } from "../../src/exposition/types.js";
import type { GroupingKey } from "../../src/pushgateway/grouping-key.js";
import { createPushPolicies } from "../../src/validation/policy.js";
import { validateGroupingKey, validatePush } from "../../src/validation/validate-push.js";
import { PushViolation } from "../../src/validation/violation.js";

/** A config with identities a and c, and `yaml` after them (teams default to one for a). */
function loadConfigForTest(yaml: string) {
  const identities = ["a", "b", "c"].map(
    (name) => `    - { name: ${name}, sha256: "${hashToken(name).toString("hex")}" }`,
  );
  const teams = yaml.includes("teams:")
    ? ""
    : '\nteams: [{ name: team-a, members: [a], jobs: ["*"], actions: [push] }]';
  return parseConfig(
    [
      "upstream: { url: http://127.0.0.1:9191 }",
      "identities:",
      "  static:",
      ...identities,
      yaml + teams,
    ].join("\n"),
    "validation.yaml",
    {},
  );
}

const config = loadConfigForTest(`
validation:
  limits: { seriesPerPush: 20, labelsPerSeries: 5, metricNameBytes: 40, labelNameBytes: 20, labelValueBytes: 30, helpBytes: 50 }
  reservedLabels: [tenant]
teams:
  - { name: team-a, members: [a], jobs: ["team-a-*"], actions: [push] }
  - name: team-c
    members: [c]
    jobs: ["team-c-*"]
    actions: [push]
    groupingKey: { inject: { team: "{team}" } }
    validation:
      limits: { seriesPerPush: 100 }
      metricNames: { allow: ["team_c_*"], deny: ["team_c_secret_*"] }
`);
const policies = createPushPolicies(config);
const teamA = policies("team-a");
const KEY: GroupingKey = { job: "team-a-x", labels: {} };

function text(body: string): ParsedPush {
  return parseText(Buffer.from(body), { maxSeries: 1_000, maxLabels: 1_000 });
}

function ruleOf(push: ParsedPush, key: GroupingKey = KEY, policy = teamA): string {
  try {
    validatePush(push, key, policy);
  } catch (error) {
    if (error instanceof PushViolation) return error.rule;
    throw error;
  }
  return "accepted";
}

/** A protobuf-shaped push: what only the protobuf parser can produce. */
function families(...list: ParsedFamily[]): ParsedPush {
  return {
    format: "protobuf",
    families: list,
    series: list.reduce((sum, family) => sum + family.metrics.length, 0),
  };
}

function gauge(
  name: string,
  labels: Array<[string, string]> = [],
  extra: Partial<ParsedFamily> = {},
): ParsedFamily {
  return {
    name,
    help: undefined,
    type: "gauge",
    metrics: [{ labels, values: ["gauge"], timestamped: false, at: { message: 1, metric: 1 } }],
    at: { message: 1 },
    ...extra,
  };
}

describe("validatePush: text bodies", () => {
  it.each([
    ["a plain push", "# HELP x_total a counter\n# TYPE x_total counter\nx_total 1\n", "accepted"],
    ["empty values are no labels, and may repeat a series without one only once", 'x{a=""} 1\n', "accepted"],
    ["series differing only in an empty label", 'x{a=""} 1\nx 2\n', "duplicate-series"],
    ["the same series twice", 'x{a="1",b="2"} 1\nx{b="2",a="1"} 2\n', "duplicate-series"],
    [
      "a histogram bucket twice",
      '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="1.0"} 1\n',
      "duplicate-series",
    ],
    ["a histogram _count twice", "# TYPE h histogram\nh_count 1\nh_count 2\n", "duplicate-series"],
    [
      "a summary quantile twice",
      '# TYPE s summary\ns{quantile="0.5"} 1\ns{quantile="0.50"} 1\n',
      "duplicate-series",
    ],
    [
      "x_bucket before the histogram x",
      'h_bucket{le="1"} 1\n# TYPE h histogram\nh_count 1\n',
      "suffix-collision",
    ],
    [
      "a summary and a gauge x_bucket (no collision)",
      "# TYPE s summary\ns_count 1\n# TYPE s_bucket gauge\ns_bucket 1\n",
      "accepted",
    ],
    ["a summary before its x_sum family", "s_sum 1\n# TYPE s summary\ns_count 1\n", "suffix-collision"],
    ["a timestamp", "x 1 1700000000000\n", "timestamp"],
    ["push_time_seconds", "push_time_seconds 1\n", "reserved-metric-name"],
    ["a family named labels", "labels 1\n", "reserved-metric-name"],
    ["a family named last_push_successful", "last_push_successful 1\n", "reserved-metric-name"],
    ["up (denied by default)", "up 1\n", "metric-name-denied"],
    ["scrape_duration_seconds (denied by default)", "scrape_duration_seconds 1\n", "metric-name-denied"],
    ["pushgateway_build_info (denied by default)", "pushgateway_build_info 1\n", "metric-name-denied"],
    ["a label starting with __", 'x{__meta="1"} 1\n', "reserved-label-name"],
    ["a label reserved in config", 'x{tenant="t"} 1\n', "reserved-label"],
    ["a label another team injects", 'x{team="team-c"} 1\n', "reserved-label"],
    [
      "too many series",
      `${Array.from({ length: 21 }, (_, index) => `x{i="${index}"} 1`).join("\n")}\n`,
      "series-per-push",
    ],
    ["too many labels with the grouping key", 'x{a="1",b="2",c="3",d="4",e="5"} 1\n', "labels-per-series"],
    ["exactly as many labels as allowed", 'x{a="1",b="2",c="3",d="4"} 1\n', "accepted"],
    ["a long metric name", `${"m".repeat(41)} 1\n`, "metric-name-length"],
    ["a long label name", `x{${"l".repeat(21)}="1"} 1\n`, "label-name-length"],
    ["a long label value", `x{a="${"v".repeat(31)}"} 1\n`, "label-value-length"],
    [
      "a label value long in bytes, short in characters",
      `x{a="${"é".repeat(16)}"} 1\n`,
      "label-value-length",
    ],
    ["a long HELP", `# HELP x ${"h".repeat(51)}\nx 1\n`, "help-length"],
  ])("%s → %s", (_name, body, rule) => {
    expect(ruleOf(text(body))).toBe(rule);
  });

  it("treats the grouping key's labels as the series' own: they overwrite the body's", () => {
    const key = { job: "team-a-x", labels: { instance: "db1" } };
    expect(ruleOf(text('x{instance="a"} 1\nx{instance="b"} 2\n'), key)).toBe("duplicate-series");
    expect(ruleOf(text('x{instance="a"} 1\nx{instance="b"} 2\n'))).toBe("accepted");
    // job from the body is overwritten too
    expect(ruleOf(text('x{job="a"} 1\nx{job="b"} 2\n'))).toBe("duplicate-series");
  });

  it("refuses le in the grouping key of a histogram push, quantile for a summary", () => {
    expect(ruleOf(text("# TYPE h histogram\nh_count 1\n"), { job: "team-a-x", labels: { le: "1" } })).toBe(
      "bucket-label",
    );
    expect(
      ruleOf(text("# TYPE s summary\ns_count 1\n"), { job: "team-a-x", labels: { quantile: "1" } }),
    ).toBe("quantile-label");
    expect(ruleOf(text("x 1\n"), { job: "team-a-x", labels: { le: "1", quantile: "2" } })).toBe("accepted");
  });

  it("applies a team's own limits and names", () => {
    const teamC = policies("team-c");
    const key = { job: "team-c-x", labels: { team: "team-c" } };
    const many = `${Array.from({ length: 50 }, (_, index) => `team_c_x{i="${index}"} 1`).join("\n")}\n`;
    expect(ruleOf(text(many), key, teamC)).toBe("accepted");
    expect(ruleOf(text(many.replaceAll("team_c_x", "x")), key, teamC)).toBe("metric-name-denied");
    expect(ruleOf(text("team_c_secret_key 1\n"), key, teamC)).toBe("metric-name-denied");
    // the global deny list still applies, and team-c may set the label it injects itself
    expect(ruleOf(text('team_c_x{team="other"} 1\n'), key, teamC)).toBe("accepted");
    expect(ruleOf(text('team_c_x{tenant="t"} 1\n'), key, teamC)).toBe("reserved-label");
  });

  it("keeps the names a team owns by pattern (metricNames.own) from every other team", () => {
    const owning = createPushPolicies(
      loadConfigForTest(`
teams:
  - { name: team-a, members: [a], jobs: ["team-a-*"], actions: [push] }
  - name: team-b
    members: [b]
    jobs: ["team-b-*"]
    actions: [push]
    validation: { metricNames: { own: ["team_b_*", "shared_total"] } }
  - name: team-c
    members: [c]
    jobs: ["team-c-*"]
    actions: [push]
    validation: { metricNames: { own: ["shared_*"] } }
`),
    );
    const [a, b, c] = [owning("team-a"), owning("team-b"), owning("team-c")];
    const keyOf = (team: string) => ({ job: `${team}-x`, labels: {} });
    expect(ruleOf(text("team_b_rt 1\n"), keyOf("team-a"), a)).toBe("metric-name-owned");
    expect(ruleOf(text("team_b_rt 1\n"), keyOf("team-b"), b)).toBe("accepted");
    // a histogram whose series would carry an owned name is refused too
    expect(ruleOf(text('# TYPE team_b histogram\nteam_b_bucket{le="+Inf"} 1\n'), keyOf("team-a"), a)).toBe(
      "metric-name-owned",
    );
    // overlapping patterns: each of the two teams may push the names both claim, nobody else
    expect(ruleOf(text("shared_total 1\n"), keyOf("team-b"), b)).toBe("accepted");
    expect(ruleOf(text("shared_total 1\n"), keyOf("team-c"), c)).toBe("accepted");
    expect(ruleOf(text("shared_total 1\n"), keyOf("team-a"), a)).toBe("metric-name-owned");
    expect(ruleOf(text("unclaimed 1\n"), keyOf("team-a"), a)).toBe("accepted");
    try {
      validatePush(text("team_b_rt 1\n"), keyOf("team-a"), a);
      expect.unreachable();
    } catch (error) {
      const problem = (error as PushViolation).toProblem();
      expect(problem.code).toBe("ERR_METRIC_NAME_DENIED");
      expect(problem.status).toBe(422);
      expect(problem.message).toContain('team team-b (its metricNames.own pattern "team_b_*")');
    }
  });

  it("names the family, label and line of the violation", () => {
    try {
      validatePush(text('x 1\ny{a="1"} 1\ny{a="1"} 2\n'), KEY, teamA);
      expect.unreachable();
    } catch (error) {
      const problem = (error as PushViolation).toProblem();
      expect(problem.code).toBe("ERR_INVALID_METRIC");
      expect(problem.details).toMatchObject({ rule: "duplicate-series", family: "y", line: 3 });
    }
  });
});

describe("validatePush: what only protobuf can carry", () => {
  it.each([
    ["an empty name", gauge(""), "invalid-metric-name"],
    ["a space in the name", gauge("a b"), "invalid-metric-name"],
    ["an invalid label name", gauge("x", [["a-b", "1"]]), "invalid-label-name"],
    ["an empty label name", gauge("x", [["", "1"]]), "invalid-label-name"],
    [
      "a label twice",
      gauge("x", [
        ["a", "1"],
        ["a", "2"],
      ]),
      "duplicate-label",
    ],
    ["__name__", gauge("x", [["__name__", "y"]]), "reserved-label-name"],
    [
      "an explicit le on a histogram",
      {
        ...gauge("h", [["le", "1"]]),
        type: "histogram" as const,
        metrics: [
          {
            labels: [["le", "1"] as [string, string]],
            values: ["histogram" as const],
            buckets: [1],
            timestamped: false,
            at: {},
          },
        ],
      },
      "bucket-label",
    ],
    [
      "an explicit quantile on a summary",
      {
        ...gauge("s"),
        type: "summary" as const,
        metrics: [
          {
            labels: [["quantile", "1"] as [string, string]],
            values: ["summary" as const],
            timestamped: false,
            at: {},
          },
        ],
      },
      "quantile-label",
    ],
    [
      "a gauge family whose metric carries a counter",
      { ...gauge("x"), metrics: [{ labels: [], values: ["counter" as const], timestamped: false, at: {} }] },
      "value-type-mismatch",
    ],
    [
      "a metric without a value",
      { ...gauge("x"), metrics: [{ labels: [], values: [], timestamped: false, at: {} }] },
      "value-type-mismatch",
    ],
  ])("%s → %s", (_name, family, rule) => {
    expect(ruleOf(families(family as ParsedFamily))).toBe(rule);
  });

  it("refuses a histogram beside a family named like one of its series", () => {
    const histogram: ParsedFamily = {
      ...gauge("h"),
      type: "histogram",
      metrics: [{ labels: [], values: ["histogram"], buckets: [1], timestamped: false, at: {} }],
    };
    for (const suffix of ["_bucket", "_count", "_sum"]) {
      expect(ruleOf(families(histogram, gauge(`h${suffix}`)))).toBe("suffix-collision");
      expect(ruleOf(families(gauge(`h${suffix}`), histogram))).toBe("suffix-collision");
    }
    expect(ruleOf(families(histogram, gauge("h_total")))).toBe("accepted");
  });

  it("refuses a family sent twice (the Pushgateway would silently keep the last)", () => {
    expect(ruleOf(families(gauge("x"), gauge("x")))).toBe("duplicate-family");
  });

  it("accepts UTF-8 names only when the Pushgateway is started with --push.enable-utf8-names", () => {
    const utf8 = createPushPolicies(loadConfigForTest("validation: { utf8Names: true }"))("team-a");
    expect(ruleOf(families(gauge("temp.°C", [["höhe.m", "1"]])), KEY, utf8)).toBe("accepted");
    expect(ruleOf(families(gauge("temp.°C")))).toBe("invalid-metric-name");
    expect(ruleOf(families(gauge("")), KEY, utf8)).toBe("invalid-metric-name");
  });
});

describe("validateGroupingKey", () => {
  const keyRule = (key: GroupingKey, policy = teamA) => {
    try {
      validateGroupingKey(key, policy);
    } catch (error) {
      if (error instanceof PushViolation) return error.rule;
      throw error;
    }
    return "accepted";
  };

  it.each([
    [{ job: "team-a-x", labels: { instance: "db1" } }, "accepted"],
    [{ job: "team-a-x", labels: { instance: "" } }, "empty-grouping-value"],
    [{ job: "team-a-x", labels: { team: "team-c" } }, "reserved-label"],
    [{ job: "team-a-x", labels: { tenant: "t" } }, "reserved-label"],
    [{ job: "team-a-x", labels: { a: "v".repeat(31) } }, "label-value-length"],
    [{ job: "j".repeat(31), labels: {} }, "label-value-length"],
    [{ job: "team-a-x", labels: { ["l".repeat(21)]: "1" } }, "label-name-length"],
  ])("%j → %s", (key, rule) => {
    expect(keyRule(key)).toBe(rule);
  });

  it("lets a team use the label it injects itself", () => {
    expect(keyRule({ job: "team-c-x", labels: { team: "team-c" } }, policies("team-c"))).toBe("accepted");
  });
});
