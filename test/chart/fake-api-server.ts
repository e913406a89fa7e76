import { writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";

/** The kinds the chart renders, as discovery lists them: group/version, kind, resource, namespaced. */
const RESOURCES: ReadonlyArray<readonly [string, string, string, boolean]> = [
  ["v1", "Secret", "secrets", true],
  ["v1", "ConfigMap", "configmaps", true],
  ["v1", "Service", "services", true],
  ["v1", "ServiceAccount", "serviceaccounts", true],
  ["v1", "Pod", "pods", true],
  ["apps/v1", "Deployment", "deployments", true],
  ["apps/v1", "StatefulSet", "statefulsets", true],
  ["autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", true],
  ["networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", true],
  ["networking.k8s.io/v1", "Ingress", "ingresses", true],
  ["policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", true],
  ["rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings", false],
  ["monitoring.coreos.com/v1", "ServiceMonitor", "servicemonitors", true],
  ["monitoring.coreos.com/v1", "PrometheusRule", "prometheusrules", true],
  ["monitoring.coreos.com/v1alpha1", "ScrapeConfig", "scrapeconfigs", true],
  ["gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes", true],
];

/**
 * Just enough of a Kubernetes API server for `helm template --dry-run=server`: discovery of the
 * kinds the chart renders, and GET of the Secrets it holds, so that the chart's `lookup` sees a
 * cluster; everything else is 404 (run helm with --disable-openapi-validation).
 * helm must run asynchronously (runHelmAsync): this server answers from the test's event loop.
 */
export class FakeApiServer {
  /** Secrets by `namespace/name`: their data (base64 values), and the Helm release that owns them, if any. */
  readonly secrets = new Map<string, { data: Record<string, string>; release?: string }>();
  readonly requests: string[] = [];
  private server: Server | undefined;

  async start(directory: string): Promise<{ KUBECONFIG: string }> {
    const server = createServer((request, response) => {
      const path = new URL(request.url ?? "/", "http://fake").pathname;
      this.requests.push(`${request.method} ${path}`);
      const [status, body] = this.answer(path);
      response.writeHead(status, { "content-type": "application/json" });
      response.end(JSON.stringify(body));
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    const kubeconfig = join(directory, "kubeconfig");
    writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "fake", cluster: { server: `http://127.0.0.1:${port}` } }],
        users: [{ name: "fake", user: { token: "fake" } }],
        contexts: [{ name: "fake", context: { cluster: "fake", user: "fake" } }],
        "current-context": "fake",
      }),
    );
    return { KUBECONFIG: kubeconfig };
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private answer(path: string): [number, unknown] {
    if (path === "/version") return [200, { major: "1", minor: "31", gitVersion: "v1.31.0" }];
    if (path === "/api")
      return [200, { kind: "APIVersions", versions: ["v1"], serverAddressByClientCIDRs: [] }];
    if (path === "/apis") {
      const groups = [
        ...new Set(RESOURCES.map(([groupVersion]) => groupVersion).filter((gv) => gv.includes("/"))),
      ];
      const byGroup = new Map<string, string[]>();
      for (const gv of groups) {
        const group = gv.split("/")[0] as string;
        byGroup.set(group, [...(byGroup.get(group) ?? []), gv]);
      }
      return [
        200,
        {
          kind: "APIGroupList",
          apiVersion: "v1",
          groups: [...byGroup].map(([name, versions]) => ({
            name,
            versions: versions.map((groupVersion) => ({ groupVersion, version: groupVersion.split("/")[1] })),
            preferredVersion: { groupVersion: versions[0], version: versions[0]?.split("/")[1] },
          })),
        },
      ];
    }
    const discovery = /^\/apis?\/(.+)$/.exec(path)?.[1];
    const resources = RESOURCES.filter(([groupVersion]) => groupVersion === discovery);
    if (resources.length > 0) {
      return [
        200,
        {
          kind: "APIResourceList",
          groupVersion: discovery,
          resources: resources.map(([, kind, name, namespaced]) => ({
            name,
            singularName: kind.toLowerCase(),
            namespaced,
            kind,
            verbs: ["get", "list", "create", "update"],
          })),
        },
      ];
    }
    const secret = /^\/api\/v1\/namespaces\/([^/]+)\/secrets\/([^/]+)$/.exec(path);
    const stored = secret && this.secrets.get(`${secret[1]}/${secret[2]}`);
    if (secret && stored) {
      // What helm puts on what it created, and checks before it takes an object over.
      const owner = stored.release && {
        labels: { "app.kubernetes.io/managed-by": "Helm" },
        annotations: {
          "meta.helm.sh/release-name": stored.release,
          "meta.helm.sh/release-namespace": secret[1],
        },
      };
      const metadata = { name: secret[2], namespace: secret[1], ...owner };
      return [200, { apiVersion: "v1", kind: "Secret", metadata, data: stored.data }];
    }
    return [404, { kind: "Status", apiVersion: "v1", status: "Failure", reason: "NotFound", code: 404 }];
  }
}
