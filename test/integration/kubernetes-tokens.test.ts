import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { bearer, type RawResponse, send } from "../support/http.js";
import {
  authFailures,
  DISCOVERY_PATH,
  generateSigningKey,
  JWKS_PATH,
  type LocalIssuer,
  legacyServiceAccountClaims,
  seconds,
  startJwtIssuer,
} from "../support/jwt-issuer.js";
import { type Pushgateway, startPushgateway } from "../support/pushgateway.js";
import { startPushguard, type TestPushguard } from "../support/pushguard.js";
import { certificateAuthority } from "../support/tls.js";
import { afterPendingWrites } from "../support/write-barrier.js";

/** Pushgateway answers DELETE with 202 before it applies it: wait for the stored groups to settle. */
const eventually = (assertion: () => Promise<void>) => vi.waitFor(assertion, { timeout: 3000, interval: 20 });

/** The issuer string of a typical cluster: not where the API server is reached from outside. */
const CLUSTER_ISSUER = "https://kubernetes.default.svc.cluster.local";
const POD_TOKEN = "pushguard-pod-token-0123456789";
const BODY = "# TYPE job_last_success_seconds gauge\njob_last_success_seconds 1700000000\n";

function config(
  upstreamUrl: string,
  apiServer: string,
  tokenFile: string | undefined,
  issuer = CLUSTER_ISSUER,
) {
  return `
listen: { api: "127.0.0.1:0", metrics: "127.0.0.1:0" }
upstream: { url: "${upstreamUrl}" }
identities:
  kubernetes:
    - name: cluster
      issuer: "${issuer}"
      audiences: [pushguard]
      apiServer: "${apiServer}"
${tokenFile ? `      tokenFile: "${tokenFile}"` : ""}
      jwks: { cooldownMs: 0 }
# The rejection table sends many bad credentials from one address on purpose.
rateLimit: { authFailures: { rate: 100000, burst: 100000 } }
teams:
  - name: namespaces
    members: [{ issuer: cluster, namespace: "*" }]
    jobs: ["{namespace}_*"]
    actions: [push, delete]
  - name: db-backup
    members: [{ issuer: cluster, namespace: ops, serviceAccount: backup }]
    jobs: [db-backup]
    actions: [push]
  - name: labelled
    members: [{ issuer: cluster, namespace: "batch-*" }]
    jobs: [nightly]
    actions: [push, delete]
    groupingKey: { inject: { namespace: "{namespace}", sa: "{serviceAccount}" } }
`;
}

function expectInvalid(response: RawResponse) {
  expect(response.status).toBe(401);
  expect(response.headers["content-type"]).toBe("application/problem+json");
  expect(response.json().code).toBe("ERR_AUTH_INVALID");
}

let pushgateway: Pushgateway;
let apiServer: LocalIssuer;
let pushguard: TestPushguard;
let dir: string;
let tokenFile: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "pushguard-k8s-"));
  tokenFile = join(dir, "token");
  writeFileSync(tokenFile, `${POD_TOKEN}\n`);
  pushgateway = await startPushgateway();
  // Like an API server: discovery and keys only for a caller presenting a valid token.
  apiServer = await startJwtIssuer({ issuer: CLUSTER_ISSUER, keys: [generateSigningKey("sa-key-1")] });
  apiServer.expectedBearer = POD_TOKEN;
  pushguard = await startPushguard(config(pushgateway.url, apiServer.url, tokenFile), {});
});

afterAll(async () => {
  await pushguard?.close();
  await apiServer?.close();
  await pushgateway?.stop();
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(async () => {
  expect((await send(pushgateway.url, "PUT", "/api/v1/admin/wipe")).status).toBe(202);
  await eventually(async () => expect(await pushgateway.groups()).toEqual([]));
});

const push = (token: string, job: string, method = "PUT") =>
  send(pushguard.apiUrl, method, `/metrics/job/${job}`, {
    headers: bearer(token),
    body: method === "DELETE" ? undefined : BODY,
  });

describe("projected ServiceAccount tokens verified with the API server's keys", () => {
  it("fetches discovery and keys from the API server with the pod's own token", async () => {
    const token = await apiServer.serviceAccountToken({ namespace: "payments", serviceAccount: "reporter" });
    const response = await push(token, "payments_nightly");
    expect(response.status).toBe(200);
    expect(await pushgateway.groups()).toEqual([{ job: "payments_nightly" }]);
    const fetched = apiServer.requests.filter((request) =>
      [DISCOVERY_PATH, JWKS_PATH].includes(request.path),
    );
    expect(fetched.map((request) => request.path)).toEqual([DISCOVERY_PATH, JWKS_PATH]);
    for (const request of fetched) expect(request.authorization).toBe(`Bearer ${POD_TOKEN}`);
    const audit = pushguard
      .logs()
      .filter((line) => line.msg === "audit")
      .at(-1)?.audit;
    expect(audit).toMatchObject({
      identity: "system:serviceaccount:payments:reporter",
      via: "kubernetes",
      team: "namespaces",
    });
    expect(pushguard.logText()).not.toContain(token);
    expect(pushguard.logText()).not.toContain(POD_TOKEN);
  });

  it("{namespace}_* lets a pod push and delete its own namespace's jobs only", async () => {
    const payments = await apiServer.serviceAccountToken({
      namespace: "payments",
      serviceAccount: "reporter",
    });
    const billing = await apiServer.serviceAccountToken({ namespace: "billing", serviceAccount: "reporter" });
    expect((await push(payments, "payments_a")).status).toBe(200);
    expect((await push(billing, "billing_a")).status).toBe(200);
    for (const [token, job] of [
      [payments, "billing_a"],
      [billing, "payments_a"],
      [payments, "payments"],
      [payments, "xpayments_a"],
      // Namespace names may contain "-" but never "_": namespace payments-prod's jobs are not payments'.
      [payments, "payments-prod_x"],
      [payments, "payments-prod-x"],
    ] as const) {
      const response = await push(token, job);
      expect(response.status, job).toBe(403);
      expect(response.json().code).toBe("ERR_ACL_DENIED");
    }
  });

  it("a pod cannot delete another namespace's group, even one whose name extends its own", async () => {
    const payments = await apiServer.serviceAccountToken({
      namespace: "payments",
      serviceAccount: "reporter",
    });
    const prod = await apiServer.serviceAccountToken({
      namespace: "payments-prod",
      serviceAccount: "reporter",
    });
    const victims = ["billing_a", "payments-prod_x"];
    for (const job of victims) {
      expect((await send(pushgateway.url, "PUT", `/metrics/job/${job}`, { body: BODY })).status).toBe(200);
    }
    expect((await push(payments, "billing_a", "DELETE")).status).toBe(403);
    expect((await push(payments, "payments-prod_x", "DELETE")).status).toBe(403);
    // A forwarded DELETE is answered 202 and applied later: wait until it would have been.
    await afterPendingWrites(pushgateway.url);
    expect((await pushgateway.groups()).map((group) => group.job).sort()).toEqual(victims);
    expect((await push(prod, "payments-prod_x", "DELETE")).status).toBe(202);
    await eventually(async () => expect(await pushgateway.groups()).toEqual([{ job: "billing_a" }]));
  });

  it("team rules match namespace and serviceAccount together", async () => {
    const backup = await apiServer.serviceAccountToken({ namespace: "ops", serviceAccount: "backup" });
    expect((await push(backup, "db-backup")).status).toBe(200);
    for (const [namespace, serviceAccount] of [
      ["ops", "default"],
      ["payments", "backup"],
      ["ops-staging", "backup"],
    ]) {
      const token = await apiServer.serviceAccountToken({
        namespace: namespace as string,
        serviceAccount: serviceAccount as string,
      });
      expect((await push(token, "db-backup")).status, `${namespace}:${serviceAccount}`).toBe(403);
    }
    expect(await pushgateway.groups()).toEqual([{ job: "db-backup" }]);
  });

  it("injects the pod's namespace and ServiceAccount as grouping-key labels", async () => {
    const a = await apiServer.serviceAccountToken({ namespace: "batch-a", serviceAccount: "runner" });
    const b = await apiServer.serviceAccountToken({ namespace: "batch-b", serviceAccount: "runner" });
    expect((await push(a, "nightly")).status).toBe(200);
    // A namespace label in the path cannot claim another namespace's group.
    expect((await push(b, "nightly/namespace/batch-a")).status).toBe(200);
    const groups = (await pushgateway.groups()).sort((x, y) =>
      String(x.namespace).localeCompare(String(y.namespace)),
    );
    expect(groups).toEqual([
      { job: "nightly", namespace: "batch-a", sa: "runner" },
      { job: "nightly", namespace: "batch-b", sa: "runner" },
    ]);
  });

  it("re-reads tokenFile (the kubelet rotates it) when keys are fetched again after a rotation", async () => {
    const rotated = generateSigningKey("sa-key-2");
    apiServer.keys = [rotated, ...apiServer.keys];
    const newPodToken = "pushguard-pod-token-rotated-9876543210";
    writeFileSync(tokenFile, `${newPodToken}\n`);
    apiServer.expectedBearer = newPodToken;
    try {
      const token = await apiServer.serviceAccountToken({
        namespace: "payments",
        serviceAccount: "reporter",
      });
      expect((await push(token, "payments_rotated")).status).toBe(200);
      expect(apiServer.requests.at(-1)).toMatchObject({
        path: JWKS_PATH,
        authorization: `Bearer ${newPodToken}`,
      });
    } finally {
      writeFileSync(tokenFile, `${POD_TOKEN}\n`);
      apiServer.expectedBearer = POD_TOKEN;
    }
  });
});

describe("tokens that are not acceptable ServiceAccount tokens are refused with 401", () => {
  const now = () => seconds();
  const cases: Array<{ name: string; reason: string; token: () => Promise<string> }> = [
    {
      name: "a legacy Secret-based token (iss kubernetes/serviceaccount, no exp)",
      reason: "unknown-issuer",
      token: () => apiServer.sign(legacyServiceAccountClaims("payments", "reporter")),
    },
    {
      name: "a legacy-shaped token claiming the cluster issuer, still without exp",
      reason: "claim-exp",
      token: () =>
        apiServer.sign({
          ...legacyServiceAccountClaims("payments", "reporter"),
          iss: CLUSTER_ISSUER,
          aud: ["pushguard"],
        }),
    },
    {
      name: "a projected token without exp",
      reason: "claim-exp",
      token: () =>
        apiServer.serviceAccountToken({
          namespace: "payments",
          serviceAccount: "reporter",
          overrides: { exp: undefined },
        }),
    },
    {
      name: "a subject that does not match the kubernetes.io claims",
      reason: "not-serviceaccount",
      token: () =>
        apiServer.serviceAccountToken({
          namespace: "billing",
          serviceAccount: "reporter",
          overrides: { sub: "system:serviceaccount:payments:reporter" },
        }),
    },
    {
      name: "a subject that is not a ServiceAccount at all",
      reason: "not-serviceaccount",
      token: () =>
        apiServer.serviceAccountToken({
          namespace: "payments",
          serviceAccount: "reporter",
          overrides: { sub: "system:node:node-1" },
        }),
    },
    {
      name: "no kubernetes.io claim",
      reason: "not-serviceaccount",
      token: () =>
        apiServer.serviceAccountToken({
          namespace: "payments",
          serviceAccount: "reporter",
          overrides: { "kubernetes.io": undefined },
        }),
    },
    {
      name: "the API server's default audience instead of pushguard's",
      reason: "claim-aud",
      token: () =>
        apiServer.serviceAccountToken({
          namespace: "payments",
          serviceAccount: "reporter",
          audiences: [CLUSTER_ISSUER],
        }),
    },
    {
      name: "expired",
      reason: "expired",
      token: () =>
        apiServer.serviceAccountToken({
          namespace: "payments",
          serviceAccount: "reporter",
          overrides: { iat: now() - 7200, nbf: now() - 7200, exp: now() - 3600 },
        }),
    },
    {
      name: "signed by another cluster's key with this cluster's kid",
      reason: "bad-signature",
      token: () =>
        apiServer.serviceAccountToken({
          namespace: "payments",
          serviceAccount: "reporter",
          key: { ...generateSigningKey(), kid: apiServer.keys[0]?.kid as string },
        }),
    },
    {
      name: "another cluster's issuer",
      reason: "unknown-issuer",
      token: () =>
        apiServer.serviceAccountToken({
          namespace: "payments",
          serviceAccount: "reporter",
          overrides: { iss: "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE" },
        }),
    },
  ];

  it.each(cases)("$name → 401 ($reason)", async ({ token, reason }) => {
    await send(pushgateway.url, "PUT", "/metrics/job/sentinel", { body: "sentinel 1\n" });
    const before = await authFailures(pushguard.metricsUrl, reason);
    const presented = await token();
    const response = await push(presented, "payments_attack");
    expectInvalid(response);
    expect(response.text).not.toContain(presented);
    expect(await authFailures(pushguard.metricsUrl, reason)).toBe(before + 1);
    expect(await pushgateway.groups()).toEqual([{ job: "sentinel" }]);
  });
});

describe("when the API server cannot vouch for its keys", () => {
  it("answers 503 when the API server refuses pushguard's own token, and forwards nothing", async () => {
    const guard = await startPushguard(config(pushgateway.url, apiServer.url, undefined), {});
    try {
      const token = await apiServer.serviceAccountToken({
        namespace: "payments",
        serviceAccount: "reporter",
      });
      // The token itself is fine: the pushguard with tokenFile accepts it.
      expect((await push(token, "payments_x")).status).toBe(200);
      const before = apiServer.requests.length;
      const response = await send(guard.apiUrl, "PUT", "/metrics/job/payments_x/instance/2", {
        headers: bearer(token),
        body: BODY,
      });
      expect(response.status).toBe(503);
      expect(response.json().code).toBe("ERR_AUTH_UNAVAILABLE");
      const asked = apiServer.requests.slice(before).filter((request) => request.path === DISCOVERY_PATH);
      expect(asked.at(-1)?.authorization).toBeUndefined();
      expect(await pushgateway.groups()).toEqual([{ job: "payments_x" }]);
    } finally {
      await guard.close();
    }
  });

  it("a caFile that cannot be read refuses only that issuer's tokens (503), and the log names the key", async () => {
    const missingCa = join(dir, "absent-ca.crt");
    const staticToken = "k8s-test-static-token-0123456789";
    const guard = await startPushguard(
      `
listen: { api: "127.0.0.1:0", metrics: "127.0.0.1:0" }
upstream: { url: "${pushgateway.url}" }
identities:
  static: [{ name: batch, tokenEnv: K8S_TEST_STATIC_TOKEN }]
  kubernetes:
    - name: cluster
      issuer: "${CLUSTER_ISSUER}"
      audiences: [pushguard]
      apiServer: "${apiServer.url}"
      caFile: "${missingCa}"
      tokenFile: "${tokenFile}"
teams:
  - { name: batch, members: [batch], jobs: ["batch_*"], actions: [push] }
  - { name: namespaces, members: [{ issuer: cluster, namespace: "*" }], jobs: ["{namespace}_*"], actions: [push] }
`,
      { K8S_TEST_STATIC_TOKEN: staticToken },
    );
    try {
      const token = await apiServer.serviceAccountToken({
        namespace: "payments",
        serviceAccount: "reporter",
      });
      const refused = await send(guard.apiUrl, "PUT", "/metrics/job/payments_ca", {
        headers: bearer(token),
        body: BODY,
      });
      expect(refused.status).toBe(503);
      expect(refused.json().code).toBe("ERR_AUTH_UNAVAILABLE");
      expect(guard.logText()).toContain(`identities.kubernetes.0.caFile: cannot read ${missingCa}`);
      const allowed = await send(guard.apiUrl, "PUT", "/metrics/job/batch_ca", {
        headers: bearer(staticToken),
        body: BODY,
      });
      expect(allowed.status).toBe(200);
      expect(await pushgateway.groups()).toEqual([{ job: "batch_ca" }]);
    } finally {
      await guard.close();
    }
  });

  it("verifies the API server's TLS with caFile, and trusts a CA rotated in place without a restart", async () => {
    const first = certificateAuthority("cluster-1");
    const second = certificateAuthority("cluster-2");
    const caFile = join(dir, "tls-ca.crt");
    writeFileSync(caFile, first.ca.cert);
    const tlsServer = await startJwtIssuer({ issuer: CLUSTER_ISSUER, tls: first.server });
    const guard = await startPushguard(
      config(pushgateway.url, tlsServer.url, tokenFile).replace(
        "      jwks: { cooldownMs: 0 }",
        `      caFile: "${caFile}"\n      jwks: { cooldownMs: 0 }`,
      ),
      {},
    );
    const pushAs = async (job: string) =>
      send(guard.apiUrl, "PUT", `/metrics/job/${job}`, {
        headers: bearer(
          await tlsServer.serviceAccountToken({ namespace: "tls", serviceAccount: "reporter" }),
        ),
        body: BODY,
      });
    try {
      expect(tlsServer.url).toMatch(/^https:/);
      expect((await pushAs("tls_first")).status).toBe(200);

      // The cluster's CA changes: the kubelet rewrites ca.crt in place, the API server presents a
      // certificate of the new CA and signs with a new key, so pushguard must fetch keys again.
      writeFileSync(caFile, second.ca.cert);
      tlsServer.rotateCertificate(second.server);
      tlsServer.keys = [generateSigningKey("rotated-key")];
      expect((await pushAs("tls_second")).status).toBe(200);
      expect((await pushgateway.groups()).map((group) => group.job).sort()).toEqual([
        "tls_first",
        "tls_second",
      ]);

      // A certificate of a CA the file no longer holds: the new key cannot be fetched, so the
      // token is refused (unknown key: the cached keys still serve), and nothing is stored.
      tlsServer.rotateCertificate(first.server);
      tlsServer.keys = [generateSigningKey("rotated-again")];
      const refused = await pushAs("tls_third");
      expect(refused.status).toBe(401);
      expect(refused.json().code).toBe("ERR_AUTH_INVALID");
      await afterPendingWrites(pushgateway.url);
      expect((await pushgateway.groups()).map((group) => group.job)).not.toContain("tls_third");
    } finally {
      await guard.close();
      await tlsServer.close();
    }
  });

  it("refuses a discovery document naming another issuer than the configured one", async () => {
    const elsewhere = "https://kubernetes.example.internal";
    const guard = await startPushguard(config(pushgateway.url, apiServer.url, tokenFile, elsewhere), {});
    try {
      const token = await apiServer.serviceAccountToken({
        namespace: "payments",
        serviceAccount: "reporter",
        overrides: { iss: elsewhere },
      });
      const response = await send(guard.apiUrl, "PUT", "/metrics/job/payments_y", {
        headers: bearer(token),
        body: BODY,
      });
      expect(response.status).toBe(503);
      expect(response.json().code).toBe("ERR_AUTH_UNAVAILABLE");
      expect(await pushgateway.groups()).toEqual([]);
    } finally {
      await guard.close();
    }
  });
});

/** A kubernetes issuer with only the settings under test; `apiServer`/`jwksUri` only when given. */
function scopedConfig(
  upstreamUrl: string,
  settings: { issuer: string; apiServer?: string; jwksUri?: string; tokenFile: string },
) {
  return `
listen: { api: "127.0.0.1:0", metrics: "127.0.0.1:0" }
upstream: { url: "${upstreamUrl}" }
identities:
  kubernetes:
    - name: cluster
      issuer: "${settings.issuer}"
      audiences: [pushguard]
${settings.apiServer ? `      apiServer: "${settings.apiServer}"\n` : ""}${settings.jwksUri ? `      jwksUri: "${settings.jwksUri}"\n` : ""}      tokenFile: "${settings.tokenFile}"
      jwks: { cooldownMs: 0 }
teams:
  - name: namespaces
    members: [{ issuer: cluster, namespace: "*" }]
    jobs: ["{namespace}_*"]
    actions: [push]
`;
}

/** Discovery and JWKS requests a local server received. */
const keyRequests = (server: LocalIssuer) =>
  server.requests.filter((request) => [DISCOVERY_PATH, JWKS_PATH].includes(request.path));

describe("pushguard's own ServiceAccount token goes to the API server only", () => {
  it.each([
    { name: "discovery at the issuer URL", explicitJwksUri: false, fetched: [DISCOVERY_PATH, JWKS_PATH] },
    { name: "an explicit jwksUri", explicitJwksUri: true, fetched: [JWKS_PATH] },
  ])(
    "without apiServer ($name), the issuer never sees tokenFile's token",
    async ({ explicitJwksUri, fetched }) => {
      // A public issuer (EKS, GKE, a self-hosted discovery bucket): keys need no credentials.
      const publicIssuer = await startJwtIssuer({ keys: [generateSigningKey("public-key-1")] });
      const guard = await startPushguard(
        scopedConfig(pushgateway.url, {
          issuer: publicIssuer.url,
          jwksUri: explicitJwksUri ? `${publicIssuer.url}${JWKS_PATH}` : undefined,
          tokenFile,
        }),
        {},
      );
      try {
        const token = await publicIssuer.serviceAccountToken({
          namespace: "payments",
          serviceAccount: "reporter",
        });
        const response = await send(guard.apiUrl, "PUT", "/metrics/job/payments_public", {
          headers: bearer(token),
          body: BODY,
        });
        expect(response.status).toBe(200);
        expect(await pushgateway.groups()).toEqual([{ job: "payments_public" }]);
        expect(keyRequests(publicIssuer).map((request) => request.path)).toEqual(fetched);
        expect(publicIssuer.requests.map((request) => request.authorization)).toEqual(
          publicIssuer.requests.map(() => undefined),
        );
      } finally {
        await guard.close();
        await publicIssuer.close();
      }
    },
  );

  it("with apiServer, a jwks_uri advertised on another origin is fetched from the API server instead", async () => {
    // The API server advertises its external host (another origin here: same address, other port).
    const external = await startJwtIssuer();
    const keys = [generateSigningKey("sa-external-1")];
    const cluster = await startJwtIssuer({ issuer: external.url, keys });
    cluster.expectedBearer = POD_TOKEN;
    const guard = await startPushguard(
      scopedConfig(pushgateway.url, { issuer: external.url, apiServer: cluster.url, tokenFile }),
      {},
    );
    try {
      const token = await cluster.serviceAccountToken({ namespace: "payments", serviceAccount: "reporter" });
      const response = await send(guard.apiUrl, "PUT", "/metrics/job/payments_external", {
        headers: bearer(token),
        body: BODY,
      });
      expect(response.status).toBe(200);
      expect(keyRequests(cluster)).toEqual([
        { method: "GET", path: DISCOVERY_PATH, authorization: `Bearer ${POD_TOKEN}` },
        { method: "GET", path: JWKS_PATH, authorization: `Bearer ${POD_TOKEN}` },
      ]);
      // The advertised host is never contacted at all, with or without the token.
      expect(external.requests).toEqual([]);
    } finally {
      await guard.close();
      await cluster.close();
      await external.close();
    }
  });

  it("with apiServer, an explicit jwksUri on another origin gets no token", async () => {
    const keys = [generateSigningKey("sa-elsewhere-1")];
    const cluster = await startJwtIssuer({ issuer: CLUSTER_ISSUER, keys });
    cluster.expectedBearer = POD_TOKEN;
    // Same address, another port: another origin, so not the API server.
    const keyHost = await startJwtIssuer({ issuer: CLUSTER_ISSUER, keys });
    const guard = await startPushguard(
      scopedConfig(pushgateway.url, {
        issuer: CLUSTER_ISSUER,
        apiServer: cluster.url,
        jwksUri: `${keyHost.url}${JWKS_PATH}`,
        tokenFile,
      }),
      {},
    );
    try {
      const token = await cluster.serviceAccountToken({ namespace: "payments", serviceAccount: "reporter" });
      const response = await send(guard.apiUrl, "PUT", "/metrics/job/payments_elsewhere", {
        headers: bearer(token),
        body: BODY,
      });
      expect(response.status).toBe(200);
      expect(keyHost.requests).toEqual([{ method: "GET", path: JWKS_PATH, authorization: undefined }]);
      // An explicit jwksUri skips discovery: the API server is not asked either.
      expect(cluster.requests).toEqual([]);
    } finally {
      await guard.close();
      await keyHost.close();
      await cluster.close();
    }
  });
});
