import { describe, expect, it } from "vitest";
import { createClientAddress, parseCidr } from "../../src/ratelimit/client-address.js";

describe("client address behind trusted proxies", () => {
  it("ignores X-Forwarded-For when no proxy is trusted, or when the peer is not one", () => {
    expect(createClientAddress([])("10.0.0.5", "203.0.113.9")).toBe("10.0.0.5");
    expect(createClientAddress(["10.0.0.0/8"])("192.0.2.1", "203.0.113.9")).toBe("192.0.2.1");
  });

  it("walks the chain from the right and stops at the first address that is not a trusted proxy", () => {
    const resolve = createClientAddress(["10.0.0.0/8", "fd00::/8"]);
    expect(resolve("10.0.0.5", "203.0.113.9")).toBe("203.0.113.9");
    // The client claimed 198.51.100.1 itself; the trusted proxy saw 203.0.113.9.
    expect(resolve("10.0.0.5", "198.51.100.1, 203.0.113.9, 10.1.1.1")).toBe("203.0.113.9");
    expect(resolve("fd00::1", ["198.51.100.1", "2001:db8::7"])).toBe("2001:db8::7");
  });

  it("falls back to the nearest trusted hop when the chain holds no usable address", () => {
    const resolve = createClientAddress(["10.0.0.0/8"]);
    expect(resolve("10.0.0.5", "10.0.0.9")).toBe("10.0.0.9");
    expect(resolve("10.0.0.5", "not-an-ip, 10.0.0.9")).toBe("10.0.0.9");
    expect(resolve("10.0.0.5", "")).toBe("10.0.0.5");
    expect(resolve("10.0.0.5", undefined)).toBe("10.0.0.5");
  });

  it("treats IPv4-mapped IPv6 peers as the IPv4 address they are", () => {
    expect(createClientAddress(["127.0.0.1"])("::ffff:127.0.0.1", "192.0.2.44")).toBe("192.0.2.44");
    expect(createClientAddress([])("::ffff:192.0.2.1", undefined)).toBe("192.0.2.1");
  });

  it.each([
    ["10.0.0.0/8", { address: "10.0.0.0", prefix: 8, family: "ipv4" }],
    ["192.0.2.1", { address: "192.0.2.1", prefix: 32, family: "ipv4" }],
    ["::1", { address: "::1", prefix: 128, family: "ipv6" }],
    ["fd00::/8", { address: "fd00::", prefix: 8, family: "ipv6" }],
  ])("parses %s", (value, expected) => {
    expect(parseCidr(value)).toEqual(expected);
  });

  it.each(["10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0/8", "host.example", "10.0.0.0/8/8", "10.0.0.0/-1"])(
    "refuses %s",
    (value) => {
      expect(parseCidr(value)).toBeUndefined();
    },
  );
});
