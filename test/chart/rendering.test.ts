import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Pod } from "kubernetes-models/v1/Pod";
import { Histogram, Summary } from "prom-client";
import { describe, expect, it } from "vitest";
import { stringify as stringifyYaml } from "yaml";
import { parseConfig } from "../../src/config/load.js";
import { configSchema } from "../../src/config/schema.js";
import { validationSection } from "../../src/config/validation-schema.js";
import { Metrics } from "../../src/observability/metrics.js";
import {
  CHART,
  FULLNAME,
  find,
  findAll,
  HELMS,
  type Loose,
  NAMESPACE,
  PROFILES,
  PUSHGATEWAY,
  PUSHGATEWAY_HEADLESS,
  pushgatewayArgs,
  pushgatewayPodUrl,
  pushguardConfig,
  REPO,
  render,
  renderError,
  runHelm,
  siteValues,
  VARIANTS,
} from "./helm.js";
import { admits, selects } from "./network-policy.js";

const defaultTeam = { name: "default", members: ["default-ci"], jobs: ["*"], actions: ["push", "delete"] };
const inClusterIssuer = { kubernetes: [{ name: "cluster", audiences: ["pushguard"] }] };
/** The HA profile with its Redis taken away (to show what needs it). */
const haWithoutRedis = { coordination: { redis: { url: "" } } };

/** Inconsistent values, each with the message that must name what to fix. */
const REFUSED: Array<{ name: string; values: Record<string, unknown>; files?: string[]; message: RegExp }> = [
  {
    name: "tokens in two places",
    values: { tokens: { existingSecret: "mine", values: { "default-ci": "0123456789abcdef" } } },
    message: /tokens\.values and tokens\.existingSecret are both set/,
  },
  {
    name: "a token nobody uses",
    values: { tokens: { values: { nobody: "0123456789abcdef" } } },
    message: /tokens\.values\.nobody is not the Secret key of any identities\.static entry/,
  },
  {
    name: "an identity without a token",
    values: { tokens: { generate: false } },
    message:
      /identities\.static\[0\] \(default-ci\): no token for Secret key "default-ci"; set tokens\.values\.default-ci/,
  },
  {
    name: "an identity name that is no Secret key",
    values: {
      identities: { static: [{ name: "ci@example.com" }] },
      teams: [{ ...defaultTeam, members: ["ci@example.com"] }],
      tests: { identity: "ci@example.com" },
    },
    message: /"ci@example\.com" is not a valid Secret key; set identities\.static\[0\]\.secretKey/,
  },
  {
    name: "an inline hash with a Secret key",
    values: {
      identities: { static: [{ name: "default-ci", sha256: "a".repeat(64), secretKey: "x" }] },
      tests: { enabled: false },
    },
    message: /sha256 is inline, so secretKey and secretFormat must not be set/,
  },
  {
    name: "a team member that does not exist",
    values: { teams: [{ ...defaultTeam, members: ["ghost"] }], tests: { enabled: false } },
    message: /teams\[0\] \(default\): member "ghost" is not in identities\.static/,
  },
  {
    name: "a selector naming an unknown issuer",
    values: {
      teams: [defaultTeam, { ...defaultTeam, name: "jwt", members: [{ issuer: "nowhere", subject: "x" }] }],
    },
    message:
      /teams\[1\] \(jwt\): member selector names issuer "nowhere", which is not in identities\.oidc or identities\.kubernetes/,
  },
  {
    name: "two issuers with one name",
    values: { identities: { kubernetes: [{ name: "ci", audiences: ["pushguard"] }] } },
    files: ["ci/identity-providers-values.yaml"],
    message: /identities\.kubernetes\[0\]: duplicate issuer name "ci"/,
  },
  {
    name: "no team and no anonymous grant",
    values: { teams: [], tests: { enabled: false }, tokens: { generate: false }, identities: { static: [] } },
    message: /define at least one team \(pushguard has no open mode\)/,
  },
  {
    name: "push without job patterns",
    values: { teams: [{ ...defaultTeam, jobs: [] }], tests: { enabled: false } },
    message: /teams\[0\] \(default\): push and delete need at least one pattern in teams\[0\]\.jobs/,
  },
  {
    name: "a rate limit for an unknown team",
    values: { rateLimit: { enabled: true, rules: [{ scope: "team", team: "ghosts", rate: 1, burst: 1 }] } },
    message: /rateLimit\.rules\[0\]: team "ghosts" is not in teams/,
  },
  {
    name: "Redis without a URL",
    values: { rateLimit: { enabled: true, store: "redis" }, networkPolicy: { enabled: false } },
    message: /rateLimit\.store is redis but rateLimit\.redis\.url is empty/,
  },
  {
    name: "more upstream slots than connections",
    values: { pushguard: { config: { overload: { maxConcurrent: 100 } } } },
    message:
      /pushguard\.config\.overload\.maxConcurrent \(100\) must not exceed pushguard\.config\.upstream\.connections \(64\)/,
  },
  {
    name: "a grace period shorter than the drain",
    values: { pushguard: { terminationGracePeriodSeconds: 10 } },
    message:
      /pushguard\.terminationGracePeriodSeconds \(10\) must exceed pushguard\.preStopDelaySeconds \+ pushguard\.config\.server\.shutdownGraceMs \(15 s\)/,
  },
  {
    name: "rate-limit rules kept in memory by each of several pushguard replicas",
    values: {
      pushguard: { replicaCount: 2 },
      rateLimit: { enabled: true, store: "memory", rules: [{ scope: "team", rate: 5, burst: 10 }] },
    },
    message: /rateLimit\.rules with rateLimit\.store memory and several pushguard replicas/,
  },
  {
    name: "a PodDisruptionBudget that blocks every drain",
    values: { pushguard: { podDisruptionBudget: { enabled: true, minAvailable: 1, maxUnavailable: "" } } },
    message: /pushguard\.podDisruptionBudget\.minAvailable \(1\) must be below the replica count \(1/,
  },
  {
    name: "both PodDisruptionBudget bounds",
    values: { pushguard: { replicaCount: 3, podDisruptionBudget: { enabled: true, minAvailable: 1 } } },
    message: /pushguard\.podDisruptionBudget: set minAvailable or maxUnavailable, not both/,
  },
  {
    name: "autoscaling bounds upside down",
    values: { pushguard: { autoscaling: { enabled: true, minReplicas: 5, maxReplicas: 2 } } },
    message: /pushguard\.autoscaling\.minReplicas \(5\) is above pushguard\.autoscaling\.maxReplicas \(2\)/,
  },
  {
    name: "a persistence file at the root",
    values: { pushgateway: { persistence: { enabled: true, file: "/metrics.db" } } },
    message:
      /pushgateway\.persistence\.file \("\/metrics\.db"\) must be an absolute file path inside a directory other than \//,
  },
  {
    name: "the lifecycle API",
    values: { pushgateway: { extraArgs: ["--web.enable-lifecycle"] } },
    message: /pushgateway\.extraArgs: --web\.enable-lifecycle is managed by the chart and never enabled/,
  },
  {
    name: "a flag the chart manages",
    values: { pushgateway: { extraArgs: ["--persistence.file=/tmp/x"] } },
    message:
      /pushgateway\.extraArgs: --persistence\.file is managed by the chart; use the pushgateway\.\* value instead/,
  },
  {
    name: "a NetworkPolicy admitting every pod to the pushgateway",
    values: { networkPolicy: { prometheus: { namespaceSelector: {}, podSelector: { matchLabels: null } } } },
    message: /networkPolicy\.prometheus: namespaceSelector and podSelector are both empty/,
  },
  {
    name: "a NetworkPolicy admitting no client",
    values: { networkPolicy: { pushguard: { clientLabel: { enabled: false } } } },
    message:
      /networkPolicy\.pushguard admits no client: set allowedNamespaces, extraFrom or clientLabel\.enabled/,
  },
  {
    name: "in-cluster ServiceAccount tokens without egress to the API server",
    values: { identities: inClusterIssuer },
    message:
      /an in-cluster identities\.kubernetes issuer needs networkPolicy\.pushguard\.egress\.kubernetesApi/,
  },
  {
    name: "OIDC without egress to the issuer",
    values: {
      identities: { oidc: [{ name: "idp", issuer: "https://idp.example.com", audiences: ["pushguard"] }] },
    },
    message:
      /identities\.oidc \(or a kubernetes issuer with its own jwksUri or apiServer\) needs networkPolicy\.pushguard\.egress\.identityProviders/,
  },
  {
    name: "a test job the test identity may not push",
    values: { tests: { job: "elsewhere" }, teams: [{ ...defaultTeam, jobs: ["team-*"] }] },
    message: /tests\.job \("elsewhere"\) is not pushable by tests\.identity \("default-ci"\)/,
  },
  {
    name: "a test identity with only a hash",
    values: { tests: { identity: "break-glass" } },
    files: ["ci/existing-secret-values.yaml"],
    message: /tests\.identity \("break-glass"\) must read a raw token from the Secret/,
  },
  { name: "an unknown value (schema)", values: { pushguard: { replicas: 2 } }, message: /replicas/ },
  {
    name: "replicated pushgateways and two pushguard replicas without Redis",
    values: haWithoutRedis,
    files: ["values-ha.yaml", siteValues("ha")],
    message:
      /pushgateway\.replicaCount is 3 with several pushguard replicas \(pushguard\.replicaCount or pushguard\.autoscaling\): set coordination\.redis\.url/,
  },
  {
    name: "replicated pushgateways and autoscaled pushguard without Redis",
    values: { pushgateway: { replicaCount: 2 }, pushguard: { autoscaling: { enabled: true } } },
    message:
      /pushgateway\.replicaCount is 2 with several pushguard replicas .*: set coordination\.redis\.url/,
  },
  {
    name: "scraping replicated pushgateways without a scrape identity",
    values: { serviceMonitor: { scrapeIdentity: "" } },
    files: ["values-ha.yaml", siteValues("ha")],
    message:
      /serviceMonitor\.scrapeIdentity is empty: with pushgateway\.replicaCount above 1 Prometheus scrapes through pushguard/,
  },
  {
    name: "a scrape identity that does not exist",
    values: { serviceMonitor: { scrapeIdentity: "prometheus" } },
    files: ["values-ha.yaml", siteValues("ha")],
    message: /serviceMonitor\.scrapeIdentity \("prometheus"\) is not in identities\.static/,
  },
  {
    name: "a scrape identity that may not read",
    values: { serviceMonitor: { scrapeIdentity: "team-a-ci" } },
    files: ["values-ha.yaml", siteValues("ha")],
    message:
      /serviceMonitor\.scrapeIdentity \("team-a-ci"\) is in no team with the read action: add a team such as \{name: scrapers, members: \[team-a-ci\], actions: \[read\]\}/,
  },
  {
    name: "a scrape identity with only a hash",
    values: {
      identities: {
        static: [
          { name: "team-a-ci" },
          { name: "team-b-ci" },
          { name: "helm-test" },
          { name: "prometheus-scraper", secretFormat: "sha256" },
        ],
      },
      tokens: { values: { "prometheus-scraper": "a".repeat(64) } },
    },
    files: ["values-ha.yaml", siteValues("ha")],
    message: /serviceMonitor\.scrapeIdentity \("prometheus-scraper"\) must read a raw token from the Secret/,
  },
  {
    name: "shared replica state without egress to Redis",
    values: { networkPolicy: { pushguard: { egress: { redis: [] } } } },
    files: ["values-ha.yaml", siteValues("ha")],
    message: /coordination\.redis\.url needs networkPolicy\.pushguard\.egress\.redis/,
  },
  {
    name: "a TTL without the janitor",
    values: { teams: [{ ...defaultTeam, ttl: "36h" }] },
    message: /teams\[0\] \(default\): teams\[0\]\.ttl has no effect unless janitor\.enabled is true/,
  },
  {
    name: "a TTL on a team that may not push",
    values: {
      janitor: { enabled: true, defaultTtl: "7d" },
      teams: [defaultTeam, { name: "readers", members: ["default-ci"], actions: ["read"], ttl: "1d" }],
    },
    message: /teams\[1\] \(readers\): teams\[1\]\.ttl applies to groups the team pushes, and it may not push/,
  },
  {
    name: "a janitor with nothing to expire",
    values: { janitor: { enabled: true } },
    message:
      /janitor\.enabled is true but nothing could ever expire: set janitor\.defaultTtl or a ttl on a team \(teams\[\]\.ttl\)/,
  },
  {
    name: "a janitor lease in Redis without egress to it",
    values: {
      janitor: { enabled: true, defaultTtl: "7d" },
      coordination: { redis: { url: "redis://redis:6379" } },
    },
    message: /coordination\.redis\.url needs networkPolicy\.pushguard\.egress\.redis/,
  },
  {
    name: "too many pushgateway replicas (schema)",
    values: { pushgateway: { replicaCount: 10 } },
    message: /replicaCount/,
  },
  {
    name: "a TTL that is no duration (schema)",
    values: { janitor: { defaultTtl: "1 week" } },
    message: /defaultTtl/,
  },
  {
    name: "a coordination Redis URL carrying a password (schema)",
    values: { coordination: { redis: { url: "redis://:secret@redis:6379" } } },
    message: /coordination/,
  },
  { name: "an anonymous push (schema)", values: { anonymous: { actions: ["push"] } }, message: /anonymous/ },
  {
    name: "a Redis URL carrying a password (schema)",
    values: { rateLimit: { redis: { url: "redis://:secret@redis:6379" } } },
    message: /rateLimit/,
  },
  {
    name: "the pushgateway's UTF-8 names switched on behind pushguard's back",
    values: { pushgateway: { extraArgs: ["--push.enable-utf8-names"] } },
    message:
      /pushgateway\.extraArgs: --push\.enable-utf8-names is managed by the chart; set pushguard\.config\.validation\.utf8Names instead/,
  },
  {
    name: "push validation switched off (schema)",
    values: { pushguard: { config: { validation: { enabled: false } } } },
    message: /validation.*enabled/,
  },
  {
    name: "a push limit of 0 series (schema)",
    values: { pushguard: { config: { validation: { limits: { seriesPerPush: 0 } } } } },
    message: /validation.limits.seriesPerPush/,
  },
  {
    name: "a push limit above pushguard's bound (schema)",
    values: { pushguard: { config: { validation: { limits: { labelsPerSeries: 1001 } } } } },
    message: /validation.limits.labelsPerSeries/,
  },
  {
    name: "an unknown push limit (schema)",
    values: { pushguard: { config: { validation: { limits: { seriesPerGroup: 10 } } } } },
    message: /validation.limits\b.*seriesPerGroup/,
  },
  {
    name: "no metric name allowed (schema)",
    values: { pushguard: { config: { validation: { metricNames: { allow: [] } } } } },
    message: /validation.metricNames.allow/,
  },
  {
    name: "a placeholder in a metric-name pattern (schema)",
    values: { pushguard: { config: { validation: { metricNames: { deny: ["{team}_*"] } } } } },
    message: /validation.metricNames.deny/,
  },
  {
    name: "job as a reserved label (schema)",
    values: { pushguard: { config: { validation: { reservedLabels: ["job"] } } } },
    message: /validation.reservedLabels/,
  },
  {
    name: "a team's push limit of 0 series (schema)",
    values: { teams: [{ ...defaultTeam, validation: { limits: { seriesPerPush: 0 } } }] },
    message: /teams.0.validation.limits.seriesPerPush/,
  },
  {
    name: "an unknown key in a team's validation (schema)",
    values: { teams: [{ ...defaultTeam, validation: { reservedLabels: ["tenant"] } }] },
    message: /teams.0.validation\b.*reservedLabels/,
  },
  {
    name: "a store index re-read more than once a second (schema)",
    values: { pushguard: { config: { store: { index: { resyncIntervalMs: 999 } } } } },
    message: /store.index.resyncIntervalMs/,
  },
  {
    name: "a fractional group quota (schema)",
    values: { pushguard: { config: { store: { quotas: { groupsPerTeam: 1.5 } } } } },
    message: /store.quotas.groupsPerTeam/,
  },
  {
    name: "a series quota above pushguard's bound (schema)",
    values: { pushguard: { config: { store: { quotas: { seriesPerTeam: 1000000001 } } } } },
    message: /store.quotas.seriesPerTeam/,
  },
  {
    name: "an unknown metric-name ownership (schema)",
    values: { pushguard: { config: { store: { names: { ownership: "last" } } } } },
    message: /store.names.ownership/,
  },
  {
    name: "an unknown key in the store section (schema)",
    values: { pushguard: { config: { store: { quota: { groupsPerTeam: 10 } } } } },
    message: /store\b.*quota/,
  },
  {
    name: "no team share at all (schema)",
    values: { pushguard: { config: { overload: { maxTeamShare: 0 } } } },
    message: /overload.maxTeamShare/,
  },
  {
    name: "a team share above 1 (schema)",
    values: { pushguard: { config: { overload: { maxTeamShare: 1.5 } } } },
    message: /overload.maxTeamShare/,
  },
  {
    name: "a team's group quota of 0 (schema)",
    values: { teams: [{ ...defaultTeam, quotas: { groups: 0 } }] },
    message: /teams.0.quotas.groups/,
  },
  {
    name: "an unknown key in a team's quotas (schema)",
    values: { teams: [{ ...defaultTeam, quotas: { bytes: 10 } }] },
    message: /teams.0.quotas\b.*bytes/,
  },
  {
    name: "a forced fast mode with the check asked for",
    values: { pushgateway: { disableConsistencyCheck: false, forceDisableConsistencyCheck: true } },
    message:
      /pushgateway\.forceDisableConsistencyCheck is true but pushgateway\.disableConsistencyCheck is false/,
  },
  {
    name: "one existing claim for several replicas",
    values: { pushgateway: { persistence: { enabled: true, existingClaim: "pushgateway-data" } } },
    files: ["values-ha.yaml", siteValues("ha")],
    message: /pushgateway\.persistence\.existingClaim is one volume, and pushgateway\.replicaCount is 3/,
  },
  {
    name: "node ports on a ClusterIP Service",
    values: { pushguard: { service: { nodePorts: { api: 30091 } } } },
    message: /pushguard\.service\.nodePorts are set but pushguard\.service\.type is ClusterIP/,
  },
  {
    name: "source ranges without a LoadBalancer",
    values: { pushguard: { service: { type: "NodePort", loadBalancerSourceRanges: ["10.0.0.0/8"] } } },
    message:
      /pushguard\.service\.loadBalancerSourceRanges restrict a LoadBalancer, and pushguard\.service\.type is NodePort/,
  },
  {
    name: "a route that attaches to no Gateway",
    values: { route: { main: { enabled: true } } },
    message: /route\.main\.parentRefs is empty/,
  },
  {
    name: "a ScrapeConfig in a namespace without the token Secret",
    values: { serviceMonitor: { namespace: "prometheus" } },
    files: ["values-ha.yaml", siteValues("ha")],
    message:
      /serviceMonitor\.namespace \(prometheus\): the ScrapeConfig reads the token of serviceMonitor\.scrapeIdentity from a Secret in its own namespace/,
  },
  {
    name: "the community chart's key for monitor labels spelled as before (schema)",
    values: { serviceMonitor: { labels: { release: "kps" } } },
    message: /serviceMonitor.*labels/,
  },
  {
    name: "the secured profile's placeholders, as shipped",
    values: {},
    files: ["values-secured.yaml"],
    message: new RegExp(
      [
        "identities\\.oidc\\[0\\]\\.issuer \\(https://idp\\.example\\.com/realms/platform\\) is a placeholder",
        "rateLimit\\.redis\\.url \\(redis://redis\\.example\\.com:6379/0\\) is a placeholder",
        "coordination\\.redis\\.url \\(redis://redis\\.example\\.com:6379/0\\) is a placeholder",
        "networkPolicy\\.pushguard\\.egress\\.kubernetesApi\\[0\\]\\.to\\[0\\]\\.ipBlock\\.cidr \\(192\\.0\\.2\\.10/32\\) is a placeholder: a documentation range.*kubectl get endpointslices",
        "networkPolicy\\.pushguard\\.egress\\.identityProviders\\[0\\]\\.to\\[0\\]\\.ipBlock\\.cidr \\(198\\.51\\.100\\.20/32\\) is a placeholder",
      ].join("[^]*"),
    ),
  },
  {
    name: "the HA profile's Redis placeholder, as shipped",
    values: {},
    files: ["values-ha.yaml"],
    message:
      /coordination\.redis\.url \(redis:\/\/redis\.example\.com:6379\/0\) is a placeholder: redis\.example\.com is reserved for documentation \(RFC 2606\)/,
  },
  {
    name: "a documentation IPv6 range as a peer",
    values: { networkPolicy: { pushguard: { extraFrom: [{ ipBlock: { cidr: "2001:DB8::/48" } }] } } },
    message: /networkPolicy\.pushguard\.extraFrom\[0\]\.ipBlock\.cidr \(2001:db8::\/48\) is a placeholder/,
  },
  {
    name: "an example host for the Ingress",
    values: { ingress: { enabled: true, hosts: ["pushguard.example.org"] } },
    message: /ingress\.hosts\[0\] \(pushguard\.example\.org\) is a placeholder/,
  },
];

/** Writes `values` to a file under .tmp/ for `helm -f` (`--set` cannot edit one list element). */
function valuesFile(name: string, values: Record<string, unknown>): string {
  const directory = join(REPO, ".tmp/chart-values");
  mkdirSync(directory, { recursive: true });
  const file = join(directory, `${name.replace(/[^a-z0-9]+/gi, "-")}.yaml`);
  writeFileSync(file, stringifyYaml(values));
  return file;
}

describe.each(HELMS)("$name refuses inconsistent values, naming the values to fix", (helm) => {
  it.each(REFUSED)("$name", ({ name, values, files = [], message }) => {
    expect(renderError(helm, [...files, valuesFile(name, values)], [])).toMatch(message);
  });

  it("lists every problem at once", () => {
    const values = {
      teams: [{ ...defaultTeam, members: ["ghost"] }],
      pushguard: { terminationGracePeriodSeconds: 3 },
    };
    const error = renderError(helm, [valuesFile("two problems", values)], []);
    expect(error).toMatch(/member "ghost"/);
    expect(error).toMatch(/terminationGracePeriodSeconds \(3\)/);
  });
});

describe("rendering", () => {
  const helm = HELMS[HELMS.length - 1] as (typeof HELMS)[number];

  it("renders no ServiceMonitor, PrometheusRule, dashboard, PDB or HPA unless asked", () => {
    const kinds = render(helm).map((object) => object.kind);
    for (const kind of [
      "ServiceMonitor",
      "ScrapeConfig",
      "PrometheusRule",
      "PodDisruptionBudget",
      "HorizontalPodAutoscaler",
      "ClusterRoleBinding",
    ]) {
      expect(kinds).not.toContain(kind);
    }
    expect(findAll(render(helm), "ConfigMap").map((c) => c.metadata.name)).toEqual([FULLNAME]);
  });

  it("derives the config's listeners and upstream from the release", () => {
    const config = pushguardConfig(render(helm));
    expect(config.listen).toEqual({ api: "0.0.0.0:9091", metrics: "0.0.0.0:9092" });
    expect(config.upstream.url).toBe(`http://${PUSHGATEWAY}.monitoring.svc:9091`);
    const service = find(render(helm), "Service");
    expect(service.spec.ports.map((p: { name: string; port: number }) => [p.name, p.port])).toEqual([
      ["http", 9091],
      ["metrics", 9092],
    ]);
  });

  it("maps each static identity to an inline hash or a mounted Secret file", () => {
    const objects = render(helm, ["ci/existing-secret-values.yaml"]);
    expect(pushguardConfig(objects).identities.static).toEqual([
      { name: "default-ci", tokenFile: "/etc/pushguard/secrets/default-ci" },
      { name: "ci@example.com", sha256File: "/etc/pushguard/secrets/ci-example-com" },
      { name: "break-glass", sha256: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae" },
    ]);
    const volume = find(objects, "Deployment").spec.template.spec.volumes.find(
      (v: { name: string }) => v.name === "tokens",
    );
    expect(volume.secret).toEqual({
      secretName: "my-pushguard-tokens",
      defaultMode: 0o440,
      optional: true,
      items: [
        { key: "default-ci", path: "default-ci" },
        { key: "ci-example-com", path: "ci-example-com" },
      ],
    });
  });

  it("generates a token per identity, and keeps given ones", () => {
    const objects = render(helm, [], ["--set", "tokens.values.default-ci=given-token-0123456789"]);
    expect(
      Buffer.from(find(objects, "Secret", `${FULLNAME}-tokens`).data["default-ci"], "base64").toString(),
    ).toBe("given-token-0123456789");
    const generated = find(render(helm), "Secret", `${FULLNAME}-tokens`).data["default-ci"];
    expect(Buffer.from(generated, "base64").toString()).toMatch(/^[A-Za-z0-9]{40}$/);
  });

  it("wires --persistence.file and the volume from pushgateway.persistence.file", () => {
    const objects = render(helm, ["ci/persistence-values.yaml"]);
    expect(pushgatewayArgs(objects)).toEqual(
      expect.arrayContaining([
        "--persistence.file=/var/lib/pushgateway/metrics.db",
        "--persistence.interval=30s",
      ]),
    );
    const statefulSet = find(objects, "StatefulSet", PUSHGATEWAY);
    expect(statefulSet.spec.template.spec.containers[0].volumeMounts).toEqual([
      { name: "data", mountPath: "/var/lib/pushgateway" },
    ]);
    expect(statefulSet.spec.volumeClaimTemplates[0].spec).toEqual({
      accessModes: ["ReadWriteOnce"],
      storageClassName: "",
      resources: { requests: { storage: "1Gi" } },
    });
  });

  it("renders push validation with pushguard's own defaults, and no switch to turn it off", () => {
    const { enabled, ...defaults } = validationSection.parse({});
    expect(enabled).toBe(true);
    expect(pushguardConfig(render(helm)).validation).toEqual(defaults);
    for (const { name, files } of VARIANTS) {
      const validation = pushguardConfig(render(helm, files)).validation;
      expect(validation, name).not.toHaveProperty("enabled");
      expect(configSchema.parse(pushguardConfig(render(helm, files))).validation.enabled, name).toBe(true);
    }
    expect(pushgatewayArgs(render(helm))).not.toContain("--push.enable-utf8-names");
  });

  it("renders tuned validation and a team's own limits and metric names, and UTF-8 names on both sides", () => {
    const objects = render(helm, ["ci/push-validation-values.yaml"]);
    const config = pushguardConfig(objects);
    expect(config.validation).toEqual({
      utf8Names: true,
      limits: {
        seriesPerPush: 2000,
        labelsPerSeries: 32,
        metricNameBytes: 256,
        labelNameBytes: 128,
        labelValueBytes: 512,
        helpBytes: 4096,
      },
      metricNames: { allow: ["*"], deny: ["up", "scrape_*", "pushgateway_*", "node_*"] },
      reservedLabels: ["cluster"],
    });
    expect(config.teams[0].validation).toBeUndefined();
    expect(config.teams[1].validation).toEqual({
      limits: { seriesPerPush: 50000, labelsPerSeries: 64 },
      metricNames: { allow: ["team_a_*"], deny: ["team_a_debug_*"] },
    });
    // As pushguard reads it: the team's limits over the global ones, the rest inherited.
    const team = configSchema.parse(config).teams[1];
    expect(team?.validation.limits).toEqual({ seriesPerPush: 50000, labelsPerSeries: 64 });
    expect(pushgatewayArgs(objects)).toContain("--push.enable-utf8-names");
  });

  it("renders the store index on, pushguard's own quotas and team share, as pushguard reads them", () => {
    const config = pushguardConfig(render(helm));
    expect(config.store).toEqual({
      index: { enabled: true, resyncIntervalMs: 300000 },
      names: { ownership: "claimed", shared: [] },
      quotas: { groupsPerTeam: 10000, seriesPerTeam: 200000 },
    });
    expect(config.overload.maxTeamShare).toBe(0.5);
    // The chart's defaults are pushguard's: the config parses the same without them.
    const { store: _store, ...withoutStore } = config;
    const { maxTeamShare: _share, ...overload } = config.overload;
    const defaults = configSchema.parse({ ...withoutStore, overload });
    const parsed = configSchema.parse(config);
    expect(parsed.store).toEqual(defaults.store);
    expect(parsed.store).toMatchObject(config.store);
    expect(parsed.overload.maxTeamShare).toBe(defaults.overload.maxTeamShare);
    expect(parsed.teams[0]?.quotas).toEqual({});
  });

  it("renders the store index, tuned quotas and a team's own quota (ci/store-index-values.yaml)", () => {
    const objects = render(helm, ["ci/store-index-values.yaml"]);
    const config = pushguardConfig(objects);
    expect(config.store).toEqual({
      index: { enabled: true, resyncIntervalMs: 60000 },
      names: { ownership: "claimed", shared: [] },
      quotas: { groupsPerTeam: 500, seriesPerTeam: 50000 },
    });
    expect(config.overload.maxTeamShare).toBe(0.25);
    expect(config.teams[0].quotas).toBeUndefined();
    expect(config.teams[1].quotas).toEqual({ groups: 2000 });
    const parsed = configSchema.parse(config);
    expect(parsed.store.index.enabled).toBe(true);
    expect(parsed.teams[1]?.quotas).toEqual({ groups: 2000 });
    expect(pushgatewayArgs(objects)).toContain("--push.disable-consistency-check");
    const set = pushguardConfig(
      render(helm, [], ["--set", "pushguard.config.store.quotas.seriesPerTeam=1000"]),
    );
    expect(set.store).toEqual({
      index: { enabled: true, resyncIntervalMs: 300000 },
      names: { ownership: "claimed", shared: [] },
      quotas: { groupsPerTeam: 10000, seriesPerTeam: 1000 },
    });
  });

  it("renders metric-name ownership and a team's own names, as pushguard's parser reads them", () => {
    const values = {
      identities: {
        static: [
          { name: "default-ci", sha256: "a".repeat(64) },
          { name: "team-b-ci", sha256: "b".repeat(64) },
        ],
      },
      tests: { enabled: false },
      teams: [
        defaultTeam,
        {
          name: "team-b",
          members: ["team-b-ci"],
          jobs: ["team-b-*"],
          actions: ["push"],
          validation: { metricNames: { own: ["team_b_*"] } },
        },
      ],
      pushguard: { config: { store: { names: { ownership: "first", shared: ["job_duration_seconds"] } } } },
    };
    const config = pushguardConfig(render(helm, [valuesFile("metric-name ownership", values)]));
    expect(config.store.names).toEqual({ ownership: "first", shared: ["job_duration_seconds"] });
    expect(config.teams[1].validation).toEqual({ metricNames: { own: ["team_b_*"] } });
    // pushguard's own parser (schema and identities) accepts the rendered file.
    const parsed = parseConfig(stringifyYaml(config), "rendered pushguard.yaml", {});
    expect(parsed.store.names).toEqual({ ownership: "first", shared: ["job_duration_seconds"] });
    expect(parsed.teams[1]?.validation.metricNames.own).toEqual(["team_b_*"]);
    expect(parsed.teams[0]?.validation.metricNames.own).toEqual([]);
  });

  const redisEgress = {
    networkPolicy: {
      pushguard: {
        egress: {
          redis: [{ to: [{ podSelector: { matchLabels: { app: "redis" } } }], ports: [{ port: 6379 }] }],
        },
      },
    },
  };
  const sharedRedis = {
    ...redisEgress,
    coordination: { redis: { url: "redis://redis:6379/2", passwordSecret: { name: "redis", key: "pw" } } },
  };
  /** Whether the pushgateway drops its consistency check: only where pushguard's store index stands in for it. */
  const CONSISTENCY: Array<[string, Record<string, unknown>, boolean, RegExp | null]> = [
    ["one pushguard replica with the index (the default)", {}, true, null],
    [
      "the index off",
      { pushguard: { config: { store: { index: { enabled: false } } } } },
      false,
      /NOTE: the pushgateway keeps its consistency check .*\n?.*pushguard\.config\.store\.index\.enabled is false/,
    ],
    [
      "two pushguard replicas without a shared Redis",
      { pushguard: { replicaCount: 2 } },
      false,
      /several pushguard replicas .*, whose shared decisions do not yet order writes to one group sent through two of them\.\nRun one pushguard replica for the fast mode/,
    ],
    [
      "autoscaled pushguard without a shared Redis",
      { pushguard: { autoscaling: { enabled: true } } },
      false,
      /NOTE: the pushgateway keeps its consistency check/,
    ],
    [
      "two pushguard replicas sharing the index's decisions in Redis (writes to one group not yet ordered)",
      { pushguard: { replicaCount: 2 }, ...sharedRedis },
      false,
      /NOTE: the pushgateway keeps its consistency check/,
    ],
    [
      "two pushguard replicas without Redis, forced",
      { pushguard: { replicaCount: 2 }, pushgateway: { forceDisableConsistencyCheck: true } },
      true,
      /WARNING: pushgateway\.forceDisableConsistencyCheck: the pushgateway runs without its consistency\ncheck although several pushguard replicas/,
    ],
    ["the check asked for", { pushgateway: { disableConsistencyCheck: false } }, false, null],
  ];

  it.each(CONSISTENCY)("consistency check with %s: dropped %s", (name, values, dropped, note) => {
    const file = valuesFile(`consistency ${name}`, values);
    expect(pushgatewayArgs(render(helm, [file])).includes("--push.disable-consistency-check")).toBe(dropped);
    const text = notes([file]);
    if (note) expect(text).toMatch(note);
    else expect(text).not.toMatch(/consistency check/);
  });

  it("shares the store index's decisions through coordination.redis, wired like replication's and the janitor's", () => {
    const objects = render(helm, [
      valuesFile("index redis", { pushguard: { replicaCount: 2 }, ...sharedRedis }),
    ]);
    const config = pushguardConfig(objects);
    expect(config.store.index.redis).toEqual({
      url: "redis://redis:6379/2",
      keyPrefix: `pushguard:${NAMESPACE}:${FULLNAME}:store:`,
      passwordFile: "/etc/pushguard/coordination-redis/password",
    });
    expect(configSchema.parse(config).store.index.redis).toMatchObject({ timeoutMs: 200 });
    const spec = find(objects, "Deployment").spec.template.spec;
    expect(
      spec.volumes.find((v: { name: string }) => v.name === "coordination-redis-password").secret,
    ).toEqual({
      secretName: "redis",
      defaultMode: 0o440,
      optional: true,
      items: [{ key: "pw", path: "password" }],
    });
    expect(
      find(objects, "NetworkPolicy", FULLNAME).spec.egress.map((rule: Loose) => rule.ports[0].port),
    ).toContain(6379);
    const prefixed = pushguardConfig(
      render(helm, [
        valuesFile("index redis prefix", {
          coordination: { redis: { url: "redis://r:6379", keyPrefix: "pg:" } },
          ...redisEgress,
        }),
      ]),
    );
    expect(prefixed.store.index.redis).toEqual({ url: "redis://r:6379", keyPrefix: "pg:store:" });
    const off = pushguardConfig(
      render(helm, [
        valuesFile("index off redis", {
          pushguard: { config: { store: { index: { enabled: false } } } },
          ...sharedRedis,
        }),
      ]),
    );
    expect(off.store.index.redis).toBeUndefined();
  });

  it("opens the pushgateway's admin API only for a team that may wipe", () => {
    expect(pushgatewayArgs(render(helm))).not.toContain("--web.enable-admin-api");
    expect(pushgatewayArgs(render(helm, ["ci/wipe-values.yaml"]))).toContain("--web.enable-admin-api");
  });

  it("sizes the grace period from the drain time", () => {
    const spec = (flags: string[]) => find(render(helm, [], flags), "Deployment").spec.template.spec;
    expect(spec([]).terminationGracePeriodSeconds).toBe(5 + 10 + 5);
    expect(
      spec(["--set", "pushguard.config.server.shutdownGraceMs=30500"]).terminationGracePeriodSeconds,
    ).toBe(5 + 31 + 5);
    expect(spec(["--set", "pushguard.preStopDelaySeconds=0"]).lifecycle).toBeUndefined();
  });

  it("points in-cluster Kubernetes issuers at the API server with pushguard's own token", () => {
    const identities = pushguardConfig(render(helm, ["ci/identity-providers-values.yaml"])).identities;
    expect(identities.kubernetes).toEqual([
      {
        name: "cluster",
        audiences: ["pushguard"],
        apiServer: "https://kubernetes.default.svc",
        caFile: "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
        tokenFile: "/var/run/secrets/kubernetes.io/serviceaccount/token",
      },
    ]);
    expect(identities.oidc.map((issuer: { name: string }) => issuer.name)).toEqual(["company-idp", "ci"]);
    const outOfCluster = render(
      helm,
      ["ci/identity-providers-values.yaml"],
      ["--set", "identities.kubernetes[0].jwksUri=https://oidc.corp.internal/keys"],
    );
    expect(pushguardConfig(outOfCluster).identities.kubernetes[0].tokenFile).toBeUndefined();
    expect(find(outOfCluster, "Deployment").spec.template.spec.automountServiceAccountToken).toBe(false);
    expect(findAll(outOfCluster, "ClusterRoleBinding")).toEqual([]);
  });

  it("renders rateLimit only when enabled, with the Redis password as a mounted file", () => {
    expect(pushguardConfig(render(helm, PROFILES["small-prod"])).rateLimit).toBeUndefined();
    const objects = render(helm, ["ci/ratelimit-redis-values.yaml"]);
    const rateLimit = pushguardConfig(objects).rateLimit;
    expect(rateLimit.redis).toEqual({
      url: "rediss://redis-master.redis.svc:6379/0",
      keyPrefix: "pg:",
      timeoutMs: 100,
      passwordFile: "/etc/pushguard/redis/password",
    });
    expect(rateLimit.enabled).toBeUndefined();
    const spec = find(objects, "Deployment").spec.template.spec;
    expect(spec.volumes.find((v: { name: string }) => v.name === "redis-password").secret).toEqual({
      secretName: "redis",
      defaultMode: 0o440,
      optional: true,
      items: [{ key: "redis-password", path: "password" }],
    });
    expect(spec.containers[0].volumeMounts).toContainEqual({
      name: "redis-password",
      mountPath: "/etc/pushguard/redis",
      readOnly: true,
    });
  });

  it("keeps one pushgateway behind its Service, scraped by a ServiceMonitor that skips the headless Service", () => {
    const objects = render(helm, ["ci/monitoring-values.yaml"]);
    expect(find(objects, "StatefulSet", PUSHGATEWAY).spec.replicas).toBe(1);
    expect(find(objects, "Service", PUSHGATEWAY).spec.type).toBe("ClusterIP");
    const headless = find(objects, "Service", PUSHGATEWAY_HEADLESS);
    expect(headless.metadata.labels?.["prometheus.io/service-monitor"]).toBe("false");
    const selector = find(objects, "ServiceMonitor", PUSHGATEWAY).spec.selector;
    expect(selector.matchExpressions).toEqual([
      { key: "prometheus.io/service-monitor", operator: "NotIn", values: ["false"] },
    ]);
    expect(selects(selector, headless.metadata.labels ?? {})).toBe(false);
    expect(selects(selector, find(objects, "Service", PUSHGATEWAY).metadata.labels ?? {})).toBe(true);
    expect(findAll(objects, "PodDisruptionBudget")).toEqual([]);
    expect(findAll(objects, "ScrapeConfig")).toEqual([]);
  });

  it("renders one upstream url per pushgateway replica, never url with them, and replication settings", () => {
    const objects = render(helm, ["ci/ha-pushgateway-values.yaml"]);
    const upstream = pushguardConfig(objects).upstream;
    expect(upstream).toEqual({
      urls: [pushgatewayPodUrl(0), pushgatewayPodUrl(1)],
      timeoutMs: 10000,
      connectTimeoutMs: 2000,
      connections: 64,
      replication: {
        writePolicy: "majority",
        healthCheckIntervalMs: 2000,
        bootstrapWaitMs: 5000,
        probeTimeoutMs: 2000,
        stragglerMs: 1000,
        verifyIntervalMs: 300000,
        redis: { url: "redis://redis.redis.svc:6379/1", keyPrefix: "pg-ci:replication:" },
      },
    });
    const volumes = find(objects, "Deployment").spec.template.spec.volumes.map(
      (v: { name: string }) => v.name,
    );
    expect(volumes).not.toContain("coordination-redis-password");
    // two pushguard replicas: the pushgateway keeps its check
    expect(pushgatewayArgs(objects)).not.toContain("--push.disable-consistency-check");
    expect(findAll(objects, "Service").map((service) => service.metadata.name)).toEqual([
      PUSHGATEWAY_HEADLESS,
      FULLNAME,
    ]);
  });

  it("renders the janitor only when enabled, with its lease in Redis when there is one, and team TTLs", () => {
    expect(pushguardConfig(render(helm)).janitor).toBeUndefined();
    const config = pushguardConfig(render(helm, ["ci/ha-pushgateway-values.yaml"]));
    expect(config.janitor).toEqual({
      enabled: true,
      intervalMs: 30000,
      dryRun: true,
      defaultTtl: "7d",
      lease: {
        store: "redis",
        redis: { url: "redis://redis.redis.svc:6379/1", keyPrefix: "pg-ci:janitor:" },
      },
    });
    expect(config.teams[0].ttl).toBe("36h");
    const alone = pushguardConfig(
      render(helm, [], ["--set", "janitor.enabled=true", "--set", "janitor.defaultTtl=1h30m"]),
    );
    expect(alone.janitor).toEqual({ enabled: true, intervalMs: 60000, dryRun: false, defaultTtl: "1h30m" });
    expect(alone.upstream.replication).toBeUndefined();
  });

  it("scrapes through pushguard without credentials when anonymous callers may read", () => {
    const scrape = find(render(helm, ["ci/ha-pushgateway-values.yaml"]), "ScrapeConfig", PUSHGATEWAY);
    expect(scrape.spec.authorization).toBeUndefined();
    expect(scrape.spec.honorLabels).toBe(true);
  });

  it("alerts on out-of-sync replicas and a failing janitor only when they exist", () => {
    const alerts = (files: string[]) =>
      find(render(helm, files), "PrometheusRule").spec.groups[0].rules.map(
        (rule: { alert: string }) => rule.alert,
      );
    expect(alerts(["ci/ha-pushgateway-values.yaml"])).toEqual(
      expect.arrayContaining(["PushgatewayReplicaOutOfSync", "PushguardJanitorFailing", "PushgatewayDown"]),
    );
    expect(alerts(["ci/monitoring-values.yaml"])).not.toContain("PushgatewayReplicaOutOfSync");
    expect(alerts(["ci/monitoring-values.yaml"])).not.toContain("PushguardJanitorFailing");
    expect(alerts(["ci/monitoring-values.yaml"])).toContain("PushguardTeamNearQuota");
    expect(
      alerts([
        "ci/monitoring-values.yaml",
        valuesFile("index off", { pushguard: { config: { store: { index: { enabled: false } } } } }),
      ]),
    ).not.toContain("PushguardTeamNearQuota");
  });

  it("labels the dashboard for the Grafana sidecar", () => {
    const dashboard = find(render(helm, ["ci/monitoring-values.yaml"]), "ConfigMap", `${FULLNAME}-dashboard`);
    expect(dashboard.metadata.namespace).toBe("grafana");
    expect(dashboard.metadata.labels?.grafana_dashboard).toBe("1");
    expect(JSON.parse(dashboard.data["pushguard.json"]).uid).toBe("pushguard");
  });
});

/** NOTES.txt, as `helm install` prints it (helm 4 renders it offline; helm 3 wants a cluster). */
function notes(files: readonly string[]): string {
  const helm = HELMS[1];
  const args = ["install", "pg", CHART, "--namespace", "monitoring", "--dry-run=client"];
  const result = runHelm(helm, [...args, ...files.flatMap((file) => ["-f", resolve(CHART, file)])]);
  expect(result.status, result.stderr).toBe(0);
  return result.stdout.slice(result.stdout.indexOf("NOTES:"));
}

/** RFC 7386 JSON merge patch, as `kubectl run --overrides` applies it by default: lists are replaced. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return patch;
  const result: Record<string, unknown> =
    target !== null && typeof target === "object" && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

/** The Pod the NOTES' `kubectl run ... --overrides='...'` example creates. */
function notesPushPod(text: string): Loose {
  const command =
    /kubectl -n (\S+) run (\S+) --rm -i --restart=Never --image=(\S+) \\\n\s+--labels=(\S+)=true --overrides='([^']*)'/.exec(
      text,
    );
  if (!command) throw new Error(`no kubectl run example in:\n${text}`);
  const [, namespace, name, image, label, overrides] = command as unknown as string[];
  const generated = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace, labels: { [label as string]: "true" } },
    spec: { restartPolicy: "Never", containers: [{ name, image, stdin: true, stdinOnce: true }] },
  };
  return mergePatch(generated, JSON.parse(overrides as string));
}

describe("NOTES.txt", () => {
  it("tells a default install how to push, and that its groups are not persisted", () => {
    const text = notes(PROFILES.default);
    expect(text).toContain("http://pg-pushguard.monitoring.svc:9091/metrics/job/<job>");
    expect(text).toContain(
      "kubectl -n monitoring get secret pg-pushguard-tokens -o jsonpath='{.data.default-ci}' | base64 -d",
    );
    expect(text).toContain("--labels=pg-pushguard-client=true");
    expect(text).toContain("honor_labels: true");
    expect(text).toContain("WARNING: pushgateway.persistence.enabled is false");
  });

  it.each([
    ["default", PROFILES.default, `${FULLNAME}-tokens`, "default-ci"],
    ["secured", PROFILES.secured, "pushguard-tokens", "team-a-ci"],
  ] as const)(
    "profile %s: its kubectl run example mounts the token from the Secret and passes the restricted Pod Security Standard",
    (_profile, files, secretName, key) => {
      const text = notes(files);
      expect(text).not.toContain("--env");
      const pod = notesPushPod(text);
      new Pod(pod).validate();
      const [container, ...others] = pod.spec.containers;
      expect(others).toEqual([]);
      expect(container.env).toBeUndefined();
      expect(pod.spec.automountServiceAccountToken).toBe(false);
      expect(pod.spec.securityContext).toMatchObject({
        runAsNonRoot: true,
        seccompProfile: { type: "RuntimeDefault" },
      });
      expect(pod.spec.securityContext.runAsUser).toBeGreaterThan(0);
      expect(container.securityContext).toMatchObject({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ["ALL"] },
      });
      // The same image and user the helm test pod runs curl as.
      const testPod = find(render(HELMS[1], files), "Pod", `${FULLNAME}-push-test`).spec;
      expect(container.image).toBe(testPod.containers[0].image);
      expect(pod.spec.securityContext.runAsUser).toBe(testPod.securityContext.runAsUser);
      expect(pod.spec.volumes).toContainEqual({
        name: "token",
        secret: { secretName, items: [{ key, path: "token" }] },
      });
      expect(container.command.join(" ")).toContain("$(cat /token/token)");
      // The pod is one the NetworkPolicy lets push.
      const objects = render(HELMS[1], files);
      const api = {
        namespace: NAMESPACE,
        labels: find(objects, "Deployment").spec.template.metadata.labels,
        port: 9091,
        portName: "http",
      };
      expect(admits(objects, api, { namespace: pod.metadata.namespace, labels: pod.metadata.labels })).toBe(
        true,
      );
    },
  );

  it("tells the HA profile how its replicas are written and scraped", () => {
    const text = notes(PROFILES.ha);
    expect(text).toContain("The pushgateway runs 3 replicas that pushguard keeps identical");
    expect(text).toContain("ScrapeConfig pg-pushguard-pushgateway");
    expect(text).toContain("as identity prometheus-scraper");
    expect(text).not.toContain("WARNING");
  });

  it("shows the secured profile's teams and where its tokens live", () => {
    const text = notes(PROFILES.secured);
    expect(text).toContain(
      'batch: push, delete on jobs {namespace}-* (members: {"issuer":"cluster","namespace":"batch-*"})',
    );
    expect(text).toContain("every pod of namespaces team-a, team-b, batch-nightly, ci-runners");
    expect(text).toContain("Tokens come from Secret pushguard-tokens");
    expect(text).not.toContain("WARNING");
  });
});

describe("pushguard's config schema accepts the config the chart renders", () => {
  const helm = HELMS[HELMS.length - 1] as (typeof HELMS)[number];

  it.each(VARIANTS)("$name", ({ files }) => {
    const result = configSchema.safeParse(pushguardConfig(render(helm, files)));
    const issues = result.success ? [] : result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
    expect(issues).toEqual([]);
  });
});

/** Every series name pushguard exports: histograms add `_bucket`, `_sum` and `_count`, summaries `_sum` and `_count`. */
const EXPORTED = new Set(
  new Metrics().registry.getMetricsAsArray().flatMap((metric) => {
    const { name } = metric as unknown as { name: string };
    if (metric instanceof Histogram) return [name, `${name}_bucket`, `${name}_sum`, `${name}_count`];
    if (metric instanceof Summary) return [name, `${name}_sum`, `${name}_count`];
    return [name];
  }),
);
const pushguardNames = (text: string) =>
  [...text.matchAll(/\bpushguard_[a-z0-9_]+\b/g)].map((match) => match[0]);

interface DashboardTarget {
  refId: string;
  expr: string;
  datasource?: { type: string; uid: string };
}
interface DashboardPanel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type: string; uid: string };
  targets?: DashboardTarget[];
  panels?: DashboardPanel[];
}
const dashboard = JSON.parse(readFileSync(join(CHART, "dashboards/pushguard.json"), "utf8")) as {
  templating: { list: Array<{ name: string }> };
  panels: DashboardPanel[];
};
/** Grafana's data source variable, as every panel and target names it. */
const DATASOURCE = `\${datasource}`;
const exprs = (panels: DashboardPanel[]) =>
  panels.flatMap((panel) => (panel.targets ?? []).map((t) => t.expr));
/** The dashboard's panels under each row title, in layout order ("" for those above the first row). */
const rows = () => {
  const grouped = new Map<string, DashboardPanel[]>([["", []]]);
  let row = "";
  for (const panel of [...dashboard.panels].sort(
    (a, b) => a.gridPos.y - b.gridPos.y || a.gridPos.x - b.gridPos.x,
  )) {
    if (panel.type === "row") {
      row = panel.title;
      grouped.set(row, [...(panel.panels ?? [])]);
    } else grouped.get(row)?.push(panel);
  }
  return grouped;
};

describe("alerts and dashboard query metrics that exist", () => {
  it("the registry exports the replica and janitor metrics the checks below rely on", () => {
    expect(EXPORTED).toContain("pushguard_upstream_replica_in_sync");
    expect(EXPORTED).toContain("pushguard_janitor_leader");
    expect(EXPORTED).toContain("pushguard_request_duration_seconds_bucket");
  });

  it("chart/dashboards/pushguard.json: every expr names only metrics pushguard registers", () => {
    const referenced = new Set(pushguardNames(exprs(dashboard.panels).join("\n")));
    expect(referenced.size).toBeGreaterThan(10);
    expect([...referenced].filter((name) => !EXPORTED.has(name))).toEqual([]);
  });

  it("chart/templates/prometheusrule.yaml", () => {
    const text = readFileSync(join(CHART, "templates/prometheusrule.yaml"), "utf8");
    const missing = [...new Set(pushguardNames(text))].filter(
      (name) => name !== "pushguard_helm_test" && !EXPORTED.has(name),
    );
    expect(missing).toEqual([]);
  });
});

describe("the Grafana dashboard", () => {
  it("has unique panel ids and a layout without overlaps, 24 columns wide", () => {
    const all = dashboard.panels.flatMap((panel) => [panel, ...(panel.panels ?? [])]);
    expect(new Set(all.map((panel) => panel.id)).size).toBe(all.length);
    const taken = new Map<string, string>();
    const overlaps: string[] = [];
    for (const { title, gridPos } of all) {
      expect(gridPos.x + gridPos.w, title).toBeLessThanOrEqual(24);
      for (let x = gridPos.x; x < gridPos.x + gridPos.w; x++) {
        for (let y = gridPos.y; y < gridPos.y + gridPos.h; y++) {
          const other = taken.get(`${x},${y}`);
          if (other !== undefined) overlaps.push(`${title} overlaps ${other}`);
          taken.set(`${x},${y}`, title);
        }
      }
    }
    expect([...new Set(overlaps)]).toEqual([]);
  });

  it("queries the selected data source, namespace and release everywhere", () => {
    expect(dashboard.templating.list.map((variable) => variable.name)).toEqual(
      expect.arrayContaining(["datasource", "namespace", "job"]),
    );
    for (const panel of dashboard.panels.filter((p) => p.type !== "row")) {
      expect(panel.datasource?.uid, panel.title).toBe(DATASOURCE);
      for (const target of panel.targets ?? []) {
        expect(target.datasource?.uid, `${panel.title} ${target.refId}`).toBe(DATASOURCE);
        const selectors = [...target.expr.matchAll(/\bpushguard_[a-z0-9_]+(\{[^}]*\})?/g)];
        for (const [series, selector] of selectors) {
          expect(selector, `${panel.title}: ${series}`).toContain('namespace="$namespace", job="$job"');
        }
      }
    }
  });

  it("has a Replication row charting every replica metric", () => {
    const panels = rows().get("Replication") ?? [];
    expect(panels.map((panel) => panel.title)).toEqual([
      "Replica state",
      "Replica demotions and repairs",
      "Groups copied by repair",
      "Repair duration",
    ]);
    const used = new Set(pushguardNames(exprs(panels).join("\n")));
    const replicaMetrics = [...EXPORTED].filter(
      (name) => /^pushguard_upstream_replica(tion)?_/.test(name) && !/_(sum|count)$/.test(name),
    );
    expect(replicaMetrics.filter((name) => !used.has(name) && !used.has(`${name}_bucket`))).toEqual([]);
    expect(replicaMetrics.length).toBeGreaterThanOrEqual(7);
  });

  it("has a Stale-group expiry row charting every janitor metric", () => {
    const panels = rows().get("Stale-group expiry") ?? [];
    expect(panels.map((panel) => panel.title)).toEqual([
      "Groups expired per team",
      "Janitor runs and errors",
      "Oldest group age per team",
      "Janitor lease holder",
      "Since last janitor run",
    ]);
    const used = new Set(pushguardNames(exprs(panels).join("\n")));
    const janitorMetrics = [...EXPORTED].filter((name) => name.startsWith("pushguard_janitor_"));
    expect(janitorMetrics.filter((name) => !used.has(name))).toEqual([]);
    expect(janitorMetrics.length).toBeGreaterThanOrEqual(6);
  });

  it("charts pushes refused for their content, by team and rule, below the denial and 429 panels", () => {
    const top = rows().get("") ?? [];
    const panel = (title: string) => {
      const found = top.find((candidate) => candidate.title === title);
      if (!found) throw new Error(`no panel ${title}`);
      return found;
    };
    const refused = panel("Pushes refused by team and rule");
    expect(exprs([refused])).toEqual([
      'sum by (team, rule) (rate(pushguard_push_rejections_total{namespace="$namespace", job="$job"}[$__rate_interval]))',
    ]);
    for (const neighbour of [panel("Denials by reason"), panel("Rate limited (429) by team")]) {
      expect(refused.gridPos.y).toBe(neighbour.gridPos.y + neighbour.gridPos.h);
    }
  });

  it("charts each team's stored groups and series against its quota, above the rows", () => {
    const top = rows().get("") ?? [];
    const panel = top.find((candidate) => candidate.title === "Team storage vs quota");
    if (!panel) throw new Error("no panel Team storage vs quota");
    const selector = '{namespace="$namespace", job="$job"}';
    expect(exprs([panel])).toEqual([
      `max by (team) (pushguard_team_series${selector}) / max by (team) (pushguard_team_series_quota${selector})`,
      `max by (team) (pushguard_team_groups${selector}) / max by (team) (pushguard_team_groups_quota${selector})`,
    ]);
    const used = new Set(pushguardNames(exprs([panel]).join("\n")));
    expect([...EXPORTED].filter((name) => name.startsWith("pushguard_team_") && !used.has(name))).toEqual([]);
    const replication = dashboard.panels.find((candidate) => candidate.title === "Replication");
    expect(panel.gridPos.y + panel.gridPos.h).toBe(replication?.gridPos.y);
  });

  it("keeps the rows in order below the existing panels", () => {
    expect([...rows().keys()]).toEqual(["", "Replication", "Stale-group expiry"]);
    expect((rows().get("") ?? []).map((panel) => panel.title)).toContain("Pushes per team");
  });
});
