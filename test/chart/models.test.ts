import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { ScrapeConfig } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1alpha1/ScrapeConfig";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { StatefulSet } from "kubernetes-models/apps/v1/StatefulSet";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { ClusterRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Pod } from "kubernetes-models/v1/Pod";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { HELMS, type K8sObject, REPO, render, VARIANTS } from "./helm.js";

/**
 * Every kind the chart may render, with its model and the module its TypeScript type comes from.
 * A kind missing here fails the test, so a new template cannot skip validation.
 */
const MODELS: Record<
  string,
  { model: new (data: never) => { validate(): void }; module: string; type: string }
> = {
  "apps/v1/Deployment": {
    model: Deployment,
    module: "kubernetes-models/apps/v1/Deployment",
    type: "IDeployment",
  },
  "apps/v1/StatefulSet": {
    model: StatefulSet,
    module: "kubernetes-models/apps/v1/StatefulSet",
    type: "IStatefulSet",
  },
  "autoscaling/v2/HorizontalPodAutoscaler": {
    model: HorizontalPodAutoscaler,
    module: "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler",
    type: "IHorizontalPodAutoscaler",
  },
  "networking.k8s.io/v1/NetworkPolicy": {
    model: NetworkPolicy,
    module: "kubernetes-models/networking.k8s.io/v1/NetworkPolicy",
    type: "INetworkPolicy",
  },
  "policy/v1/PodDisruptionBudget": {
    model: PodDisruptionBudget,
    module: "kubernetes-models/policy/v1/PodDisruptionBudget",
    type: "IPodDisruptionBudget",
  },
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": {
    model: ClusterRoleBinding,
    module: "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding",
    type: "IClusterRoleBinding",
  },
  "v1/ConfigMap": { model: ConfigMap, module: "kubernetes-models/v1/ConfigMap", type: "IConfigMap" },
  "v1/Pod": { model: Pod, module: "kubernetes-models/v1/Pod", type: "IPod" },
  "v1/Secret": { model: Secret, module: "kubernetes-models/v1/Secret", type: "ISecret" },
  "v1/Service": { model: Service, module: "kubernetes-models/v1/Service", type: "IService" },
  "v1/ServiceAccount": {
    model: ServiceAccount,
    module: "kubernetes-models/v1/ServiceAccount",
    type: "IServiceAccount",
  },
  "monitoring.coreos.com/v1/ServiceMonitor": {
    model: ServiceMonitor,
    module: "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor",
    type: "IServiceMonitor",
  },
  "monitoring.coreos.com/v1alpha1/ScrapeConfig": {
    model: ScrapeConfig,
    module: "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1alpha1/ScrapeConfig",
    type: "IScrapeConfig",
  },
  "monitoring.coreos.com/v1/PrometheusRule": {
    model: PrometheusRule,
    module: "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule",
    type: "IPrometheusRule",
  },
};

const helm = HELMS[HELMS.length - 1] as (typeof HELMS)[number];
const modelKey = (object: K8sObject) => `${object.apiVersion}/${object.kind}`;

describe("every rendered object is valid against the Kubernetes and prometheus-operator schemas", () => {
  it.each(VARIANTS)("$name", ({ files }) => {
    const objects = render(helm, files);
    for (const object of objects) {
      const entry = MODELS[modelKey(object)];
      expect(entry, `a model for ${modelKey(object)}`).toBeDefined();
      const where = `${object.kind}/${object.metadata.name}`;
      expect(
        () => new (entry as NonNullable<typeof entry>).model(object as never).validate(),
        where,
      ).not.toThrow();
    }
  });
});

/**
 * The JSON-schema validators accept unknown fields (the API server, with strict field validation,
 * does not). TypeScript's excess-property check against the same models' types catches a
 * misspelled or misplaced field in any rendered object.
 */
describe("rendered objects have no unknown fields", () => {
  it("type-checks every object of every variant against its kubernetes-models type", () => {
    const directory = join(REPO, ".tmp/chart-types");
    mkdirSync(directory, { recursive: true });
    const imports = Object.values(MODELS).map(
      ({ module, type }) => `import type { ${type} } from "${module}";`,
    );
    const declarations = VARIANTS.flatMap(({ name, files }) =>
      render(helm, files).map((object, index) => {
        const entry = MODELS[modelKey(object)];
        const label = `${name} ${object.kind}/${object.metadata.name}`.replaceAll("*/", "*\\/");
        return `/* ${label} */ export const o${VARIANTS.findIndex((v) => v.name === name)}_${index}: ${entry?.type ?? "never"} = ${JSON.stringify(object)};`;
      }),
    );
    const file = join(directory, "objects.ts");
    writeFileSync(file, `${imports.join("\n")}\n${declarations.join("\n")}\n`);
    const program = ts.createProgram([file], {
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      types: [],
    });
    const problems = ts.getPreEmitDiagnostics(program).map((diagnostic) => {
      const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n");
      if (!diagnostic.file || diagnostic.start === undefined) return message;
      const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
      const source = diagnostic.file.text.split("\n")[line] ?? "";
      return `${source.slice(0, source.indexOf("*/") + 2)} ${message}`;
    });
    expect(problems).toEqual([]);
  });
});
