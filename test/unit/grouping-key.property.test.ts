import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Identity } from "../../src/auth/identity.js";
import { hashToken, parseConfig } from "../../src/config/load.js";
import { ProblemError } from "../../src/errors.js";
import { createAuthorizer, type Decision } from "../../src/policy/decide.js";
import { classify } from "../../src/pushgateway/classify.js";
import { formatGroupingKey, type GroupingKey, parseGroupingKey } from "../../src/pushgateway/grouping-key.js";

const PREFIX = "/metrics/job/";
const PREFIX_BASE64 = "/metrics/job@base64/";

/** Splits a canonical upstream path into parseGroupingKey's arguments. */
function parsePath(path: string): GroupingKey {
  if (path.startsWith(PREFIX_BASE64)) return parseGroupingKey(true, path.slice(PREFIX_BASE64.length));
  if (path.startsWith(PREFIX)) return parseGroupingKey(false, path.slice(PREFIX.length));
  throw new Error(`not a push path: ${path}`);
}

/**
 * The real authorizer, from a config where team-a owns `team-a-*`: once plain, once injecting
 * its team label (so the upstream path is rebuilt from a grouping key the policy produced).
 */
function teamAAuthorizer(groupingKey: string) {
  const config = parseConfig(
    `
upstream: { url: "http://127.0.0.1:9" }
identities:
  static:
    - { name: team-a-ci, sha256: "${hashToken("team-a-token").toString("hex")}" }
    - { name: team-b-ci, sha256: "${hashToken("team-b-token").toString("hex")}" }
teams:
  - { name: team-a, members: [team-a-ci], jobs: ["team-a-*"], actions: [push, delete]${groupingKey} }
  - { name: team-b, members: [team-b-ci], jobs: ["team-b-*"], actions: [push, delete] }
`,
    "property.yaml",
    {},
  );
  return createAuthorizer(config);
}
const TEAM_A_CI: Identity = { name: "team-a-ci", via: "static-token", groups: [], claims: {} };

/** Characters that make paths interesting, mixed with arbitrary code points. */
const tricky = fc.constantFrom(
  "/",
  "%",
  "%2F",
  "=",
  "@base64",
  ".",
  "..",
  " ",
  "+",
  "?",
  "#",
  "\n",
  "\0",
  "é",
  "中",
  "😀",
);
const value = fc.oneof(
  fc.constantFrom("", ".", "..", "/", "%", "=", "job", "a/b", "%2F", "..."),
  fc.string({
    unit: fc.oneof(tricky, fc.string({ unit: "binary", minLength: 1, maxLength: 1 })),
    maxLength: 12,
  }),
  fc.string({ unit: "binary", maxLength: 16 }),
);
const labelName = fc
  .stringMatching(/^[a-zA-Z_][a-zA-Z0-9_]{0,8}$/)
  .filter((name) => !name.startsWith("__") && name !== "job");
const groupingKey: fc.Arbitrary<GroupingKey> = fc.record({
  job: value.filter((job) => job !== ""),
  labels: fc.dictionary(labelName, value, { maxKeys: 4 }),
});

describe("grouping key properties", () => {
  it("round-trips: parse(format(key)) equals key", () => {
    fc.assert(
      fc.property(groupingKey, (key) => {
        const path = formatGroupingKey(key);
        // The canonical path needs no percent-encoding at all.
        expect(path).toMatch(/^[A-Za-z0-9_:.~\-/@=]+$/);
        const parsed = parsePath(path);
        expect(parsed).toEqual(key);
        expect(Object.keys(parsed.labels)).toEqual(Object.keys(key.labels).sort());
      }),
      { numRuns: 500 },
    );
  });

  it("no encoding of another team's job is ever authorized as one's own", () => {
    const teamA = Buffer.from("team-a-x").toString("base64url");
    // Benign fragments are drawn more often than separators and dots, or almost nothing would parse.
    const fragment = fc.oneof(
      {
        weight: 6,
        arbitrary: fc.constantFrom(
          "team-a-",
          "team-b-",
          "x",
          "job",
          teamA,
          `${teamA}==`,
          "=",
          "instance",
          "%25",
          "%40",
        ),
      },
      { weight: 1, arbitrary: fc.constantFrom("/", "%2F", "%2f", "@base64") },
      { weight: 1, arbitrary: fc.constantFrom("..", ".", "%2e") },
    );
    // Shaped like job{/name/value} so that labels parse often, but every piece is a mix of fragments
    // that carry their own separators, encodings and suffixes.
    const mix = fc.array(fragment, { minLength: 1, maxLength: 3 }).map((parts) => parts.join(""));
    const name = fc.oneof(
      {
        weight: 3,
        arbitrary: fc.constantFrom("x", "job", "instance", "job@base64", "x@base64", "x%40base64"),
      },
      { weight: 1, arbitrary: mix },
    );
    const path = fc
      .tuple(
        fc.constantFrom(PREFIX, PREFIX, PREFIX, PREFIX, PREFIX_BASE64, "/metrics/job"),
        fc.oneof(
          mix,
          mix.map((rest) => `team-a-${rest}`),
        ),
        // An empty value anywhere but last makes a `//`, which is refused.
        fc.array(
          fc.tuple(name, fc.oneof({ weight: 6, arbitrary: mix }, { weight: 1, arbitrary: fc.constant("") })),
          {
            maxLength: 3,
          },
        ),
        fc.constantFrom("", "", "/"),
      )
      .map(([prefix, job, pairs, end]) => prefix + job + pairs.map(([n, v]) => `/${n}/${v}`).join("") + end);
    const authorizers = [
      { authorize: teamAAuthorizer(""), injected: {} },
      {
        authorize: teamAAuthorizer(', groupingKey: { inject: { team: "{team}" } }'),
        injected: { team: "team-a" },
      },
    ];
    let withLabels = 0;
    let accepted = 0;
    let acceptedOtherTeam = 0;
    fc.assert(
      fc.property(path, fc.constantFrom("PUT", "POST", "DELETE"), (rawPath, method) => {
        let operation: ReturnType<typeof classify>;
        try {
          operation = classify(method, rawPath);
        } catch (error) {
          expect(error).toBeInstanceOf(ProblemError);
          expect(["ERR_BAD_GROUPING_KEY", "ERR_ROUTE_NOT_FOUND"]).toContain((error as ProblemError).code);
          return;
        }
        if (operation.action !== "push" && operation.action !== "delete")
          throw new Error(`unexpected ${operation.action}`);
        accepted++;
        const key = operation.groupingKey;
        if (Object.keys(key.labels).length > 0) withLabels++;
        const ownJob = key.job.startsWith("team-a-");
        if (!ownJob) acceptedOtherTeam++;
        for (const { authorize, injected } of authorizers) {
          let decision: Decision;
          try {
            decision = authorize(TEAM_A_CI, operation);
          } catch (error) {
            expect((error as ProblemError).code).toBe("ERR_ACL_DENIED");
            expect(ownJob, `refused ${rawPath} (job ${JSON.stringify(key.job)})`).toBe(false);
            continue;
          }
          expect(ownJob, `allowed ${rawPath} (job ${JSON.stringify(key.job)})`).toBe(true);
          expect(decision.team).toBe("team-a");
          // The upstream acts on exactly the grouping key that was authorized ...
          const authorized = { job: key.job, labels: { ...key.labels, ...injected } };
          expect(decision.groupingKey).toEqual(authorized);
          expect(parsePath(decision.upstreamPath)).toEqual(authorized);
          // ... and classifying the forwarded path again authorizes the same thing.
          expect(authorize(TEAM_A_CI, classify(method, decision.upstreamPath)).upstreamPath).toBe(
            decision.upstreamPath,
          );
        }
      }),
      { numRuns: 500 },
    );
    // The property must not hold vacuously: a fair share of the generated paths parse.
    expect(accepted).toBeGreaterThan(50);
    expect(withLabels).toBeGreaterThan(5);
    expect(acceptedOtherTeam).toBeGreaterThan(10);
    expect(accepted - acceptedOtherTeam).toBeGreaterThan(10);
  });

  it("parsing never depends on how a value was spelled: plain, %-encoded or @base64", () => {
    const safeValue = fc
      .string({ unit: "binary", minLength: 1, maxLength: 12 })
      .filter((v) => !v.includes("/") && v !== "." && v !== "..");
    fc.assert(
      fc.property(safeValue, (v) => {
        const percent = encodeURIComponent(v);
        const base64 = Buffer.from(v, "utf8").toString("base64url");
        const viaPercent = parseGroupingKey(false, `j/x/${percent}`);
        const viaBase64 = parseGroupingKey(false, `j/x@base64/${base64}`);
        const jobViaBase64 = parseGroupingKey(true, `${base64}/x/${percent}`);
        expect(viaPercent).toEqual({ job: "j", labels: { x: v } });
        expect(viaBase64).toEqual(viaPercent);
        expect(jobViaBase64).toEqual({ job: v, labels: { x: v } });
      }),
      { numRuns: 300 },
    );
  });
});
