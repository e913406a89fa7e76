import { createPublicKey } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createLocalJWKSet, type JWTPayload, type JWTVerifyGetKey, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { createAuthenticator } from "../../src/auth/authenticate.js";
import { createKeySource, type FetchLike } from "../../src/auth/jwks.js";
import { claimAt, createJwtVerifier, type JwtIssuerOptions, looksLikeJwt } from "../../src/auth/jwt.js";
import { parseConfig } from "../../src/config/load.js";
import { ProblemError } from "../../src/errors.js";
import { generateSigningKey, type SigningKey, seconds, signJwt, signRaw } from "../support/jwt-issuer.js";

const ISSUER = "https://idp.example.com/realms/batch";
const OTHER_ISSUER = "https://ci.example.com";

/** Base options of one issuer, in the verifier's terms (what `jwtIssuers(config)` produces). */
function issuerOptions(overrides: Partial<JwtIssuerOptions> = {}): JwtIssuerOptions {
  return {
    kind: "oidc",
    name: "idp",
    issuer: ISSUER,
    audiences: ["pushguard"],
    algorithms: ["RS256", "ES256"],
    clockToleranceSec: 30,
    maxTokenBytes: 8192,
    subjectClaim: "sub",
    cooldownMs: 60_000,
    cacheMaxAgeMs: 600_000,
    timeoutMs: 2_000,
    ...overrides,
  };
}

interface FetchCall {
  url: string;
  headers: Record<string, string>;
  redirect: unknown;
}

/**
 * An in-memory issuer behind an injected fetch: discovery and JWKS for each issuer URL, every call
 * recorded. `down` makes every request fail the way a refused connection does.
 */
function fakeIssuers(keysByIssuer: Record<string, SigningKey[]>) {
  const calls: FetchCall[] = [];
  const state = { down: false, status: 200 };
  const fetch: FetchLike = async (url, init) => {
    calls.push({ url, headers: init.headers, redirect: (init as { redirect?: unknown }).redirect });
    if (state.down) throw new TypeError("fetch failed", { cause: new Error("connect ECONNREFUSED") });
    if (state.status !== 200) return new Response("nope", { status: state.status });
    for (const [issuer, keys] of Object.entries(keysByIssuer)) {
      if (url === `${issuer}/.well-known/openid-configuration`)
        return Response.json({ issuer, jwks_uri: `${issuer}/protocol/certs` });
      if (url === `${issuer}/protocol/certs`)
        return Response.json({ keys: keys.map((key) => key.publicJwk) });
    }
    return new Response("not found", { status: 404 });
  };
  return {
    fetch,
    calls,
    state,
    jwksFetches: () => calls.filter((call) => call.url.endsWith("/protocol/certs")).length,
    discoveryFetches: () => calls.filter((call) => call.url.endsWith("/openid-configuration")).length,
  };
}

function claims(overrides: JWTPayload = {}, at = Date.now()): JWTPayload {
  const now = seconds(at);
  return { iss: ISSUER, aud: "pushguard", sub: "batch-job", iat: now, exp: now + 300, ...overrides };
}

async function rejection(promise: Promise<unknown>): Promise<ProblemError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(ProblemError);
  return error as ProblemError;
}

const idpKey = generateSigningKey("idp-key-1");
const attackerKey = generateSigningKey("attacker");
const ciKey = generateSigningKey("ci-key-1", "ES256");

describe("claimAt", () => {
  const payload = {
    sub: "svc",
    realm_access: { roles: ["metrics-pusher", "offline_access"] },
    "kubernetes.io": { namespace: "payments", serviceaccount: { name: "reporter", uid: "u-1" } },
    "https://example.com/claims": { team: "payments" },
    "a.b": "whole dotted key",
    a: { b: "nested", c: { d: 4 } },
    groups: ["g1", "g2"],
  };

  it("reads nested paths such as realm_access.roles", () => {
    expect(claimAt(payload, "realm_access.roles")).toEqual(["metrics-pusher", "offline_access"]);
    expect(claimAt(payload, "a.c.d")).toBe(4);
  });

  it("reads keys that contain dots, as Kubernetes' kubernetes.io claim", () => {
    expect(claimAt(payload, "kubernetes.io.namespace")).toBe("payments");
    expect(claimAt(payload, "kubernetes.io.serviceaccount.name")).toBe("reporter");
    expect(claimAt(payload, "kubernetes.io")).toEqual(payload["kubernetes.io"]);
    expect(claimAt(payload, "https://example.com/claims.team")).toBe("payments");
  });

  it("prefers a whole dotted key over nesting, and falls back to nesting", () => {
    expect(claimAt(payload, "a.b")).toBe("whole dotted key");
    expect(claimAt({ a: { b: "nested" } }, "a.b")).toBe("nested");
  });

  it("answers undefined for what is not there, and does not index into arrays or strings", () => {
    expect(claimAt(payload, "realm_access.missing")).toBeUndefined();
    expect(claimAt(payload, "nope")).toBeUndefined();
    expect(claimAt(payload, "groups.0")).toBeUndefined();
    expect(claimAt(payload, "sub.length")).toBeUndefined();
    expect(claimAt(payload, "")).toBeUndefined();
  });

  it("never returns what the object inherits (constructor, toString, __proto__)", () => {
    for (const path of [
      "constructor",
      "toString",
      "__proto__",
      "hasOwnProperty",
      "a.constructor",
      "a.__proto__",
    ])
      expect(claimAt(payload, path), path).toBeUndefined();
    // An own claim named like an inherited property is still read.
    expect(claimAt(JSON.parse('{"constructor":"own"}'), "constructor")).toBe("own");
  });
});

describe("looksLikeJwt", () => {
  it("accepts three base64url segments (the last may be empty) and nothing else", () => {
    expect(looksLikeJwt("eyJh.eyJi.c2ln")).toBe(true);
    expect(looksLikeJwt("eyJh.eyJi.")).toBe(true);
    for (const token of ["static-token-0123456789", "a.b", "a.b.c.d", "a b.c.d", "a.b+.c", "", ".."])
      expect(looksLikeJwt(token), token).toBe(false);
  });
});

describe("createJwtVerifier", () => {
  it("maps subject and groups (a nested array, a single string) into the identity", async () => {
    const idp = fakeIssuers({ [ISSUER]: [idpKey] });
    const verify = createJwtVerifier(
      [issuerOptions({ subjectClaim: "preferred_username", groupsClaim: "realm_access.roles" })],
      { fetch: idp.fetch },
    );
    const identity = await verify(
      await signJwt(
        claims({ preferred_username: "nightly-backup", realm_access: { roles: ["pushers", 7, "ops"] } }),
        idpKey,
      ),
    );
    expect(identity).toMatchObject({
      name: "nightly-backup",
      via: "oidc",
      issuer: "idp",
      groups: ["pushers", "ops"],
    });
    expect(identity.claims.sub).toBe("batch-job");
    expect(Object.isFrozen(identity)).toBe(true);

    const single = createJwtVerifier([issuerOptions({ groupsClaim: "group" })], { fetch: idp.fetch });
    expect((await single(await signJwt(claims({ group: "solo" }), idpKey))).groups).toEqual(["solo"]);
    const none = createJwtVerifier([issuerOptions({ groupsClaim: "groups" })], { fetch: idp.fetch });
    expect((await none(await signJwt(claims(), idpKey))).groups).toEqual([]);
  });

  it("refuses a token without a string subject claim", async () => {
    const idp = fakeIssuers({ [ISSUER]: [idpKey] });
    const verify = createJwtVerifier([issuerOptions({ subjectClaim: "email" })], { fetch: idp.fetch });
    const problem = await rejection(verify(await signJwt(claims({ email: 42 }), idpKey)));
    expect([problem.code, problem.reason]).toEqual(["ERR_AUTH_INVALID", "no-subject"]);
  });

  it("picks the verifier by iss from the allow-list; an unknown issuer costs no fetch at all", async () => {
    const idp = fakeIssuers({ [ISSUER]: [idpKey], [OTHER_ISSUER]: [ciKey] });
    const verify = createJwtVerifier([issuerOptions(), issuerOptions({ name: "ci", issuer: OTHER_ISSUER })], {
      fetch: idp.fetch,
    });
    for (const iss of ["https://evil.example", `${ISSUER}/`, ISSUER.toUpperCase(), undefined]) {
      const problem = await rejection(verify(await signJwt(claims({ iss }), attackerKey)));
      expect([problem.code, problem.reason]).toEqual(["ERR_AUTH_INVALID", "unknown-issuer"]);
    }
    const garbage = await rejection(verify("eyJhbGciOiJSUzI1NiJ9.bm90LWpzb24.c2ln"));
    expect(garbage.reason).toBe("malformed");
    expect(idp.calls).toEqual([]);
    // Each trusted issuer verifies its own tokens.
    expect((await verify(await signJwt(claims(), idpKey))).issuer).toBe("idp");
    expect((await verify(await signJwt(claims({ iss: OTHER_ISSUER }), ciKey))).issuer).toBe("ci");
  });

  it("refuses alg none and HMAC before any key is fetched", async () => {
    const idp = fakeIssuers({ [ISSUER]: [idpKey] });
    const verify = createJwtVerifier([issuerOptions()], { fetch: idp.fetch });
    for (const alg of ["none", "None", "NONE"]) {
      const problem = await rejection(verify(signRaw({ alg, kid: idpKey.kid }, claims())));
      expect(problem.reason).toBe("alg-not-allowed");
    }
    // The classic confusion: the issuer's public key (PEM or JWK JSON) used as an HMAC secret.
    const publicPem = createPublicKey(idpKey.privateKey).export({ type: "spki", format: "pem" });
    for (const secret of [publicPem, JSON.stringify(idpKey.publicJwk)]) {
      const token = await new SignJWT(claims())
        .setProtectedHeader({ alg: "HS256", kid: idpKey.kid })
        .sign(new TextEncoder().encode(String(secret)));
      expect((await rejection(verify(token))).reason).toBe("alg-not-allowed");
    }
    expect(idp.calls).toEqual([]);
  });

  it("refuses tokens that name their own key material without fetching it", async () => {
    const idp = fakeIssuers({ [ISSUER]: [idpKey] });
    const verify = createJwtVerifier([issuerOptions()], { fetch: idp.fetch });
    for (const header of [
      { jwk: attackerKey.publicJwk },
      { jku: "https://attacker.example/jwks.json" },
      { x5u: "https://attacker.example/cert.pem" },
      { x5c: ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"] },
    ]) {
      const problem = await rejection(verify(await signJwt(claims(), attackerKey, header)));
      expect(problem.reason, Object.keys(header)[0]).toBe("forbidden-header");
    }
    expect(idp.calls.filter((call) => call.url.includes("attacker"))).toEqual([]);
  });

  it("enforces exp (required), nbf and the clock tolerance against the injected clock", async () => {
    const idp = fakeIssuers({ [ISSUER]: [idpKey] });
    let clock = Date.parse("2030-01-01T00:00:00Z");
    const verify = createJwtVerifier([issuerOptions({ clockToleranceSec: 30 })], {
      fetch: idp.fetch,
      now: () => clock,
    });
    const now = seconds(clock);
    const sign = (overrides: JWTPayload) => signJwt(claims(overrides, clock), idpKey);
    await expect(verify(await sign({ exp: now - 20 }))).resolves.toBeTruthy();
    await expect(verify(await sign({ nbf: now + 20 }))).resolves.toBeTruthy();
    expect((await rejection(verify(await sign({ exp: now - 31 })))).reason).toBe("expired");
    expect((await rejection(verify(await sign({ nbf: now + 3600 })))).reason).toBe("claim-nbf");
    expect((await rejection(verify(await sign({ exp: undefined })))).reason).toBe("claim-exp");

    // The verified-token cache never outlives the token: advance the clock past exp + tolerance.
    const token = await sign({ exp: now + 60 });
    await expect(verify(token)).resolves.toBeTruthy();
    clock += 61_000;
    await expect(verify(token)).resolves.toBeTruthy();
    clock += 30_000;
    expect((await rejection(verify(token))).reason).toBe("expired");
  });

  it("verifies a token once: a second presentation is answered from the cache, without key lookup", async () => {
    const keys = createLocalJWKSet({ keys: [idpKey.publicJwk] });
    let lookups = 0;
    const countingKeys: JWTVerifyGetKey = (header, token) => {
      lookups++;
      return keys(header, token);
    };
    // Every issuer gets the counting key source, whatever the verifier's key for it is.
    const keySources = new (class extends Map<string, JWTVerifyGetKey> {
      override get() {
        return countingKeys;
      }
    })();
    const verify = createJwtVerifier([issuerOptions()], { keySources });
    const token = await signJwt(claims(), idpKey);
    const first = await verify(token);
    expect(lookups).toBe(1);
    expect(await verify(token)).toBe(first);
    expect(lookups).toBe(1);
    // Another token (even for the same subject) is verified on its own.
    await verify(await signJwt(claims({ jti: "another" }), idpKey));
    expect(lookups).toBe(2);
    // A cache of size 0 verifies every presentation.
    const uncached = createJwtVerifier([issuerOptions()], { keySources, cacheSize: 0 });
    await uncached(token);
    await uncached(token);
    expect(lookups).toBe(4);
  });

  it("checks audience and the typ header when one is configured", async () => {
    const idp = fakeIssuers({ [ISSUER]: [idpKey] });
    const verify = createJwtVerifier(
      [issuerOptions({ audiences: ["pushguard", "urn:pushguard"], typ: "at+jwt" })],
      {
        fetch: idp.fetch,
      },
    );
    await expect(
      verify(await signJwt(claims({ aud: ["other", "urn:pushguard"] }), idpKey, { typ: "at+jwt" })),
    ).resolves.toBeTruthy();
    await expect(
      verify(await signJwt(claims(), idpKey, { typ: "application/at+jwt" })),
    ).resolves.toBeTruthy();
    expect(
      (await rejection(verify(await signJwt(claims({ aud: "grafana" }), idpKey, { typ: "at+jwt" })))).reason,
    ).toBe("claim-aud");
    expect(
      (await rejection(verify(await signJwt(claims({ aud: undefined }), idpKey, { typ: "at+jwt" })))).reason,
    ).toBe("claim-aud");
    expect((await rejection(verify(await signJwt(claims(), idpKey, { typ: "JWT" })))).reason).toBe(
      "claim-typ",
    );
    expect((await rejection(verify(await signJwt(claims(), idpKey)))).reason).toBe("claim-typ");
  });

  it("refuses a tampered payload, an attacker key reusing the issuer's kid, and an unknown crit", async () => {
    const idp = fakeIssuers({ [ISSUER]: [idpKey] });
    const verify = createJwtVerifier([issuerOptions()], { fetch: idp.fetch });
    const genuine = await signJwt(claims({ sub: "batch-job" }), idpKey);
    await expect(verify(genuine)).resolves.toMatchObject({ name: "batch-job" });
    const [header, , signature] = genuine.split(".");
    const forged = Buffer.from(JSON.stringify(claims({ sub: "admin" }))).toString("base64url");
    expect((await rejection(verify(`${header}.${forged}.${signature}`))).reason).toBe("bad-signature");
    expect((await rejection(verify(await signJwt(claims(), attackerKey, { kid: idpKey.kid })))).reason).toBe(
      "bad-signature",
    );
    const crit = signRaw(
      { alg: "RS256", kid: idpKey.kid, crit: ["urn:x:policy"], "urn:x:policy": 1 },
      claims(),
      idpKey,
    );
    expect((await rejection(verify(crit))).reason).toBe("unsupported");
  });

  it("refuses oversize tokens before parsing, per issuer", async () => {
    const idp = fakeIssuers({ [ISSUER]: [idpKey], [OTHER_ISSUER]: [ciKey] });
    const verify = createJwtVerifier(
      [
        issuerOptions({ maxTokenBytes: 1500 }),
        issuerOptions({ name: "ci", issuer: OTHER_ISSUER, maxTokenBytes: 8192 }),
      ],
      { fetch: idp.fetch },
    );
    const padding = "x".repeat(1500);
    expect((await rejection(verify(await signJwt(claims({ padding }), idpKey)))).reason).toBe("oversize");
    await expect(verify(await signJwt(claims({ iss: OTHER_ISSUER, padding }), ciKey))).resolves.toBeTruthy();
    expect((await rejection(verify(`${"a".repeat(9000)}.b.c`))).reason).toBe("oversize");
  });

  it("maps Kubernetes ServiceAccount tokens and refuses ones whose subject does not match their claims", async () => {
    const idp = fakeIssuers({ [ISSUER]: [idpKey] });
    const verify = createJwtVerifier([issuerOptions({ kind: "kubernetes", name: "cluster" })], {
      fetch: idp.fetch,
    });
    const sa = (sub: string, kube: unknown) => signJwt(claims({ sub, "kubernetes.io": kube }), idpKey);
    const good = { namespace: "payments", serviceaccount: { name: "reporter", uid: "1" } };
    await expect(verify(await sa("system:serviceaccount:payments:reporter", good))).resolves.toMatchObject({
      name: "system:serviceaccount:payments:reporter",
      via: "kubernetes",
      issuer: "cluster",
      namespace: "payments",
      serviceAccount: "reporter",
    });
    for (const [sub, kube] of [
      ["system:serviceaccount:ops:reporter", good],
      ["system:serviceaccount:payments:reporter:x", good],
      ["system:serviceaccount:payments:reporter", undefined],
      ["system:serviceaccount:payments:reporter", { namespace: "payments" }],
      ["system:serviceaccount:payments:reporter", { namespace: 1, serviceaccount: { name: "reporter" } }],
    ] as const) {
      expect((await rejection(verify(await sa(sub, kube)))).reason).toBe("not-serviceaccount");
    }
  });
});

describe("JWKS handling", () => {
  it("refetches on an unknown kid at most once per cooldown, however many tokens arrive", async () => {
    const idp = fakeIssuers({ [ISSUER]: [idpKey] });
    const verify = createJwtVerifier([issuerOptions({ cooldownMs: 60_000 })], { fetch: idp.fetch });
    await verify(await signJwt(claims(), idpKey));
    const flood = await Promise.all(
      Array.from({ length: 40 }, () => signJwt(claims(), attackerKey, { kid: crypto.randomUUID() })),
    );
    for (let round = 0; round < 5; round++) {
      const results = await Promise.allSettled(flood.map((token) => verify(token)));
      for (const result of results) {
        expect(result.status).toBe("rejected");
        expect((result as PromiseRejectedResult).reason.reason).toBe("unknown-key");
      }
    }
    expect(idp.discoveryFetches()).toBe(1);
    expect(idp.jwksFetches()).toBe(1);
  });

  it("keeps fetches within 1 + elapsed / cooldown under a sustained flood", async () => {
    const idp = fakeIssuers({ [ISSUER]: [idpKey] });
    const cooldownMs = 100;
    const verify = createJwtVerifier([issuerOptions({ cooldownMs })], { fetch: idp.fetch });
    const flood = await Promise.all(
      Array.from({ length: 20 }, () => signJwt(claims(), attackerKey, { kid: crypto.randomUUID() })),
    );
    const started = Date.now();
    let attempts = 0;
    while (Date.now() - started < 550) {
      await Promise.allSettled(flood.map((token) => verify(token)));
      attempts += flood.length;
    }
    const elapsed = Date.now() - started;
    expect(attempts).toBeGreaterThan(100);
    expect(idp.jwksFetches()).toBeGreaterThanOrEqual(2);
    expect(idp.jwksFetches()).toBeLessThanOrEqual(1 + elapsed / cooldownMs);
  });

  it("does not hammer an issuer that is down: failed fetches respect the cooldown too", async () => {
    const idp = fakeIssuers({ [ISSUER]: [idpKey] });
    const cooldownMs = 100;
    const verify = createJwtVerifier([issuerOptions({ cooldownMs })], { fetch: idp.fetch });
    await verify(await signJwt(claims(), idpKey));
    idp.state.status = 503;
    const flood = await Promise.all(
      Array.from({ length: 20 }, () => signJwt(claims(), attackerKey, { kid: crypto.randomUUID() })),
    );
    const started = Date.now();
    while (Date.now() - started < 450) await Promise.allSettled(flood.map((token) => verify(token)));
    const elapsed = Date.now() - started;
    expect(idp.jwksFetches()).toBeLessThanOrEqual(1 + 1 + elapsed / cooldownMs);
  });

  it("a cold issuer that is down is asked again only after the cooldown, and answers 503", async () => {
    const idp = fakeIssuers({ [ISSUER]: [idpKey] });
    idp.state.down = true;
    const verify = createJwtVerifier([issuerOptions({ cooldownMs: 60_000 })], { fetch: idp.fetch });
    const token = await signJwt(claims(), idpKey);
    for (let attempt = 0; attempt < 10; attempt++) {
      const problem = await rejection(verify(token));
      expect([problem.code, problem.status, problem.headers["retry-after"]]).toEqual([
        "ERR_AUTH_UNAVAILABLE",
        503,
        "5",
      ]);
    }
    expect(idp.calls).toHaveLength(1);
  });

  it("keeps verifying with cached keys while the issuer is down, even past cacheMaxAge", async () => {
    const keys = [idpKey];
    const idp = fakeIssuers({ [ISSUER]: keys });
    const cooldownMs = 100;
    const verify = createJwtVerifier([issuerOptions({ cacheMaxAgeMs: 1, cooldownMs })], { fetch: idp.fetch });
    await expect(verify(await signJwt(claims(), idpKey))).resolves.toBeTruthy();
    idp.state.down = true;
    await sleep(5);
    for (let attempt = 0; attempt < 5; attempt++) {
      // A different token each time: the verified-token cache is not what lets these through.
      await expect(verify(await signJwt(claims({ jti: String(attempt) }), idpKey))).resolves.toBeTruthy();
    }
    // The down issuer was asked once, not once per token.
    expect(idp.jwksFetches()).toBe(2);
    // Still no way in for a key the issuer never published.
    const forged = await rejection(verify(await signJwt(claims(), attackerKey, { kid: idpKey.kid })));
    expect(forged.reason).toBe("bad-signature");
    // Back up with a rotated key: picked up once the cooldown has passed.
    const rotated = generateSigningKey("idp-key-2");
    keys.splice(0, 1, rotated);
    idp.state.down = false;
    await sleep(cooldownMs + 10);
    await expect(verify(await signJwt(claims(), rotated))).resolves.toBeTruthy();
  });

  it("picks up a rotated key at the issuer without a restart", async () => {
    const keys = [idpKey];
    const idp = fakeIssuers({ [ISSUER]: keys });
    const verify = createJwtVerifier([issuerOptions({ cooldownMs: 0 })], { fetch: idp.fetch });
    await expect(verify(await signJwt(claims(), idpKey))).resolves.toBeTruthy();
    const next = generateSigningKey("idp-key-2");
    keys.splice(0, 1, next);
    await expect(verify(await signJwt(claims(), next))).resolves.toBeTruthy();
    // The retired key no longer verifies new tokens.
    expect(await rejection(verify(await signJwt(claims({ jti: "late" }), idpKey)))).toMatchObject({
      reason: "unknown-key",
    });
  });

  it("verifiers rebuilt by a reload can share key sources, so an outage during a reload loses nothing", async () => {
    const idp = fakeIssuers({ [ISSUER]: [idpKey] });
    const keySources = new Map();
    const before = createJwtVerifier([issuerOptions()], { fetch: idp.fetch, keySources });
    await expect(before(await signJwt(claims(), idpKey))).resolves.toBeTruthy();
    idp.state.down = true;
    const after = createJwtVerifier([issuerOptions({ audiences: ["pushguard", "other"] })], {
      fetch: idp.fetch,
      keySources,
    });
    await expect(after(await signJwt(claims({ aud: "other" }), idpKey))).resolves.toBeTruthy();
    expect(idp.calls).toHaveLength(2);
    // Without sharing, a verifier built during the outage has no keys at all.
    const cold = createJwtVerifier([issuerOptions()], { fetch: idp.fetch });
    expect((await rejection(cold(await signJwt(claims(), idpKey)))).code).toBe("ERR_AUTH_UNAVAILABLE");
  });

  it("refuses a discovery document that names another issuer", async () => {
    const fetch: FetchLike = async () =>
      Response.json({ issuer: "https://evil.example", jwks_uri: "https://evil.example/jwks" });
    const verify = createJwtVerifier([issuerOptions()], { fetch });
    const problem = await rejection(verify(await signJwt(claims(), idpKey)));
    expect(problem.code).toBe("ERR_AUTH_UNAVAILABLE");
  });

  it("fetches an explicit jwksUri without discovery, with jose's headers and without following redirects", async () => {
    const calls: FetchCall[] = [];
    const fetch: FetchLike = async (url, init) => {
      calls.push({ url, headers: init.headers, redirect: (init as { redirect?: unknown }).redirect });
      return Response.json({ keys: [idpKey.publicJwk] });
    };
    const verify = createJwtVerifier([issuerOptions({ jwksUri: "https://keys.example.com/jwks" })], {
      fetch,
    });
    await expect(verify(await signJwt(claims(), idpKey))).resolves.toBeTruthy();
    expect(calls.map((call) => call.url)).toEqual(["https://keys.example.com/jwks"]);
    expect(calls[0]?.headers.accept).toMatch(/application\/json/);
    expect(calls[0]?.redirect).toBe("manual");
  });

  it("sends the bearer token from tokenFile, re-read on every fetch, to discovery and JWKS", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pushguard-jwks-"));
    const tokenFile = join(dir, "token");
    writeFileSync(tokenFile, "pod-token-1\n");
    const calls: FetchCall[] = [];
    const fetch: FetchLike = async (url, init) => {
      calls.push({ url, headers: init.headers, redirect: undefined });
      if (url.endsWith("/.well-known/openid-configuration"))
        return Response.json({
          issuer: "https://kubernetes.default.svc",
          jwks_uri: "https://10.0.0.1:6443/openid/v1/jwks",
        });
      return Response.json({ keys: [idpKey.publicJwk] });
    };
    const getKey = createKeySource(
      {
        issuer: "https://kubernetes.default.svc",
        discoveryUrl: "https://api.internal:6443/",
        bearerTokenFile: tokenFile,
        cooldownMs: 0,
        cacheMaxAgeMs: 600_000,
        timeoutMs: 1000,
      },
      fetch,
    );
    await getKey({ alg: "RS256", kid: idpKey.kid }, undefined as never);
    writeFileSync(tokenFile, "pod-token-2\n");
    await expect(getKey({ alg: "RS256", kid: "unknown" }, undefined as never)).rejects.toThrow();
    expect(calls.map((call) => [call.url, call.headers.authorization])).toEqual([
      ["https://api.internal:6443/.well-known/openid-configuration", "Bearer pod-token-1"],
      // Keys come from the API server discovery was fetched from, not the advertised host.
      ["https://api.internal:6443/openid/v1/jwks", "Bearer pod-token-1"],
      ["https://api.internal:6443/openid/v1/jwks", "Bearer pod-token-2"],
    ]);
  });
});

describe("createAuthenticator with JWT issuers from the config", () => {
  const config = parseConfig(
    `
upstream: { url: "http://127.0.0.1:9" }
identities:
  oidc:
    - name: idp
      issuer: "${ISSUER}"
      audiences: [pushguard]
      claims: { groups: realm_access.roles }
teams:
  - { name: t, members: [{ issuer: idp, group: pushers }], jobs: ["t-*"], actions: [push] }
`,
    "jwt.yaml",
    {},
  );

  it("accepts the JWT as Bearer and as the Basic password, and refuses what does not verify", async () => {
    const idp = fakeIssuers({ [ISSUER]: [idpKey] });
    const authenticate = createAuthenticator(config, { fetch: idp.fetch });
    const token = await signJwt(claims({ realm_access: { roles: ["pushers"] } }), idpKey);
    const viaBearer = await authenticate(`Bearer ${token}`);
    const viaBasic = await authenticate(`Basic ${Buffer.from(`anything:${token}`).toString("base64")}`);
    expect(viaBearer).toMatchObject({ name: "batch-job", via: "oidc", groups: ["pushers"] });
    expect(viaBasic).toEqual(viaBearer);
    const bad = await rejection(authenticate(`Bearer ${await signJwt(claims(), attackerKey)}`));
    expect(bad.code).toBe("ERR_AUTH_INVALID");
    expect(bad.headers["www-authenticate"]).toContain('error="invalid_token"');
    expect(bad.message).not.toContain(token.split(".")[2]);
  });

  it("uses the injected clock", async () => {
    const idp = fakeIssuers({ [ISSUER]: [idpKey] });
    const future = Date.parse("2031-06-01T00:00:00Z");
    const authenticate = createAuthenticator(config, { fetch: idp.fetch, now: () => future });
    await expect(authenticate(`Bearer ${await signJwt(claims({}, future), idpKey)}`)).resolves.toBeTruthy();
    expect((await rejection(authenticate(`Bearer ${await signJwt(claims(), idpKey)}`))).reason).toBe(
      "expired",
    );
  });
});
