import type { K8sObject } from "./helm.js";

/** A pod somewhere in the cluster that tries to open a connection. */
export interface Client {
  readonly namespace: string;
  readonly labels?: Record<string, string>;
  readonly namespaceLabels?: Record<string, string>;
}

/** The pod and port the client connects to. */
export interface Destination {
  readonly namespace: string;
  readonly labels: Record<string, string>;
  readonly port: number;
  readonly portName: string;
}

interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: Array<{
    key: string;
    operator: "In" | "NotIn" | "Exists" | "DoesNotExist";
    values?: string[];
  }>;
}

export function selects(selector: LabelSelector, labels: Record<string, string>): boolean {
  const exact = Object.entries(selector.matchLabels ?? {}).every(([key, value]) => labels[key] === value);
  const expressions = (selector.matchExpressions ?? []).every(({ key, operator, values = [] }) => {
    switch (operator) {
      case "In":
        return key in labels && values.includes(labels[key] as string);
      case "NotIn":
        return !(key in labels) || !values.includes(labels[key] as string);
      case "Exists":
        return key in labels;
      case "DoesNotExist":
        return !(key in labels);
    }
    throw new Error(`unknown selector operator ${operator}`);
  });
  return exact && expressions;
}

interface Peer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: unknown;
}

function peerAdmits(peer: Peer, policyNamespace: string, client: Client): boolean {
  // An ipBlock may cover pod addresses; count it as admitting everyone, so it can never hide a hole.
  if (peer.ipBlock) return true;
  const namespaceLabels = { "kubernetes.io/metadata.name": client.namespace, ...client.namespaceLabels };
  const namespaceOk = peer.namespaceSelector
    ? selects(peer.namespaceSelector, namespaceLabels)
    : client.namespace === policyNamespace;
  return namespaceOk && selects(peer.podSelector ?? {}, client.labels ?? {});
}

/**
 * Whether Kubernetes NetworkPolicy semantics let `client` connect to `destination`: a pod selected
 * by no ingress policy is open; otherwise some rule of a selecting policy must admit both the peer
 * and the port (a rule without `from` or `ports` admits every peer or port).
 */
export function admits(policies: readonly K8sObject[], destination: Destination, client: Client): boolean {
  const selecting = policies.filter(
    (policy) =>
      policy.kind === "NetworkPolicy" &&
      (policy.metadata.namespace ?? destination.namespace) === destination.namespace &&
      selects(policy.spec.podSelector ?? {}, destination.labels) &&
      (policy.spec.policyTypes ?? ["Ingress"]).includes("Ingress"),
  );
  if (selecting.length === 0) return true;
  return selecting.some((policy) =>
    (policy.spec.ingress ?? []).some((rule: { from?: Peer[]; ports?: Array<{ port?: number | string }> }) => {
      const peerOk =
        !rule.from ||
        rule.from.length === 0 ||
        rule.from.some((peer) => peerAdmits(peer, destination.namespace, client));
      const portOk =
        !rule.ports ||
        rule.ports.length === 0 ||
        rule.ports.some(
          ({ port }) => port === undefined || port === destination.port || port === destination.portName,
        );
      return peerOk && portOk;
    }),
  );
}

/** A pod that opens a connection, by its namespace and labels. */
export interface Source {
  readonly namespace: string;
  readonly labels: Record<string, string>;
}

/** The pod (with its namespace's labels) and port a connection goes to. */
export interface Target extends Destination {
  readonly namespaceLabels?: Record<string, string>;
}

/**
 * Whether Kubernetes NetworkPolicy semantics let `source` open a connection to `target`: a pod
 * selected by no egress policy may reach anything; otherwise some egress rule of a selecting policy
 * must admit both the peer and the port (a rule without `to` or `ports` admits every peer or port).
 */
export function egressAdmits(policies: readonly K8sObject[], source: Source, target: Target): boolean {
  const selecting = policies.filter(
    (policy) =>
      policy.kind === "NetworkPolicy" &&
      (policy.metadata.namespace ?? source.namespace) === source.namespace &&
      selects(policy.spec.podSelector ?? {}, source.labels) &&
      // Without policyTypes, a policy restricts egress only when it has egress rules.
      (policy.spec.policyTypes ?? (policy.spec.egress ? ["Egress"] : [])).includes("Egress"),
  );
  if (selecting.length === 0) return true;
  const peer: Client = {
    namespace: target.namespace,
    labels: target.labels,
    namespaceLabels: target.namespaceLabels,
  };
  return selecting.some((policy) =>
    (policy.spec.egress ?? []).some((rule: { to?: Peer[]; ports?: Array<{ port?: number | string }> }) => {
      const peerOk =
        !rule.to || rule.to.length === 0 || rule.to.some((to) => peerAdmits(to, source.namespace, peer));
      const portOk =
        !rule.ports ||
        rule.ports.length === 0 ||
        rule.ports.some(({ port }) => port === undefined || port === target.port || port === target.portName);
      return peerOk && portOk;
    }),
  );
}
