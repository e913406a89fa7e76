import { createHash } from "node:crypto";
import { dirname } from "node:path";
import { describe, expect, it } from "vitest";
import {
  FULLNAME,
  find,
  findAll,
  HELMS,
  type K8sObject,
  type Loose,
  NAMESPACE,
  PROFILE_NAMES,
  PROFILES,
  type Profile,
  PUSHGATEWAY,
  PUSHGATEWAY_HEADLESS,
  podSpecs,
  pushgatewayArgs,
  pushgatewayPodUrl,
  pushguardConfig,
  render,
} from "./helm.js";
import { admits, type Client, type Destination, egressAdmits, type Target } from "./network-policy.js";

const helm = HELMS[HELMS.length - 1] as (typeof HELMS)[number];

/** What each profile promises, beyond the properties every profile must have. */
const PROMISES: Record<
  Profile,
  {
    networkPolicies: boolean;
    persistence: boolean;
    serviceMonitors: boolean;
    alerts: boolean;
    minReplicas: number;
    disruptionBudget: boolean;
    autoscaling: boolean;
    chartManagedTokens: boolean;
    kubernetesTokens: boolean;
    pushgatewayReplicas: number;
  }
> = {
  default: {
    networkPolicies: true,
    persistence: false,
    serviceMonitors: false,
    alerts: false,
    minReplicas: 1,
    disruptionBudget: false,
    autoscaling: false,
    chartManagedTokens: true,
    kubernetesTokens: false,
    pushgatewayReplicas: 1,
  },
  dev: {
    networkPolicies: false,
    persistence: false,
    serviceMonitors: false,
    alerts: false,
    minReplicas: 1,
    disruptionBudget: false,
    autoscaling: false,
    chartManagedTokens: true,
    kubernetesTokens: false,
    pushgatewayReplicas: 1,
  },
  "small-prod": {
    networkPolicies: true,
    persistence: true,
    serviceMonitors: true,
    alerts: false,
    minReplicas: 2,
    disruptionBudget: true,
    autoscaling: false,
    chartManagedTokens: true,
    kubernetesTokens: false,
    pushgatewayReplicas: 1,
  },
  secured: {
    networkPolicies: true,
    persistence: true,
    serviceMonitors: true,
    alerts: true,
    minReplicas: 2,
    disruptionBudget: true,
    autoscaling: true,
    chartManagedTokens: false,
    kubernetesTokens: true,
    pushgatewayReplicas: 1,
  },
  ha: {
    networkPolicies: true,
    persistence: true,
    serviceMonitors: true,
    alerts: false,
    minReplicas: 2,
    disruptionBudget: true,
    autoscaling: false,
    chartManagedTokens: true,
    kubernetesTokens: false,
    pushgatewayReplicas: 3,
  },
};

type Container = Loose;

function containers(objects: readonly K8sObject[]): Array<{ where: string; container: Container }> {
  return podSpecs(objects).flatMap(({ owner, spec }) =>
    [...(spec.initContainers ?? []), ...spec.containers].map((container: Container) => ({
      where: `${owner} ${container.name}`,
      container,
    })),
  );
}

const podLabels = (objects: readonly K8sObject[], kind: string, name: string) =>
  find(objects, kind, name).spec.template.metadata.labels as Record<string, string>;

describe.each(PROFILE_NAMES)("profile %s", (profile) => {
  const objects = () => render(helm, PROFILES[profile]);
  const promise = PROMISES[profile];

  it("runs every pod as non-root with the RuntimeDefault seccomp profile", () => {
    for (const { owner, spec } of podSpecs(objects())) {
      expect(spec.securityContext?.runAsNonRoot, owner).toBe(true);
      expect(spec.securityContext?.runAsUser, owner).toBeGreaterThan(0);
      expect(spec.securityContext?.seccompProfile?.type, owner).toBe("RuntimeDefault");
    }
  });

  it("locks every container down: no privilege escalation, read-only root, no capabilities", () => {
    for (const { where, container } of containers(objects())) {
      const context = container.securityContext ?? {};
      expect(context.allowPrivilegeEscalation, where).toBe(false);
      expect(context.readOnlyRootFilesystem, where).toBe(true);
      expect(context.privileged ?? false, where).toBe(false);
      expect(context.capabilities?.drop, where).toContain("ALL");
      expect(context.capabilities?.add ?? [], where).toEqual([]);
      expect(context.runAsUser ?? 1, where).not.toBe(0);
    }
  });

  it("gives every container CPU and memory requests and limits", () => {
    for (const { where, container } of containers(objects())) {
      for (const bound of ["requests", "limits"]) {
        expect(Object.keys(container.resources?.[bound] ?? {}).sort(), `${where} ${bound}`).toEqual([
          "cpu",
          "memory",
        ]);
      }
    }
  });

  it("shares nothing with the node: no host namespaces, ports or paths", () => {
    for (const { owner, spec } of podSpecs(objects())) {
      expect([spec.hostNetwork, spec.hostPID, spec.hostIPC].filter(Boolean), owner).toEqual([]);
      expect(
        (spec.volumes ?? []).filter((volume: { hostPath?: unknown }) => volume.hostPath),
        owner,
      ).toEqual([]);
    }
    for (const { where, container } of containers(objects())) {
      expect(
        (container.ports ?? []).filter((port: { hostPort?: number }) => port.hostPort),
        where,
      ).toEqual([]);
    }
  });

  it("mounts a ServiceAccount token and binds issuer discovery only for in-cluster token verification", () => {
    const inCluster = pushguardConfig(objects()).identities.kubernetes.some(
      (issuer: { tokenFile?: string }) =>
        issuer.tokenFile === "/var/run/secrets/kubernetes.io/serviceaccount/token",
    );
    expect(inCluster).toBe(promise.kubernetesTokens);
    for (const { owner, spec } of podSpecs(objects())) {
      expect(spec.automountServiceAccountToken, owner).toBe(inCluster && owner === `Deployment/${FULLNAME}`);
    }
    for (const account of findAll(objects(), "ServiceAccount")) {
      expect(account.automountServiceAccountToken, account.metadata.name).toBe(
        inCluster && account.metadata.name === FULLNAME,
      );
    }
    const bindings = findAll(objects(), "ClusterRoleBinding");
    expect(bindings.map((binding) => [binding.roleRef.name, binding.subjects])).toEqual(
      inCluster
        ? [
            [
              "system:service-account-issuer-discovery",
              [{ kind: "ServiceAccount", name: FULLNAME, namespace: NAMESPACE }],
            ],
          ]
        : [],
    );
    expect(findAll(objects(), "RoleBinding")).toEqual([]);
    expect(findAll(objects(), "ClusterRole")).toEqual([]);
  });

  it("runs the promised pushgateway replicas, each with its own volume from one persistence value", () => {
    const statefulSet = find(objects(), "StatefulSet", PUSHGATEWAY);
    expect(statefulSet.spec.replicas).toBe(promise.pushgatewayReplicas);
    expect(findAll(objects(), "StatefulSet")).toHaveLength(1);
    expect(findAll(objects(), "Deployment").map((d) => d.metadata.name)).toEqual([FULLNAME]);
    const args = pushgatewayArgs(objects());
    // One pod template: every replica gets the same flags, none derived from the pod's identity.
    const container = statefulSet.spec.template.spec.containers[0];
    expect(container.env).toBeUndefined();
    expect(args.filter((arg) => arg.includes("$("))).toEqual([]);
    // A volume in the pod template would be one volume shared by every replica.
    expect(statefulSet.spec.template.spec.volumes ?? []).toEqual([]);
    const file = args.find((arg) => arg.startsWith("--persistence.file="))?.split("=")[1];
    const claims = statefulSet.spec.volumeClaimTemplates ?? [];
    if (promise.persistence) {
      expect(file).toBeDefined();
      const mount = statefulSet.spec.template.spec.containers[0].volumeMounts.find(
        (m: { name: string }) => m.name === "data",
      );
      expect(mount.mountPath).toBe(dirname(file as string));
      expect(claims.map((c: K8sObject) => [c.metadata.name, c.spec.accessModes])).toEqual([
        ["data", ["ReadWriteOnce"]],
      ]);
    } else {
      expect(file).toBeUndefined();
      expect(claims).toEqual([]);
    }
    expect(args).not.toContain("--web.enable-lifecycle");
    const wipe = pushguardConfig(objects()).teams.some((team: { actions: string[] }) =>
      team.actions.includes("wipe"),
    );
    expect(args.includes("--web.enable-admin-api")).toBe(wipe);
  });

  it("probes pushguard on its metrics port only, and the pushgateway on its own", () => {
    const pushguard = find(objects(), "Deployment").spec.template.spec.containers[0];
    for (const probe of ["startupProbe", "livenessProbe", "readinessProbe"]) {
      expect(pushguard[probe].httpGet.port, probe).toBe("metrics");
    }
    expect(pushguard.readinessProbe.httpGet.path).toBe("/readyz");
    expect(pushguard.livenessProbe.httpGet.path).toBe("/healthz");
    const pushgateway = find(objects(), "StatefulSet", PUSHGATEWAY).spec.template.spec.containers[0];
    expect(pushgateway.readinessProbe.httpGet).toEqual({ path: "/-/ready", port: "http" });
  });

  it("lets pushguard drain before it is killed, and rolls it when its config changes", () => {
    const deployment = find(objects(), "Deployment");
    const config = pushguardConfig(objects());
    const spec = deployment.spec.template.spec;
    const preStopMs = Number(
      /setTimeout\(\(\) => \{\}, (\d+)\)/.exec(JSON.stringify(spec.containers[0].lifecycle ?? {}))?.[1] ?? 0,
    );
    expect(spec.terminationGracePeriodSeconds * 1000).toBeGreaterThan(
      config.server.shutdownGraceMs + preStopMs,
    );
    const configText = find(objects(), "ConfigMap").data["config.yaml"];
    const checksum = createHash("sha256").update(configText.replace(/\n$/, "")).digest("hex");
    expect(deployment.spec.template.metadata.annotations["checksum/config"]).toBe(checksum);
  });

  it("keeps credentials out of ConfigMaps and in the Secret the profile calls for", () => {
    const secrets = findAll(objects(), "Secret");
    expect(secrets.length > 0).toBe(promise.chartManagedTokens);
    const tokens = secrets
      .flatMap((secret) => Object.values(secret.data ?? {}))
      .map((v) => Buffer.from(String(v), "base64").toString());
    for (const configMap of findAll(objects(), "ConfigMap")) {
      const text = JSON.stringify(configMap.data);
      for (const token of tokens) expect(text.includes(token), configMap.metadata.name).toBe(false);
    }
    const mounted = find(objects(), "Deployment").spec.template.spec.volumes.find(
      (v: { name: string }) => v.name === "tokens",
    );
    for (const identity of pushguardConfig(objects()).identities.static) {
      const file: string | undefined = identity.tokenFile ?? identity.sha256File;
      if (file === undefined) continue;
      expect(file.startsWith("/etc/pushguard/secrets/"), identity.name).toBe(true);
      expect(mounted.secret.items.map((item: { path: string }) => item.path)).toContain(
        file.split("/").pop(),
      );
    }
  });

  it("keeps pushguard available during disruptions as promised", () => {
    const deployment = find(objects(), "Deployment");
    const hpa = findAll(objects(), "HorizontalPodAutoscaler")[0];
    expect(Boolean(hpa)).toBe(promise.autoscaling);
    const replicas = hpa ? hpa.spec.minReplicas : deployment.spec.replicas;
    expect(replicas).toBeGreaterThanOrEqual(promise.minReplicas);
    const budgets = findAll(objects(), "PodDisruptionBudget");
    expect(budgets.filter((b) => b.metadata.name === FULLNAME).length).toBe(promise.disruptionBudget ? 1 : 0);
    // The pushgateway's only with several replicas: a budget on a single pod blocks every drain.
    const pushgatewayBudgets = budgets.filter((b) => b.metadata.name === PUSHGATEWAY);
    expect(pushgatewayBudgets.map((b) => b.spec)).toEqual(
      promise.pushgatewayReplicas > 1
        ? [
            {
              maxUnavailable: 1,
              selector: {
                matchLabels: find(objects(), "StatefulSet", PUSHGATEWAY).spec.selector.matchLabels,
              },
            },
          ]
        : [],
    );
    if (promise.minReplicas > 1) {
      const spread = deployment.spec.template.spec.topologySpreadConstraints;
      expect(spread.some((c: { topologyKey: string }) => c.topologyKey === "kubernetes.io/hostname")).toBe(
        true,
      );
    }
  });

  it("scrapes the pushed groups once, with honorLabels, and pushguard on its metrics port, when promised", () => {
    const monitors = findAll(objects(), "ServiceMonitor");
    const scrapeConfigs = findAll(objects(), "ScrapeConfig");
    const replicated = promise.pushgatewayReplicas > 1;
    if (!promise.serviceMonitors) {
      expect([...monitors, ...scrapeConfigs]).toEqual([]);
    } else if (replicated) {
      // Each replica holds every group: scraping them would duplicate every series.
      expect(monitors.map((m) => m.metadata.name)).toEqual([FULLNAME]);
      expect(scrapeConfigs.map((c) => c.metadata.name)).toEqual([PUSHGATEWAY]);
      expect(scrapeConfigs[0]?.spec).toMatchObject({
        honorLabels: true,
        metricsPath: "/metrics",
        staticConfigs: [{ targets: [`${FULLNAME}.${NAMESPACE}.svc:9091`] }],
      });
    } else {
      expect(scrapeConfigs).toEqual([]);
      expect(find(monitors, "ServiceMonitor", PUSHGATEWAY).spec.endpoints).toEqual([
        expect.objectContaining({ port: "http", honorLabels: true }),
      ]);
    }
    if (promise.serviceMonitors) {
      expect(find(monitors, "ServiceMonitor", FULLNAME).spec.endpoints).toEqual([
        expect.objectContaining({ port: "metrics" }),
      ]);
    }
    expect(findAll(objects(), "PrometheusRule").length).toBe(promise.alerts ? 1 : 0);
  });

  it("isolates every pod with ingress and egress policies, when promised", () => {
    const policies = findAll(objects(), "NetworkPolicy");
    expect(policies.length).toBe(promise.networkPolicies ? 2 : 0);
    if (!promise.networkPolicies) return;
    for (const policy of policies) expect(policy.spec.policyTypes.sort()).toEqual(["Egress", "Ingress"]);
    const pushgateway = find(policies, "NetworkPolicy", PUSHGATEWAY);
    expect(pushgateway.spec.egress ?? []).toEqual([]);
    const pushguard = find(policies, "NetworkPolicy", FULLNAME);
    for (const rule of [...pushguard.spec.ingress, ...pushgateway.spec.ingress])
      expect(rule.from?.length).toBeGreaterThan(0);
    for (const rule of pushguard.spec.egress)
      expect(rule.to?.length, JSON.stringify(rule)).toBeGreaterThan(0);
    const dns = pushguard.spec.egress[0].ports;
    expect(dns).toEqual(
      expect.arrayContaining([
        { port: 53, protocol: "UDP" },
        { port: 53, protocol: "TCP" },
      ]),
    );
  });
});

describe.each(PROFILE_NAMES.filter((profile) => PROMISES[profile].networkPolicies))(
  "profile %s: who can write to the pushgateway",
  (profile) => {
    const objects = () => render(helm, PROFILES[profile]);
    const pushgatewayApi = (): Destination => ({
      namespace: NAMESPACE,
      labels: podLabels(objects(), "StatefulSet", PUSHGATEWAY),
      port: 9091,
      portName: "http",
    });
    const outsiders: Array<[string, Client]> = [
      ["a pod in the release namespace", { namespace: NAMESPACE, labels: { app: "batch" } }],
      ["a pod in another namespace", { namespace: "team-a", labels: { app: "batch" } }],
      ["a pushguard client", { namespace: NAMESPACE, labels: { [`${FULLNAME}-client`]: "true" } }],
      [
        "a pod copying pushguard's labels in another namespace",
        {
          namespace: "attacker",
          labels: {
            "app.kubernetes.io/name": "pushguard",
            "app.kubernetes.io/component": "pushguard",
            "app.kubernetes.io/instance": "pg",
          },
        },
      ],
      [
        "a Prometheus-labelled pod in another namespace",
        { namespace: "attacker", labels: { "app.kubernetes.io/name": "prometheus" } },
      ],
      [
        "the helm test pod",
        { namespace: NAMESPACE, labels: find(objects(), "Pod", `${FULLNAME}-push-test`).metadata.labels },
      ],
      ...(PROMISES[profile].pushgatewayReplicas > 1
        ? ([
            [
              "Prometheus (it reads the replicas through pushguard)",
              { namespace: "monitoring", labels: { "app.kubernetes.io/name": "prometheus" } },
            ],
          ] as Array<[string, Client]>)
        : []),
    ];

    it("admits pushguard's own pods", () => {
      const pushguard = { namespace: NAMESPACE, labels: podLabels(objects(), "Deployment", FULLNAME) };
      expect(admits(objects(), pushgatewayApi(), pushguard)).toBe(true);
    });

    it.each(outsiders)("refuses %s", (_name, client) => {
      expect(admits(objects(), pushgatewayApi(), client)).toBe(false);
    });
  },
);

describe("networkPolicy.prometheus.namespaceSelector", () => {
  const prometheusIn = (namespace: string): Client => ({
    namespace,
    labels: { "app.kubernetes.io/name": "prometheus" },
  });
  const reachable = (objects: readonly K8sObject[], client: Client) => ({
    pushgateway: admits(
      objects,
      {
        namespace: NAMESPACE,
        labels: podLabels(objects, "StatefulSet", PUSHGATEWAY),
        port: 9091,
        portName: "http",
      },
      client,
    ),
    metrics: admits(
      objects,
      {
        namespace: NAMESPACE,
        labels: podLabels(objects, "Deployment", FULLNAME),
        port: 9092,
        portName: "metrics",
      },
      client,
    ),
  });

  it("defaults to the release namespace: Prometheus there scrapes, a look-alike elsewhere does not", () => {
    const objects = render(helm, PROFILES.default);
    expect(reachable(objects, prometheusIn(NAMESPACE))).toEqual({ pushgateway: true, metrics: true });
    expect(reachable(objects, prometheusIn("attacker"))).toEqual({ pushgateway: false, metrics: false });
  });

  it("admits Prometheus from every namespace only when the selector says so", () => {
    const everyNamespace = { matchExpressions: [{ key: "kubernetes.io/metadata.name", operator: "Exists" }] };
    const objects = render(
      helm,
      [],
      ["--set-json", `networkPolicy.prometheus.namespaceSelector=${JSON.stringify(everyNamespace)}`],
    );
    expect(reachable(objects, prometheusIn("attacker"))).toEqual({ pushgateway: true, metrics: true });
  });
});

describe("profile secured: who can reach what", () => {
  const objects = () => render(helm, PROFILES.secured);
  const destination = (name: "pushgateway" | "pushguard api" | "pushguard metrics"): Destination => {
    if (name === "pushgateway") {
      return {
        namespace: NAMESPACE,
        labels: podLabels(objects(), "StatefulSet", PUSHGATEWAY),
        port: 9091,
        portName: "http",
      };
    }
    const labels = podLabels(objects(), "Deployment", FULLNAME);
    return name === "pushguard api"
      ? { namespace: NAMESPACE, labels, port: 9091, portName: "http" }
      : { namespace: NAMESPACE, labels, port: 9092, portName: "metrics" };
  };
  const prometheus = { "app.kubernetes.io/name": "prometheus" };
  const client = { [`${FULLNAME}-client`]: "true" };
  const table: Array<[string, Client, boolean, boolean, boolean]> = [
    // who                                                 pushgateway pushguard-api metrics
    ["Prometheus in monitoring", { namespace: "monitoring", labels: prometheus }, true, false, true],
    ["a Prometheus-labelled pod elsewhere", { namespace: "team-a", labels: prometheus }, false, true, false],
    ["a batch job in team-a", { namespace: "team-a", labels: { app: "job" } }, false, true, false],
    ["a batch job in team-b", { namespace: "team-b" }, false, true, false],
    [
      "a labelled client in the release namespace",
      { namespace: NAMESPACE, labels: client },
      false,
      true,
      false,
    ],
    ["a labelled client in another namespace", { namespace: "team-c", labels: client }, false, false, false],
    ["an unlabelled pod in the release namespace", { namespace: NAMESPACE }, false, false, false],
    ["a pod in an unlisted namespace", { namespace: "default" }, false, false, false],
  ];

  it.each(table)("%s", (_who, from, pushgateway, api, metrics) => {
    expect({
      pushgateway: admits(objects(), destination("pushgateway"), from),
      api: admits(objects(), destination("pushguard api"), from),
      metrics: admits(objects(), destination("pushguard metrics"), from),
    }).toEqual({ pushgateway, api, metrics });
  });

  const kubeDns = { namespace: "kube-system", labels: { "k8s-app": "kube-dns" }, ip: "10.244.0.3" };
  const redis = { namespace: NAMESPACE, labels: { "app.kubernetes.io/name": "redis" }, ip: "10.244.2.8" };
  const pushgatewayPod = () => ({
    namespace: NAMESPACE,
    labels: podLabels(objects(), "StatefulSet", PUSHGATEWAY),
    ip: "10.244.1.4",
  });
  /** A host outside the cluster; the site values give the API server and the IdP as 172.18.0.2 and 100.64.0.20. */
  const host = (ip: string) => ({ namespace: "", labels: {}, ip, outsideCluster: true });
  const egress: Array<[string, () => Target, boolean]> = [
    // where pushguard connects to                                         allowed
    ["DNS over UDP", () => ({ ...kubeDns, port: 53, portName: "dns", protocol: "UDP" }), true],
    ["DNS over TCP", () => ({ ...kubeDns, port: 53, portName: "dns-tcp" }), true],
    ["kube-dns on its metrics port", () => ({ ...kubeDns, port: 9153, portName: "metrics" }), false],
    [
      "another kube-system pod on 53",
      () => ({ namespace: "kube-system", labels: { app: "x" }, ip: "10.244.0.9", port: 53, portName: "dns" }),
      false,
    ],
    ["the pushgateway's API", () => ({ ...pushgatewayPod(), port: 9091, portName: "http" }), true],
    [
      "the pushgateway on another port",
      () => ({ ...pushgatewayPod(), port: 8080, portName: "other" }),
      false,
    ],
    [
      "a pod with the pushgateway's labels in another namespace",
      () => ({ ...pushgatewayPod(), namespace: "attacker", port: 9091, portName: "http" }),
      false,
    ],
    ["the API server on 443", () => ({ ...host("172.18.0.2"), port: 443, portName: "https" }), true],
    ["the API server on 6443", () => ({ ...host("172.18.0.2"), port: 6443, portName: "https" }), true],
    ["the API server on 80", () => ({ ...host("172.18.0.2"), port: 80, portName: "http" }), false],
    ["the IdP on 443", () => ({ ...host("100.64.0.20"), port: 443, portName: "https" }), true],
    ["the IdP on 80", () => ({ ...host("100.64.0.20"), port: 80, portName: "http" }), false],
    ["another internet host on 443", () => ({ ...host("203.0.113.7"), port: 443, portName: "https" }), false],
    ["Redis", () => ({ ...redis, port: 6379, portName: "redis" }), true],
    ["Redis on another port", () => ({ ...redis, port: 6380, portName: "other" }), false],
    [
      "a Redis-labelled pod in another namespace",
      () => ({ ...redis, namespace: "attacker", port: 6379, portName: "redis" }),
      false,
    ],
    [
      "another pushguard replica",
      () => ({
        namespace: NAMESPACE,
        labels: podLabels(objects(), "Deployment", FULLNAME),
        ip: "10.244.1.5",
        port: 9091,
        portName: "http",
      }),
      false,
    ],
    [
      "a pod in the release namespace on 443",
      () => ({
        namespace: NAMESPACE,
        labels: { app: "web" },
        ip: "10.244.1.6",
        port: 443,
        portName: "https",
      }),
      false,
    ],
  ];

  it.each(egress)("egress to %s", (_where, target, allowed) => {
    const pushguard = { namespace: NAMESPACE, labels: podLabels(objects(), "Deployment", FULLNAME) };
    expect(egressAdmits(objects(), pushguard, target())).toBe(allowed);
  });

  it("egress: rules for DNS, the pushgateway, the API server, the IdP and Redis, and no others", () => {
    const rules: Array<{ ports: Array<{ port: number; protocol: string }> }> = find(
      objects(),
      "NetworkPolicy",
      FULLNAME,
    ).spec.egress;
    expect(rules.map((rule) => rule.ports.map(({ port, protocol }) => `${protocol}/${port}`))).toEqual([
      ["UDP/53", "TCP/53"],
      ["TCP/9091"],
      ["TCP/443", "TCP/6443"],
      ["TCP/443"],
      ["TCP/6379"],
    ]);
    expect(find(objects(), "NetworkPolicy", PUSHGATEWAY).spec.egress ?? []).toEqual([]);
  });

  it("takes every token from the user's Secret", () => {
    const deployment = find(objects(), "Deployment");
    const volume = deployment.spec.template.spec.volumes.find((v: { name: string }) => v.name === "tokens");
    expect(volume.secret.secretName).toBe("pushguard-tokens");
    expect(findAll(objects(), "Secret")).toEqual([]);
    expect(deployment.spec.template.metadata.annotations["checksum/tokens"]).toBeUndefined();
  });
});

describe("profile ha: replicated pushgateways", () => {
  const objects = () => render(helm, PROFILES.ha);
  const statefulSet = () => find(objects(), "StatefulSet", PUSHGATEWAY);
  const replicas = () => statefulSet().spec.replicas as number;
  const pushgatewayLabels = () => podLabels(objects(), "StatefulSet", PUSHGATEWAY);
  const pushguardLabels = () => podLabels(objects(), "Deployment", FULLNAME);

  it("gives every replica a DNS name through a headless Service, and no shared Service", () => {
    expect(replicas()).toBe(3);
    expect(statefulSet().spec.serviceName).toBe(PUSHGATEWAY_HEADLESS);
    expect(statefulSet().spec.podManagementPolicy).toBe("Parallel");
    const headless = find(objects(), "Service", PUSHGATEWAY_HEADLESS);
    expect(headless.spec).toEqual({
      clusterIP: "None",
      publishNotReadyAddresses: false,
      selector: statefulSet().spec.selector.matchLabels,
      ports: [{ name: "http", port: 9091, targetPort: "http", protocol: "TCP" }],
    });
    // Only the headless Service selects the replicas: nothing can spread requests over them.
    const services = findAll(objects(), "Service").filter((service) =>
      Object.entries(service.spec.selector ?? {}).every(([key, value]) => pushgatewayLabels()[key] === value),
    );
    expect(services.map((service) => service.metadata.name)).toEqual([PUSHGATEWAY_HEADLESS]);
  });

  it("gives every replica its own volume and spreads them over nodes", () => {
    const claims = statefulSet().spec.volumeClaimTemplates;
    expect(claims.map((claim: K8sObject) => [claim.metadata.name, claim.spec.accessModes])).toEqual([
      ["data", ["ReadWriteOnce"]],
    ]);
    expect(statefulSet().spec.template.spec.volumes).toBeUndefined();
    expect(statefulSet().spec.template.spec.topologySpreadConstraints).toContainEqual({
      maxSkew: 1,
      topologyKey: "kubernetes.io/hostname",
      whenUnsatisfiable: "DoNotSchedule",
      labelSelector: { matchLabels: statefulSet().spec.selector.matchLabels },
    });
  });

  it("points pushguard at every replica by name, with shared replica state in Redis", () => {
    const config = pushguardConfig(objects());
    expect(config.upstream.url).toBeUndefined();
    expect(config.upstream.dns).toBeUndefined();
    expect(config.upstream.urls).toEqual(
      Array.from({ length: replicas() }, (_, index) => pushgatewayPodUrl(index)),
    );
    expect(config.upstream.replication).toEqual({
      writePolicy: "allInSync",
      healthCheckIntervalMs: 1000,
      bootstrapWaitMs: 10000,
      probeTimeoutMs: 2000,
      stragglerMs: 1000,
      verifyIntervalMs: 300000,
      redis: {
        url: "redis://pushguard-redis.monitoring.svc:6379/0",
        keyPrefix: `pushguard:${NAMESPACE}:${FULLNAME}:replication:`,
        passwordFile: "/etc/pushguard/coordination-redis/password",
      },
    });
    const spec = find(objects(), "Deployment").spec.template.spec;
    expect(
      spec.volumes.find((v: { name: string }) => v.name === "coordination-redis-password").secret,
    ).toEqual({
      secretName: "pushguard-redis",
      defaultMode: 0o440,
      optional: true,
      items: [{ key: "password", path: "password" }],
    });
  });

  it("lets Prometheus read the groups only through pushguard, as a read-only identity", () => {
    const scrape = find(objects(), "ScrapeConfig", PUSHGATEWAY);
    expect(scrape.spec.authorization).toEqual({
      type: "Bearer",
      credentials: { name: `${FULLNAME}-tokens`, key: "prometheus-scraper" },
    });
    expect(find(objects(), "Secret", `${FULLNAME}-tokens`).data["prometheus-scraper"]).toBeDefined();
    const grants = pushguardConfig(objects())
      .teams.filter((team: { members: string[] }) => team.members.includes("prometheus-scraper"))
      .flatMap((team: { actions: string[] }) => team.actions);
    expect(grants).toEqual(["read"]);
    // Same job, namespace, service and endpoint labels as the single pushgateway's ServiceMonitor gives.
    expect(scrape.spec.jobName).toBe(PUSHGATEWAY);
    expect(scrape.spec.staticConfigs[0].labels).toEqual({
      namespace: NAMESPACE,
      service: PUSHGATEWAY,
      endpoint: "http",
    });
    expect(findAll(objects(), "ServiceMonitor").map((monitor) => monitor.metadata.name)).toEqual([FULLNAME]);
  });

  const prometheus = { "app.kubernetes.io/name": "prometheus" };
  const reach: Array<[string, () => Client, boolean, boolean, boolean]> = [
    // who                                                      pushgateway pushguard-api metrics
    ["pushguard's pods", () => ({ namespace: NAMESPACE, labels: pushguardLabels() }), true, false, false],
    ["Prometheus in monitoring", () => ({ namespace: "monitoring", labels: prometheus }), false, true, true],
    [
      "a Prometheus-labelled pod elsewhere",
      () => ({ namespace: "team-a", labels: prometheus }),
      false,
      false,
      false,
    ],
    [
      "a labelled client",
      () => ({ namespace: "team-a", labels: { [`${FULLNAME}-client`]: "true" } }),
      false,
      true,
      false,
    ],
    [
      "another pushgateway replica",
      () => ({ namespace: NAMESPACE, labels: pushgatewayLabels() }),
      false,
      false,
      false,
    ],
    ["an unlabelled pod in the release namespace", () => ({ namespace: NAMESPACE }), false, false, false],
  ];

  it.each(reach)("ingress: %s", (_who, from, pushgateway, api, metrics) => {
    const at = (labels: Record<string, string>, port: number, portName: string): Destination => ({
      namespace: NAMESPACE,
      labels,
      port,
      portName,
    });
    expect({
      pushgateway: admits(objects(), at(pushgatewayLabels(), 9091, "http"), from()),
      api: admits(objects(), at(pushguardLabels(), 9091, "http"), from()),
      metrics: admits(objects(), at(pushguardLabels(), 9092, "metrics"), from()),
    }).toEqual({ pushgateway, api, metrics });
  });

  it("egress: pushguard reaches every replica on 9091 and Redis, and the replicas reach nothing", () => {
    const pushguard = { namespace: NAMESPACE, labels: pushguardLabels() };
    for (let index = 0; index < replicas(); index++) {
      const pod = {
        namespace: NAMESPACE,
        labels: { ...pushgatewayLabels(), "statefulset.kubernetes.io/pod-name": `${PUSHGATEWAY}-${index}` },
      };
      expect(
        egressAdmits(objects(), pushguard, { ...pod, port: 9091, portName: "http" }),
        `pod ${index}`,
      ).toBe(true);
      expect(egressAdmits(objects(), pushguard, { ...pod, port: 9090, portName: "other" })).toBe(false);
      expect(
        egressAdmits(objects(), pod, {
          namespace: NAMESPACE,
          labels: pushguardLabels(),
          port: 9091,
          portName: "http",
        }),
      ).toBe(false);
    }
    const redis = { namespace: NAMESPACE, labels: { "app.kubernetes.io/name": "redis" } };
    expect(egressAdmits(objects(), pushguard, { ...redis, port: 6379, portName: "redis" })).toBe(true);
    expect(
      egressAdmits(objects(), pushguard, {
        namespace: "elsewhere",
        labels: {},
        port: 9091,
        portName: "http",
      }),
    ).toBe(false);
  });
});

describe("identity providers (ci/identity-providers-values.yaml)", () => {
  const objects = () => render(helm, ["ci/identity-providers-values.yaml"]);

  it("mounts a token into pushguard only, and binds only service-account issuer discovery", () => {
    const pods = podSpecs(objects());
    expect(pods.find((p) => p.owner === `Deployment/${FULLNAME}`)?.spec.automountServiceAccountToken).toBe(
      true,
    );
    for (const { owner, spec } of pods.filter((p) => p.owner !== `Deployment/${FULLNAME}`)) {
      expect(spec.automountServiceAccountToken, owner).toBe(false);
    }
    const bindings = findAll(objects(), "ClusterRoleBinding");
    expect(bindings).toHaveLength(1);
    expect(bindings[0]?.roleRef).toEqual({
      apiGroup: "rbac.authorization.k8s.io",
      kind: "ClusterRole",
      name: "system:service-account-issuer-discovery",
    });
    expect(find(objects(), "ServiceAccount", PUSHGATEWAY).automountServiceAccountToken).toBe(false);
  });

  it("lets pushguard reach DNS, the pushgateway, the API server and the issuers, and nothing else", () => {
    const egress = find(objects(), "NetworkPolicy", FULLNAME).spec.egress;
    expect(egress.map((rule: { ports: Array<{ port: number }> }) => rule.ports.map((p) => p.port))).toEqual([
      [53, 53],
      [9091],
      [6443],
      [443],
    ]);
  });
});
