import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ProblemError } from "../../src/errors.js";
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

/** Anchored glob as ACL rules use it: `*` is any run of characters, everything else literal. */
function globMatches(glob: string, text: string): boolean {
  const pattern = glob
    .split("*")
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
    .join(".*");
  return new RegExp(`^${pattern}$`, "s").test(text);
}

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
        // What the upstream will act on is exactly what was parsed (and authorized) ...
        expect(parsePath(operation.upstreamPath)).toEqual(key);
        // ... and canonicalization is idempotent through the whole classifier.
        const again = classify(method, operation.upstreamPath);
        expect(again).toEqual(operation);
        if (!key.job.startsWith("team-a-")) {
          acceptedOtherTeam++;
          expect(globMatches("team-a-*", key.job)).toBe(false);
          expect(globMatches("team-a-*", parsePath(operation.upstreamPath).job)).toBe(false);
        } else {
          expect(globMatches("team-a-*", key.job)).toBe(true);
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
