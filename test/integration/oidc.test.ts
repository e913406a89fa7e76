import { createPublicKey, randomUUID } from "node:crypto";
import { type JWK, type JWTPayload, SignJWT } from "jose";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
// @ts-expect-error plain JS module
import { signingKey, startOidcProvider } from "../../examples/oidc-provider.mjs";
import { basic, bearer, type RawResponse, send } from "../support/http.js";
import {
  authFailures,
  generateSigningKey,
  type LocalIssuer,
  type SigningKey,
  seconds,
  signingKeyFromJwk,
  signJwt,
  signRaw,
  startJwtIssuer,
} from "../support/jwt-issuer.js";
import { freePort } from "../support/processes.js";
import { type Pushgateway, startPushgateway } from "../support/pushgateway.js";
import { startPushguard, type TestPushguard } from "../support/pushguard.js";

/** Pushgateway answers DELETE with 202 before it applies it: wait for the stored groups to settle. */
const eventually = (assertion: () => Promise<void>) => vi.waitFor(assertion, { timeout: 3000, interval: 20 });

/** What `startOidcProvider` returns (the module is plain JS). */
interface OidcProvider {
  issuer: string;
  provider: { use(middleware: (ctx: { path: string }, next: () => Promise<void>) => Promise<void>): void };
  token(client?: Client): Promise<string>;
  close(): Promise<void>;
}
interface Client {
  clientId: string;
  clientSecret: string;
}

const TEAM_C: Client = { clientId: "demo-team-c", clientSecret: "demo-team-c-secret" };
const OUTSIDER: Client = { clientId: "outsider", clientSecret: "outsider-secret-0123456789" };
const BODY = "# TYPE report_rows gauge\nreport_rows 1234\n";

/** One trusted OIDC issuer plus the team that may push with its tokens. */
function idpConfig(upstreamUrl: string, issuer: string, jwks = "{ cooldownMs: 60000 }", extra = ""): string {
  return `
listen: { api: "127.0.0.1:0", metrics: "127.0.0.1:0" }
upstream: { url: "${upstreamUrl}" }
identities:
  oidc:
    - name: idp
      issuer: "${issuer}"
      audiences: [pushguard]
      algorithms: [RS256]
      typ: at+jwt
      clockToleranceSec: 5
      jwks: ${jwks}
${extra}
# The attack tables send many bad credentials from one address on purpose.
rateLimit: { authFailures: { rate: 100000, burst: 100000 } }
teams:
  - { name: team-c, members: [{ issuer: idp, subject: demo-team-c }], jobs: ["team-c-*"], actions: [push, delete] }
`;
}

async function startProvider(options: Record<string, unknown> = {}): Promise<OidcProvider> {
  return (await startOidcProvider({
    clients: [TEAM_C, OUTSIDER],
    accessTokenTtl: 120,
    ...options,
  })) as OidcProvider;
}

function expectRefused(response: RawResponse, code = "ERR_AUTH_INVALID", status = 401) {
  expect(response.status).toBe(status);
  expect(response.headers["content-type"]).toBe("application/problem+json");
  expect(response.json().code).toBe(code);
}

let pushgateway: Pushgateway;

beforeAll(async () => {
  pushgateway = await startPushgateway();
});

afterAll(async () => {
  await pushgateway?.stop();
});

beforeEach(async () => {
  expect((await send(pushgateway.url, "PUT", "/api/v1/admin/wipe")).status).toBe(202);
  await eventually(async () => expect(await pushgateway.groups()).toEqual([]));
});

describe("a real OIDC provider's client_credentials tokens", () => {
  const idpJwk = signingKey("idp-key-1") as JWK & { kid: string };
  const idpKey: SigningKey = signingKeyFromJwk(idpJwk);
  const attackerKey = generateSigningKey("attacker-key");
  let idp: OidcProvider;
  const idpRequests: string[] = [];
  let ci: LocalIssuer;
  let attacker: LocalIssuer;
  let pushguard: TestPushguard;

  beforeAll(async () => {
    idp = await startProvider({ keys: [idpJwk] });
    idp.provider.use(async (ctx, next) => {
      idpRequests.push(ctx.path);
      await next();
    });
    // A second trusted issuer (a CI system), groups from a nested claim.
    ci = await startJwtIssuer({
      keys: [generateSigningKey("ci-key-1", "ES256"), generateSigningKey("ci-key-rsa")],
    });
    // Where jku/x5u point: it would serve the attacker's key if anything ever asked.
    attacker = await startJwtIssuer({ keys: [attackerKey] });
    attacker.route("/attacker-jwks", { keys: [attackerKey.publicJwk] });
    attacker.route("/attacker.pem", { pem: "nope" });
    pushguard = await startPushguard(
      idpConfig(
        pushgateway.url,
        idp.issuer,
        "{ cooldownMs: 60000 }",
        `    - name: ci
      issuer: "${ci.issuer}"
      audiences: [pushguard]
      algorithms: [RS256, ES256]
      claims: { subject: sub, groups: realm_access.roles }
      jwks: { cooldownMs: 60000 }`,
      ).replace(
        "teams:\n",
        'teams:\n  - { name: ci-pushers, members: [{ issuer: ci, group: metrics-pusher }], jobs: ["ci-*"], actions: [push] }\n',
      ),
      {},
    );
  });

  afterAll(async () => {
    await pushguard?.close();
    await idp?.close();
    await ci?.close();
    await attacker?.close();
  });

  /** Claims exactly like the provider's own tokens: accepted when signed with its key. */
  const idpClaims = (overrides: JWTPayload = {}): JWTPayload => {
    const now = seconds();
    return {
      jti: randomUUID(),
      sub: TEAM_C.clientId,
      client_id: TEAM_C.clientId,
      iss: idp.issuer,
      aud: "pushguard",
      iat: now,
      exp: now + 120,
      ...overrides,
    };
  };
  const idpHeader = { typ: "at+jwt" };
  const ciClaims = (overrides: JWTPayload = {}): JWTPayload => {
    const now = seconds();
    return {
      iss: ci.issuer,
      aud: "pushguard",
      sub: "repo:acme/app:ref:refs/heads/main",
      realm_access: { roles: ["metrics-pusher"] },
      iat: now,
      exp: now + 120,
      ...overrides,
    };
  };

  describe("happy path", () => {
    it("pushes with the token as Bearer into the real Pushgateway", async () => {
      const token = await idp.token(TEAM_C);
      const response = await send(pushguard.apiUrl, "PUT", "/metrics/job/team-c-report/instance/db1", {
        headers: bearer(token),
        body: BODY,
      });
      expect(response.status).toBe(200);
      expect(await pushgateway.groups()).toEqual([{ job: "team-c-report", instance: "db1" }]);
      expect(await pushgateway.metricsText()).toMatch(
        /report_rows\{instance="db1",job="team-c-report"\} 1234/,
      );
      const audit = pushguard
        .logs()
        .filter((line) => line.msg === "audit")
        .at(-1)?.audit;
      expect(audit).toMatchObject({ identity: "demo-team-c", via: "oidc", team: "team-c", status: 200 });
      expect(pushguard.logText()).not.toContain(token);
    });

    it("pushes with the token as the Basic password (Python's basic_auth_handler, Go's .BasicAuth())", async () => {
      const token = await idp.token(TEAM_C);
      const response = await send(pushguard.apiUrl, "POST", "/metrics/job/team-c-basic", {
        headers: basic("demo-team-c", token),
        body: BODY,
      });
      expect(response.status).toBe(200);
      const deleted = await send(pushguard.apiUrl, "DELETE", "/metrics/job/team-c-basic", {
        headers: basic("ignored", token),
      });
      expect(deleted.status).toBe(202);
      await eventually(async () => expect(await pushgateway.groups()).toEqual([]));
    });

    it("a valid token of a client no team names is authenticated but forbidden", async () => {
      const response = await send(pushguard.apiUrl, "PUT", "/metrics/job/team-c-report", {
        headers: bearer(await idp.token(OUTSIDER)),
        body: BODY,
      });
      expect(response.status).toBe(403);
      expect(response.json().code).toBe("ERR_ACL_DENIED");
      expect(await pushgateway.groups()).toEqual([]);
    });

    it("a second issuer's tokens map nested roles (realm_access.roles) to team membership", async () => {
      const member = await ci.sign(ciClaims());
      expect(
        (
          await send(pushguard.apiUrl, "PUT", "/metrics/job/ci-build", {
            headers: bearer(member),
            body: BODY,
          })
        ).status,
      ).toBe(200);
      const nonMember = await ci.sign(ciClaims({ realm_access: { roles: ["viewer"] } }));
      const denied = await send(pushguard.apiUrl, "PUT", "/metrics/job/ci-build", {
        headers: bearer(nonMember),
        body: BODY,
      });
      expect(denied.status).toBe(403);
      // Neither issuer's identities cross over: the CI token cannot push team-c jobs.
      expect(
        (
          await send(pushguard.apiUrl, "PUT", "/metrics/job/team-c-x", {
            headers: bearer(member),
            body: BODY,
          })
        ).status,
      ).toBe(403);
      expect(await pushgateway.groups()).toEqual([{ job: "ci-build" }]);
    });

    it.each([
      [
        "a hand-signed token with the provider's claims and key",
        () => signJwt(idpClaims(), idpKey, idpHeader),
      ],
      [
        "nbf slightly ahead, within the clock tolerance",
        () => signJwt(idpClaims({ nbf: seconds() + 3 }), idpKey, idpHeader),
      ],
    ])("control: %s is accepted (the attacks below differ in one thing)", async (_, make) => {
      const response = await send(pushguard.apiUrl, "PUT", "/metrics/job/team-c-control", {
        headers: bearer(await make()),
        body: BODY,
      });
      expect(response.status).toBe(200);
    });
  });

  describe("classic attacks are refused with 401 and never reach the Pushgateway", () => {
    const publicPem = () =>
      createPublicKey(idpKey.privateKey).export({ type: "spki", format: "pem" }).toString();
    const hmacWith = (secret: string) =>
      new SignJWT(idpClaims())
        .setProtectedHeader({ alg: "HS256", typ: "at+jwt", kid: idpKey.kid })
        .sign(new TextEncoder().encode(secret));

    const attacks: Array<{ name: string; reason: string; token: () => Promise<string>; path?: string }> = [
      {
        name: "alg none",
        reason: "alg-not-allowed",
        token: async () => signRaw({ alg: "none", typ: "at+jwt", kid: idpKey.kid }, idpClaims()),
      },
      {
        name: "alg NONE with the real signature kept",
        reason: "alg-not-allowed",
        token: async () => {
          const [, payload, signature] = (await signJwt(idpClaims(), idpKey, idpHeader)).split(".");
          const header = Buffer.from(
            JSON.stringify({ alg: "NONE", typ: "at+jwt", kid: idpKey.kid }),
          ).toString("base64url");
          return `${header}.${payload}.${signature}`;
        },
      },
      {
        name: "HS256 keyed with the issuer's public key (PEM)",
        reason: "alg-not-allowed",
        token: () => hmacWith(publicPem()),
      },
      {
        name: "HS256 keyed with the issuer's public JWK",
        reason: "alg-not-allowed",
        token: () => hmacWith(JSON.stringify(idpKey.publicJwk)),
      },
      {
        name: "a real token of another client with its payload rewritten",
        reason: "bad-signature",
        token: async () => {
          const [header, payload, signature] = (await idp.token(OUTSIDER)).split(".");
          const claims = JSON.parse(Buffer.from(payload as string, "base64url").toString());
          const forged = { ...claims, sub: TEAM_C.clientId, client_id: TEAM_C.clientId };
          return `${header}.${Buffer.from(JSON.stringify(forged)).toString("base64url")}.${signature}`;
        },
      },
      {
        name: "an attacker key reusing the issuer's kid",
        reason: "bad-signature",
        token: () => signJwt(idpClaims(), attackerKey, { ...idpHeader, kid: idpKey.kid }),
      },
      {
        name: "an embedded jwk header",
        reason: "forbidden-header",
        token: () =>
          signJwt(idpClaims(), attackerKey, { ...idpHeader, kid: undefined, jwk: attackerKey.publicJwk }),
      },
      {
        name: "a jku header (never fetched)",
        reason: "forbidden-header",
        token: () =>
          signJwt(idpClaims(), attackerKey, { ...idpHeader, jku: `${attacker.url}/attacker-jwks` }),
      },
      {
        name: "an x5u header (never fetched)",
        reason: "forbidden-header",
        token: () => signJwt(idpClaims(), attackerKey, { ...idpHeader, x5u: `${attacker.url}/attacker.pem` }),
      },
      {
        name: "an unknown crit extension, signed with the real key",
        reason: "unsupported",
        token: async () =>
          signRaw(
            {
              alg: "RS256",
              typ: "at+jwt",
              kid: idpKey.kid,
              crit: ["urn:example:allow-all"],
              "urn:example:allow-all": true,
            },
            idpClaims(),
            idpKey,
          ),
      },
      {
        name: "expired",
        reason: "expired",
        token: () => signJwt(idpClaims({ iat: seconds() - 600, exp: seconds() - 60 }), idpKey, idpHeader),
      },
      {
        name: "not yet valid (nbf beyond the tolerance)",
        reason: "claim-nbf",
        token: () => signJwt(idpClaims({ nbf: seconds() + 600 }), idpKey, idpHeader),
      },
      {
        name: "no exp",
        reason: "claim-exp",
        token: () => signJwt(idpClaims({ exp: undefined }), idpKey, idpHeader),
      },
      {
        name: "a wrong audience",
        reason: "claim-aud",
        token: () => signJwt(idpClaims({ aud: "grafana" }), idpKey, idpHeader),
      },
      {
        name: "a wrong typ (an ID token is not an access token)",
        reason: "claim-typ",
        token: () => signJwt(idpClaims(), idpKey, { typ: "JWT" }),
      },
      {
        name: "an untrusted issuer (whose URL would serve the attacker's key)",
        reason: "unknown-issuer",
        token: () => signJwt(idpClaims({ iss: attacker.url }), attackerKey, idpHeader),
      },
      {
        name: "issuer A's key carrying issuer B's iss (A's kid)",
        reason: "unknown-key",
        path: "/metrics/job/ci-escalate",
        token: () => signJwt(ciClaims(), idpKey),
      },
      {
        name: "issuer A's key carrying issuer B's iss (B's kid)",
        reason: "bad-signature",
        path: "/metrics/job/ci-escalate",
        token: () => signJwt(ciClaims(), idpKey, { kid: ci.keys[1]?.kid }),
      },
      {
        name: "an oversize token",
        reason: "oversize",
        token: () => signJwt(idpClaims({ padding: "x".repeat(6500) }), idpKey, idpHeader),
      },
    ];

    it.each(attacks)("$name → 401 ($reason)", async ({ token, reason, path }) => {
      await send(pushgateway.url, "PUT", "/metrics/job/sentinel", { body: "sentinel 1\n" });
      const failuresBefore = await authFailures(pushguard.metricsUrl, reason);
      const attackerRequests = attacker.requests.length;
      const presented = await token();
      const response = await send(pushguard.apiUrl, "PUT", path ?? "/metrics/job/team-c-attack", {
        headers: bearer(presented),
        body: BODY,
      });
      expectRefused(response);
      expect(response.headers["www-authenticate"]).toMatch(
        /^Bearer realm="pushguard", error="invalid_token".*Basic/,
      );
      expect(response.text).not.toContain(presented);
      expect(await authFailures(pushguard.metricsUrl, reason)).toBe(failuresBefore + 1);
      expect(await pushgateway.groups()).toEqual([{ job: "sentinel" }]);
      expect(attacker.requests.length).toBe(attackerRequests);
      // The same token as the Basic password fares no better.
      expectRefused(
        await send(pushguard.apiUrl, "PUT", path ?? "/metrics/job/team-c-attack", {
          headers: basic("x", presented),
          body: BODY,
        }),
      );
      expect(await pushgateway.groups()).toEqual([{ job: "sentinel" }]);
    });

    it("a token naming an untrusted issuer costs no request to any issuer", async () => {
      const before = { idp: idpRequests.length, ci: ci.requests.length, attacker: attacker.requests.length };
      for (const iss of [
        attacker.url,
        "https://accounts.example.com",
        `${idp.issuer}/`,
        `${idp.issuer}/realms/x`,
      ]) {
        const response = await send(pushguard.apiUrl, "PUT", "/metrics/job/team-c-attack", {
          headers: bearer(
            await signJwt(idpClaims({ iss }), attackerKey, { ...idpHeader, kid: randomUUID() }),
          ),
          body: BODY,
        });
        expectRefused(response);
      }
      expect({ idp: idpRequests.length, ci: ci.requests.length, attacker: attacker.requests.length }).toEqual(
        before,
      );
    });

    it("a flood of tokens with random kids does not hammer the issuer's JWKS", async () => {
      const jwksBefore = idpRequests.filter((path) => path === "/jwks").length;
      const failuresBefore = await authFailures(pushguard.metricsUrl, "unknown-key");
      const tokens = await Promise.all(
        Array.from({ length: 30 }, () =>
          signJwt(idpClaims(), attackerKey, { ...idpHeader, kid: randomUUID() }),
        ),
      );
      const responses = await Promise.all(
        tokens.map((token) =>
          send(pushguard.apiUrl, "PUT", "/metrics/job/team-c-flood", { headers: bearer(token), body: BODY }),
        ),
      );
      for (const response of responses) expectRefused(response);
      expect(await authFailures(pushguard.metricsUrl, "unknown-key")).toBe(failuresBefore + tokens.length);
      // Cooldown 60 s: at most one refetch for the whole flood.
      expect(idpRequests.filter((path) => path === "/jwks").length - jwksBefore).toBeLessThanOrEqual(1);
      expect(
        idpRequests.filter((path) => path === "/.well-known/openid-configuration").length,
      ).toBeLessThanOrEqual(1);
      // And the real clients keep working.
      const ok = await send(pushguard.apiUrl, "PUT", "/metrics/job/team-c-after-flood", {
        headers: bearer(await idp.token(TEAM_C)),
        body: BODY,
      });
      expect(ok.status).toBe(200);
    });
  });
});

describe("JWKS lifecycle against a real provider", () => {
  it("picks up a rotated signing key (new kid, same issuer URL) without restarting pushguard", async () => {
    const port = await freePort();
    const first = await startProvider({ port, keys: [signingKey("rotation-1")] });
    const pushguard = await startPushguard(idpConfig(pushgateway.url, first.issuer, "{ cooldownMs: 0 }"), {});
    let second: OidcProvider | undefined;
    try {
      const presented = await first.token(TEAM_C);
      const retiredButUnused = await first.token(TEAM_C);
      const push = (token: string, job: string) =>
        send(pushguard.apiUrl, "PUT", `/metrics/job/${job}`, { headers: bearer(token), body: BODY });
      expect((await push(presented, "team-c-before")).status).toBe(200);

      await first.close();
      second = await startProvider({ port, keys: [signingKey("rotation-2")] });
      expect(second.issuer).toBe(first.issuer);
      // The test's own fetch may still hold a pooled connection to the closed provider: retry once.
      const next = second;
      const rotated = await next.token(TEAM_C).catch(() => next.token(TEAM_C));
      expect(JSON.parse(Buffer.from(rotated.split(".")[0] as string, "base64url").toString()).kid).toBe(
        "rotation-2",
      );
      expect((await push(rotated, "team-c-after")).status).toBe(200);

      // The retired key is gone from the JWKS: its tokens no longer verify.
      const retired = await push(retiredButUnused, "team-c-retired");
      expectRefused(retired);
      expect(await authFailures(pushguard.metricsUrl, "unknown-key")).toBe(1);
      expect((await pushgateway.groups()).map((group) => group.job).sort()).toEqual([
        "team-c-after",
        "team-c-before",
      ]);
    } finally {
      await pushguard.close();
      await second?.close();
      await first.close().catch(() => undefined);
    }
  });

  it("keeps verifying with cached keys while the issuer is down, and says 503 when it has none", async () => {
    const provider = await startProvider({ keys: [signingKey("outage-1")] });
    const warm = await startPushguard(idpConfig(pushgateway.url, provider.issuer), {});
    // Keys older than cacheMaxAge are refetched before use: that refetch fails during the outage.
    const stale = await startPushguard(
      idpConfig(pushgateway.url, provider.issuer, "{ cacheMaxAgeMs: 1, cooldownMs: 500 }"),
      {},
    );
    const guards = [warm, stale];
    try {
      const [first, forWarm, forStale, forStaleAgain, forCold] = await Promise.all(
        Array.from({ length: 5 }, () => provider.token(TEAM_C)),
      );
      const push = (guard: TestPushguard, token: string | undefined, job: string) =>
        send(guard.apiUrl, "PUT", `/metrics/job/${job}`, { headers: bearer(token as string), body: BODY });
      expect((await push(warm, first, "team-c-warm-1")).status).toBe(200);
      expect((await push(stale, first, "team-c-stale-1")).status).toBe(200);

      await provider.close();
      // Tokens never presented before: the verified-token cache is not what lets them through.
      expect((await push(warm, forWarm, "team-c-warm-2")).status).toBe(200);
      expect((await push(stale, forStale, "team-c-stale-2")).status).toBe(200);
      expect((await push(stale, forStaleAgain, "team-c-stale-3")).status).toBe(200);

      // A pushguard that never saw the keys cannot verify anything: 503, not 401, and nothing forwarded.
      const cold = await startPushguard(idpConfig(pushgateway.url, provider.issuer), {});
      guards.push(cold);
      const response = await push(cold, forCold, "team-c-cold");
      expectRefused(response, "ERR_AUTH_UNAVAILABLE", 503);
      expect(response.headers["retry-after"]).toBe("5");
      expect((await pushgateway.groups()).map((group) => group.job).sort()).toEqual([
        "team-c-stale-1",
        "team-c-stale-2",
        "team-c-stale-3",
        "team-c-warm-1",
        "team-c-warm-2",
      ]);
    } finally {
      for (const guard of guards) await guard.close();
      await provider.close().catch(() => undefined);
    }
  });
});
