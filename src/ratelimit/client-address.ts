import { BlockList, isIP } from "node:net";

/** The address a request comes from, as far as pushguard can trust it. */
export type ClientAddress = (
  socketAddress: string | undefined,
  forwardedFor: string | string[] | undefined,
) => string;

export interface Cidr {
  readonly address: string;
  readonly prefix: number;
  readonly family: "ipv4" | "ipv6";
}

/** Parses `10.0.0.0/8`, `fd00::/8` or a bare address (a /32 or /128); undefined when invalid. */
export function parseCidr(value: string): Cidr | undefined {
  const [address = "", prefix, ...rest] = value.trim().split("/");
  const version = isIP(address);
  if (version === 0 || rest.length > 0) return undefined;
  const max = version === 4 ? 32 : 128;
  if (prefix !== undefined && !/^\d{1,3}$/.test(prefix)) return undefined;
  const bits = prefix === undefined ? max : Number(prefix);
  if (bits > max) return undefined;
  return { address, prefix: bits, family: version === 4 ? "ipv4" : "ipv6" };
}

/**
 * `X-Forwarded-For` is honoured only when the peer is a trusted proxy, and then only as far as
 * the chain of trusted proxies goes: walking it from the right, the first address that is not a
 * trusted proxy is the client. Anything to its left was written by the client and could be
 * anything, so it is never used (else one client could claim a fresh address per request).
 */
export function createClientAddress(trustedProxies: readonly string[]): ClientAddress {
  const trusted = new BlockList();
  for (const entry of trustedProxies) {
    const cidr = parseCidr(entry);
    if (!cidr) throw new Error(`not an IP address or CIDR block: ${entry}`);
    trusted.addSubnet(cidr.address, cidr.prefix, cidr.family);
  }
  const isTrusted = (address: string) => {
    const version = isIP(address);
    return version !== 0 && trusted.check(address, version === 4 ? "ipv4" : "ipv6");
  };

  return function clientAddress(socketAddress, forwardedFor) {
    let client = normalize(socketAddress ?? "unknown");
    if (trustedProxies.length === 0 || !isTrusted(client) || forwardedFor === undefined) return client;
    const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(",") : forwardedFor)
      .split(",")
      .map((hop) => normalize(hop.trim()));
    for (let index = hops.length - 1; index >= 0; index--) {
      const hop = hops[index] as string;
      // A hop a trusted proxy wrote is always an address; anything else ends the trusted chain.
      if (isIP(hop) === 0) return client;
      client = hop;
      if (!isTrusted(hop)) return client;
    }
    return client;
  };
}

/** `::ffff:10.1.2.3` (an IPv4 client on a dual-stack socket) is `10.1.2.3`. */
function normalize(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped ? (mapped[1] as string) : address.toLowerCase();
}
