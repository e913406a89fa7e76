import { describe, expect, it } from "vitest";
import { ANONYMOUS, type Identity } from "../../src/auth/identity.js";
import { hashToken, parseConfig } from "../../src/config/load.js";
import { createAuthorizer } from "../../src/policy/decide.js";
import { compileGlob } from "../../src/policy/glob.js";
import { classify } from "../../src/pushgateway/classify.js";
import { problemOf } from "../support/problems.js";

const IDENTITIES = [
  "team-a-ci",
  "team-a-ops",
  "team-b-ci",
  "admin",
  "reader",
  "shared-ci",
  "globber",
  "nobody",
];

function configWith(teams: string[], extra = "") {
  return parseConfig(
    [
      "upstream: { url: http://127.0.0.1:9191 }",
      "identities:",
      "  static:",
      ...IDENTITIES.map(
        (name) => `    - { name: ${name}, sha256: "${hashToken(`token-of-${name}`).toString("hex")}" }`,
      ),
      "teams:",
      ...teams.map((team) => `  - ${team}`),
      extra,
    ].join("\n"),
    "policy.yaml",
    {},
  );
}

const TEAMS = [
  '{ name: team-a, members: [team-a-ci, shared-ci], jobs: ["team-a-*"], actions: [push] }',
  '{ name: team-a-ops, members: [team-a-ops], jobs: ["team-a-*"], actions: [push, delete] }',
  '{ name: team-b, members: [team-b-ci], jobs: ["team-b-*"], actions: [push, delete] }',
  '{ name: team-x, members: [shared-ci], jobs: ["team-x-*"], actions: [delete] }',
  '{ name: admins, members: [admin], jobs: ["*"], actions: [push, delete, wipe, read] }',
  "{ name: readers, members: [reader], actions: [read] }",
  '{ name: globs, members: [globber], jobs: ["job-?", "a.b", "x+y", "(p)|q", "[c]", "^d$", "back\\\\slash"], actions: [push] }',
];

const authorize = createAuthorizer(configWith(TEAMS));
const authorizeWithAnonymousRead = createAuthorizer(configWith(TEAMS, "anonymous: { actions: [read] }"));

const who = (name: string): Identity => ({ name, via: "static-token", groups: [], claims: {} });
const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64url");

describe("createAuthorizer: allowed", () => {
  it.each([
    ["team member pushes (PUT) its own job", "team-a-ci", "PUT", "/metrics/job/team-a-nightly", "team-a"],
    ["team member pushes (POST) its own job", "team-a-ci", "POST", "/metrics/job/team-a-nightly", "team-a"],
    ["with grouping labels", "team-a-ci", "PUT", "/metrics/job/team-a-1/instance/host-1", "team-a"],
    ["with a base64 job", "team-a-ci", "PUT", `/metrics/job@base64/${b64("team-a-x/y")}`, "team-a"],
    ["delete with the delete action", "team-a-ops", "DELETE", "/metrics/job/team-a-nightly", "team-a-ops"],
    ["other team pushes its own job", "team-b-ci", "PUT", "/metrics/job/team-b-1", "team-b"],
    ["wipe with the wipe action", "admin", "PUT", "/api/v1/admin/wipe", "admins"],
    ["read with the read action", "reader", "GET", "/metrics", "readers"],
    ["read of the API", "reader", "GET", "/api/v1/metrics", "readers"],
    ["read of the status page", "reader", "HEAD", "/api/v1/status", "readers"],
    ["`*` matches any job", "admin", "DELETE", "/metrics/job/anything-at-all", "admins"],
    ["member of two teams: push from the first", "shared-ci", "PUT", "/metrics/job/team-a-1", "team-a"],
    ["member of two teams: delete from the second", "shared-ci", "DELETE", "/metrics/job/team-x-1", "team-x"],
  ])("%s", (_what, name, method, path, team) => {
    const decision = authorize(who(name), classify(method, path));
    expect(decision.team).toBe(team);
    expect(decision.rule).toContain(team);
  });

  it.each([
    ["an anonymous caller", ANONYMOUS],
    ["an identity in no team", who("nobody")],
    ["an identity without read", who("team-a-ci")],
  ])("lets %s reach the probes", (_who, identity) => {
    for (const path of ["/-/healthy", "/-/ready"]) {
      for (const method of ["GET", "HEAD"]) {
        expect(authorize(identity, classify(method, path)).team).toBeUndefined();
      }
    }
  });
});

describe("createAuthorizer: denied unless a rule allows", () => {
  it.each([
    ["another team's job", "team-a-ci", "PUT", "/metrics/job/team-b-1", "push", "team-b-1"],
    ["another team's job by POST", "team-b-ci", "POST", "/metrics/job/team-a-1", "push", "team-a-1"],
    [
      "delete without the delete action",
      "team-a-ci",
      "DELETE",
      "/metrics/job/team-a-1",
      "delete",
      "team-a-1",
    ],
    ["delete of another team's job", "team-b-ci", "DELETE", "/metrics/job/team-a-1", "delete", "team-a-1"],
    [
      "a job label among the others does not count",
      "team-a-ci",
      "PUT",
      "/metrics/job/team-b-1/job/team-a-1",
      "push",
      "team-b-1",
    ],
    [
      "a base64 job of another team",
      "team-a-ci",
      "PUT",
      `/metrics/job@base64/${b64("team-b-1")}`,
      "push",
      "team-b-1",
    ],
    [
      "a %2F in the job does not hide the real job",
      "team-a-ci",
      "PUT",
      "/metrics/job/team-b-1%2Finstance/team-a-1",
      "push",
      "team-b-1",
    ],
    ["job names are case-sensitive", "team-a-ci", "PUT", "/metrics/job/TEAM-A-1", "push", "TEAM-A-1"],
    [
      "two teams' grants do not combine",
      "shared-ci",
      "DELETE",
      "/metrics/job/team-a-1",
      "delete",
      "team-a-1",
    ],
    [
      "two teams' grants do not combine (other way)",
      "shared-ci",
      "PUT",
      "/metrics/job/team-x-1",
      "push",
      "team-x-1",
    ],
    ["an identity in no team", "nobody", "PUT", "/metrics/job/team-a-1", "push", "team-a-1"],
    ["read cannot push", "reader", "PUT", "/metrics/job/team-a-1", "push", "team-a-1"],
  ])("%s → ERR_ACL_DENIED with action and job", (_what, name, method, path, action, job) => {
    const problem = problemOf(() => authorize(who(name), classify(method, path)));
    expect(problem.code).toBe("ERR_ACL_DENIED");
    expect(problem.status).toBe(403);
    expect(problem.details).toEqual({ action, job });
    expect(problem.headers["www-authenticate"]).toBeUndefined();
  });

  it.each([
    ["wipe without the wipe action", "team-a-ops", "PUT", "/api/v1/admin/wipe", "wipe"],
    ["wipe by a reader", "reader", "PUT", "/api/v1/admin/wipe", "wipe"],
    ["read without the read action", "team-a-ci", "GET", "/metrics", "read"],
    ["read of the UI without the read action", "team-b-ci", "GET", "/", "read"],
    ["read by an identity in no team", "nobody", "GET", "/api/v1/metrics", "read"],
  ])("%s → ERR_ACL_DENIED with the action", (_what, name, method, path, action) => {
    const problem = problemOf(() => authorize(who(name), classify(method, path)));
    expect(problem.code).toBe("ERR_ACL_DENIED");
    expect(problem.details).toEqual({ action });
  });

  it.each([
    ["push", "PUT", "/metrics/job/team-a-1"],
    ["delete", "DELETE", "/metrics/job/team-a-1"],
    ["wipe", "PUT", "/api/v1/admin/wipe"],
    ["read", "GET", "/metrics"],
  ])(
    "asks an anonymous caller to authenticate for %s (ERR_AUTH_MISSING, 401, challenge)",
    (action, method, path) => {
      const problem = problemOf(() => authorize(ANONYMOUS, classify(method, path)));
      expect(problem.code).toBe("ERR_AUTH_MISSING");
      expect(problem.status).toBe(401);
      expect(problem.headers["www-authenticate"]).toMatch(/Bearer realm="pushguard"/);
      expect(problem.headers["www-authenticate"]).toMatch(/Basic realm="pushguard"/);
      expect(problem.details).toEqual({ action });
    },
  );

  it("does not treat a static identity named like a team as a member", () => {
    expect(problemOf(() => authorize(who("team-a"), classify("PUT", "/metrics/job/team-a-1"))).code).toBe(
      "ERR_ACL_DENIED",
    );
  });
});

describe("anonymous.actions: [read]", () => {
  it.each(["/metrics", "/api/v1/metrics", "/api/v1/status", "/"])(
    "lets an anonymous caller read %s",
    (path) => {
      const decision = authorizeWithAnonymousRead(ANONYMOUS, classify("GET", path));
      expect(decision.team).toBeUndefined();
      expect(decision.rule).toContain("anonymous");
    },
  );

  it.each([
    ["PUT", "/metrics/job/team-a-1"],
    ["POST", "/metrics/job/team-a-1"],
    ["DELETE", "/metrics/job/team-a-1"],
    ["PUT", "/api/v1/admin/wipe"],
  ])("still refuses an anonymous %s %s with ERR_AUTH_MISSING", (method, path) => {
    expect(problemOf(() => authorizeWithAnonymousRead(ANONYMOUS, classify(method, path))).code).toBe(
      "ERR_AUTH_MISSING",
    );
  });

  it.each(["team-a-ci", "nobody"])("lets the authenticated identity %s read too", (name) => {
    expect(authorizeWithAnonymousRead(who(name), classify("GET", "/metrics")).team).toBeUndefined();
  });

  it("prefers the team's rule when an identity has read itself", () => {
    expect(authorizeWithAnonymousRead(who("reader"), classify("GET", "/metrics")).team).toBe("readers");
  });

  it("grants an authenticated identity nothing beyond read", () => {
    expect(
      problemOf(() => authorizeWithAnonymousRead(who("nobody"), classify("PUT", "/metrics/job/x"))).code,
    ).toBe("ERR_ACL_DENIED");
  });
});

describe("job globs in the authorizer", () => {
  it.each([
    ["team-a-", true],
    ["team-a-1", true],
    ["team-ab", false],
    ["xteam-a-1", false],
    ["team-a", false],
    ["team-b-team-a-1", false],
  ])("team-a-* against %s → %s", (job, allowed) => {
    const run = () => authorize(who("team-a-ci"), classify("PUT", `/metrics/job/${job}`));
    if (allowed) expect(run().team).toBe("team-a");
    else expect(problemOf(run).code).toBe("ERR_ACL_DENIED");
  });

  it.each([
    ["job-1", true],
    ["job-x", true],
    ["job-", false],
    ["job-12", false],
    ["a.b", true],
    ["axb", false],
    ["x+y", true],
    ["xxy", false],
    ["(p)|q", true],
    ["p", false],
    ["q", false],
    ["[c]", true],
    ["c", false],
    ["^d$", true],
    ["d", false],
    ["back\\slash", true],
  ])("literal metacharacters and `?`: %s → %s", (job, allowed) => {
    const run = () => authorize(who("globber"), classify("PUT", `/metrics/job@base64/${b64(job)}`));
    if (allowed) expect(run().team).toBe("globs");
    else expect(problemOf(run).code).toBe("ERR_ACL_DENIED");
  });
});

describe("compileGlob", () => {
  it.each([
    // pattern, value, matches
    ["team-a-*", "team-a-", true],
    ["team-a-*", "team-a-nightly", true],
    ["team-a-*", "team-a-x/y", true],
    ["team-a-*", "team-a-\nx", true],
    ["team-a-*", "team-ab", false],
    ["team-a-*", "xteam-a-1", false],
    ["team-a-*", "TEAM-A-1", false],
    ["*", "", true],
    ["*", "anything", true],
    ["*-prod", "api-prod", true],
    ["*-prod", "api-prod-2", false],
    ["a*b*c", "abc", true],
    ["a*b*c", "aXXbYYc", true],
    ["a*b*c", "acb", false],
    ["job-?", "job-1", true],
    ["job-?", "job-", false],
    ["job-?", "job-12", false],
    ["job-?", "job-é", true],
    ["job-?", "job-😀", true],
    ["??", "ab", true],
    ["??", "a", false],
    ["a.b", "a.b", true],
    ["a.b", "axb", false],
    ["a.b*", "axb1", false],
    ["a.b*", "a.b1", true],
    ["x+*", "xx", false],
    ["x+*", "x+", true],
    ["(a|b)*", "a", false],
    ["(a|b)*", "(a|b)1", true],
    ["[ab]?", "a1", false],
    ["[ab]?", "[ab]1", true],
    ["^a$*", "a", false],
    ["^a$*", "^a$", true],
    ["{1,2}?", "{1,2}x", true],
    ["\\d*", "1", false],
    ["\\d*", "\\d1", true],
    ["plain", "plain", true],
    ["plain", "plainer", false],
    ["plain", "Plain", false],
  ])("%j against %j → %s", (pattern, value, matches) => {
    expect(compileGlob(pattern)(value)).toBe(matches);
  });

  it("compiles every printable ASCII character as a literal, except * and ?", () => {
    for (let code = 0x20; code < 0x7f; code++) {
      const char = String.fromCharCode(code);
      if (char === "*" || char === "?") continue;
      const match = compileGlob(`${char}*`);
      expect(match(`${char}tail`), char).toBe(true);
      expect(match(`Z${char}`), char).toBe(char === "Z");
    }
  });
});
