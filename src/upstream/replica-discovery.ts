import { lookup } from "node:dns/promises";
import { isIPv6 } from "node:net";

/** Every address a host name resolves to (A and AAAA), e.g. a headless Service's ready pods. */
export type ResolveHost = (hostname: string) => Promise<string[]>;

export const resolveWithSystem: ResolveHost = async (hostname) =>
  (await lookup(hostname, { all: true })).map((address) => address.address);

export interface DnsReplicas {
  readonly name: string;
  readonly port: number;
  readonly scheme: "http" | "https";
}

/**
 * The replica URLs behind a DNS name, sorted. Each address is one replica, so a pod that comes
 * back with a new IP is a new (empty, then repaired) replica and the old address disappears.
 */
export async function resolveReplicas(dns: DnsReplicas, resolve: ResolveHost): Promise<string[]> {
  const addresses = [...new Set(await resolve(dns.name))];
  return addresses
    .map((address) => `${dns.scheme}://${isIPv6(address) ? `[${address}]` : address}:${dns.port}`)
    .sort();
}
