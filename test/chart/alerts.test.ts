import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { stringify as stringifyYaml } from "yaml";
import {
  CHART,
  FULLNAME,
  find,
  findAll,
  HELMS,
  type K8sObject,
  NAMESPACE,
  PROFILES,
  PUSHGATEWAY,
  render,
  VARIANTS,
} from "./helm.js";

/**
 * The PrometheusRule and the dashboard's stale-group panels, against the labels Prometheus really
 * stores. The pushed groups are scraped with honorLabels, so a label a group carries replaces the
 * target's: the secured profile's batch team injects `namespace`, and its groups must still count.
 */
const helm = HELMS[HELMS.length - 1] as (typeof HELMS)[number];

type Labels = Record<string, string>;

/** A CronJob of the secured profile's batch team: pushguard injected namespace="batch-nightly". */
const BATCH_GROUP: Labels = { job: "batch-nightly-report", instance: "worker01", namespace: "batch-nightly" };

/** The target labels of the pushed groups' scrape: the pushgateway's ServiceMonitor, or the ScrapeConfig through pushguard. */
function pushedGroupsTarget(objects: readonly K8sObject[]): Labels {
  const [scrapeConfig] = findAll(objects, "ScrapeConfig");
  if (scrapeConfig) {
    const [config] = scrapeConfig.spec.staticConfigs;
    return { ...config.labels, job: scrapeConfig.spec.jobName, instance: config.targets[0] };
  }
  const monitor = find(objects, "ServiceMonitor", PUSHGATEWAY);
  // What prometheus-operator gives an endpoint's target (job is the Service's name).
  return {
    namespace: monitor.spec.namespaceSelector.matchNames[0],
    service: PUSHGATEWAY,
    endpoint: monitor.spec.endpoints[0].port,
    pod: `${PUSHGATEWAY}-0`,
    container: "pushgateway",
    job: PUSHGATEWAY,
    instance: "10.244.1.4:9091",
  };
}

/** The equality matchers of the first `metric{...}` selector in `expr` (any other matcher fails the test). */
function matchersOf(expr: string, metric: string): Labels {
  const selector = new RegExp(`\\b${metric}\\{([^}]*)\\}`).exec(expr)?.[1];
  if (selector === undefined) throw new Error(`no ${metric}{...} in ${expr}`);
  return Object.fromEntries(
    selector
      .split(",")
      .map((matcher) => matcher.trim())
      .filter(Boolean)
      .map((matcher) => {
        const match = /^(\w+)="([^"]*)"$/.exec(matcher);
        if (!match) throw new Error(`not an equality matcher: ${matcher}`);
        return [match[1], match[2]];
      }),
  );
}

const selects = (matchers: Labels, labels: Labels) =>
  Object.entries(matchers).every(([name, value]) => labels[name] === value);

const rules = (objects: readonly K8sObject[]): Array<{ alert?: string; expr: string }> =>
  find(objects, "PrometheusRule").spec.groups.flatMap((group: { rules: unknown[] }) => group.rules);

const dashboard = JSON.parse(readFileSync(join(CHART, "dashboards/pushguard.json"), "utf8")) as {
  panels: Array<{ title: string; targets?: Array<{ expr: string }> }>;
};
/** A dashboard panel's query with the release's variables filled in, as Grafana sends it. */
const panelQuery = (title: string) => {
  const expr = dashboard.panels.find((panel) => panel.title === title)?.targets?.[0]?.expr;
  if (!expr) throw new Error(`no panel ${title}`);
  return expr
    .replaceAll("$namespace", NAMESPACE)
    .replaceAll(`\${job}`, FULLNAME)
    .replaceAll("$stale", "86400");
};

describe.each([
  ["profile secured (a ServiceMonitor)", PROFILES.secured],
  ["ci/ha-pushgateway-values.yaml (a ScrapeConfig)", ["ci/ha-pushgateway-values.yaml"]],
])("stale groups that carry their own namespace label: %s", (_name, files) => {
  const objects = () => render(helm, files);
  const stored = () => ({ ...pushedGroupsTarget(objects()), ...BATCH_GROUP });

  it("PushgatewayGroupStale selects them by target labels pushers do not set", () => {
    const stale = rules(objects()).find((rule) => rule.alert === "PushgatewayGroupStale");
    const matchers = matchersOf(stale?.expr ?? "", "push_time_seconds");
    expect(Object.keys(matchers)).not.toContain("namespace");
    expect(matchers.service).toBe(PUSHGATEWAY);
    expect(selects(matchers, stored())).toBe(true);
  });

  it.each(["Stale groups", "Oldest groups"])("the dashboard's %s panel counts them", (title) => {
    const matchers = matchersOf(panelQuery(title), "push_time_seconds");
    expect(Object.keys(matchers)).not.toContain("namespace");
    expect(selects(matchers, stored())).toBe(true);
  });
});

/** promtool: Debian's `prometheus` package ships it, and .ci/run installs that package. */
const PROMTOOL = "promtool";
const promtoolMissing = spawnSync(PROMTOOL, ["--version"]).error !== undefined;
const work = mkdtempSync(join(tmpdir(), "pushguard-rules-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function promtool(args: readonly string[]) {
  const result = spawnSync(PROMTOOL, args, { cwd: work, encoding: "utf8" });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

/** The rendered PrometheusRule's spec as a Prometheus rule file. */
function ruleFile(objects: readonly K8sObject[], name: string): string {
  const file = join(work, `${name.replace(/\W+/g, "-")}.rules.yaml`);
  writeFileSync(file, stringifyYaml(find(objects, "PrometheusRule").spec));
  return file;
}

const series = (metric: string, labels: Labels) =>
  `${metric}{${Object.entries(labels)
    .map(([name, value]) => `${name}=${JSON.stringify(value)}`)
    .join(", ")}}`;

const RULE_VARIANTS = VARIANTS.filter(
  ({ files }) => findAll(render(helm, files), "PrometheusRule").length > 0,
);

describe.skipIf(promtoolMissing)("promtool check rules", () => {
  it("has variants rendering a PrometheusRule", () => {
    expect(RULE_VARIANTS.map(({ name }) => name)).toEqual(expect.arrayContaining(["secured"]));
  });

  it.each(RULE_VARIANTS)("$name", ({ name, files }) => {
    const result = promtool(["check", "rules", ruleFile(render(helm, files), name)]);
    expect(result.output).toContain("SUCCESS");
    expect(result.status, result.output).toBe(0);
  });
});

describe.skipIf(promtoolMissing)("promtool test rules: which alerts fire (profile secured)", () => {
  const objects = () => render(helm, PROFILES.secured);
  const pushgateway = () => pushedGroupsTarget(objects());
  const pushguard = (pod: string): Labels => ({
    namespace: NAMESPACE,
    service: FULLNAME,
    endpoint: "metrics",
    pod,
    container: "pushguard",
    job: FULLNAME,
    instance: `${pod}:9092`,
  });
  const pods = [`${FULLNAME}-7d4b9-a`, `${FULLNAME}-7d4b9-b`];
  /** Series held for 30 minutes, one sample a minute. */
  type Input = Array<{ series: string; values: string }>;
  const up = (labels: Labels, value: 0 | 1) => ({ series: series("up", labels), values: `${value}x30` });
  const allUp = (): Input => [up(pushgateway(), 1), ...pods.map((pod) => up(pushguard(pod), 1))];
  /** pushguard_push_rejections_total of team-a on the first replica. */
  const refused = (rule: string, values: string) => ({
    series: series("pushguard_push_rejections_total", {
      ...pushguard(pods[0] as string),
      team: "team-a",
      rule,
    }),
    values,
  });

  const scenarios: Array<[string, () => Input, () => Labels[]]> = [
    [
      "a batch group with its own namespace label, not pushed for over a day: PushgatewayGroupStale",
      () => [
        ...allUp(),
        // Pushed at -100000 s: at every evaluation it is more than staleGroupSeconds (86400) old.
        { series: series("push_time_seconds", { ...pushgateway(), ...BATCH_GROUP }), values: "-100000x30" },
      ],
      () => [{ alertname: "PushgatewayGroupStale", severity: "warning", ...pushgateway(), ...BATCH_GROUP }],
    ],
    ["everything up, every group fresh: nothing", allUp, () => []],
    [
      "no target at all (ServiceMonitors not selected): PushgatewayTargetMissing and PushguardTargetMissing",
      () => [],
      () => [
        {
          alertname: "PushgatewayTargetMissing",
          severity: "critical",
          namespace: NAMESPACE,
          job: PUSHGATEWAY,
        },
        { alertname: "PushguardTargetMissing", severity: "critical", namespace: NAMESPACE, job: FULLNAME },
      ],
    ],
    [
      "the pushgateway cannot be scraped: PushgatewayDown",
      () => [up(pushgateway(), 0), ...pods.map((pod) => up(pushguard(pod), 1))],
      () => [{ alertname: "PushgatewayDown", severity: "critical", ...pushgateway() }],
    ],
    [
      "one pushguard replica down: PushguardReplicaDown for it",
      () => [up(pushgateway(), 1), up(pushguard(pods[0] as string), 0), up(pushguard(pods[1] as string), 1)],
      () => [{ alertname: "PushguardReplicaDown", severity: "warning", ...pushguard(pods[0] as string) }],
    ],
    [
      "every pushguard replica down: PushguardDown",
      () => [up(pushgateway(), 1), ...pods.map((pod) => up(pushguard(pod), 0))],
      () => [{ alertname: "PushguardDown", severity: "critical", namespace: NAMESPACE, job: FULLNAME }],
    ],
    [
      "a team's pushes refused all along (one every 10 s): PushguardPushesRefused for that team and rule",
      () => [...allUp(), refused("duplicate-series", "0+6x30")],
      () => [
        {
          alertname: "PushguardPushesRefused",
          severity: "warning",
          namespace: NAMESPACE,
          job: FULLNAME,
          team: "team-a",
          rule: "duplicate-series",
        },
      ],
    ],
    [
      "one refused push, then none: nothing (its client got the 4xx)",
      () => [...allUp(), refused("series-per-push", "0 0 1x28")],
      () => [],
    ],
    [
      "the pushgateway upgraded 10 minutes ago: PushgatewayVersionChanged",
      () => [
        ...allUp(),
        {
          series: series("pushgateway_build_info", { ...pushgateway(), version: "1.11.1" }),
          values: "1x10 _x20",
        },
        {
          series: series("pushgateway_build_info", { ...pushgateway(), version: "1.11.3" }),
          values: "_x10 1x20",
        },
      ],
      () => [
        { alertname: "PushgatewayVersionChanged", severity: "info", namespace: NAMESPACE, job: PUSHGATEWAY },
      ],
    ],
    [
      "one pushgateway version all along: nothing",
      () => [
        ...allUp(),
        { series: series("pushgateway_build_info", { ...pushgateway(), version: "1.11.3" }), values: "1x30" },
      ],
      () => [],
    ],
  ];

  it.each(scenarios)("%s", (name, input, firing) => {
    const tests = {
      rule_files: [ruleFile(objects(), "secured")],
      evaluation_interval: "1m",
      tests: [
        {
          interval: "1m",
          input_series: input(),
          promql_expr_test: [
            {
              // Every alert's longest `for` (15m) has passed.
              expr: 'ALERTS{alertstate="firing"}',
              eval_time: "20m",
              exp_samples: firing().map((labels) => ({
                labels: series("ALERTS", { ...labels, alertstate: "firing" }),
                value: 1,
              })),
            },
          ],
        },
      ],
    };
    const file = join(work, `${name.replace(/\W+/g, "-").slice(0, 60)}.test.yaml`);
    writeFileSync(file, stringifyYaml(tests));
    const result = promtool(["test", "rules", file]);
    expect(result.status, result.output).toBe(0);
  });

  /** The secured profile with the store index on (PushguardTeamNearQuota renders only then). */
  const withIndex = () =>
    render(helm, PROFILES.secured, ["--set", "pushguard.config.store.index.enabled=true"]);
  /** A team's usage and quota of one resource, exported alike by both replicas' indexes. */
  const usage = (team: string, resource: "groups" | "series", used: number, quota: number): Input =>
    pods.flatMap((pod) => [
      { series: series(`pushguard_team_${resource}`, { ...pushguard(pod), team }), values: `${used}x30` },
      {
        series: series(`pushguard_team_${resource}_quota`, { ...pushguard(pod), team }),
        values: `${quota}x30`,
      },
    ]);
  const nearQuota = (team: string, resource: string): Labels => ({
    alertname: "PushguardTeamNearQuota",
    severity: "warning",
    namespace: NAMESPACE,
    job: FULLNAME,
    team,
    resource,
  });
  const quotaScenarios: Array<[string, () => Input, () => Labels[]]> = [
    [
      "team-a at 95% of its groups quota, ci at 50% of its series: PushguardTeamNearQuota for team-a's groups",
      () => [...allUp(), ...usage("team-a", "groups", 950, 1000), ...usage("ci", "series", 100000, 200000)],
      () => [nearQuota("team-a", "groups")],
    ],
    [
      "team-a at 95% of its series quota: PushguardTeamNearQuota for its series",
      () => [
        ...allUp(),
        ...usage("team-a", "series", 190000, 200000),
        ...usage("team-a", "groups", 10, 10000),
      ],
      () => [nearQuota("team-a", "series")],
    ],
    [
      "every team at 50% of its quotas: nothing",
      () => [
        ...allUp(),
        ...usage("team-a", "groups", 500, 1000),
        ...usage("team-a", "series", 100000, 200000),
        ...usage("ci", "groups", 5000, 10000),
      ],
      () => [],
    ],
  ];

  it.each(quotaScenarios)("with the store index, %s", (name, input, firing) => {
    const tests = {
      rule_files: [ruleFile(withIndex(), "secured-store-index")],
      evaluation_interval: "1m",
      tests: [
        {
          interval: "1m",
          input_series: input(),
          promql_expr_test: [
            {
              expr: 'ALERTS{alertstate="firing"}',
              eval_time: "20m",
              exp_samples: firing().map((labels) => ({
                labels: series("ALERTS", { ...labels, alertstate: "firing" }),
                value: 1,
              })),
            },
          ],
        },
      ],
    };
    const file = join(work, `quota-${name.replace(/\W+/g, "-").slice(0, 60)}.test.yaml`);
    writeFileSync(file, stringifyYaml(tests));
    const result = promtool(["test", "rules", file]);
    expect(result.status, result.output).toBe(0);
  });

  it("PushguardTeamNearQuota names the team and the resource, and says what to do", () => {
    const rule = rules(withIndex()).find(
      (candidate) => candidate.alert === "PushguardTeamNearQuota",
    ) as unknown as {
      annotations: Labels;
    };
    const filled = (text: string) =>
      text
        .replaceAll("{{ $labels.team }}", "team-a")
        .replaceAll("{{ $labels.resource }}", "groups")
        .replaceAll("{{ $value | humanizePercentage }}", "95%");
    const annotations = Object.fromEntries(
      Object.entries(rule.annotations).map(([name, text]) => [name, filled(text)]),
    );
    expect(annotations.description).toContain('Team "team-a" stores 95% of its groups quota');
    expect(annotations.description).toContain("Delete groups it no longer needs");
    expect(annotations.description).toContain("teams[].quotas.groups");
    const tests = {
      rule_files: [ruleFile(withIndex(), "secured-store-index")],
      evaluation_interval: "1m",
      tests: [
        {
          interval: "1m",
          input_series: [...allUp(), ...usage("team-a", "groups", 950, 1000)],
          alert_rule_test: [
            {
              eval_time: "20m",
              alertname: "PushguardTeamNearQuota",
              exp_alerts: [
                {
                  exp_labels: {
                    severity: "warning",
                    namespace: NAMESPACE,
                    job: FULLNAME,
                    team: "team-a",
                    resource: "groups",
                  },
                  exp_annotations: annotations,
                },
              ],
            },
            // Not yet 15 minutes at 95%.
            { eval_time: "10m", alertname: "PushguardTeamNearQuota", exp_alerts: [] },
          ],
        },
      ],
    };
    const file = join(work, "team-near-quota-annotations.test.yaml");
    writeFileSync(file, stringifyYaml(tests));
    const result = promtool(["test", "rules", file]);
    expect(result.status, result.output).toBe(0);
  });

  it("PushguardPushesRefused says which team and rule, and that pushguard explain --body tells why", () => {
    const rule = rules(objects()).find(
      (candidate) => candidate.alert === "PushguardPushesRefused",
    ) as unknown as {
      annotations: Labels;
    };
    // The annotations as Alertmanager receives them: 6 refusals a minute are 0.1 per second.
    const filled = (text: string) =>
      text
        .replaceAll("{{ $labels.team }}", "team-a")
        .replaceAll("{{ $labels.rule }}", "duplicate-series")
        .replaceAll("{{ $value | humanize }}", "100m");
    const annotations = Object.fromEntries(
      Object.entries(rule.annotations).map(([name, text]) => [name, filled(text)]),
    );
    expect(annotations.description).toContain('team "team-a"');
    expect(annotations.description).toContain("rule duplicate-series");
    expect(annotations.description).toMatch(/pushguard explain .*--body FILE/);
    const tests = {
      rule_files: [ruleFile(objects(), "secured")],
      evaluation_interval: "1m",
      tests: [
        {
          interval: "1m",
          input_series: [...allUp(), refused("duplicate-series", "0+6x30")],
          alert_rule_test: [
            {
              eval_time: "20m",
              alertname: "PushguardPushesRefused",
              exp_alerts: [
                {
                  exp_labels: {
                    severity: "warning",
                    namespace: NAMESPACE,
                    job: FULLNAME,
                    team: "team-a",
                    rule: "duplicate-series",
                  },
                  exp_annotations: annotations,
                },
              ],
            },
          ],
        },
      ],
    };
    const file = join(work, "pushes-refused-annotations.test.yaml");
    writeFileSync(file, stringifyYaml(tests));
    const result = promtool(["test", "rules", file]);
    expect(result.status, result.output).toBe(0);
  });
});

if (promtoolMissing) {
  describe("promtool", () => {
    it.skip("is not installed (apt-get install prometheus provides it), so the rules are not checked", () => {});
  });
}
