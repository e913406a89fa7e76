import { readFileSync } from "node:fs";
import { join } from "node:path";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { ScrapeConfig } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1alpha1/ScrapeConfig";
import { Ajv } from "ajv";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { StatefulSet } from "kubernetes-models/apps/v1/StatefulSet";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import { Ingress } from "kubernetes-models/networking.k8s.io/v1/Ingress";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { ClusterRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Pod } from "kubernetes-models/v1/Pod";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { type K8sObject, type Loose, REPO } from "./helm.js";

/**
 * The Kubernetes and prometheus-operator schemas the chart's rendered objects are checked against.
 *
 * Every kind the chart may render, with its model and the module its TypeScript type comes from.
 * A kind missing here fails the test, so a new template cannot skip validation.
 */
export const MODELS: Record<
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
  "networking.k8s.io/v1/Ingress": {
    model: Ingress,
    module: "kubernetes-models/networking.k8s.io/v1/Ingress",
    type: "IIngress",
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

/**
 * Kinds without a kubernetes-models class, checked against their CRD's own schema (vendored in
 * fixtures/), made strict: every object that lists its properties refuses others, as the API
 * server's strict field validation does.
 */
function strict(schema: Loose): Loose {
  if (Array.isArray(schema)) return schema.map(strict);
  if (schema === null || typeof schema !== "object") return schema;
  const copy = Object.fromEntries(
    Object.entries(schema)
      .filter(([key]) => !key.startsWith("x-kubernetes-"))
      .map(([key, value]) => [key, strict(value)]),
  );
  if (copy.properties && copy.additionalProperties === undefined) copy.additionalProperties = false;
  return copy;
}
const crdSchema = (file: string) =>
  strict(JSON.parse(readFileSync(join(REPO, "test/chart/fixtures", file), "utf8")).schema);
const ajv = new Ajv({ strict: false, allErrors: true });
export const CRD_SCHEMAS: Record<string, ReturnType<Ajv["compile"]>> = {
  "gateway.networking.k8s.io/v1/HTTPRoute": ajv.compile(crdSchema("httproute-v1.schema.json")),
};

export const modelKey = (object: K8sObject) => `${object.apiVersion}/${object.kind}`;

/** What is wrong with `object` by its kind's schema: nothing, or the errors (a kind without a schema is one). */
export function schemaProblems(object: K8sObject): unknown[] {
  const validateCrd = CRD_SCHEMAS[modelKey(object)];
  if (validateCrd) return validateCrd(object) ? [] : (validateCrd.errors ?? []);
  const entry = MODELS[modelKey(object)];
  if (!entry) return [`no model for ${modelKey(object)}`];
  try {
    new entry.model(object as never).validate();
    return [];
  } catch (error) {
    return [String(error)];
  }
}
