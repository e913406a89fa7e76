import { describe, expect, it } from "vitest";
import { ANONYMOUS, type Identity } from "../../src/auth/identity.js";
import { groupingKeyRules, memberSelector } from "../../src/config/jwt-schema.js";
import { hashToken, parseConfig } from "../../src/config/load.js";
import { ProblemError } from "../../src/errors.js";
import { ambiguousPatternWarnings } from "../../src/policy/ambiguous-patterns.js";
import { createAuthorizer } from "../../src/policy/decide.js";
import { compileMember, describeMember } from "../../src/policy/members.js";
import {
  compilePattern,
  expandTemplate,
  type TemplateVars,
  templateVars,
} from "../../src/policy/template.js";
import { classify } from "../../src/pushgateway/classify.js";

const vars =
  (values: Record<string, string>): TemplateVars =>
  (name) =>
    values[name];

const serviceAccount = (namespace: string, name: string, issuer = "cluster"): Identity => ({
  name: `system:serviceaccount:${namespace}:${name}`,
  via: "kubernetes",
  issuer,
  groups: [],
  claims: { sub: `system:serviceaccount:${namespace}:${name}`, "kubernetes.io": { namespace } },
  namespace,
  serviceAccount: name,
});

const oidc = (name: string, claims: Record<string, unknown> = {}, groups: string[] = []): Identity => ({
  name,
  via: "oidc",
  issuer: "idp",
  groups,
  claims: { sub: name, ...claims },
});

const staticIdentity = (name: string): Identity => ({ name, via: "static-token", groups: [], claims: {} });

describe("expandTemplate", () => {
  it("fills placeholders with the identity's values", () => {
    const fill = vars({ team: "team-a", namespace: "payments" });
    expect(expandTemplate("{team}", fill)).toBe("team-a");
    expect(expandTemplate("{namespace}-{team}", fill)).toBe("payments-team-a");
    expect(expandTemplate("static", fill)).toBe("static");
  });

  it("is undefined when a value is missing or empty, so the rule cannot apply", () => {
    expect(expandTemplate("{namespace}", vars({}))).toBeUndefined();
    expect(expandTemplate("{namespace}-x", vars({ namespace: "" }))).toBeUndefined();
    expect(expandTemplate("{team}-{nope}", vars({ team: "t" }))).toBeUndefined();
  });

  it("inserts values literally: no $-patterns, no second expansion", () => {
    expect(expandTemplate("{subject}", vars({ subject: "$&$1$$" }))).toBe("$&$1$$");
    expect(expandTemplate("{subject}", vars({ subject: "{team}", team: "t" }))).toBe("{team}");
  });
});

describe("compilePattern", () => {
  it("matches {namespace}-* against the caller's namespace only", () => {
    const match = compilePattern("{namespace}-*");
    const payments = vars({ namespace: "payments" });
    expect(match("payments-nightly", payments)).toBe(true);
    expect(match("payments-", payments)).toBe(true);
    expect(match("payments", payments)).toBe(false);
    expect(match("billing-nightly", payments)).toBe(false);
    expect(match("xpayments-nightly", payments)).toBe(false);
  });

  it("takes a value containing * or ? literally, never as a wildcard", () => {
    const match = compilePattern("{namespace}-*");
    const star = vars({ namespace: "a*" });
    expect(match("a*-job", star)).toBe(true);
    expect(match("ab-job", star)).toBe(false);
    expect(match("a-job", star)).toBe(false);
    const question = vars({ namespace: "a?" });
    expect(match("a?-job", question)).toBe(true);
    expect(match("ab-job", question)).toBe(false);
  });

  it("takes regex metacharacters in values and in the pattern literally", () => {
    expect(compilePattern("{namespace}-*")("aXb-1", vars({ namespace: "a.b" }))).toBe(false);
    expect(compilePattern("{namespace}-*")("a.b-1", vars({ namespace: "a.b" }))).toBe(true);
    expect(compilePattern("{claims.repo}")("(x)|y", vars({ "claims.repo": "(x)|y" }))).toBe(true);
    expect(compilePattern("{claims.repo}")("y", vars({ "claims.repo": "(x)|y" }))).toBe(false);
    const literal = compilePattern("a+b(c)[d]^$.");
    expect(literal("a+b(c)[d]^$.", vars({}))).toBe(true);
    expect(literal("aab(c)[d]^$x", vars({}))).toBe(false);
  });

  it("never matches when a variable is missing or empty, whatever the job", () => {
    const match = compilePattern("{namespace}-*");
    for (const job of ["-x", "-", "{namespace}-x", "*", "anything"]) {
      expect(match(job, vars({}))).toBe(false);
      expect(match(job, vars({ namespace: "" }))).toBe(false);
    }
    expect(compilePattern("{nope}")("", vars({}))).toBe(false);
  });

  it("anchors the whole name; * spans any characters, ? exactly one", () => {
    const match = compilePattern("team-?-*");
    expect(match("team-a-backup", vars({}))).toBe(true);
    expect(match("team-ab-backup", vars({}))).toBe(false);
    expect(match("xteam-a-1", vars({}))).toBe(false);
    expect(compilePattern("a*")("a/b\nc", vars({}))).toBe(true);
    expect(compilePattern("{team}")("team-a\n", vars({ team: "team-a" }))).toBe(false);
  });
});

describe("templateVars", () => {
  it("exposes team, subject, namespace, serviceAccount and claims by path", () => {
    const sa = templateVars(serviceAccount("payments", "reporter"), "namespaces");
    expect(["team", "subject", "namespace", "serviceAccount"].map(sa)).toEqual([
      "namespaces",
      "system:serviceaccount:payments:reporter",
      "payments",
      "reporter",
    ]);
    expect(sa("claims.kubernetes.io.namespace")).toBe("payments");
    const ci = templateVars(
      oidc("repo:acme/app", { repository_owner: "acme", run: 7, ok: true, obj: { a: 1 } }),
      "t",
    );
    expect(ci("claims.repository_owner")).toBe("acme");
    expect(ci("claims.run")).toBe("7");
    expect(ci("claims.ok")).toBe("true");
    expect(ci("claims.obj")).toBeUndefined();
    expect(ci("claims.constructor")).toBeUndefined();
    expect(ci("namespace")).toBeUndefined();
    expect(ci("unknown")).toBeUndefined();
    expect(templateVars(ANONYMOUS, "t")("subject")).toBeUndefined();
  });
});

describe("member selectors", () => {
  it("a string member is a static identity only, never a JWT subject of the same name", () => {
    const member = compileMember("admin");
    expect(member(staticIdentity("admin"))).toBe(true);
    expect(member(oidc("admin"))).toBe(false);
    expect(member(staticIdentity("admin2"))).toBe(false);
  });

  it("a selector needs the issuer and every given field to match", () => {
    const member = compileMember({ issuer: "cluster", namespace: "pay*", serviceAccount: "reporter" });
    expect(member(serviceAccount("payments", "reporter"))).toBe(true);
    expect(member(serviceAccount("payments", "other"))).toBe(false);
    expect(member(serviceAccount("billing", "reporter"))).toBe(false);
    expect(member(serviceAccount("payments", "reporter", "other-cluster"))).toBe(false);
    expect(member(oidc("reporter"))).toBe(false);
    expect(member(staticIdentity("reporter"))).toBe(false);
  });

  it("groups match exactly; subject and claims are globs; claim arrays match on any element", () => {
    const grouped = compileMember({ issuer: "idp", group: "push*" });
    expect(grouped(oidc("a", {}, ["push*"]))).toBe(true);
    expect(grouped(oidc("a", {}, ["pushers"]))).toBe(false);
    const bySubject = compileMember({ issuer: "idp", subject: "repo:acme/*" });
    expect(bySubject(oidc("repo:acme/app"))).toBe(true);
    expect(bySubject(oidc("repo:evil/acme/app"))).toBe(false);
    const byClaims = compileMember({
      issuer: "idp",
      claims: { "realm_access.roles": "metrics-*", ref: "refs/heads/main" },
    });
    expect(
      byClaims(oidc("x", { realm_access: { roles: ["a", "metrics-pusher"] }, ref: "refs/heads/main" })),
    ).toBe(true);
    expect(byClaims(oidc("x", { realm_access: { roles: ["a"] }, ref: "refs/heads/main" }))).toBe(false);
    expect(byClaims(oidc("x", { realm_access: { roles: ["metrics-pusher"] }, ref: "refs/heads/dev" }))).toBe(
      false,
    );
    expect(
      byClaims(oidc("x", { realm_access: { roles: [{ name: "metrics-x" }] }, ref: "refs/heads/main" })),
    ).toBe(false);
    const numeric = compileMember({ issuer: "idp", claims: { run_attempt: "1" } });
    expect(numeric(oidc("x", { run_attempt: 1 }))).toBe(true);
    expect(numeric(oidc("x", {}))).toBe(false);
    expect(describeMember({ issuer: "idp", claims: { ref: "main" } })).toBe(
      'issuer=idp claims={"ref":"main"}',
    );
  });

  it("the schema refuses a selector that would admit every identity of an issuer", () => {
    for (const selector of [{ issuer: "idp" }, { issuer: "idp", claims: {} }]) {
      expect(memberSelector.safeParse(selector).success, JSON.stringify(selector)).toBe(false);
    }
    expect(memberSelector.safeParse({ issuer: "idp", subject: "*" }).success).toBe(true);
    expect(memberSelector.safeParse({ issuer: "idp", claims: { ref: "main" } }).success).toBe(true);
  });

  it("the schema refuses placeholders where they can never be filled", () => {
    // A selector matches the token's values; {namespace} there would silently never match.
    expect(memberSelector.safeParse({ issuer: "cluster", namespace: "{team}" }).success).toBe(false);
    expect(memberSelector.safeParse({ issuer: "idp", claims: { ref: "{namespace}" } }).success).toBe(false);
    // Label templates may only name values an identity can have.
    expect(groupingKeyRules.safeParse({ inject: { team: "{team}", ns: "{namespace}-x" } }).success).toBe(
      true,
    );
    expect(groupingKeyRules.safeParse({ inject: { by: "{claims.email}" } }).success).toBe(true);
    expect(groupingKeyRules.safeParse({ inject: { team: "{taem}" } }).success).toBe(false);
    expect(groupingKeyRules.safeParse({ require: { env: "{environment}" } }).success).toBe(false);
  });
});

describe("label templates in the authorizer", () => {
  const config = parseConfig(
    `
upstream: { url: "http://127.0.0.1:9" }
identities:
  static:
    - { name: team-a-ci, sha256: "${hashToken("a").toString("hex")}" }
  oidc:
    - { name: idp, issuer: "https://idp.example.com", audiences: [pushguard] }
  kubernetes:
    - { name: cluster, audiences: [pushguard] }
teams:
  - name: namespaces
    members: [{ issuer: cluster, namespace: "*" }]
    jobs: ["{namespace}-*"]
    actions: [push, delete]
    groupingKey: { inject: { namespace: "{namespace}" } }
  - name: people
    members: [{ issuer: idp, subject: "*" }]
    jobs: ["adhoc-*"]
    actions: [push]
    groupingKey: { inject: { pushed_by: "{claims.email}" } }
  - name: team-a
    members: [team-a-ci]
    jobs: ["backup"]
    actions: [push]
    groupingKey: { require: { team: "{team}" } }
`,
    "templates.yaml",
    {},
  );
  const authorize = createAuthorizer(config);

  it("a ServiceAccount pushes only {namespace}-* and carries its namespace label", () => {
    const decision = authorize(
      serviceAccount("payments", "reporter"),
      classify("PUT", "/metrics/job/payments-nightly/namespace/billing"),
    );
    expect(decision.team).toBe("namespaces");
    expect(decision.upstreamPath).toBe("/metrics/job/payments-nightly/namespace/payments");
    expect(() =>
      authorize(serviceAccount("payments", "reporter"), classify("PUT", "/metrics/job/billing-nightly")),
    ).toThrow(ProblemError);
  });

  it("an injected value with / or unusual characters is encoded, not split", () => {
    const decision = authorize(
      oidc("jane", { email: "jane/../x@example.com" }),
      classify("POST", "/metrics/job/adhoc-1"),
    );
    expect(decision.groupingKey?.labels).toEqual({ pushed_by: "jane/../x@example.com" });
    expect(decision.upstreamPath).toBe(
      `/metrics/job/adhoc-1/pushed_by@base64/${Buffer.from("jane/../x@example.com").toString("base64url")}`,
    );
    // Without the claim the injection cannot be filled, so the rule does not apply.
    expect(() => authorize(oidc("jane"), classify("POST", "/metrics/job/adhoc-1"))).toThrow(ProblemError);
  });

  it("require: the label must be present with the team's value", () => {
    const team = staticIdentity("team-a-ci");
    expect(authorize(team, classify("PUT", "/metrics/job/backup/team/team-a")).upstreamPath).toBe(
      "/metrics/job/backup/team/team-a",
    );
    for (const path of [
      "/metrics/job/backup",
      "/metrics/job/backup/team/team-b",
      "/metrics/job/backup/team/",
    ]) {
      expect(() => authorize(team, classify("PUT", path)), path).toThrow(ProblemError);
    }
  });
});

describe("ambiguousPatternWarnings", () => {
  const warningsFor = (jobs: string[], groupingKey = "") =>
    ambiguousPatternWarnings(
      parseConfig(
        `
upstream: { url: "http://127.0.0.1:9" }
identities:
  kubernetes:
    - { name: cluster, audiences: [pushguard] }
teams:
  - name: namespaces
    members: [{ issuer: cluster, namespace: "*" }]
    jobs: ${JSON.stringify(jobs)}
    actions: [push, delete]
${groupingKey ? `    groupingKey: ${groupingKey}` : ""}
`,
        "patterns.yaml",
        {},
      ),
    );

  it.each([
    ["{namespace}-*", "{namespace}_*"],
    ["{namespace}*", "{namespace}_*"],
    ["ns-{namespace}x?", "ns-{namespace}_?"],
    ["{namespace}?", "{namespace}_?"],
    ["{serviceAccount}.*", "{serviceAccount}_*"],
    ["{namespace}{serviceAccount}", "{namespace}_{serviceAccount}"],
    ["*-{namespace}", "*_{namespace}"],
    ["*{namespace}", "*_{namespace}"],
    ["ci-*-{namespace}", "ci-*_{namespace}"],
  ])("warns about %s, naming the key and suggesting %s", (pattern, safe) => {
    const [warning, ...rest] = warningsFor([pattern]);
    expect(rest).toEqual([]);
    expect(warning).toMatch(/^teams\.0\.jobs\.0: /);
    expect(warning).toContain(`"${safe}"`);
  });

  it.each([
    "{namespace}_*",
    "{namespace}.*",
    "{namespace}",
    "{serviceAccount}_*",
    "ci-{namespace}:*",
    "{team}-*",
    "{claims.repo}-*",
    "*_{namespace}",
    "ci-{namespace}",
    "?-{namespace}",
    "*_x-{namespace}",
  ])("accepts %s", (pattern) => {
    expect(warningsFor([pattern])).toEqual([]);
  });

  it("does not warn when the same value is injected or required as a label", () => {
    expect(warningsFor(["{namespace}-*"], '{ inject: { namespace: "{namespace}" } }')).toEqual([]);
    expect(warningsFor(["{namespace}-*"], '{ require: { ns: "{namespace}" } }')).toEqual([]);
    expect(warningsFor(["{namespace}-*"], '{ inject: { sa: "{serviceAccount}" } }')).toHaveLength(1);
  });

  it("a wildcard before the placeholder really lets prod match b-prod's jobs, and the separator does not", () => {
    expect(compilePattern("*-{namespace}")("a-b-prod", vars({ namespace: "prod" }))).toBe(true);
    expect(compilePattern("*_{namespace}")("a_b-prod", vars({ namespace: "prod" }))).toBe(false);
  });

  it("the recommended separator really keeps payments out of payments-prod's jobs", () => {
    const match = compilePattern("{namespace}_*");
    expect(match("payments_x", vars({ namespace: "payments" }))).toBe(true);
    expect(match("payments-prod_x", vars({ namespace: "payments" }))).toBe(false);
    expect(compilePattern("{namespace}-*")("payments-prod-x", vars({ namespace: "payments" }))).toBe(true);
  });
});
