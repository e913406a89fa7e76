import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashToken } from "../../src/config/load.js";
import { send } from "../support/http.js";
import { type Pushgateway, startPushgateway } from "../support/pushgateway.js";

const TEAM_TOKEN = "explain-team-token-0123456789";
let dir: string;
let configPath: string;

function explain(args: string[], stdin?: string) {
  const result = spawnSync("node", ["dist/main.js", "explain", "--config", configPath, ...args], {
    input: stdin ?? "",
    encoding: "utf8",
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "pushguard-explain-"));
  configPath = join(dir, "pushguard.yaml");
  writeFileSync(join(dir, "token"), `${TEAM_TOKEN}\n`);
  writeFileSync(
    configPath,
    `
upstream: { url: "http://127.0.0.1:9191" }
identities:
  static:
    - { name: batch, sha256: "${hashToken(TEAM_TOKEN).toString("hex")}" }
teams:
  - name: team-a
    members: [batch]
    jobs: ["backup", "team-a-*"]
    actions: [push, delete]
    groupingKey: { inject: { team: "{team}" }, require: { env: "prod" } }
`,
  );
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("pushguard explain", () => {
  it("shows the identity, the matching rule, the rewrite and the exact upstream path", () => {
    const result = explain([
      "--method",
      "PUT",
      "--path",
      "/metrics/job/backup/env/prod",
      "--token-file",
      join(dir, "token"),
    ]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("identity:  batch (static-token)");
    expect(result.stdout).toContain("decision:  ALLOW (team team-a grants push on jobs backup, team-a-*)");
    expect(result.stdout).toContain('rewrite:   grouping key becomes job="backup",env="prod",team="team-a"');
    expect(result.stdout).toContain(
      "upstream:  PUT http://127.0.0.1:9191/metrics/job/backup/env/prod/team/team-a",
    );
  });

  it("shows the team's push limits, and validates a body given with --body", () => {
    const path = "/metrics/job/backup/env/prod";
    const token = ["--token-file", join(dir, "token")];
    const limits = explain(["--method", "PUT", "--path", path, ...token]);
    expect(limits.code).toBe(0);
    expect(limits.stdout).toContain("  - limits: seriesPerPush 10000, labelsPerSeries 32,");
    expect(limits.stdout).toContain("  - metric names: allow *; deny up, scrape_*, pushgateway_*");
    expect(limits.stdout).toContain("body:      not given");

    writeFileSync(join(dir, "good.prom"), '# TYPE rows gauge\nrows 1\nrows{kind="x"} 2\n');
    const good = explain(["--method", "PUT", "--path", path, ...token, "--body", join(dir, "good.prom")]);
    expect(good.code).toBe(0);
    expect(good.stdout).toContain("body:      valid text: 1 families, 2 series");

    writeFileSync(join(dir, "bad.prom"), "rows 1\nrows 2\n");
    const bad = explain(["--method", "PUT", "--path", path, ...token, "--body", join(dir, "bad.prom")]);
    expect(bad.code).toBe(2);
    expect(bad.stdout).toContain('rule:      duplicate-series (family "rows", line 2)');
    expect(bad.stdout).toContain("decision:  DENY at validate: 400 ERR_INVALID_METRIC");
    expect(bad.stdout).toContain("upstream:  nothing is forwarded");
  });

  it("says which requirement failed when a rule almost matches (token on stdin)", () => {
    const result = explain(["--method", "PUT", "--path", "/metrics/job/backup"], TEAM_TOKEN);
    expect(result.code).toBe(2);
    expect(result.stdout).toContain('team team-a: label env must be "prod" (got none)');
    expect(result.stdout).toContain("DENY at authorize: 403 ERR_ACL_DENIED");
    expect(result.stdout).toContain("upstream:  nothing is forwarded");
  });

  it("explains a job outside the team's patterns, an unknown token and a malformed path", () => {
    const job = explain(["--method", "DELETE", "--path", "/metrics/job/other/env/prod"], TEAM_TOKEN);
    expect(job.code).toBe(2);
    expect(job.stdout).toContain('job "other" matches none of backup, team-a-*');
    const token = explain(["--method", "PUT", "--path", "/metrics/job/backup"], "not-the-token");
    expect(token.stdout).toContain("DENY at authenticate: 401 ERR_AUTH_INVALID");
    expect(token.stdout).not.toContain("not-the-token");
    const path = explain(["--method", "PUT", "--path", "/metrics/job/backup/__x/y"], TEAM_TOKEN);
    expect(path.stdout).toContain("DENY at classify: 400 ERR_BAD_GROUPING_KEY");
  });

  it("explains anonymous requests and refuses to run without method and path", () => {
    const anonymous = explain(["--method", "GET", "--path", "/metrics", "--anonymous"]);
    expect(anonymous.code).toBe(2);
    expect(anonymous.stdout).toContain("401 ERR_AUTH_MISSING");
    expect(explain(["--path", "/metrics"]).code).toBe(1);
  });
});

describe("pushguard explain presents the credential as serve would accept it", () => {
  // hash-token accepts any token; only Basic auth can carry one outside the Bearer character set.
  const ODD_TOKEN = 'odd token with spaces, "quotes" and ü: 0123456789';

  it("a static token that is not token68 is explained as the Basic password, not as malformed", () => {
    const path = join(dir, "odd.yaml");
    writeFileSync(
      path,
      `
upstream: { url: "http://127.0.0.1:9191" }
identities:
  static:
    - { name: odd, sha256: "${hashToken(ODD_TOKEN).toString("hex")}" }
teams: [{ name: odd, members: [odd], jobs: ["odd-*"], actions: [push] }]
`,
    );
    const result = spawnSync(
      "node",
      ["dist/main.js", "explain", "--config", path, "--method", "PUT", "--path", "/metrics/job/odd-1"],
      { input: ODD_TOKEN, encoding: "utf8" },
    );
    expect(result.stdout).toContain("identity:  odd (static-token)");
    expect(result.stdout).toContain("sent as the Basic password");
    expect(result.status).toBe(0);
  });
});

describe("pushguard explain with an in-cluster Kubernetes issuer, run outside the cluster", () => {
  let clusterConfig: string;
  beforeAll(() => {
    clusterConfig = join(dir, "in-cluster.yaml");
    // The in-cluster issuer of docs/identities.md: its caFile and tokenFile exist only inside a pod.
    writeFileSync(
      clusterConfig,
      `
upstream: { url: "http://127.0.0.1:9191" }
identities:
  static:
    - { name: batch, sha256: "${hashToken(TEAM_TOKEN).toString("hex")}" }
  kubernetes:
    - name: cluster
      issuer: "https://kubernetes.default.svc.cluster.local"
      audiences: [pushguard]
      apiServer: "https://kubernetes.default.svc"
      caFile: ${join(dir, "absent", "ca.crt")}
      tokenFile: ${join(dir, "absent", "token")}
teams:
  - { name: team-a, members: [batch], jobs: ["team-a-*"], actions: [push] }
  - name: namespaces
    members: [{ issuer: cluster, namespace: "*" }]
    jobs: ["{namespace}_*"]
    actions: [push]
`,
    );
  });

  const run = (args: string[], stdin: string) =>
    spawnSync("node", ["dist/main.js", ...args, "--config", clusterConfig], {
      input: stdin,
      encoding: "utf8",
    });

  it("still answers for a static token", () => {
    const result = run(["explain", "--method", "PUT", "--path", "/metrics/job/team-a-x"], TEAM_TOKEN);
    expect(result.stderr).toBe("");
    expect(result.stdout).toContain("decision:  ALLOW (team team-a grants push on jobs team-a-*)");
    expect(result.status).toBe(0);
  });

  it("refuses that issuer's tokens as unavailable, naming the key that cannot be read", () => {
    const encode = (part: object) => Buffer.from(JSON.stringify(part)).toString("base64url");
    const now = Math.floor(Date.now() / 1000);
    const token = [
      encode({ alg: "RS256", kid: "k1", typ: "JWT" }),
      encode({
        iss: "https://kubernetes.default.svc.cluster.local",
        aud: ["pushguard"],
        sub: "system:serviceaccount:payments:reporter",
        iat: now,
        exp: now + 600,
      }),
      "c2lnbmF0dXJl",
    ].join(".");
    const result = run(["explain", "--method", "PUT", "--path", "/metrics/job/payments_x"], token);
    expect(result.status).toBe(2);
    expect(result.stdout).toContain("DENY at authenticate: 503 ERR_AUTH_UNAVAILABLE");
    expect(result.stdout).toMatch(
      /cause: +identities\.kubernetes\.0\.(caFile|tokenFile): cannot read \/.*\/absent\/(ca\.crt|token): ENOENT/,
    );
  });

  it("check and serve agree: check is valid and warns about the unreadable files", () => {
    const result = run(["check"], "");
    expect(result.status).toBe(0);
    expect(result.stdout).toContain("warnings:");
    expect(result.stdout).toContain("identities.kubernetes.0.caFile: cannot read");
    expect(result.stdout).toContain("identities.kubernetes.0.tokenFile: cannot read");
  });
});

describe("pushguard explain --store", () => {
  let pushgateway: Pushgateway;
  let storeConfig: string;
  const body = (text: string) => {
    const path = join(dir, `body-${Math.random().toString(36).slice(2)}.txt`);
    writeFileSync(path, text);
    return path;
  };
  const explainStore = (path: string, bodyFile: string, extra: string[] = ["--store"]) =>
    explain([
      "--method",
      "PUT",
      "--path",
      path,
      "--token-file",
      join(dir, "token"),
      "--body",
      bodyFile,
      ...extra,
    ]);

  beforeAll(async () => {
    pushgateway = await startPushgateway(["--push.disable-consistency-check"]);
    storeConfig = join(dir, "store.yaml");
    writeFileSync(
      storeConfig,
      `
upstream: { url: "${pushgateway.url}" }
identities:
  static:
    - { name: batch, sha256: "${hashToken(TEAM_TOKEN).toString("hex")}" }
teams:
  - { name: team-a, members: [batch], jobs: ["team-a-*"], actions: [push] }
store: { quotas: { groupsPerTeam: 2 } }
`,
    );
    // what team-a already stores: one group with a counter
    await send(pushgateway.url, "PUT", "/metrics/job/team-a-one", {
      body: "# TYPE done_total counter\ndone_total 1\n",
    });
  });

  afterAll(async () => {
    await pushgateway?.stop();
  });

  const run = (path: string, text: string, extra?: string[]) => {
    const saved = configPath;
    configPath = storeConfig;
    try {
      return explainStore(path, body(text), extra);
    } finally {
      configPath = saved;
    }
  };

  it("shows the team's usage and says a push fits", () => {
    const result = run("/metrics/job/team-a-two", "# TYPE done_total counter\ndone_total 2\n");
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("store:     quota 2 groups, 200000 series");
    expect(result.stdout).toContain("usage:     1 groups, 1 series stored by team team-a");
    expect(result.stdout).toContain("store:     fits");
  });

  it("denies a push that clashes with a stored family, naming it, as serve would", () => {
    const result = run("/metrics/job/team-a-two", "# TYPE done_total gauge\ndone_total 2\n");
    expect(result.code).toBe(2);
    expect(result.stdout).toContain(
      'rule:      type-conflict (family "done_total", holder "group /metrics/job/team-a-one")',
    );
    expect(result.stdout).toContain("DENY at store: 409 ERR_FAMILY_CONFLICT");
  });

  it("denies a group beyond the team's quota, and without --store only shows the quota", async () => {
    await send(pushgateway.url, "PUT", "/metrics/job/team-a-two", { body: "x 1\n" });
    const result = run("/metrics/job/team-a-three", "x 1\n");
    expect(result.code).toBe(2);
    expect(result.stdout).toContain("rule:      team-groups (limit 2, actual 3)");
    expect(result.stdout).toContain("DENY at store: 429 ERR_QUOTA_EXCEEDED");
    const offline = run("/metrics/job/team-a-three", "x 1\n", []);
    expect(offline.code).toBe(0);
    expect(offline.stdout).toContain("(--store reads the Pushgateway");
  });
});
