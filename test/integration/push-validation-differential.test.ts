import { writeFileSync } from "node:fs";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Answer, answerOf, bearer, send } from "../support/http.js";
import { type Prometheus, startPrometheus } from "../support/prometheus.js";
import { type GeneratedPush, protobufPush, textPush } from "../support/push-arbitraries.js";
import {
  type CorpusPush,
  contentTypeOf,
  jobOf,
  jobsOf,
  PUSH_CORPUS,
  type PushCase,
  type PushFormat,
  pushedProtobufSeries,
  pushedSampleNames,
  STRICTER_CASES,
  VALIDATION_CODES,
} from "../support/push-corpus.js";
import {
  type Pushgateway,
  type StoredGroup,
  settle,
  snapshot,
  startPushgateway,
  storedGroups,
  wipe,
} from "../support/pushgateway.js";
import {
  ADMIN_TOKEN,
  standardConfig,
  startPushguard,
  TEAM_A_TOKEN,
  type TestPushguard,
} from "../support/pushguard.js";
import { type ScrapeCheck, type ScrapeOutcome, scrapeCheck } from "../support/scrape-check.js";

/**
 * Push validation (issue 11) against the real Pushgateway 1.5.1 and Prometheus 2.42. Every push is
 * sent straight to a Pushgateway ("direct") and through pushguard to two more: one in the default
 * mode, one with --push.disable-consistency-check (which stores what the default mode refuses).
 * Then, for each Pushgateway behind pushguard:
 *
 * - every push pushguard accepted is stored and served: `/metrics` answers 200 with the pushed
 *   families (and as many series as pushed, where the corpus knows), `/api/v1/metrics` reads well,
 *   and a scrape that started after the pushes succeeded and stored every series served;
 * - a push the direct Pushgateway refused is refused by pushguard, with problem+json and a code;
 * - a push pushguard refused never reached its Pushgateway;
 * - pushguard refuses nothing the direct Pushgateway accepts and serves well, unless the corpus
 *   marks the case `stricter` (then the refusal and its code are asserted).
 *
 * The hand-written corpus runs one case at a time; generated pushes (pinned seed) run in batches,
 * one scrape per batch, and a spare pool of Pushgateways ("oracles") tells which pushes of a
 * batch broke the direct one. Set PUSH_FACTS_FILE to write what the direct Pushgateway did with
 * each corpus case as a Markdown table; PUSH_FUZZ_SEED to draw other generated pushes.
 */

const SCRAPE_INTERVAL = "200ms";
/** Sets of direct + two guarded Pushgateways; cases and batches run on them side by side. */
const LANE_COUNT = 3;
const ORACLE_COUNT = 8;
const BATCH_SIZE = 25;
const GENERATED_PER_FORMAT = 150;
const SEED = Number(process.env.PUSH_FUZZ_SEED ?? 20_261_207);
const BACKEND_LABEL = "differential_backend";
const OWN_SERIES = new Set(["push_time_seconds", "push_failure_time_seconds"]);

interface Backend {
  readonly name: string;
  readonly gateway: Pushgateway;
  /** host:port, as Prometheus names the target. */
  readonly target: string;
  /** Started with --push.disable-consistency-check: writes are answered 202 and applied later. */
  readonly asyncWrites: boolean;
  readonly guard?: TestPushguard;
}

/** What a Pushgateway serves once the pushes are applied, and what Prometheus made of it. */
interface Observed {
  readonly metricsStatus: number;
  readonly metricsText: string;
  readonly apiStatus: number;
  readonly groups: readonly StoredGroup[];
  readonly scrape: ScrapeOutcome;
  /** Series Prometheus stored from that scrape, by job. */
  readonly stored: ReadonlyMap<string, number>;
}

/** What a set of pushes should have left, for `problemsOf`. */
interface Expectation {
  readonly jobs: readonly string[];
  /** For each family pushed, the sample names it may appear under (one must be served). */
  readonly names: readonly string[][];
  readonly series?: number;
}

const is2xx = (status: number) => status >= 200 && status < 300;
const firstLine = (text: string) => text.trim().split("\n")[0]?.slice(0, 160) ?? "";

/** One direct Pushgateway and two behind pushguard, used by one case or batch at a time. */
interface Lane {
  readonly direct: Backend;
  /** pushguard → a Pushgateway in the default mode. */
  readonly guarded: Backend;
  /** pushguard → a Pushgateway with --push.disable-consistency-check. */
  readonly guardedNoCheck: Backend;
}

const guardedOf = (lane: Lane) => [lane.guarded, lane.guardedNoCheck];
const backendsOf = (lane: Lane) => [lane.direct, lane.guarded, lane.guardedNoCheck];

let lanes: Lane[] = [];
let oracles: Backend[] = [];
let prometheus: Prometheus;
let scrapes: ScrapeCheck;
/** Facts table rows by case name. */
const facts = new Map<string, string>();

/** A pool of `T`: `use` waits for a free one and returns it after `run`. */
function pool<T>(items: () => readonly T[]) {
  const busy = new Set<T>();
  const waiting: Array<() => void> = [];
  return async function use<R>(run: (item: T) => Promise<R>): Promise<R> {
    let item = items().find((i) => !busy.has(i));
    while (item === undefined) {
      await new Promise<void>((resolve) => waiting.push(resolve));
      item = items().find((i) => !busy.has(i));
    }
    busy.add(item);
    try {
      return await run(item);
    } finally {
      busy.delete(item);
      waiting.shift()?.();
    }
  };
}

const withLane = pool(() => lanes);
/** The oracle pool is one resource: one batch's lookups at a time. */
const withOracles = pool(() => [oracles]);

beforeAll(async () => {
  const backend = (
    name: string,
    gateway: Pushgateway,
    asyncWrites = false,
    guard?: TestPushguard,
  ): Backend => ({
    name,
    gateway,
    target: new URL(gateway.url).host,
    asyncWrites,
    guard,
  });
  const startLane = async (n: number): Promise<Lane> => {
    const [directGateway, guardedGateway, noCheckGateway] = await Promise.all([
      startPushgateway(),
      startPushgateway(),
      startPushgateway(["--push.disable-consistency-check"]),
    ]);
    const [guard, noCheckGuard] = await Promise.all([
      startPushguard(standardConfig(guardedGateway.url)),
      startPushguard(standardConfig(noCheckGateway.url)),
    ]);
    return {
      direct: backend(`direct-${n}`, directGateway),
      guarded: backend(`pushguard→default-${n}`, guardedGateway, false, guard),
      guardedNoCheck: backend(`pushguard→no-consistency-check-${n}`, noCheckGateway, true, noCheckGuard),
    };
  };
  [lanes, oracles] = await Promise.all([
    Promise.all(Array.from({ length: LANE_COUNT }, (_, n) => startLane(n))),
    Promise.all(
      Array.from({ length: ORACLE_COUNT }, async (_, n) => backend(`oracle-${n}`, await startPushgateway())),
    ),
  ]);
  const all = [...lanes.flatMap(backendsOf), ...oracles];
  prometheus = await startPrometheus(
    all.map((b) => b.target),
    {
      scrapeInterval: SCRAPE_INTERVAL,
      targetLabels: Object.fromEntries(all.map((b) => [b.target, { [BACKEND_LABEL]: b.name }])),
    },
  );
  scrapes = scrapeCheck(prometheus);
  // Prometheus discovers static targets a few seconds after it is ready.
  const since = Date.now();
  await Promise.all(all.map((b) => scrapes.scrapeAfter(b.target, since, 30_000)));
}, 90_000);

afterAll(async () => {
  if (process.env.PUSH_FACTS_FILE && facts.size > 0) {
    writeFileSync(
      process.env.PUSH_FACTS_FILE,
      [
        "| case | direct answer | /metrics after | scrape | also | pushguard → no-consistency-check Pushgateway |",
        "| --- | --- | --- | --- | --- | --- |",
        ...PUSH_CORPUS.flatMap((c) => facts.get(c.name) ?? []),
        "",
      ].join("\n"),
    );
  }
  await Promise.all(lanes.flatMap(guardedOf).map((b) => b.guard?.close()));
  await Promise.all([...lanes.flatMap(backendsOf), ...oracles].map((b) => b.gateway.stop()));
  await prometheus?.stop();
});

// ---------------------------------------------------------------------------------------------
// Talking to the backends.
// ---------------------------------------------------------------------------------------------

async function pushTo(backend: Backend, format: PushFormat, push: CorpusPush): Promise<Answer> {
  const headers: Record<string, string> = {};
  const contentType = contentTypeOf(format, push);
  if (contentType !== undefined) headers["content-type"] = contentType;
  if (push.contentEncoding !== undefined) headers["content-encoding"] = push.contentEncoding;
  if (backend.guard)
    Object.assign(headers, bearer(jobOf(push.path).startsWith("team-a-") ? TEAM_A_TOKEN : ADMIN_TOKEN));
  const response = await send(backend.guard?.apiUrl ?? backend.gateway.url, push.method, push.path, {
    headers,
    body: push.body,
  });
  return answerOf(response);
}

/** `/metrics`, `/api/v1/metrics` and a scrape that started after every push, for each backend. */
async function observe(backends: readonly Backend[]): Promise<Map<Backend, Observed>> {
  await Promise.all(backends.map((backend) => settle(backend.gateway.url, backend.asyncWrites)));
  const since = Date.now();
  const served = await Promise.all(
    backends.map(async (backend) => {
      const metrics = (await send(backend.gateway.url, "GET", "/metrics").catch(() => undefined)) ?? {
        status: 0,
        text: "",
      };
      const api = await storedGroups(backend.gateway.url);
      return {
        metricsStatus: metrics.status,
        metricsText: metrics.text,
        apiStatus: api.status,
        groups: api.groups,
      };
    }),
  );
  const scraped = await Promise.all(
    backends.map((backend) => scrapes.healthyScrapeAfter(backend.target, since)),
  );
  const stored = await Promise.all(
    backends.map((backend, i) =>
      scrapes.countBy(
        `{${BACKEND_LABEL}=${JSON.stringify(backend.name)},job=~"team-a-.*"}`,
        "job",
        scraped[i]?.at ?? since,
      ),
    ),
  );
  return new Map(
    backends.map((backend, i) => [
      backend,
      {
        ...(served[i] as (typeof served)[number]),
        scrape: scraped[i] as ScrapeOutcome,
        stored: stored[i] ?? new Map(),
      },
    ]),
  );
}

// ---------------------------------------------------------------------------------------------
// Judging what a Pushgateway serves.
// ---------------------------------------------------------------------------------------------

interface Exposed {
  /** Sample lines of the job. */
  lines: number;
  /** Sample lines of the job other than push_time_seconds and push_failure_time_seconds. */
  pushed: number;
  names: Set<string>;
}

/** The sample lines of `/metrics`, by the job they carry. */
function exposedByJob(text: string): Map<string, Exposed> {
  const byJob = new Map<string, Exposed>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const name = /^[^\s{]+/.exec(line)?.[0] ?? "";
    const job = /[{,]job="((?:[^"\\]|\\.)*)"/.exec(line)?.[1];
    if (job === undefined) continue;
    const entry = byJob.get(job) ?? { lines: 0, pushed: 0, names: new Set<string>() };
    entry.lines++;
    if (!OWN_SERIES.has(name)) entry.pushed++;
    entry.names.add(name);
    byJob.set(job, entry);
  }
  return byJob;
}

const isLabelMap = (value: unknown): value is Record<string, string> =>
  typeof value === "object" &&
  value !== null &&
  Object.values(value).every((v) => typeof v === "string") &&
  typeof (value as Record<string, unknown>).job === "string";

/** Why what `observed` shows is not the pushes of `expected` stored and served well ([] if it is). */
function problemsOf(observed: Observed, expected: Expectation): string[] {
  const problems: string[] = [];
  if (observed.metricsStatus !== 200) {
    problems.push(`/metrics answered ${observed.metricsStatus}: ${firstLine(observed.metricsText)}`);
  }
  if (!observed.scrape.up) problems.push(`the scrape failed: ${observed.scrape.error}`);
  if (observed.apiStatus === 0) problems.push("/api/v1/metrics closed the connection unanswered (a panic)");
  else if (observed.apiStatus !== 200) problems.push(`/api/v1/metrics answered ${observed.apiStatus}`);
  const exposed = exposedByJob(observed.metricsText);
  for (const job of expected.jobs) {
    const mentions = observed.groups.filter((g) =>
      JSON.stringify(g).includes(`"job":${JSON.stringify(job)}`),
    );
    if (mentions.some((g) => !isLabelMap(g.labels) || typeof g.last_push_successful !== "boolean")) {
      problems.push(`/api/v1/metrics: a group of ${job} has no readable labels or last_push_successful`);
    } else if (mentions.length === 0 && observed.apiStatus === 200) {
      problems.push(`/api/v1/metrics has no group of ${job}`);
    } else if (mentions.some((g) => g.last_push_successful !== true)) {
      problems.push(`/api/v1/metrics: a push to ${job} failed (last_push_successful false)`);
    }
    if (observed.metricsStatus !== 200) continue;
    const served = exposed.get(job);
    if (served === undefined) {
      problems.push(`/metrics serves nothing of ${job}`);
      continue;
    }
    const stored = observed.stored.get(job) ?? 0;
    if (observed.scrape.up && stored !== served.lines) {
      problems.push(`Prometheus stored ${stored} of the ${served.lines} series /metrics serves for ${job}`);
    }
  }
  if (observed.metricsStatus === 200) {
    const names = new Set(expected.jobs.flatMap((job) => [...(exposed.get(job)?.names ?? [])]));
    const missing = expected.names.filter((choices) => !choices.some((name) => names.has(name)));
    if (missing.length > 0)
      problems.push(`/metrics lacks ${missing.map((m) => JSON.stringify(m[0])).join(", ")}`);
    if (expected.series !== undefined) {
      const pushed = expected.jobs.reduce((sum, job) => sum + (exposed.get(job)?.pushed ?? 0), 0);
      if (pushed !== expected.series)
        problems.push(`/metrics serves ${pushed} of the ${expected.series} series pushed`);
    }
  }
  return problems;
}

/**
 * Whether `/metrics` answered with everything in it (the Pushgateway's own metrics too: an
 * empty-named family empties the whole page) and the scrape took it.
 */
function servesAll(observed: Observed): boolean {
  return (
    observed.metricsStatus === 200 &&
    observed.scrape.up &&
    /^pushgateway_build_info\{/m.test(observed.metricsText)
  );
}

/** The families the accepted pushes should have left: per group, from its last accepted PUT on. */
function expectedNames(
  format: PushFormat,
  pushes: readonly CorpusPush[],
  results: readonly Answer[],
): string[][] {
  const byPath = new Map<string, string[][]>();
  pushes.forEach((push, i) => {
    if (!is2xx(results[i]?.status ?? 0)) return;
    const names = pushedSampleNames(format, push);
    byPath.set(push.path, push.method === "PUT" ? names : [...(byPath.get(push.path) ?? []), ...names]);
  });
  return [...byPath.values()].flat();
}

const describeResult = (r: Answer | undefined) =>
  r === undefined ? "no answer" : `${r.status}${r.code ? ` ${r.code}` : ""} ${firstLine(r.text)}`.trim();

/** The refusal rules for one push pushguard refused: problem+json, a known code, nothing stored. */
function refusalProblems(result: Answer, changedUpstream: boolean): string[] {
  const problems: string[] = [];
  if (!result.problemJson) problems.push(`refused without problem+json (${describeResult(result)})`);
  else if (!(VALIDATION_CODES as readonly string[]).includes(result.code ?? "")) {
    problems.push(`refused with code ${result.code}, not a validation code`);
  }
  if (result.status < 400 || result.status >= 500) problems.push(`refused with ${result.status}, not a 4xx`);
  if (changedUpstream) problems.push("the refused push reached the Pushgateway (its stored groups changed)");
  return problems;
}

// ---------------------------------------------------------------------------------------------
// The hand-written corpus.
// ---------------------------------------------------------------------------------------------

interface BackendRun {
  readonly results: Answer[];
  /** For each push pushguard refused: whether the Pushgateway's groups changed anyway. */
  readonly changed: boolean[];
}

async function runPushes(
  backend: Backend,
  format: PushFormat,
  pushes: readonly CorpusPush[],
): Promise<BackendRun> {
  const results: Answer[] = [];
  const changed: boolean[] = [];
  for (const push of pushes) {
    const before = backend.guard ? await snapshot(backend.gateway.url) : "";
    const result = await pushTo(backend, format, push);
    results.push(result);
    if (backend.guard && !is2xx(result.status)) {
      await settle(backend.gateway.url, backend.asyncWrites);
      changed.push((await snapshot(backend.gateway.url)) !== before);
    } else {
      changed.push(false);
    }
  }
  return { results, changed };
}

/** One row of the facts table: what the direct Pushgateway did, and pushguard's no-check one. */
function recordFacts(c: PushCase, straight: Served, noCheck: Served): void {
  const cell = (text: string) => text.replace(/\|/g, "\\|").replace(/\n/g, " ");
  const answers = (run: BackendRun) =>
    run.results
      .map((r) => (is2xx(r.status) ? String(r.status) : `${r.status} ${firstLine(r.text)}`))
      .join(" / ");
  const metrics = ({ observed }: Served) =>
    observed.metricsStatus === 200
      ? `200${observed.metricsText.length === 0 ? " (0 bytes)" : ""}`
      : `${observed.metricsStatus} ${firstLine(observed.metricsText.replace(/^An error has occurred[^\n]*\n+/, ""))}`;
  const scrape = ({ observed }: Served) =>
    observed.scrape.up ? `up (${observed.scrape.samples} samples)` : `down: ${observed.scrape.error}`;
  const also = ({ run, problems }: Served) =>
    run.results.every((r) => is2xx(r.status))
      ? problems
          .filter((p) => !p.startsWith("/metrics answered") && !p.startsWith("the scrape failed"))
          .join("; ")
      : "";
  const summary = (served: Served) =>
    [answers(served.run), `/metrics ${metrics(served)}`, `scrape ${scrape(served)}`, also(served)]
      .filter((part) => part !== "")
      .join("; ");
  facts.set(
    c.name,
    `| ${[c.name, answers(straight.run), metrics(straight), scrape(straight), also(straight), summary(noCheck)].map(cell).join(" | ")} |`,
  );
}

interface Served {
  readonly run: BackendRun;
  readonly observed: Observed;
  readonly problems: readonly string[];
}

describe("push validation agrees with the real Pushgateway and Prometheus", () => {
  it("gives every corpus case jobs of its own and every stricter case a code", () => {
    const jobs = PUSH_CORPUS.flatMap((c) => jobsOf(c));
    expect(jobs.filter((job, i) => jobs.indexOf(job) !== i)).toEqual([]);
    expect(jobs.every((job) => job.startsWith("team-a-"))).toBe(true);
    expect(new Set(PUSH_CORPUS.map((c) => c.name)).size).toBe(PUSH_CORPUS.length);
    for (const c of STRICTER_CASES) expect(VALIDATION_CODES).toContain(c.code);
  });

  it.concurrent.for(PUSH_CORPUS.map((c) => [c.name, c] as const))("%s", async ([, c], { expect }) => {
    const failures = await withLane((lane) => runCase(lane, c));
    expect(failures).toEqual([]);
  });

  /** Runs one corpus case on a wiped lane; the broken rules, [] if none. */
  async function runCase(lane: Lane, c: PushCase): Promise<string[]> {
    const { direct, guardedNoCheck } = lane;
    const main = backendsOf(lane);
    await Promise.all(main.map((backend) => wipe(backend.gateway.url)));
    const runs = new Map<Backend, BackendRun>();
    await Promise.all(
      main.map(async (backend) => runs.set(backend, await runPushes(backend, c.format, c.pushes))),
    );
    const observed = await observe(main);
    const jobs = jobsOf(c);
    const judge = (backend: Backend) =>
      problemsOf(observed.get(backend) as Observed, {
        jobs,
        names: expectedNames(c.format, c.pushes, (runs.get(backend) as BackendRun).results),
        series: c.series,
      });

    const directRun = runs.get(direct) as BackendRun;
    const directProblems = judge(direct);
    recordFacts(
      c,
      { run: directRun, observed: observed.get(direct) as Observed, problems: directProblems },
      {
        run: runs.get(guardedNoCheck) as BackendRun,
        observed: observed.get(guardedNoCheck) as Observed,
        problems: judge(guardedNoCheck),
      },
    );
    const directAcceptedAll = directRun.results.every((r) => is2xx(r.status));
    const directServesWell = directAcceptedAll && directProblems.length === 0;

    const failures: string[] = [];
    for (const backend of guardedOf(lane)) {
      const run = runs.get(backend) as BackendRun;
      const fail = (message: string) => failures.push(`${backend.name}: ${message}`);
      if (run.results.every((r) => is2xx(r.status))) {
        for (const problem of judge(backend)) fail(`accepted every push, but ${problem}`);
      }
      let agreed = true;
      run.results.forEach((result, i) => {
        const upstream = directRun.results[i];
        const push = `push ${i + 1} (${c.pushes[i]?.method} ${c.pushes[i]?.path})`;
        if (!is2xx(result.status)) {
          for (const problem of refusalProblems(result, run.changed[i] ?? false)) fail(`${push}: ${problem}`);
        } else if (agreed && upstream !== undefined && !is2xx(upstream.status)) {
          fail(
            `${push}: accepted (${result.status}) what the Pushgateway refuses: ${describeResult(upstream)}`,
          );
        }
        agreed &&= is2xx(result.status) === is2xx(upstream?.status ?? 0);
      });
      const refusal = run.results.find((r) => !is2xx(r.status));
      if (c.stricter !== undefined) {
        if (refusal === undefined) fail(`must refuse (stricter: ${c.stricter}) but accepted every push`);
        else if (refusal.code !== c.code)
          fail(`must refuse with ${c.code}, refused with ${describeResult(refusal)}`);
      } else if (refusal !== undefined && directServesWell) {
        fail(
          `pushguard must not refuse valid pushes: refused ${describeResult(refusal)}, and the Pushgateway stores and serves it well`,
        );
      }
    }
    if (c.stricter !== undefined && !directServesWell) {
      failures.push(
        `marked stricter, but the direct Pushgateway does not take it well: ${[
          ...directRun.results.filter((r) => !is2xx(r.status)).map(describeResult),
          ...directProblems,
        ].join("; ")}`,
      );
    }
    return failures;
  }

  // -------------------------------------------------------------------------------------------
  // Generated pushes.
  // -------------------------------------------------------------------------------------------

  interface Generated {
    readonly index: number;
    readonly generated: GeneratedPush;
    readonly push: CorpusPush;
  }

  function describeGenerated(item: Generated): string {
    const body = typeof item.push.body === "string" ? Buffer.from(item.push.body) : item.push.body;
    const shown =
      item.generated.format === "text" ? JSON.stringify(body.toString("latin1")) : body.toString("hex");
    return `#${item.index} ${item.push.method} ${item.push.path} ${shown.slice(0, 400)}`;
  }

  function generatedExpectation(format: PushFormat, item: Generated): Expectation {
    return {
      jobs: [jobOf(item.push.path)],
      names: pushedSampleNames(format, item.push),
      // A protobuf push can lose series silently (a family sent twice keeps only the last).
      ...(format === "protobuf" ? { series: pushedProtobufSeries(item.push) } : {}),
    };
  }

  /**
   * For pushes the direct Pushgateway accepted: whether each, pushed alone to a wiped Pushgateway,
   * is stored and served well (problems, [] if so). Runs on the oracle pool, a round per pool size.
   */
  async function aloneOnDirect(
    format: PushFormat,
    items: readonly Generated[],
  ): Promise<Map<number, string[]>> {
    return withOracles((oracles) => aloneOn(oracles, format, items));
  }

  async function aloneOn(
    oracles: readonly Backend[],
    format: PushFormat,
    items: readonly Generated[],
  ): Promise<Map<number, string[]>> {
    const verdicts = new Map<number, string[]>();
    for (let from = 0; from < items.length; from += oracles.length) {
      const round = items.slice(from, from + oracles.length);
      const pool = oracles.slice(0, round.length);
      await Promise.all(pool.map((backend) => wipe(backend.gateway.url)));
      const results = await Promise.all(
        round.map((item, i) => pushTo(pool[i] as Backend, format, item.push)),
      );
      const observed = await observe(pool);
      round.forEach((item, i) => {
        const result = results[i] as Answer;
        verdicts.set(
          item.index,
          is2xx(result.status)
            ? problemsOf(observed.get(pool[i] as Backend) as Observed, generatedExpectation(format, item))
            : [`refused alone: ${describeResult(result)}`],
        );
      });
    }
    return verdicts;
  }

  /** How the generated pushes fared, so a grammar that drifts into all-valid or all-broken shows. */
  interface Tally {
    directAccepted: number;
    directRefused: number;
    /** Accepted by the direct Pushgateway, but not served well. */
    directBroken: number;
    pushguardAccepted: number;
  }

  async function runBatch(
    lane: Lane,
    format: PushFormat,
    items: readonly Generated[],
    tally: Tally,
  ): Promise<string[]> {
    const { direct, guarded } = lane;
    const main = backendsOf(lane);
    await Promise.all(main.map((backend) => wipe(backend.gateway.url)));
    const results = new Map<Backend, Answer[]>();
    await Promise.all(
      main.map(async (backend) => {
        const answers: Answer[] = [];
        for (const item of items) answers.push(await pushTo(backend, format, item.push));
        results.set(backend, answers);
      }),
    );
    const observed = await observe(main);
    const expectationOf = (item: Generated) => generatedExpectation(format, item);
    const directResults = results.get(direct) as Answer[];
    const directObserved = observed.get(direct) as Observed;
    const acceptedByDirect = items.filter((_, i) => is2xx(directResults[i]?.status ?? 0));
    // Pushes of one batch never meet (own jobs, own names), so each stands or falls alone, unless
    // one of them broke /metrics or the scrape for all: then each is tried alone.
    const batchServed = servesAll(directObserved);
    const directVerdicts = batchServed
      ? new Map(acceptedByDirect.map((item) => [item.index, problemsOf(directObserved, expectationOf(item))]))
      : await aloneOnDirect(format, acceptedByDirect);

    tally.directAccepted += acceptedByDirect.length;
    tally.directRefused += items.length - acceptedByDirect.length;
    tally.directBroken += [...directVerdicts.values()].filter((problems) => problems.length > 0).length;
    tally.pushguardAccepted += (results.get(guarded) as Answer[]).filter((r) => is2xx(r.status)).length;

    const failures: string[] = [];
    for (const backend of guardedOf(lane)) {
      const answers = results.get(backend) as Answer[];
      const seen = observed.get(backend) as Observed;
      const storedJobs = new Set(
        seen.groups
          .map((g) => (isLabelMap(g.labels) ? g.labels.job : undefined))
          .filter((j) => j !== undefined),
      );
      const broken = !servesAll(seen);
      if (broken) {
        const suspects = items.filter(
          (item, i) => is2xx(answers[i]?.status ?? 0) && (directVerdicts.get(item.index)?.length ?? 1) > 0,
        );
        failures.push(
          `${backend.name}: after the batch, ${problemsOf(seen, { jobs: [], names: [] }).join("; ")}; pushes it accepted that the Pushgateway does not serve well alone: ${
            suspects.map(describeGenerated).join(" | ") || "(none found)"
          }`,
        );
      }
      items.forEach((item, i) => {
        const answer = answers[i] as Answer;
        const upstream = directResults[i] as Answer;
        const fail = (message: string) =>
          failures.push(`${backend.name}: ${describeGenerated(item)}: ${message}`);
        if (is2xx(answer.status)) {
          if (!is2xx(upstream.status)) {
            fail(`accepted (${answer.status}) what the Pushgateway refuses: ${describeResult(upstream)}`);
          } else if (!broken) {
            for (const problem of problemsOf(seen, expectationOf(item))) fail(`accepted, but ${problem}`);
          }
          return;
        }
        for (const problem of refusalProblems(answer, storedJobs.has(jobOf(item.push.path)))) fail(problem);
        if (is2xx(upstream.status) && directVerdicts.get(item.index)?.length === 0) {
          fail(
            `pushguard must not refuse valid pushes: refused ${describeResult(answer)}, the Pushgateway serves it well`,
          );
        }
      });
    }
    return failures;
  }

  it.each([
    ["text", textPush],
    ["protobuf", protobufPush],
  ] as const)(
    `generated %s pushes (seed ${SEED})`,
    async (format, arbitrary) => {
      const offset = format === "text" ? 0 : GENERATED_PER_FORMAT;
      const items = fc
        .sample(arbitrary, { seed: SEED + offset, numRuns: GENERATED_PER_FORMAT })
        .map((generated, i) => ({ index: offset + i, generated, push: generated.render(offset + i) }));
      const failures: string[] = [];
      const tally: Tally = { directAccepted: 0, directRefused: 0, directBroken: 0, pushguardAccepted: 0 };
      const batches = Array.from({ length: Math.ceil(items.length / BATCH_SIZE) }, (_, n) =>
        items.slice(n * BATCH_SIZE, (n + 1) * BATCH_SIZE),
      );
      const found = await Promise.all(
        batches.map((batch) => withLane((lane) => runBatch(lane, format, batch, tally))),
      );
      failures.push(...found.flat());
      console.info(`generated ${format} pushes, seed ${SEED}: ${JSON.stringify(tally)}`);
      expect(failures, `seed ${SEED} (PUSH_FUZZ_SEED=${SEED} reproduces)`).toEqual([]);
      // Not vacuous: a fair share of each outcome.
      expect(tally.directAccepted, JSON.stringify(tally)).toBeGreaterThan(GENERATED_PER_FORMAT / 5);
      expect(tally.directRefused, JSON.stringify(tally)).toBeGreaterThan(GENERATED_PER_FORMAT / 10);
      expect(tally.directBroken, JSON.stringify(tally)).toBeGreaterThan(GENERATED_PER_FORMAT / 50);
      expect(tally.pushguardAccepted, JSON.stringify(tally)).toBeGreaterThan(GENERATED_PER_FORMAT / 7);
    },
    180_000,
  );
});
