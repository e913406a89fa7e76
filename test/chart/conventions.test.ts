import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import {
  CHART,
  find,
  findAll,
  HELMS,
  type K8sObject,
  type Loose,
  PUSHGATEWAY,
  podSpecs,
  pushguardConfig,
  render,
} from "./helm.js";

/**
 * The conventions users of the prometheus-community pushgateway chart expect, where they fit a
 * locked-down pushgateway behind pushguard (docs/chart.md, "Coming from another chart").
 */
const helm = HELMS[HELMS.length - 1] as (typeof HELMS)[number];
const containersOf = (spec: Loose): Loose[] => [...(spec.initContainers ?? []), ...spec.containers];

describe("ci/conventions-values.yaml", () => {
  const objects = () => render(helm, ["ci/conventions-values.yaml"]);

  it("pulls every image through global.imageRegistry, with the global and the chart's pull Secrets once each", () => {
    const images = podSpecs(objects()).flatMap(({ spec }) => containersOf(spec).map((c) => c.image));
    expect(images.length).toBeGreaterThanOrEqual(5);
    for (const image of images) expect(image).toMatch(/^registry\.corp\.internal\//);
    for (const { owner, spec } of podSpecs(objects())) {
      expect(spec.imagePullSecrets, owner).toEqual([{ name: "corp-registry" }, { name: "legacy-pull" }]);
    }
  });

  it("pins digests after the tag", () => {
    const spec = (kind: string, name?: string) => find(objects(), kind, name).spec.template.spec;
    expect(spec("Deployment").containers[0].image).toBe(
      "registry.corp.internal/pushguard/pushguard:0.1.0@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    );
    expect(spec("StatefulSet", PUSHGATEWAY).containers[0].image).toBe(
      "registry.corp.internal/prometheus/pushgateway:v1.11.3@sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210",
    );
  });

  it("puts every namespaced object, and every address and selector, in namespaceOverride", () => {
    for (const object of objects().filter((o) => o.kind !== "ClusterRoleBinding")) {
      expect(object.metadata.namespace, `${object.kind}/${object.metadata.name}`).toBe("metrics");
    }
    expect(pushguardConfig(objects()).upstream.url).toBe(`http://${PUSHGATEWAY}.metrics.svc:9091`);
    const pushgatewayPolicy = find(objects(), "NetworkPolicy", PUSHGATEWAY);
    expect(pushgatewayPolicy.spec.ingress[0].from[1].namespaceSelector).toEqual({
      matchLabels: { "kubernetes.io/metadata.name": "metrics" },
    });
    const pod = find(objects(), "Pod", "pg-pushguard-push-test");
    expect(pod.spec.containers[0].env[0].value).toBe(
      "http://pg-pushguard.metrics.svc:9091/metrics/job/pushguard-helm-test",
    );
  });

  it("adds extra env, volumes, mounts, init and sidecar containers where they were asked for", () => {
    const pushguard = find(objects(), "Deployment").spec.template.spec;
    expect(pushguard.initContainers.map((c: Loose) => c.name)).toEqual(["wait-for-dns"]);
    expect(pushguard.containers.map((c: Loose) => c.name)).toEqual(["pushguard"]);
    expect(pushguard.containers[0].env).toEqual([
      { name: "NODE_EXTRA_CA_CERTS", value: "/etc/pushguard/ca/ca.crt" },
    ]);
    expect(pushguard.containers[0].volumeMounts).toContainEqual({
      name: "ca",
      mountPath: "/etc/pushguard/ca",
      readOnly: true,
    });
    expect(pushguard.volumes).toContainEqual({ name: "ca", configMap: { name: "pg-pushguard-ca" } });
    const pushgateway = find(objects(), "StatefulSet", PUSHGATEWAY).spec.template.spec;
    expect(pushgateway.containers.map((c: Loose) => c.name)).toEqual(["pushgateway", "log-shipper"]);
    expect(pushgateway.containers[0].env).toEqual([{ name: "TZ", value: "UTC" }]);
    expect(pushgateway.containers[0].volumeMounts).toEqual([{ name: "scratch", mountPath: "/scratch" }]);
    expect(pushgateway.volumes).toEqual([{ name: "scratch", emptyDir: { sizeLimit: "8Mi" } }]);
  });

  it("renders extraManifests as templates, objects and strings alike", () => {
    expect(find(objects(), "ConfigMap", "pg-pushguard-ca").data).toEqual({
      "ca.crt": "-----BEGIN CERTIFICATE-----",
    });
    expect(find(objects(), "ServiceAccount", "pg-backup").metadata.namespace).toBe("metrics");
  });

  it("takes probe timings, and keeps what is probed", () => {
    const pushguard = find(objects(), "Deployment").spec.template.spec.containers[0];
    expect(pushguard.startupProbe).toEqual({
      httpGet: { path: "/healthz", port: "metrics" },
      periodSeconds: 5,
      failureThreshold: 60,
    });
    expect(pushguard.readinessProbe).toEqual({
      httpGet: { path: "/readyz", port: "metrics" },
      periodSeconds: 10,
      timeoutSeconds: 3,
      failureThreshold: 3,
      successThreshold: 2,
    });
    expect(pushguard.livenessProbe).toEqual({
      httpGet: { path: "/healthz", port: "metrics" },
      periodSeconds: 10,
      timeoutSeconds: 2,
      failureThreshold: 3,
    });
    const pushgateway = find(objects(), "StatefulSet", PUSHGATEWAY).spec.template.spec.containers[0];
    expect(pushgateway.startupProbe).toEqual({
      httpGet: { path: "/-/healthy", port: "http" },
      periodSeconds: 5,
      failureThreshold: 120,
    });
    expect(pushgateway.livenessProbe.periodSeconds).toBe(20);
    expect(pushgateway.readinessProbe.httpGet).toEqual({ path: "/-/ready", port: "http" });
  });

  it("lets pushguard reach DNS on OpenShift's port", () => {
    const egress = find(objects(), "NetworkPolicy").spec.egress[0];
    expect(egress.ports).toEqual([
      { port: 5353, protocol: "UDP" },
      { port: 5353, protocol: "TCP" },
    ]);
  });
});

describe("defaults", () => {
  const objects = () => render(helm);

  it("runs the pushgateway from quay.io at the latest 1.11, with a startup probe", () => {
    const container = find(objects(), "StatefulSet", PUSHGATEWAY).spec.template.spec.containers[0];
    expect(container.image).toBe("quay.io/prometheus/pushgateway:v1.11.3");
    expect(container.startupProbe).toEqual({
      httpGet: { path: "/-/healthy", port: "http" },
      periodSeconds: 2,
      failureThreshold: 150,
    });
  });

  it("renders no Ingress, HTTPRoute or extra object, and no pull Secrets", () => {
    const kinds = objects().map((object) => object.kind);
    expect(kinds).not.toContain("Ingress");
    expect(kinds).not.toContain("HTTPRoute");
    for (const { owner, spec } of podSpecs(objects())) expect(spec.imagePullSecrets, owner).toBeUndefined();
  });

  it("accepts imagePullSecrets as names and as objects", () => {
    const spec = find(
      render(helm, [], ["--set-json", 'imagePullSecrets=["a",{"name":"b"},"a"]']),
      "Deployment",
    ).spec.template.spec;
    expect(spec.imagePullSecrets).toEqual([{ name: "a" }, { name: "b" }]);
  });
});

describe("ci/exposure-values.yaml", () => {
  const objects = () => render(helm, ["ci/exposure-values.yaml"]);

  it("routes the Ingress to pushguard's API port, never to the pushgateway", () => {
    const ingress = find(objects(), "Ingress");
    expect(ingress.spec).toEqual({
      ingressClassName: "nginx",
      rules: [
        {
          host: "pushgateway.corp.internal",
          http: {
            paths: [
              {
                path: "/",
                pathType: "Prefix",
                backend: { service: { name: "pg-pushguard", port: { name: "http" } } },
              },
            ],
          },
        },
      ],
      tls: [{ secretName: "pushgateway-tls", hosts: ["pushgateway.corp.internal"] }],
    });
    expect(ingress.metadata.annotations).toEqual({ "nginx.ingress.kubernetes.io/proxy-body-size": "8m" });
  });

  it("renders one HTTPRoute per enabled route: to pushguard, or a redirect to https", () => {
    const routes = findAll(objects(), "HTTPRoute");
    expect(routes.map((route) => route.metadata.name)).toEqual(["pg-pushguard", "pg-pushguard-redirect"]);
    const [main, redirect] = routes as [K8sObject, K8sObject];
    expect(main.apiVersion).toBe("gateway.networking.k8s.io/v1");
    expect(main.spec.rules).toEqual([
      {
        backendRefs: [{ name: "pg-pushguard", port: 9091 }],
        matches: [{ path: { type: "PathPrefix", value: "/" } }],
      },
    ]);
    expect(main.spec.parentRefs).toEqual([{ name: "internal", namespace: "gateways", sectionName: "https" }]);
    expect(redirect.spec.rules).toEqual([
      { filters: [{ type: "RequestRedirect", requestRedirect: { scheme: "https", statusCode: 301 } }] },
    ]);
  });

  it("exposes pushguard's Service as a dual-stack LoadBalancer that keeps client addresses", () => {
    const service = find(objects(), "Service");
    expect(service.metadata.labels?.exposure).toBe("external");
    expect(service.spec).toMatchObject({
      type: "LoadBalancer",
      ipFamilies: ["IPv6", "IPv4"],
      ipFamilyPolicy: "PreferDualStack",
      loadBalancerSourceRanges: ["10.20.0.0/16"],
      externalTrafficPolicy: "Local",
    });
    expect(service.spec.ports).toEqual([
      { name: "http", port: 9091, targetPort: "http", protocol: "TCP", nodePort: 30091 },
      { name: "metrics", port: 9092, targetPort: "metrics", protocol: "TCP" },
    ]);
  });

  it("serves clients on the Service port while pushguard listens on its own", () => {
    const moved = render(
      helm,
      [],
      ["--set", "pushguard.service.ports.api=80", "--set", "pushguard.ports.api=8080"],
    );
    expect(find(moved, "Service").spec.ports[0]).toMatchObject({ port: 80, targetPort: "http" });
    expect(find(moved, "Deployment").spec.template.spec.containers[0].ports[0].containerPort).toBe(8080);
    expect(pushguardConfig(moved).listen.api).toBe("0.0.0.0:8080");
    expect(find(moved, "Pod", "pg-pushguard-push-test").spec.containers[0].env[0].value).toBe(
      "http://pg-pushguard.monitoring.svc:80/metrics/job/pushguard-helm-test",
    );
  });
});

describe("ServiceMonitor options", () => {
  it("creates the monitors in serviceMonitor.namespace, selecting the release namespace, with relabelings", () => {
    const objects = render(helm, ["ci/monitoring-values.yaml"]);
    for (const monitor of findAll(objects, "ServiceMonitor")) {
      expect(monitor.metadata.namespace).toBe("prometheus");
      expect(monitor.spec.namespaceSelector).toEqual({ matchNames: ["monitoring"] });
      expect(monitor.spec.endpoints[0].relabelings).toEqual([
        { sourceLabels: ["__meta_kubernetes_pod_node_name"], targetLabel: "node" },
      ]);
      expect(monitor.spec.endpoints[0].metricRelabelings).toEqual([
        { sourceLabels: ["__name__"], regex: "go_gc_.*", action: "drop" },
      ]);
    }
    expect(find(objects, "PrometheusRule").metadata.namespace).toBe("prometheus");
  });

  it("scrapes over TLS when told to, the ScrapeConfig too", () => {
    const tls = { ca: { configMap: { name: "mesh-ca", key: "ca.crt" } }, serverName: "pushguard" };
    const flags = [
      "--set",
      "serviceMonitor.scheme=https",
      "--set-json",
      `serviceMonitor.tlsConfig=${JSON.stringify(tls)}`,
    ];
    for (const monitor of findAll(render(helm, ["ci/monitoring-values.yaml"], flags), "ServiceMonitor")) {
      expect(monitor.spec.endpoints[0]).toMatchObject({ scheme: "https", tlsConfig: tls });
    }
    const scrape = find(render(helm, ["ci/ha-pushgateway-values.yaml"], flags), "ScrapeConfig", PUSHGATEWAY);
    expect(scrape.spec).toMatchObject({ scheme: "https", tlsConfig: tls });
  });
});

describe("persistence options", () => {
  it("uses an existing claim instead of a claim template", () => {
    const statefulSet = find(render(helm, ["ci/existing-claim-values.yaml"]), "StatefulSet", PUSHGATEWAY);
    expect(statefulSet.spec.volumeClaimTemplates).toBeUndefined();
    expect(statefulSet.spec.template.spec.volumes).toEqual([
      { name: "data", persistentVolumeClaim: { claimName: "pushgateway-restored" } },
    ]);
    expect(statefulSet.spec.template.spec.containers[0].volumeMounts).toEqual([
      { name: "data", mountPath: "/data" },
    ]);
  });

  it("sets the claims' retention policy", () => {
    const statefulSet = find(render(helm, ["ci/persistence-values.yaml"]), "StatefulSet", PUSHGATEWAY);
    expect(statefulSet.spec.persistentVolumeClaimRetentionPolicy).toEqual({
      whenDeleted: "Delete",
      whenScaled: "Retain",
    });
    expect(
      find(render(helm), "StatefulSet", PUSHGATEWAY).spec.persistentVolumeClaimRetentionPolicy,
    ).toBeUndefined();
  });
});

describe("Chart.yaml", () => {
  /** chart-testing's etc/chart_schema.yaml (yamale), as `ct lint` applies it, and its maintainer check. */
  it("passes ct lint's chart schema, maintainers included", () => {
    const chart = parseYaml(readFileSync(join(CHART, "Chart.yaml"), "utf8"));
    const known = [
      ...["name", "home", "version", "apiVersion", "appVersion", "description", "keywords", "sources"],
      ...[
        "maintainers",
        "engine",
        "icon",
        "deprecated",
        "annotations",
        "kubeVersion",
        "dependencies",
        "type",
      ],
    ];
    expect(Object.keys(chart).filter((key) => !known.includes(key))).toEqual([]);
    for (const key of ["name", "version", "apiVersion"]) expect(typeof chart[key], key).toBe("string");
    expect(chart.maintainers.length).toBeGreaterThan(0);
    for (const maintainer of chart.maintainers) {
      expect(Object.keys(maintainer).filter((key) => !["name", "email", "url"].includes(key))).toEqual([]);
      expect(typeof maintainer.name).toBe("string");
      // ct validates each name as an account on the chart repository's host.
      expect(maintainer.name).toMatch(/^[A-Za-z0-9](-?[A-Za-z0-9])*$/);
    }
  });
});
