import type { K8sObject } from "./helm.js";

/** A pod somewhere in the cluster that tries to open a connection. */
export interface Client {
  readonly namespace: string;
  readonly labels?: Record<string, string>;
  readonly namespaceLabels?: Record<string, string>;
  /** Its IPv4 address; without one, every ipBlock counts as covering it. */
  readonly ip?: string;
  /** A host outside the cluster: only ipBlocks can select it. */
  readonly outsideCluster?: boolean;
}

/** The pod and port the client connects to. */
export interface Destination {
  readonly namespace: string;
  readonly labels: Record<string, string>;
  readonly port: number;
  readonly portName: string;
  /** TCP unless said otherwise, as in a NetworkPolicyPort. */
  readonly protocol?: "TCP" | "UDP";
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
  ipBlock?: { cidr: string; except?: string[] };
}

function ipv4(address: string): number {
  const parts = address.split(".").map(Number);
  if (parts.length !== 4 || parts.some((part) => !Number.isInteger(part) || part < 0 || part > 255)) {
    throw new Error(`not an IPv4 address: ${address}`);
  }
  return parts.reduce((value, part) => value * 256 + part, 0);
}

function inCidr(address: string, cidr: string): boolean {
  const [network = "", bits = "32"] = cidr.split("/");
  const size = 2 ** (32 - Number(bits));
  return Math.floor(ipv4(address) / size) === Math.floor(ipv4(network) / size);
}

interface PolicyPort {
  port?: number | string;
  protocol?: string;
}

function portAdmits(ports: PolicyPort[] | undefined, destination: Destination): boolean {
  const protocol = destination.protocol ?? "TCP";
  return (
    !ports ||
    ports.length === 0 ||
    ports.some(
      (rule) =>
        (rule.protocol ?? "TCP") === protocol &&
        (rule.port === undefined || rule.port === destination.port || rule.port === destination.portName),
    )
  );
}

function peerAdmits(peer: Peer, policyNamespace: string, client: Client): boolean {
  // An ipBlock may cover pod addresses: without a known address it admits everyone, so it can never hide a hole.
  if (peer.ipBlock) {
    const { cidr, except = [] } = peer.ipBlock;
    if (client.ip === undefined) return true;
    return inCidr(client.ip, cidr) && !except.some((range) => inCidr(client.ip as string, range));
  }
  if (client.outsideCluster) return false;
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
    (policy.spec.ingress ?? []).some((rule: { from?: Peer[]; ports?: PolicyPort[] }) => {
      const peerOk =
        !rule.from ||
        rule.from.length === 0 ||
        rule.from.some((peer) => peerAdmits(peer, destination.namespace, client));
      return peerOk && portAdmits(rule.ports, destination);
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
  /** Its IPv4 address; without one, every ipBlock counts as covering it. */
  readonly ip?: string;
  /** A host outside the cluster (namespace and labels unused): only ipBlocks can select it. */
  readonly outsideCluster?: boolean;
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
    ip: target.ip,
    outsideCluster: target.outsideCluster,
  };
  return selecting.some((policy) =>
    (policy.spec.egress ?? []).some((rule: { to?: Peer[]; ports?: PolicyPort[] }) => {
      const peerOk =
        !rule.to || rule.to.length === 0 || rule.to.some((to) => peerAdmits(to, source.namespace, peer));
      return peerOk && portAdmits(rule.ports, target);
    }),
  );
}
