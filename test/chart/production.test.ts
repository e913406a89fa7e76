import { createHash } from "node:crypto";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { FakeApiServer } from "./fake-api-server.js";
import {
  CHART,
  find,
  findAll,
  HELMS,
  type K8sObject,
  type Loose,
  NAMESPACE,
  PROFILE_NAMES,
  PROFILES,
  parseManifests,
  podSpecs,
  RELEASE,
  render,
  runHelm,
  runHelmAsync,
  siteValues,
} from "./helm.js";
import { schemaProblems } from "./kubernetes-schemas.js";

/**
 * What stood between the secured profile and a production install (issue 17): the chart as a
 * subchart, any release name Helm accepts, monitors Prometheus selects, upgrades that leave the
 * pushgateway running, and tokens that do not roll the pods after the first install.
 */

const work = mkdtempSync(join(tmpdir(), "pushguard-production-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The profiles' values files merged as helm merges them (maps deeply, lists replaced). */
function mergedValues(files: readonly string[]): Record<string, unknown> {
  const merge = (target: Loose, source: Loose): Loose => {
    if (source === null || typeof source !== "object" || Array.isArray(source)) return source;
    const out = target !== null && typeof target === "object" && !Array.isArray(target) ? { ...target } : {};
    for (const [key, value] of Object.entries(source)) out[key] = merge(out[key], value);
    return out;
  };
  return files.reduce(
    (values, file) =>
      merge(values, parseYaml(readFileSync(file.startsWith("/") ? file : join(CHART, file), "utf8"))),
    {},
  );
}

/** Names Kubernetes accepts: DNS subdomains everywhere, DNS labels for Services, 52 for a StatefulSet. */
function nameProblems(objects: readonly K8sObject[]): string[] {
  const subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
  const label = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
  const labelValue = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
  const labelKey =
    /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
  const problems: string[] = [];
  const labels = (where: string, map: Record<string, string> | undefined) => {
    for (const [key, value] of Object.entries(map ?? {})) {
      const name = key.split("/").pop() as string;
      if (!labelKey.test(key) || name.length > 63) problems.push(`${where}: label key ${key}`);
      if (!labelValue.test(String(value)) || String(value).length > 63)
        problems.push(`${where}: label ${key}=${value}`);
    }
  };
  for (const object of objects) {
    const { name } = object.metadata;
    const where = `${object.kind}/${name}`;
    if (!subdomain.test(name) || name.length > 253) problems.push(`${where}: not a DNS subdomain`);
    if (object.kind === "Service" && (!label.test(name) || name.length > 63))
      problems.push(`${where}: a Service name must be a DNS label of at most 63 characters`);
    // Its pods carry `controller-revision-hash: <name>-<10 characters>`, a label value.
    if (object.kind === "StatefulSet" && name.length > 52) problems.push(`${where}: longer than 52`);
    labels(where, object.metadata.labels);
    const template = object.spec?.template?.metadata;
    if (template) labels(`${where} pod template`, template.labels);
    for (const claim of object.spec?.volumeClaimTemplates ?? [])
      labels(`${where} claim`, claim.metadata.labels);
    for (const peer of object.spec?.ingress?.flatMap((rule: Loose) => rule.from ?? []) ?? [])
      labels(`${where} peer`, peer.podSelector?.matchLabels);
  }
  return problems;
}

describe("the secured profile as a subchart of a kube-prometheus-stack-style umbrella chart", () => {
  const umbrella = join(work, "umbrella");
  const umbrellaRelease = "kube-prometheus-stack";
  beforeAll(() => {
    cpSync(CHART, join(umbrella, "charts/pushguard"), { recursive: true });
    const chart = parseYaml(readFileSync(join(CHART, "Chart.yaml"), "utf8"));
    writeFileSync(
      join(umbrella, "Chart.yaml"),
      stringifyYaml({
        apiVersion: "v2",
        name: "platform-monitoring",
        version: "1.0.0",
        dependencies: [{ name: "pushguard", version: chart.version }],
      }),
    );
    // Umbrella values as kube-prometheus-stack's: its own `global` keys, and the subchart's under its name.
    writeFileSync(
      join(umbrella, "values.yaml"),
      stringifyYaml({
        global: {
          rbac: { create: true, createAggregateClusterRoles: false },
          imageRegistry: "",
          imagePullSecrets: [],
        },
        pushguard: mergedValues(PROFILES.secured),
      }),
    );
  });

  const renderUmbrella = (helm: (typeof HELMS)[number], flags: string[] = []) => {
    const result = runHelm(helm, ["template", umbrellaRelease, umbrella, "--namespace", NAMESPACE, ...flags]);
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    return parseManifests(result.stdout);
  };

  describe.each(HELMS)("$name", (helm) => {
    it("renders valid objects: Helm's `global` is accepted", () => {
      const objects = renderUmbrella(helm);
      expect(objects.map((object) => object.kind)).toEqual(
        expect.arrayContaining(["Deployment", "StatefulSet", "ServiceMonitor", "PrometheusRule"]),
      );
      for (const object of objects) {
        expect(schemaProblems(object), `${object.kind}/${object.metadata.name}`).toEqual([]);
      }
      expect(nameProblems(objects)).toEqual([]);
    });

    it("labels its monitors and rules with the `release` kube-prometheus-stack's Prometheus selects", () => {
      const objects = renderUmbrella(helm);
      const selected = [...findAll(objects, "ServiceMonitor"), ...findAll(objects, "PrometheusRule")];
      expect(selected).toHaveLength(3);
      for (const object of selected) {
        expect(object.metadata.labels?.release, `${object.kind}/${object.metadata.name}`).toBe(
          umbrellaRelease,
        );
      }
      // An umbrella can also say it as a template, whatever its release is called.
      const templated = renderUmbrella(helm, [
        "--set-json",
        'pushguard.serviceMonitor.additionalLabels={"release":"{{ .Release.Name }}","team":"platform"}',
        "--set-json",
        'pushguard.prometheusRule.additionalLabels={"release":"{{ .Release.Name }}"}',
      ]);
      for (const object of [
        ...findAll(templated, "ServiceMonitor"),
        ...findAll(templated, "PrometheusRule"),
      ]) {
        expect(object.metadata.labels?.release).toBe(umbrellaRelease);
      }
      expect(findAll(templated, "ServiceMonitor").map((monitor) => monitor.metadata.labels?.team)).toEqual([
        "platform",
        "platform",
      ]);
    });

    it("takes the umbrella's global image registry and pull Secrets", () => {
      const objects = renderUmbrella(helm, [
        "--set",
        "global.imageRegistry=mirror.corp.internal",
        "--set",
        "global.imagePullSecrets[0].name=mirror-pull",
      ]);
      for (const { owner, spec } of podSpecs(objects)) {
        for (const container of spec.containers)
          expect(container.image, owner).toMatch(/^"?mirror\.corp\.internal\//);
        expect(spec.imagePullSecrets, owner).toEqual([{ name: "mirror-pull" }]);
      }
    });
  });
});

describe("any release name Helm accepts", () => {
  const helm = HELMS[1];
  const longest = "a-53-character-release-name-of-the-platform-team-prod";
  const names = [
    longest,
    "pushguard-a-53-character-release-name-of-the-platform",
    "a.release.name.with.dots.that.helm.accepts.as-well.x",
    "abcdefghij-abcdefghij-abcdefghij-prod",
  ];
  const variants = [
    PROFILES.secured,
    PROFILES.ha,
    ["ci/exposure-values.yaml"],
    ["ci/conventions-values.yaml"],
  ];

  const fullnameOf = (objects: readonly K8sObject[]) => findAll(objects, "Deployment")[0]?.metadata.name;

  it("is 53 characters at most: helm refuses longer ones itself", () => {
    expect(longest).toHaveLength(53);
    const refused = runHelm(helm, ["template", `${longest}x`, CHART]);
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toMatch(/must not be longer than 53/);
  });

  it.each(names.flatMap((name) => variants.map((files) => [name, files] as const)))(
    "%s with %o: every name and label is one Kubernetes accepts",
    (name, files) => {
      const objects = render(helm, files, [], name);
      expect(nameProblems(objects)).toEqual([]);
      for (const object of objects) {
        expect(schemaProblems(object), `${object.kind}/${object.metadata.name}`).toEqual([]);
      }
      // pushguard's upstream is the pushgateway's Service (or pods) by the names rendered.
      const config = parseYaml(find(objects, "ConfigMap", fullnameOf(objects)).data["config.yaml"]);
      const services = findAll(objects, "Service").map((service) => service.metadata.name);
      for (const url of config.upstream.urls ?? [config.upstream.url]) {
        const host = new URL(url).hostname.split(".");
        expect(services).toContain(config.upstream.urls ? host[1] : host[0]);
      }
    },
  );

  it("never gives two long release names the same objects", () => {
    const fullname = (release: string) =>
      findAll(render(helm, [], [], release), "Deployment")[0]?.metadata.name;
    const a = fullname("team-metrics-gateway-production-eu-central-1-blue");
    const b = fullname("team-metrics-gateway-production-eu-central-1-green");
    expect(a).not.toBe(b);
    expect(a?.length).toBeLessThanOrEqual(40);
    expect(fullname("short")).toBe("short-pushguard");
  });
});

describe("an upgrade of the chart, or of pushguard alone, leaves the pushgateway running", () => {
  const upgraded = join(work, "upgraded-chart");
  beforeAll(() => {
    cpSync(CHART, upgraded, { recursive: true });
    const chart = parseYaml(readFileSync(join(CHART, "Chart.yaml"), "utf8"));
    writeFileSync(
      join(upgraded, "Chart.yaml"),
      stringifyYaml({ ...chart, version: "9.8.7", appVersion: "9.8.7" }),
    );
  });

  const renderChart = (chart: string, files: readonly string[]) => {
    const args = ["template", RELEASE, chart, "--namespace", NAMESPACE];
    const result = runHelm(HELMS[1], [
      ...args,
      ...files.flatMap((file) => ["-f", file.startsWith("/") ? file : join(CHART, file)]),
    ]);
    expect(result.status, result.stderr).toBe(0);
    return parseManifests(result.stdout);
  };
  const statefulSet = (objects: readonly K8sObject[]) => findAll(objects, "StatefulSet")[0] as K8sObject;

  it.each(PROFILE_NAMES)("profile %s: same pushgateway pod template and StatefulSet spec", (profile) => {
    const before = statefulSet(renderChart(CHART, PROFILES[profile]));
    const after = renderChart(upgraded, PROFILES[profile]);
    expect(statefulSet(after).spec).toEqual(before.spec);
    // The pushguard pods do roll: their image is the new version.
    const image = find(after, "Deployment").spec.template.spec.containers[0].image;
    expect(image).toContain(":9.8.7");
    expect(find(after, "Deployment").spec.template.metadata.labels["app.kubernetes.io/version"]).toBe(
      "9.8.7",
    );
  });

  it("labels the pushgateway's pods with the pushgateway's version, and no chart version", () => {
    const labels = statefulSet(render(HELMS[1])).spec.template.metadata.labels;
    expect(labels["app.kubernetes.io/version"]).toBe("v1.11.3");
    expect(labels["helm.sh/chart"]).toBeUndefined();
    const pushguardPod = find(render(HELMS[1]), "Deployment").spec.template.metadata.labels;
    expect(pushguardPod["helm.sh/chart"]).toBeUndefined();
    // Objects other than pods keep the chart's label.
    expect(statefulSet(render(HELMS[1])).metadata.labels?.["helm.sh/chart"]).toMatch(/^pushguard-/);
  });

  it("a new pushguard image alone changes nothing of the pushgateway either", () => {
    const before = statefulSet(render(HELMS[1], PROFILES["small-prod"]));
    const after = statefulSet(
      render(HELMS[1], PROFILES["small-prod"], ["--set", "pushguard.image.tag=0.3.0"]),
    );
    expect(after.spec).toEqual(before.spec);
  });
});

describe("generated tokens", () => {
  const helm = HELMS[1];
  const api = new FakeApiServer();
  let env: { KUBECONFIG: string };
  beforeAll(async () => {
    env = await api.start(work);
  });
  afterAll(() => api.stop());

  /** checksum/tokens as the Deployment template computes it: over the Secret data's JSON (keys sorted). */
  const checksumOf = (data: Record<string, string>) =>
    createHash("sha256")
      .update(JSON.stringify(Object.fromEntries(Object.entries(data).sort(([a], [b]) => (a < b ? -1 : 1)))))
      .digest("hex");
  const template = (flags: string[]) =>
    runHelmAsync(
      helm,
      ["template", RELEASE, CHART, "--namespace", NAMESPACE, "--disable-openapi-validation", ...flags],
      env,
    );

  it.each([
    ["default", PROFILES.default],
    ["small-prod", PROFILES["small-prod"]],
  ])(
    "profile %s: the first install's checksum is that of the Secret it creates, and the next upgrade keeps both",
    async (_name, files) => {
      const valueFlags = files.flatMap((file) => ["-f", join(CHART, file)]);
      const install = await template(valueFlags);
      expect(install.status, install.stderr).toBe(0);
      const objects = parseManifests(install.stdout);
      const secret = find(objects, "Secret", `${RELEASE}-pushguard-tokens`);
      const checksum = find(objects, "Deployment").spec.template.metadata.annotations["checksum/tokens"];
      expect(checksum).toBe(checksumOf(secret.data));

      // The upgrade: helm's lookup finds the Secret the install created.
      api.secrets.set(`${NAMESPACE}/${secret.metadata.name}`, { data: secret.data, release: RELEASE });
      const upgrade = await template([...valueFlags, "--dry-run=server"]);
      expect(upgrade.status, upgrade.stderr).toBe(0);
      const next = parseManifests(upgrade.stdout);
      expect(find(next, "Secret", secret.metadata.name).data).toEqual(secret.data);
      expect(find(next, "Deployment").spec.template.metadata.annotations["checksum/tokens"]).toBe(checksum);
      expect(api.requests).toContain(`GET /api/v1/namespaces/${NAMESPACE}/secrets/${secret.metadata.name}`);
    },
  );

  it("an existing token Secret without an identity's key fails the install, naming the key; with every key it installs", async () => {
    const secured = [
      ...PROFILES.secured.flatMap((file) => ["-f", file.startsWith("/") ? file : join(CHART, file)]),
    ];
    const token = Buffer.from("0123456789abcdef").toString("base64");
    api.secrets.set(`${NAMESPACE}/pushguard-tokens`, { data: { "team-a-ci": token, "helm-test": token } });
    const refused = await template([...secured, "--dry-run=server"]);
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toContain(
      'tokens.existingSecret: Secret pushguard-tokens has no key "team-b-ci", the token of identity team-b-ci',
    );
    expect(refused.stderr).toContain(
      'Secret pushguard-tokens has no key "platform-admin", the SHA-256 hash of identity platform-admin',
    );
    expect(refused.stderr).not.toContain('no key "team-a-ci"');
    api.secrets.set(`${NAMESPACE}/pushguard-tokens`, {
      data: { "team-a-ci": token, "team-b-ci": token, "helm-test": token, "platform-admin": token },
    });
    const installed = await template([...secured, "--dry-run=server"]);
    expect(installed.status, installed.stderr).toBe(0);
  });

  it("at run time, a key missing from the Secret leaves pods starting (pushguard names it) instead of stuck creating", () => {
    for (const { owner, spec } of podSpecs(render(helm, PROFILES.secured))) {
      for (const volume of spec.volumes ?? []) {
        if (volume.secret?.items?.length)
          expect(volume.secret.optional, `${owner} ${volume.name}`).toBe(true);
      }
    }
  });
});

describe("Prometheus selects what the profiles render", () => {
  it.each(["small-prod", "secured", "ha"] as const)(
    "profile %s: every ServiceMonitor, ScrapeConfig and PrometheusRule carries kube-prometheus-stack's default selector label",
    (profile) => {
      const objects = render(HELMS[1], PROFILES[profile]);
      const selected = objects.filter((object) =>
        ["ServiceMonitor", "ScrapeConfig", "PrometheusRule"].includes(object.kind),
      );
      expect(selected.length).toBeGreaterThanOrEqual(2);
      for (const object of selected) {
        expect(object.metadata.labels, `${object.kind}/${object.metadata.name}`).toMatchObject({
          release: "kube-prometheus-stack",
        });
      }
    },
  );

  it("the secured profile says where to set that label", () => {
    const text = readFileSync(join(CHART, "values-secured.yaml"), "utf8");
    expect(text).toMatch(
      /additionalLabels:\n\s+release: kube-prometheus-stack\s+# REPLACE with your kube-prometheus-stack release's name/,
    );
  });
});

describe("the site values the tests give the secured and HA profiles", () => {
  it.each(["secured", "ha"] as const)("replace only placeholders of profile %s", (profile) => {
    const site = parseYaml(readFileSync(siteValues(profile), "utf8"));
    const placeholders = /example\.com|192\.0\.2\.|198\.51\.100\./;
    const flatten = (value: Loose, path: string[] = []): string[] =>
      value !== null && typeof value === "object"
        ? Object.entries(value).flatMap(([key, child]) => flatten(child, [...path, key]))
        : [path.join(".")];
    const profileText = readFileSync(join(CHART, `values-${profile}.yaml`), "utf8");
    expect(profileText).toMatch(placeholders);
    expect(JSON.stringify(site)).not.toMatch(placeholders);
    // Every top-level block the site file sets is one the profile marks for replacing.
    for (const key of new Set(flatten(site).map((path) => path.split(".")[0]))) {
      expect(profileText, key).toMatch(new RegExp(`^${key}:`, "m"));
    }
  });
});
