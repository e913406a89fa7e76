import { request } from "node:http";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProblemError } from "../../src/errors.js";
import { classify, type WriteOperation } from "../../src/pushgateway/classify.js";
import { formatGroupingKey, type GroupingKey } from "../../src/pushgateway/grouping-key.js";
import { type Pushgateway, startPushgateway } from "../support/pushgateway.js";

/**
 * Agreement between pushguard's grouping-key parser and the real Pushgateway (1.5.1 from Debian).
 * Every raw path is PUT straight to the pushgateway with `node:http` (fetch would normalize the
 * path), and the group it stored is compared with what `classify` parsed. pushguard may be
 * stricter than the pushgateway (refuse what it accepts), never looser (accept what it refuses, or
 * parse a different key): the key pushguard authorizes must be the key the pushgateway writes.
 */

type Expectation =
  /** Both accept, and the pushgateway stores exactly the group pushguard parsed. */
  | "accepted"
  /** Both refuse (pushgateway: 4xx, or a 3xx redirect to a different path — see below). */
  | "rejected"
  /** Deliberate: the pushgateway accepts, pushguard refuses. `why` says why. */
  | "stricter";

interface Case {
  readonly path: string;
  readonly expect: Expectation;
  /** For "accepted": the key both sides must agree on, spelled out so the test cannot drift. */
  readonly key?: GroupingKey;
  /** For "rejected" cases the pushgateway answers with a redirect: the status it sends. */
  readonly redirect?: 301 | 307;
  readonly why?: string;
}

const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64url");
const longValue = "v".repeat(6000);
const longUnicode = "ü/中😀".repeat(500);

/*
 * About 3xx: pushgateway 1.5.1 serves through Go's http.ServeMux, which cleans the *decoded* path
 * (`//`, `.` and `..` segments, also when written %2F or %2e) and answers 301 to the cleaned path;
 * httprouter answers 307 for `/metrics/job/` (trailing-slash redirect to a route that does not
 * exist for PUT). The pushgateway writes nothing in either case, and the redirect target is a
 * *different* grouping key (`/metrics/job/a/x/..` → `/metrics/job/a`), so pushguard refuses these
 * paths outright instead of guessing: a client must not get a key authorized that differs from
 * the one it spelled. Every 3xx case below is therefore "rejected" on both sides.
 */
const corpus: Case[] = [
  // Plain and base64 jobs.
  { path: "/metrics/job/nightly", expect: "accepted", key: { job: "nightly", labels: {} } },
  { path: "/metrics/job/nightly/", expect: "accepted", key: { job: "nightly", labels: {} } },
  { path: "/metrics/job/a/instance/i-1", expect: "accepted", key: { job: "a", labels: { instance: "i-1" } } },
  { path: "/metrics/job@base64/YQ", expect: "accepted", key: { job: "a", labels: {} } },
  { path: "/metrics/job@base64/YQ==", expect: "accepted", key: { job: "a", labels: {} } },
  { path: "/metrics/job@base64/YQ===", expect: "accepted", key: { job: "a", labels: {} } },
  { path: "/metrics/job@base64/YQ%3D%3D", expect: "accepted", key: { job: "a", labels: {} } },
  {
    path: `/metrics/job@base64/${b64("team-a-x")}`,
    expect: "accepted",
    key: { job: "team-a-x", labels: {} },
  },
  {
    path: `/metrics/job@base64/${b64("a/b")}/x/1`,
    expect: "accepted",
    key: { job: "a/b", labels: { x: "1" } },
  },
  { path: "/metrics/job@base64/=", expect: "rejected", why: "`=` is the empty job" },
  { path: "/metrics/job@base64/", expect: "rejected", why: "404 upstream" },
  { path: "/metrics/job/", expect: "rejected", redirect: 307 },
  { path: "/metrics/job", expect: "rejected", why: "404 upstream" },
  // Label values in base64, with and without padding, `=`, `/` inside.
  {
    path: `/metrics/job/a/path@base64/${b64("/var/tmp")}`,
    expect: "accepted",
    key: { job: "a", labels: { path: "/var/tmp" } },
  },
  { path: "/metrics/job/a/x@base64/=", expect: "accepted", key: { job: "a", labels: { x: "" } } },
  { path: "/metrics/job/a/x@base64/==", expect: "accepted", key: { job: "a", labels: { x: "" } } },
  { path: "/metrics/job/a/x@base64/%3D", expect: "accepted", key: { job: "a", labels: { x: "" } } },
  { path: "/metrics/job/a/x@base64/YWI=", expect: "accepted", key: { job: "a", labels: { x: "ab" } } },
  { path: "/metrics/job/a/x@base64/YWI", expect: "accepted", key: { job: "a", labels: { x: "ab" } } },
  { path: "/metrics/job/a/x%40base64/YQ", expect: "accepted", key: { job: "a", labels: { x: "a" } } },
  { path: "/metrics/job/a/x@base64/Li4", expect: "accepted", key: { job: "a", labels: { x: ".." } } },
  { path: "/metrics/job/a/x/=", expect: "accepted", key: { job: "a", labels: { x: "=" } } },
  { path: "/metrics/job/a/x/", expect: "accepted", key: { job: "a", labels: { x: "" } } },
  { path: "/metrics/job/a/x@base64/Y", expect: "rejected", why: "length 1 mod 4" },
  { path: "/metrics/job/a/x@base64/YQ=x", expect: "rejected", why: "padding inside" },
  { path: "/metrics/job/a/x@base64/YQ+", expect: "rejected", why: "standard alphabet" },
  { path: "/metrics/job/a/x@base64/%ff", expect: "rejected" },
  // %2F is a separator: the path is decoded before it is split.
  { path: "/metrics/job/a%2Fx/y", expect: "accepted", key: { job: "a", labels: { x: "y" } } },
  { path: "/metrics/job/a/x%2fy", expect: "accepted", key: { job: "a", labels: { x: "y" } } },
  { path: "/metrics/job/a/x/y%2F", expect: "rejected", why: "odd number of segments" },
  {
    path: `/metrics/job/team-a-x%2Fjob%2Fteam-b-y`,
    expect: "accepted",
    key: { job: "team-a-x", labels: {} },
  },
  // A job label among the others is ignored, the last duplicate wins.
  { path: "/metrics/job/team-b-x/job/team-a-x", expect: "accepted", key: { job: "team-b-x", labels: {} } },
  {
    path: `/metrics/job/team-b-x/job@base64/${b64("team-a-x")}/i/1`,
    expect: "accepted",
    key: { job: "team-b-x", labels: { i: "1" } },
  },
  { path: "/metrics/job/a/job/", expect: "accepted", key: { job: "a", labels: {} } },
  { path: "/metrics/job/a/x/1/x/2", expect: "accepted", key: { job: "a", labels: { x: "2" } } },
  {
    path: `/metrics/job/a/x/1/x@base64/${b64("2/2")}`,
    expect: "accepted",
    key: { job: "a", labels: { x: "2/2" } },
  },
  {
    path: "/metrics/job/a/zz/1/aa/2/_/3",
    expect: "accepted",
    key: { job: "a", labels: { _: "3", aa: "2", zz: "1" } },
  },
  // Label names.
  { path: "/metrics/job/a/__x/y", expect: "rejected" },
  { path: "/metrics/job/a/__name__/y", expect: "rejected" },
  { path: "/metrics/job/a/1x/y", expect: "rejected" },
  { path: "/metrics/job/a/x-y/z", expect: "rejected" },
  { path: "/metrics/job/a/@base64/YQ", expect: "rejected" },
  { path: "/metrics/job/a/x", expect: "rejected", why: "name without value" },
  { path: "/metrics/job/a/x/y/", expect: "rejected", why: "trailing slash makes the count odd" },
  // Percent-encoding, unicode, special characters.
  { path: "/metrics/job/%C3%A9/x/%E4%B8%AD", expect: "accepted", key: { job: "é", labels: { x: "中" } } },
  { path: "/metrics/job/a/x/%F0%9F%98%80", expect: "accepted", key: { job: "a", labels: { x: "😀" } } },
  { path: "/metrics/job/a/x/a+b", expect: "accepted", key: { job: "a", labels: { x: "a+b" } } },
  { path: "/metrics/job/a/x/a%20b", expect: "accepted", key: { job: "a", labels: { x: "a b" } } },
  { path: "/metrics/job/a/x/%25", expect: "accepted", key: { job: "a", labels: { x: "%" } } },
  { path: "/metrics/job/a/x/%2541", expect: "accepted", key: { job: "a", labels: { x: "%41" } } },
  { path: "/metrics/job/a/x/%7e%21", expect: "accepted", key: { job: "a", labels: { x: "~!" } } },
  { path: "/metrics/job/a/x/%00", expect: "accepted", key: { job: "a", labels: { x: "\0" } } },
  { path: "/metrics/job/a/x/l1%0Al2", expect: "accepted", key: { job: "a", labels: { x: "l1\nl2" } } },
  { path: "/metrics/job/a/x/...", expect: "accepted", key: { job: "a", labels: { x: "..." } } },
  { path: "/metrics/job/a/x/.hidden", expect: "accepted", key: { job: "a", labels: { x: ".hidden" } } },
  {
    path: `/metrics/job/a/long/${longValue}`,
    expect: "accepted",
    key: { job: "a", labels: { long: longValue } },
  },
  {
    path: `/metrics/job/a/long@base64/${b64(longUnicode)}`,
    expect: "accepted",
    key: { job: "a", labels: { long: longUnicode } },
  },
  { path: "/metrics/job/a/x/%zz", expect: "rejected", why: "Go's URL parser: 400" },
  { path: "/metrics/job/a/x/%", expect: "rejected", why: "Go's URL parser: 400" },
  // Invalid UTF-8: the pushgateway answers 400 from its consistency check, but (1.5.1) keeps a
  // failed group with that label, and every later push then fails until it is deleted. Refusing
  // it before it reaches the pushgateway is essential, not just tidy.
  { path: "/metrics/job/a/x/%ff", expect: "rejected" },
  { path: "/metrics/job/%ff", expect: "rejected" },
  { path: "/metrics/job/a/x@base64/_w", expect: "rejected", why: "decodes to 0xff" },
  // Paths Go's ServeMux cleans and redirects (301) instead of handling.
  { path: "/metrics/job/a//", expect: "rejected", redirect: 301 },
  { path: "/metrics/job/a/x//y/z", expect: "rejected", redirect: 301 },
  { path: "/metrics/job/a%2F%2Fx/y", expect: "rejected", redirect: 301 },
  { path: "/metrics/job//x/y", expect: "rejected", redirect: 301 },
  { path: "/metrics/job/a/x/..", expect: "rejected", redirect: 301 },
  { path: "/metrics/job/a/x/%2e%2e", expect: "rejected", redirect: 301 },
  { path: "/metrics/job/a/x/%2E", expect: "rejected", redirect: 301 },
  { path: "/metrics/job/a/x/./", expect: "rejected", redirect: 301 },
  { path: "/metrics/job/..", expect: "rejected", redirect: 301 },
  { path: "/metrics/job/%2e", expect: "rejected", redirect: 301 },
  { path: "/metrics/job/a/../b/x/y", expect: "rejected", redirect: 301 },
  // Deliberate divergences: pushgateway 1.5.1 accepts these, pushguard refuses them.
  {
    path: "/metrics/job/a/x@base64/YR",
    expect: "stricter",
    why: "non-zero trailing bits: Go's non-strict decoder reads `YR` as `a` too; only canonical base64 is accepted",
  },
  {
    path: "/metrics/job/a/x@base64/YQ%0A",
    expect: "stricter",
    why: "Go's base64 decoder skips CR/LF inside the value; pushguard does not",
  },
  {
    path: "/metrics/job@base64/Y%0DQ",
    expect: "stricter",
    why: "Go's base64 decoder skips CR/LF inside the job too",
  },
  {
    path: "/metrics/job/a/job/%ff",
    expect: "stricter",
    why: "invalid UTF-8 in a `job` label the pushgateway then ignores: pushguard refuses any invalid UTF-8 in the path",
  },
  {
    path: "/metrics/job/a/job@base64/_w",
    expect: "stricter",
    why: "same, through base64",
  },
  {
    path: "/metrics/job/\u00c3\u00a9",
    expect: "stricter",
    why: "raw (not percent-encoded) UTF-8 bytes in the request line: Go takes them, pushguard requires %-encoding",
  },
  {
    path: "/metrics/jo%62/a",
    expect: "stricter",
    why: "the route itself percent-encoded: the pushgateway decodes before routing, pushguard routes on the raw path",
  },
  {
    path: "/metrics/job%40base64/YQ",
    expect: "stricter",
    why: "the @base64 route suffix percent-encoded (same reason)",
  },
];

interface StoredGroup {
  readonly labels: Record<string, string>;
  readonly last_push_successful: boolean;
}

interface RawResponse {
  readonly status: number;
  readonly location: string | undefined;
  readonly body: string;
}

/** PUT with the path sent byte for byte as given (latin1), the way a raw client would. */
function rawPut(port: number, path: string): Promise<RawResponse> {
  const body = "some_metric 1\n";
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        method: "PUT",
        path,
        headers: { "content-type": "text/plain; version=0.0.4", "content-length": Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            location: res.headers.location,
            body: Buffer.concat(chunks).toString("utf8"),
          }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** What pushguard makes of the path: the operation, or the refusal's code. */
function ours(path: string): WriteOperation | ProblemError {
  try {
    const operation = classify("PUT", path);
    if (operation.action !== "push") throw new Error(`not a push: ${operation.action}`);
    return operation;
  } catch (error) {
    if (error instanceof ProblemError) return error;
    throw error;
  }
}

const asLabels = (key: GroupingKey): Record<string, string> => ({ ...key.labels, job: key.job });
const is2xx = (status: number) => status >= 200 && status < 300;

describe("grouping keys agree with the real pushgateway", () => {
  let pg: Pushgateway;

  async function stored(): Promise<StoredGroup[]> {
    const response = await fetch(`${pg.url}/api/v1/metrics`);
    expect(response.status).toBe(200);
    return ((await response.json()) as { data: StoredGroup[] }).data;
  }

  /** Wipes and waits: the wipe's deletions are queued, a rejected push would not wait for them. */
  async function wipe(): Promise<void> {
    const response = await fetch(`${pg.url}/api/v1/admin/wipe`, { method: "PUT" });
    await response.arrayBuffer();
    expect(is2xx(response.status)).toBe(true);
    for (let attempt = 0; attempt < 200; attempt++) {
      if ((await pg.groups()).length === 0) return;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    throw new Error("the pushgateway still has groups after a wipe");
  }

  /** PUTs the raw path to a wiped pushgateway; the groups it then holds. */
  async function pushRaw(path: string): Promise<{ response: RawResponse; groups: StoredGroup[] }> {
    await wipe();
    const response = await rawPut(pg.port, path);
    return { response, groups: await stored() };
  }

  beforeAll(async () => {
    pg = await startPushgateway();
  });

  afterAll(async () => {
    await pg?.stop();
  });

  it("has a corpus of tricky paths with explicit expectations", () => {
    expect(corpus.length).toBeGreaterThanOrEqual(40);
    expect(new Set(corpus.map((c) => c.path)).size).toBe(corpus.length);
    for (const c of corpus) {
      if (c.expect === "accepted") expect(c.key, c.path).toBeDefined();
      if (c.expect === "stricter") expect(c.why, c.path).toBeTruthy();
    }
  });

  const named = corpus.map(
    (c) => [`${c.expect}: ${c.path.length > 80 ? `${c.path.slice(0, 77)}...` : c.path}`, c] as const,
  );
  it.each(named)("%s", async (_name, c) => {
    const parsed = ours(c.path);
    const { response, groups } = await pushRaw(c.path);
    const upstream = `${response.status} ${response.location ?? ""} ${response.body.slice(0, 200)}`;

    if (c.expect === "accepted") {
      expect(parsed, "pushguard must accept").not.toBeInstanceOf(ProblemError);
      const operation = parsed as WriteOperation;
      expect(operation.groupingKey).toEqual(c.key);
      expect(is2xx(response.status), upstream).toBe(true);
      expect(groups.map((g) => g.labels)).toEqual([asLabels(operation.groupingKey)]);
      expect(groups[0]?.last_push_successful).toBe(true);

      // The canonical path pushguard forwards creates the identical group.
      expect(operation.upstreamPath).toBe(formatGroupingKey(operation.groupingKey));
      const canonical = await pushRaw(operation.upstreamPath);
      expect(is2xx(canonical.response.status), canonical.response.body).toBe(true);
      expect(canonical.groups.map((g) => g.labels)).toEqual([asLabels(operation.groupingKey)]);
      return;
    }

    expect(parsed, "pushguard must refuse").toBeInstanceOf(ProblemError);
    expect(["ERR_BAD_GROUPING_KEY", "ERR_ROUTE_NOT_FOUND"]).toContain((parsed as ProblemError).code);

    if (c.expect === "rejected") {
      expect(is2xx(response.status), upstream).toBe(false);
      if (c.redirect !== undefined) expect(response.status, upstream).toBe(c.redirect);
      else expect(response.status >= 400 && response.status < 500, upstream).toBe(true);
      expect(groups.filter((g) => g.last_push_successful)).toEqual([]);
      return;
    }

    // "stricter": the pushgateway really does accept it, or the entry would be mislabelled.
    expect(is2xx(response.status), upstream).toBe(true);
    expect(groups.filter((g) => g.last_push_successful)).toHaveLength(1);
  });

  it("never accepts a generated path the pushgateway would store differently", async () => {
    // Benign fragments are drawn more often, or too few paths would parse to exercise the upstream.
    const fragment = fc.oneof(
      {
        weight: 12,
        arbitrary: fc.constantFrom(
          "team-a-",
          "team-b-",
          "x",
          "job",
          b64("team-a-x"),
          "=",
          "%25",
          "%40",
          "+",
          "%C3%A9",
        ),
      },
      { weight: 1, arbitrary: fc.constantFrom("@base64", "/", "%2F", "%2f", "..", "%2e", "%ff") },
    );
    const mix = fc.array(fragment, { minLength: 1, maxLength: 3 }).map((parts) => parts.join(""));
    const name = fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom("x", "instance", "job", "x@base64", "job@base64") },
      { weight: 1, arbitrary: mix },
    );
    const path = fc
      .tuple(
        fc.constantFrom("/metrics/job/", "/metrics/job/", "/metrics/job/", "/metrics/job@base64/"),
        mix,
        fc.array(fc.tuple(name, mix), { maxLength: 2 }),
        fc.constantFrom("", "", "", "/"),
      )
      .map(([prefix, job, pairs, end]) => prefix + job + pairs.map(([n, v]) => `/${n}/${v}`).join("") + end);
    let accepted = 0;
    let withLabels = 0;
    await fc.assert(
      fc.asyncProperty(path, async (p) => {
        const parsed = ours(p);
        if (parsed instanceof ProblemError) return; // stricter is allowed; looser is not
        accepted++;
        if (Object.keys(parsed.groupingKey.labels).length > 0) withLabels++;
        const { response, groups } = await pushRaw(p);
        expect(is2xx(response.status), `${p}: ${response.status} ${response.body}`).toBe(true);
        expect(groups.map((g) => g.labels)).toEqual([asLabels(parsed.groupingKey)]);
      }),
      { numRuns: 200 },
    );
    // Not vacuous: a fair share of the generated paths were accepted and compared upstream.
    expect(accepted).toBeGreaterThan(30);
    expect(withLabels).toBeGreaterThan(4);
  });
});
