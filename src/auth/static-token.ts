import { createHash, timingSafeEqual } from "node:crypto";
import type { StaticTokenIdentity } from "../config/load.js";
import type { Identity } from "./identity.js";

/**
 * Verifies static tokens against their configured SHA-256 hashes. The lookup is by digest (which
 * reveals nothing about the token), and the final comparison is constant-time.
 */
export function createStaticTokenVerifier(identities: readonly StaticTokenIdentity[]) {
  const byDigest = new Map<string, { digest: Buffer; identity: Identity }>();
  for (const { name, sha256 } of identities) {
    byDigest.set(sha256.toString("hex"), {
      digest: sha256,
      identity: Object.freeze({ name, via: "static-token", groups: [], claims: {} }),
    });
  }
  return function verifyStaticToken(token: string): Identity | undefined {
    const digest = createHash("sha256").update(token, "utf8").digest();
    const entry = byDigest.get(digest.toString("hex"));
    return entry && timingSafeEqual(entry.digest, digest) ? entry.identity : undefined;
  };
}
