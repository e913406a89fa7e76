import { describe, expect, it } from "vitest";
import type { ProblemError } from "../../src/errors.js";
import {
  describeGroupingKey,
  formatGroupingKey,
  type GroupingKey,
  parseGroupingKey,
} from "../../src/pushgateway/grouping-key.js";
import { problemOf } from "../support/problems.js";

const codeOf = (run: () => unknown): string => problemOf(run).code;
const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64url");

/** [description, jobBase64 route, remainder after `/metrics/job/` or `/metrics/job@base64/`, expected key] */
const accepted: Array<[string, boolean, string, GroupingKey]> = [
  ["plain job", false, "nightly", { job: "nightly", labels: {} }],
  [
    "plain job with one label",
    false,
    "nightly/instance/host-1",
    { job: "nightly", labels: { instance: "host-1" } },
  ],
  ["trailing slash after the job only", false, "nightly/", { job: "nightly", labels: {} }],
  ["job@base64 without padding", true, b64("a/b"), { job: "a/b", labels: {} }],
  ["job@base64 with padding", true, "YQ==", { job: "a", labels: {} }],
  ["job@base64 with excess padding (trimmed like Go)", true, "YQ===", { job: "a", labels: {} }],
  ["job@base64 percent-encoded padding", true, "YQ%3D%3D", { job: "a", labels: {} }],
  ["job@base64 of unicode", true, b64("jöb ✓"), { job: "jöb ✓", labels: {} }],
  [
    "label@base64 with `/` inside",
    false,
    `j/path@base64/${b64("/var/tmp/x")}`,
    { job: "j", labels: { path: "/var/tmp/x" } },
  ],
  ["label@base64 `=` alone is the empty string", false, "j/x@base64/=", { job: "j", labels: { x: "" } }],
  ["label@base64 `==` is the empty string too", false, "j/x@base64/==", { job: "j", labels: { x: "" } }],
  ["plain empty value at the end", false, "j/x/", { job: "j", labels: { x: "" } }],
  ["plain `=` is just the character", false, "j/x/=", { job: "j", labels: { x: "=" } }],
  ["%2F in the job acts as a separator", false, "a%2Fx/y", { job: "a", labels: { x: "y" } }],
  ["%2f (lower case) too", false, "a/x%2fy", { job: "a", labels: { x: "y" } }],
  [
    "%40base64 is the @base64 suffix after decoding",
    false,
    "a/x%40base64/YQ",
    { job: "a", labels: { x: "a" } },
  ],
  ["percent-encoded unicode", false, "%C3%A9/x/%E4%B8%AD", { job: "é", labels: { x: "中" } }],
  ["%25 decodes once", false, "a/x/%2541", { job: "a", labels: { x: "%41" } }],
  ["+ is not a space in a path", false, "a/x/a+b", { job: "a", labels: { x: "a+b" } }],
  ["%20 is a space", false, "a/x/a%20b", { job: "a", labels: { x: "a b" } }],
  ["three dots are not a dot segment", false, "a/x/...", { job: "a", labels: { x: "..." } }],
  ["`..` as a value needs @base64", false, `a/x@base64/${b64("..")}`, { job: "a", labels: { x: ".." } }],
  [
    "a job label among the others is ignored",
    false,
    "team-b-x/job/team-a-x",
    { job: "team-b-x", labels: {} },
  ],
  [
    "a job@base64 label among the others is ignored",
    false,
    `a/job@base64/${b64("b")}/x/1`,
    { job: "a", labels: { x: "1" } },
  ],
  ["duplicate label names: the last wins", false, "a/x/1/y/2/x/3", { job: "a", labels: { x: "3", y: "2" } }],
  [
    "duplicate label, plain then base64",
    false,
    `a/x/1/x@base64/${b64("2/2")}`,
    { job: "a", labels: { x: "2/2" } },
  ],
  ["labels come back sorted", false, "a/zz/1/aa/2/_m/3", { job: "a", labels: { _m: "3", aa: "2", zz: "1" } }],
  ["a single underscore name is fine", false, "a/_/v", { job: "a", labels: { _: "v" } }],
];

/** [description, jobBase64 route, remainder] — all must fail with ERR_BAD_GROUPING_KEY */
const rejected: Array<[string, boolean, string]> = [
  ["empty job", false, ""],
  ["empty job before labels", false, "/x/y"],
  ["empty job through %2F", false, "%2Fx/y"],
  ["job@base64 `=` is the empty job", true, "="],
  ["job@base64 empty", true, ""],
  ["odd segment count", false, "a/x"],
  ["odd segment count through a trailing slash", false, "a/x/y/"],
  ["odd segment count through %2F", false, "a/x/y%2F"],
  ["invalid label name (digit first)", false, "a/1x/y"],
  ["invalid label name (dash)", false, "a/x-y/z"],
  ["invalid label name (empty)", false, "a//y"],
  ["invalid label name (only @base64)", false, "a/@base64/YQ"],
  ["double @base64 suffix", false, "a/x@base64@base64/YQ"],
  ["__ prefixed name", false, "a/__name__/y"],
  ["__ prefixed name with @base64", false, "a/__x@base64/YQ"],
  ["__proto__", false, "a/__proto__/y"],
  ["bad base64: length 1 mod 4", false, "a/x@base64/Y"],
  ["bad base64: padding in the middle", false, "a/x@base64/YQ=x"],
  ["bad base64: standard alphabet +", false, "a/x@base64/YQ+"],
  ["bad base64: non-zero trailing bits (stricter than Go)", false, "a/x@base64/YR"],
  ["bad base64: embedded newline (stricter than Go)", false, "a/x@base64/YQ%0A"],
  ["bad base64 job", true, "Y"],
  ["bad base64 in an ignored job label", false, "a/job@base64/Y"],
  ["base64 decoding to invalid UTF-8", false, "a/x@base64/_w"],
  ["invalid percent-encoding %zz", false, "a/x/%zz"],
  ["truncated percent-encoding", false, "a/x/%4"],
  ["lone %", false, "a/x/%"],
  ["invalid UTF-8 after percent-decoding", false, "a/x/%ff"],
  ["invalid UTF-8 in an ignored job label", false, "a/job/%ff"],
  ["overlong UTF-8", false, "a/x/%C0%AF"],
  ["UTF-8 encoded surrogate", false, "a/x/%ED%A0%80"],
  ["raw latin1 bytes (raw UTF-8 of é)", false, "\u00c3\u00a9"],
  ["raw char above U+00FF next to a %-escape", false, "\u0174eam-a-x%41"],
  ["raw space", false, "a/x/a b"],
  ["raw control character", false, "a/x/a\nb"],
  ["`//` after the job", false, "a//"],
  ["`//` between pairs", false, "a/x//y/z"],
  ["`//` through %2F%2F", false, "a%2F%2Fx/y"],
  ["`..` as a value", false, "a/x/.."],
  ["`.` as a value", false, "a/x/."],
  ["`%2e%2e` as a value", false, "a/x/%2e%2e"],
  ["`.` then trailing slash", false, "a/x/./"],
  ["`..` as the job", false, ".."],
  ["`%2E` as the job", false, "%2E"],
  ["`..` as the job with the base64 route", true, ".."],
  ["`..` as a label name", false, "a/../y"],
];

describe("parseGroupingKey", () => {
  it.each(accepted)("%s", (_name, jobBase64, rest, expected) => {
    const key = parseGroupingKey(jobBase64, rest);
    expect(key).toEqual(expected);
    expect(Object.keys(key.labels)).toEqual(Object.keys(expected.labels).sort());
    expect(Object.hasOwn(key.labels, "job")).toBe(false);
  });

  it.each(rejected)("rejects: %s", (_name, jobBase64, rest) => {
    expect(codeOf(() => parseGroupingKey(jobBase64, rest))).toBe("ERR_BAD_GROUPING_KEY");
  });

  it("answers 400 for a malformed key", () => {
    try {
      parseGroupingKey(false, "");
      expect.unreachable();
    } catch (error) {
      expect((error as ProblemError).status).toBe(400);
    }
  });
});

/** [description, key, canonical upstream path] */
const formatted: Array<[string, GroupingKey, string]> = [
  ["plain job", { job: "nightly", labels: {} }, "/metrics/job/nightly"],
  [
    "safe characters stay plain",
    { job: "a-b_c.d:e~f", labels: { x: "A9" } },
    "/metrics/job/a-b_c.d:e~f/x/A9",
  ],
  ["job with `/`", { job: "a/b", labels: {} }, `/metrics/job@base64/${b64("a/b")}`],
  ["job `..`", { job: "..", labels: {} }, "/metrics/job@base64/Li4"],
  [
    "value with `/`",
    { job: "j", labels: { path: "/var/tmp" } },
    `/metrics/job/j/path@base64/${b64("/var/tmp")}`,
  ],
  ["empty value", { job: "j", labels: { x: "" } }, "/metrics/job/j/x@base64/="],
  ["`.` value", { job: "j", labels: { x: "." } }, "/metrics/job/j/x@base64/Lg"],
  ["`..` value", { job: "j", labels: { x: ".." } }, "/metrics/job/j/x@base64/Li4"],
  ["`...` is safe", { job: "j", labels: { x: "..." } }, "/metrics/job/j/x/..."],
  ["unicode value", { job: "j", labels: { x: "中" } }, "/metrics/job/j/x@base64/5Lit"],
  ["`%` value", { job: "j", labels: { x: "%41" } }, `/metrics/job/j/x@base64/${b64("%41")}`],
  [
    "space and +",
    { job: "j", labels: { x: "a b", y: "a+b" } },
    `/metrics/job/j/x@base64/${b64("a b")}/y@base64/${b64("a+b")}`,
  ],
  ["`=` value", { job: "j", labels: { x: "=" } }, "/metrics/job/j/x@base64/PQ"],
  ["labels sorted", { job: "j", labels: { zz: "1", aa: "2", _m: "3" } }, "/metrics/job/j/_m/3/aa/2/zz/1"],
];

describe("formatGroupingKey", () => {
  it.each(formatted)("%s", (_name, key, path) => {
    expect(formatGroupingKey(key)).toBe(path);
    const jobBase64 = path.startsWith("/metrics/job@base64/");
    const rest = path.slice(jobBase64 ? "/metrics/job@base64/".length : "/metrics/job/".length);
    expect(parseGroupingKey(jobBase64, rest)).toEqual(key);
  });

  it.each([
    ["empty job", { job: "", labels: {} }],
    ["a job label", { job: "a", labels: { job: "b" } }],
    ["an invalid label name", { job: "a", labels: { "x-y": "b" } }],
    ["a reserved label name", { job: "a", labels: { __name__: "b" } }],
    [
      "an own __proto__ label",
      { job: "a", labels: JSON.parse('{"__proto__":"b"}') as Record<string, string> },
    ],
  ])("refuses a key that cannot round-trip: %s", (_name, key) => {
    expect(codeOf(() => formatGroupingKey(key))).toBe("ERR_BAD_GROUPING_KEY");
  });
});

describe("describeGroupingKey", () => {
  it("quotes job first, then labels", () => {
    expect(describeGroupingKey({ job: 'a"b', labels: { instance: "i" } })).toBe('job="a\\"b",instance="i"');
  });
});
