import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Answer, answerOf, bearer, send } from "../support/http.js";
import { type Prometheus, startPrometheus } from "../support/prometheus.js";
import { PROTOBUF_CONTENT_TYPE } from "../support/protobuf.js";
import {
  renderFamilies,
  type SequenceActor,
  type SequenceStep,
  sequencePath,
  storeSequence,
} from "../support/push-arbitraries.js";
import { TEXT_CONTENT_TYPE } from "../support/push-corpus.js";
import {
  isBarrier,
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
  TEAM_B_TOKEN,
  type TestPushguard,
} from "../support/pushguard.js";
import { type ScrapeCheck, scrapeCheck } from "../support/scrape-check.js";
import {
  type Conflict,
  type ConflictRule,
  describeKey,
  type GroupKey,
  groupId,
  type ModelFamily,
  type ModelMetric,
  StoreModel,
  type StoreWrite,
} from "../support/store-model.js";

/**
 * Consistency across groups (issue 12) against the real Pushgateway 1.5.1 and Prometheus 2.42.
 * Teams write through pushguard (store index on) to a Pushgateway started with
 * --push.disable-consistency-check, which stores whatever it is sent: one clash between groups
 * and its `/metrics` answers 500 for every team. A second Pushgateway, in the default mode (its
 * consistency check on), is sent every write pushguard acknowledged, and is the oracle:
 *
 * - a write pushguard acknowledged that the oracle refuses: pushguard let a clash through;
 * - a push pushguard refused with ERR_FAMILY_CONFLICT is sent to the oracle too (and undone there
 *   if taken): if the oracle takes it, the conflict was false, unless it is one of STRICTER;
 * - every refusal is a problem+json 4xx, and the store is the same after it as before;
 * - every few steps, both Pushgateways serve `/metrics` (200), hold the groups the test's model
 *   says (built from the acknowledged writes alone), and a scrape that started after the writes
 *   is up and stored, job by job, as many series as the model says.
 *
 * Hand-written sequences first, then generated ones (pinned seed; STORE_FUZZ_SEED draws others).
 */

const SCRAPE_INTERVAL = "200ms";
const SEED = Number(process.env.STORE_FUZZ_SEED ?? 20_261_208);
const SEQUENCES = 20;
/** Steps between two checks of what the Pushgateways serve and Prometheus stored. */
const CHECK_EVERY = 3;
/** A sequence stops at its first failure beyond this many (the later ones follow from it). */
const FAILURES_PER_SEQUENCE = 3;
const BACKEND_LABEL = "differential_backend";
/** Every job the sequences write (and not the barrier's or Prometheus's own). */
const JOBS = 'job=~"team-.*|ops-.*"';
const RULES: readonly ConflictRule[] = ["type-conflict", "suffix-conflict", "series-conflict"];
const STORE_INDEX = `
store:
  index:
    enabled: true
`;

const TOKENS: Readonly<Record<SequenceActor, string>> = {
  "team-a": TEAM_A_TOKEN,
  "team-b": TEAM_B_TOKEN,
  admin: ADMIN_TOKEN,
};
/** The team of each actor in `standardConfig`: a group counts against the team that last wrote it. */
const TEAMS: Readonly<Record<SequenceActor, string>> = {
  "team-a": "team-a",
  "team-b": "team-b",
  admin: "admins",
};

/**
 * Whom a group counts against after pushguard re-read the store: the first team, in config order,
 * whose jobs match (docs/validation.md).
 */
const ownerByJob = (key: GroupKey) =>
  key.job.startsWith("team-a-") ? "team-a" : key.job.startsWith("team-b-") ? "team-b" : "admins";

/**
 * Clashes pushguard refuses although the default-mode Pushgateway accepts them, and why. Pushes
 * that pushguard acknowledges must also be stored by Prometheus series for series, so each of these
 * is one pushguard must refuse, not only one it may.
 */
const STRICTER: ReadonlyArray<{
  readonly name: string;
  readonly rule: ConflictRule;
  readonly reason: string;
  readonly applies: (conflicts: readonly Conflict[]) => boolean;
}> = [
  {
    name: "one series but for an empty-valued label",
    rule: "series-conflict",
    reason:
      'the Pushgateway keeps `y=""`, so `m{instance="i1",y=""}` in {job=a} and `m` in {job=a,instance=i1} differ for its check; Prometheus drops empty labels, sees one series twice in every scrape and keeps one sample',
    applies: (conflicts) => conflicts.some((c) => c.rule === "series-conflict" && c.onlyForPrometheus),
  },
];

const is2xx = (status: number) => status >= 200 && status < 300;
const firstLine = (text: string) => text.trim().split("\n")[0]?.slice(0, 200) ?? "";
/** The Pushgateway lists every error of a refused push on lines of their own. */
const oneLine = (text: string) => text.trim().replace(/\s+/g, " ").slice(0, 400);

let guarded: Pushgateway;
let oracle: Pushgateway;
let guard: TestPushguard;
const guardConfig = () => standardConfig(guarded.url, STORE_INDEX);
let prometheus: Prometheus;
let scrapes: ScrapeCheck;

/** The two Pushgateways, by the name Prometheus's target label gives them. */
const backends = () =>
  [
    ["pushguard→no-consistency-check", guarded],
    ["default-mode", oracle],
  ] as const;

beforeAll(async () => {
  [guarded, oracle] = await Promise.all([
    startPushgateway(["--push.disable-consistency-check"]),
    startPushgateway(),
  ]);
  // Before Prometheus: if the config loader does not know `store.index` yet, fail right away.
  guard = await startPushguard(guardConfig());
  const targets = backends().map(([name, gateway]) => [new URL(gateway.url).host, name] as const);
  prometheus = await startPrometheus(
    targets.map(([target]) => target),
    {
      scrapeInterval: SCRAPE_INTERVAL,
      targetLabels: Object.fromEntries(targets.map(([target, name]) => [target, { [BACKEND_LABEL]: name }])),
    },
  );
  scrapes = scrapeCheck(prometheus);
  // Prometheus discovers static targets a few seconds after it is ready.
  const since = Date.now();
  await Promise.all(targets.map(([target]) => scrapes.scrapeAfter(target, since, 30_000)));
}, 60_000);

afterAll(async () => {
  await guard?.close();
  await Promise.all([guarded?.stop(), oracle?.stop(), prometheus?.stop()]);
});

// ---------------------------------------------------------------------------------------------
// Writes.
// ---------------------------------------------------------------------------------------------

/** The write of `step` to `baseUrl`: pushguard's API (with the actor's token), or a Pushgateway. */
async function sendStep(baseUrl: string, step: SequenceStep, token?: string): Promise<Answer> {
  const { write } = step;
  const headers: Record<string, string> = token ? bearer(token) : {};
  let body: Buffer | undefined;
  if (write.method !== "DELETE") {
    headers["content-type"] = step.format === "text" ? TEXT_CONTENT_TYPE : PROTOBUF_CONTENT_TYPE;
    body = renderFamilies(step.format, write.families);
  }
  return answerOf(await send(baseUrl, write.method, sequencePath(step), { headers, body }));
}

/** An admin's write, every value spelled @base64: read as exactly its group by both sides. */
const plainStep = (write: StoreWrite): SequenceStep => ({
  actor: "admin",
  write,
  format: "text",
  spelling: { reversed: false, base64: true },
});

/** A new pushguard, whose index starts from what the Pushgateway holds (as after a deploy). */
async function restartPushguard(): Promise<void> {
  await settle(guarded.url, true);
  await guard.close();
  guard = await startPushguard(guardConfig());
}

/** The grouping key of a group `/api/v1/metrics` lists. */
function keyOf(group: StoredGroup): GroupKey {
  const { job = "", ...labels } = group.labels as Record<string, string>;
  return { job, labels };
}

/** Puts the oracle's group back as the model has it, after a probe it should not have kept. */
async function restoreOracleGroup(model: StoreModel, key: GroupKey): Promise<string | undefined> {
  const families = model.group(key);
  const answer = await sendStep(
    oracle.url,
    plainStep(families ? { method: "PUT", key, families } : { method: "DELETE", key }),
  );
  return is2xx(answer.status)
    ? undefined
    : `restoring {${describeKey(key)}} on the default-mode Pushgateway answered ${answer.status} ${firstLine(answer.text)}`;
}

/** Deletes every group through pushguard (so its index follows) and wipes the oracle. */
async function emptyStores(): Promise<void> {
  await settle(guarded.url, true);
  const { groups } = await storedGroups(guarded.url);
  for (const group of groups.filter((g) => !isBarrier(g))) {
    const answer = await sendStep(
      guard.apiUrl,
      plainStep({ method: "DELETE", key: keyOf(group) }),
      ADMIN_TOKEN,
    );
    if (!is2xx(answer.status))
      throw new Error(`DELETE through pushguard answered ${answer.status}: ${answer.text}`);
  }
  await settle(guarded.url, true);
  const left = (await storedGroups(guarded.url)).groups.filter((g) => !isBarrier(g));
  if (left.length > 0) throw new Error(`groups left after deleting all: ${JSON.stringify(left)}`);
  await wipe(oracle.url);
}

// ---------------------------------------------------------------------------------------------
// Judging.
// ---------------------------------------------------------------------------------------------

const labelsText = (labels: ModelMetric["labels"]) =>
  labels.length === 0
    ? ""
    : `{${labels.map(([name, value]) => `${name}=${JSON.stringify(value)}`).join(",")}}`;

function describeStep(step: SequenceStep): string {
  const { write } = step;
  const what =
    write.method === "DELETE"
      ? ""
      : ` [${step.format}] ${write.families
          .map((f) => `${f.name}:${f.type}${f.metrics.map((m) => labelsText(m.labels)).join("")}`)
          .join(" ")}`;
  return `${step.actor} ${write.method} ${sequencePath(step)}${what}`;
}

const describeAnswer = (answer: Answer) =>
  answer.problem
    ? `${answer.status} ${answer.code} ${answer.problem.rule ?? ""} (holder ${JSON.stringify(answer.problem.holder)})`
    : `${answer.status}${is2xx(answer.status) ? "" : ` ${firstLine(answer.text)}`}`;

const describeHolder = (c: Pick<Conflict, "holder" | "owner">) => `{${describeKey(c.holder)}} of ${c.owner}`;

const describeConflicts = (conflicts: readonly Conflict[]) =>
  conflicts.length === 0
    ? "the model sees no clash"
    : `the model sees ${conflicts
        .map(
          (c) =>
            `${c.rule}${c.onlyForPrometheus ? " (only for Prometheus)" : ""} of ${c.family} with ${describeHolder(c)}`,
        )
        .join("; ")}`;

/**
 * Whether a problem's `holder` names the clash's holder as docs/validation.md says: the group
 * itself ("this group" will do) when it is the pushing team's, only its team when it is another
 * team's (whose jobs and labels are not the pusher's to read).
 */
function namesHolder(
  holder: string,
  conflict: Pick<Conflict, "holder" | "owner">,
  step: SequenceStep,
): boolean {
  const names = (key: GroupKey) =>
    holder.includes(key.job) && Object.values(key.labels).every((value) => holder.includes(value));
  if (groupId(conflict.holder) === groupId(step.write.key))
    return /this group/i.test(holder) || names(conflict.holder);
  if (conflict.owner === TEAMS[step.actor]) return names(conflict.holder);
  return holder.includes(conflict.owner) && !holder.includes(conflict.holder.job);
}

/** Why a refusal is not a well-formed conflict refusal naming one of `conflicts` ([] if it is). */
function refusalProblems(answer: Answer, step: SequenceStep, conflicts: readonly Conflict[]): string[] {
  const problems: string[] = [];
  if (answer.status < 400 || answer.status >= 500) problems.push(`refused with ${answer.status}, not a 4xx`);
  if (!answer.problemJson) return [...problems, `refused without problem+json: ${firstLine(answer.text)}`];
  if (answer.code !== "ERR_FAMILY_CONFLICT") {
    return [...problems, `refused a push valid on its own: ${answer.code} ${firstLine(answer.text)}`];
  }
  const { rule, holder } = answer.problem ?? {};
  if (!RULES.includes(rule as ConflictRule))
    problems.push(`rule ${JSON.stringify(rule)} is not one of ${RULES}`);
  if (typeof holder !== "string" || holder === "") {
    problems.push(`holder ${JSON.stringify(holder)} names no group`);
  } else {
    const candidates = conflicts.filter((c) => c.rule === rule);
    if (candidates.length > 0 && !candidates.some((c) => namesHolder(holder, c, step))) {
      problems.push(
        `holder ${JSON.stringify(holder)} does not name (as the pushing ${TEAMS[step.actor]} may learn it) any group holding a clashing family: ${candidates.map(describeHolder).join(", ")}`,
      );
    }
  }
  return problems;
}

/**
 * What both Pushgateways serve and Prometheus stored, against the model ([] if all agree):
 * `/metrics` 200, the model's groups, a healthy scrape after every write, its series per job.
 */
async function storeProblems(model: StoreModel): Promise<string[]> {
  await Promise.all([settle(guarded.url, true), settle(oracle.url, true)]);
  const since = Date.now();
  const expected = model.seriesByJob();
  const expectedGroups = model
    .groups()
    .map((g) => groupId(g.key))
    .sort();
  const found = await Promise.all(
    backends().map(async ([name, gateway]) => {
      const problems: string[] = [];
      const metrics = await send(gateway.url, "GET", "/metrics").catch(() => undefined);
      if (metrics?.status !== 200) {
        problems.push(
          `${name}: /metrics answered ${metrics?.status ?? "nothing"}: ${firstLine(metrics?.text ?? "")}`,
        );
      }
      const { status, groups } = await storedGroups(gateway.url);
      const held = groups
        .filter((g) => !isBarrier(g))
        .map((g) => groupId(keyOf(g)))
        .sort();
      if (status !== 200) problems.push(`${name}: /api/v1/metrics answered ${status}`);
      else if (JSON.stringify(held) !== JSON.stringify(expectedGroups)) {
        problems.push(
          `${name}: holds groups ${held.join(" ")}; the acknowledged writes leave ${expectedGroups.join(" ")}`,
        );
      }
      const scrape = await scrapes.healthyScrapeAfter(new URL(gateway.url).host, since);
      if (!scrape.up) return [...problems, `${name}: the scrape failed: ${scrape.error}`];
      const stored = await scrapes.countBy(
        `{${BACKEND_LABEL}=${JSON.stringify(name)},${JOBS}}`,
        "job",
        scrape.at,
      );
      const jobs = [...new Set([...stored.keys(), ...expected.keys()])].sort();
      const differ = jobs.filter((job) => (stored.get(job) ?? 0) !== (expected.get(job) ?? 0));
      if (differ.length > 0) {
        problems.push(
          `${name}: Prometheus stored ${differ.map((job) => `${stored.get(job) ?? 0} series of ${job}`).join(", ")}; the acknowledged writes leave ${differ.map((job) => expected.get(job) ?? 0).join(", ")}`,
        );
      }
      return problems;
    }),
  );
  return found.flat();
}

// ---------------------------------------------------------------------------------------------
// Running a sequence.
// ---------------------------------------------------------------------------------------------

/** What a hand-written step must get from pushguard. */
type Expected = "accepted" | { readonly rule: ConflictRule; readonly holder: GroupKey };

/** How the writes fared, so a pool that drifts into all-clean or all-clashing shows. */
interface Tally {
  acknowledged: number;
  refused: number;
  /** Pushes the model saw clash, by rule (whatever pushguard answered). */
  clashes: Record<ConflictRule, number>;
  stricter: number;
}

const newTally = (): Tally => ({
  acknowledged: 0,
  refused: 0,
  clashes: { "type-conflict": 0, "suffix-conflict": 0, "series-conflict": 0 },
  stricter: 0,
});

/** One write through pushguard and its echo on the oracle; what went wrong, and whether to stop. */
async function runStep(
  model: StoreModel,
  step: SequenceStep,
  expected: Expected | undefined,
  tally: Tally,
): Promise<{ answer: Answer; problems: string[]; stop: boolean }> {
  const conflicts = model.conflicts(step.write);
  for (const rule of new Set(conflicts.map((c) => c.rule))) tally.clashes[rule]++;
  const oracleRefuses = conflicts.some((c) => !c.onlyForPrometheus);
  await settle(guarded.url, true);
  const before = await snapshot(guarded.url);
  const answer = await sendStep(guard.apiUrl, step, TOKENS[step.actor]);
  const problems: string[] = [];

  if (is2xx(answer.status)) {
    tally.acknowledged++;
    if (expected !== undefined && expected !== "accepted") {
      problems.push(
        `must be refused with ${expected.rule} (holder {${describeKey(expected.holder)}}), was acknowledged`,
      );
    }
    const echo = await sendStep(oracle.url, step);
    model.apply(step.write, TEAMS[step.actor]);
    if (!is2xx(echo.status)) {
      problems.push(
        `pushguard acknowledged (${answer.status}) what the default-mode Pushgateway refuses (${echo.status} ${oneLine(echo.text)}): a clash let through; ${describeConflicts(conflicts)}`,
      );
      return { answer, problems, stop: true };
    }
    if (oracleRefuses)
      problems.push(`test model: the Pushgateway accepted it, but ${describeConflicts(conflicts)}`);
    return { answer, problems, stop: false };
  }

  tally.refused++;
  if (expected === "accepted") problems.push(`must be acknowledged, was refused: ${describeAnswer(answer)}`);
  else if (expected !== undefined) {
    if (answer.problem?.rule !== expected.rule)
      problems.push(`must be refused with ${expected.rule}: ${describeAnswer(answer)}`);
    const clash = conflicts.find((c) => groupId(c.holder) === groupId(expected.holder));
    if (clash === undefined) {
      problems.push(
        `test model: no clash with {${describeKey(expected.holder)}}; ${describeConflicts(conflicts)}`,
      );
    } else if (!namesHolder(String(answer.problem?.holder ?? ""), clash, step)) {
      problems.push(`the refusal must name ${describeHolder(clash)} as holder: ${describeAnswer(answer)}`);
    }
  }
  problems.push(...refusalProblems(answer, step, conflicts));
  await settle(guarded.url, true);
  if ((await snapshot(guarded.url)) !== before) problems.push("the refused write changed the store");
  if (answer.code !== "ERR_FAMILY_CONFLICT") return { answer, problems, stop: false };

  const probe = await sendStep(oracle.url, step);
  if (is2xx(probe.status)) {
    const stricter = STRICTER.find((s) => s.rule === answer.problem?.rule && s.applies(conflicts));
    if (stricter) tally.stricter++;
    else {
      problems.push(
        `false conflict: pushguard refused (${describeAnswer(answer)}) what the default-mode Pushgateway accepts; ${describeConflicts(conflicts)}`,
      );
    }
  } else if (!oracleRefuses) {
    problems.push(
      `test model: the Pushgateway refused it (${oneLine(probe.text)}), but ${describeConflicts(conflicts)}`,
    );
  }
  // A refused push still records its failure in the group, creating the group if need be.
  const restored = await restoreOracleGroup(model, step.write.key);
  return { answer, problems: restored ? [...problems, restored] : problems, stop: restored !== undefined };
}

/**
 * Runs `steps` on emptied stores, restarting pushguard before each step of `restartBefore`
 * (0-based); the failures, each with the steps up to it.
 */
async function runSequence(
  name: string,
  steps: readonly SequenceStep[],
  tally: Tally,
  {
    expected = [],
    restartBefore = [],
  }: { expected?: readonly Expected[]; restartBefore?: readonly number[] } = {},
): Promise<string[]> {
  await emptyStores();
  const model = new StoreModel();
  const failures: string[] = [];
  const trace: string[] = [];
  const fail = (at: number, problem: string) =>
    failures.push(`${name}, step ${at + 1}: ${problem}\n${trace.map((line) => `      ${line}`).join("\n")}`);
  for (const [i, step] of steps.entries()) {
    if (restartBefore.includes(i)) {
      await restartPushguard();
      model.reattribute(ownerByJob);
      trace.push("-- pushguard restarted: its index is rebuilt from what the Pushgateway holds --");
    }
    const { answer, problems, stop } = await runStep(model, step, expected[i], tally);
    trace.push(`${i + 1}. ${describeStep(step)} → ${describeAnswer(answer)}`);
    for (const problem of problems) fail(i, problem);
    if (stop || failures.length >= FAILURES_PER_SEQUENCE) break;
    if ((i + 1) % CHECK_EVERY === 0 || i === steps.length - 1) {
      const problems = await storeProblems(model);
      for (const problem of problems) fail(i, problem);
      // What breaks a store stays broken: the next checks would only repeat it.
      if (problems.length > 0) break;
    }
  }
  return failures;
}

// ---------------------------------------------------------------------------------------------
// Hand-written sequences.
// ---------------------------------------------------------------------------------------------

const family = (
  name: string,
  type: ModelFamily["type"],
  ...labels: ModelMetric["labels"][]
): ModelFamily => ({
  name,
  type,
  metrics: (labels.length > 0 ? labels : [[]]).map((l) => ({
    labels: l,
    ...(type === "histogram" ? { buckets: [0.5] } : {}),
    ...(type === "summary" ? { quantiles: [0.5] } : {}),
  })),
});

const key = (job: string, labels: Record<string, string> = {}): GroupKey => ({ job, labels });
const actorOf = (job: string): SequenceActor =>
  job.startsWith("team-a-") ? "team-a" : job.startsWith("team-b-") ? "team-b" : "admin";

function step(
  method: "PUT" | "POST" | "DELETE",
  group: GroupKey,
  families: readonly ModelFamily[] = [],
  options: Partial<Pick<SequenceStep, "format" | "spelling">> = {},
): SequenceStep {
  return {
    actor: actorOf(group.job),
    write: method === "DELETE" ? { method, key: group } : { method, key: group, families },
    format: options.format ?? "text",
    spelling: options.spelling ?? { reversed: false, base64: false },
  };
}

const refused = (rule: ConflictRule, holder: GroupKey): Expected => ({ rule, holder });

const HAND_WRITTEN: ReadonlyArray<{
  name: string;
  steps: Array<[SequenceStep, Expected]>;
  /** Restart pushguard before this step (0-based). */
  restartAt?: number;
}> = [
  {
    name: "a family name with two types, across teams",
    steps: [
      [step("PUT", key("team-a-x"), [family("queue_depth", "gauge")]), "accepted"],
      [
        step("PUT", key("team-b-x"), [family("queue_depth", "counter")]),
        refused("type-conflict", key("team-a-x")),
      ],
      [
        step("PUT", key("team-b-x"), [family("queue_depth", "untyped")], { format: "protobuf" }),
        refused("type-conflict", key("team-a-x")),
      ],
      [step("PUT", key("team-b-x"), [family("queue_depth", "gauge")]), "accepted"],
    ],
  },
  {
    name: "a histogram or summary beside a family named like its series, in another group",
    steps: [
      [step("PUT", key("team-a-x"), [family("latency_seconds", "histogram")]), "accepted"],
      [
        step("PUT", key("team-a-y"), [family("latency_seconds_count", "counter")]),
        refused("suffix-conflict", key("team-a-x")),
      ],
      [step("PUT", key("team-b-x"), [family("size_bytes_sum", "counter")]), "accepted"],
      [
        step("PUT", key("ops-z"), [family("size_bytes", "summary")], { format: "protobuf" }),
        refused("suffix-conflict", key("team-b-x")),
      ],
    ],
  },
  {
    name: "one series stored by two groups: the body's instance and the key's",
    steps: [
      [step("PUT", key("team-a-x"), [family("workers", "gauge", [["instance", "i1"]])]), "accepted"],
      [
        step("PUT", key("team-a-x", { instance: "i1" }), [family("workers", "gauge")]),
        refused("series-conflict", key("team-a-x")),
      ],
      [
        step("PUT", key("team-a-x", { instance: "i1", x: "v" }), [family("workers", "gauge", [["x", "w"]])], {
          spelling: { reversed: true, base64: true },
        }),
        "accepted",
      ],
      [
        step("POST", key("team-a-x", { x: "v" }), [family("workers", "gauge", [["instance", "i1"]])], {
          format: "protobuf",
        }),
        refused("series-conflict", key("team-a-x", { instance: "i1", x: "v" })),
      ],
      [step("PUT", key("team-a-x", { instance: "i2" }), [family("workers", "gauge")]), "accepted"],
    ],
  },
  {
    name: "POST adding a clashing family to an existing group",
    steps: [
      [step("PUT", key("team-a-x"), [family("cache_hits", "gauge")]), "accepted"],
      [step("PUT", key("team-b-x"), [family("shared_total", "counter")]), "accepted"],
      [
        step("POST", key("team-a-x"), [family("shared_total", "gauge")]),
        refused("type-conflict", key("team-b-x")),
      ],
      [step("PUT", key("team-a-y"), [family("request_seconds", "histogram")]), "accepted"],
      [
        step("POST", key("team-a-y"), [family("request_seconds_bucket", "untyped")]),
        refused("suffix-conflict", key("team-a-y")),
      ],
      [step("POST", key("team-a-x"), [family("shared_total", "counter")]), "accepted"],
    ],
  },
  {
    name: "DELETE frees a name, so another type may then be pushed",
    steps: [
      [step("PUT", key("team-a-x", { instance: "i1" }), [family("build_info", "gauge")]), "accepted"],
      [
        step("PUT", key("team-b-x"), [family("build_info", "counter")]),
        refused("type-conflict", key("team-a-x", { instance: "i1" })),
      ],
      [step("DELETE", key("team-a-x", { instance: "i1" })), "accepted"],
      [step("PUT", key("team-b-x"), [family("build_info", "counter")]), "accepted"],
    ],
  },
  {
    name: "PUT or POST replacing a group's family with another type when no other group holds it",
    steps: [
      [step("PUT", key("team-a-x"), [family("mode", "counter"), family("other", "gauge")]), "accepted"],
      [step("PUT", key("team-a-x"), [family("mode", "gauge")], { format: "protobuf" }), "accepted"],
      [step("POST", key("team-a-x"), [family("mode", "untyped")]), "accepted"],
      [step("PUT", key("team-a-x", { instance: "i1" }), [family("mode", "untyped")]), "accepted"],
      [
        step("PUT", key("team-a-x"), [family("mode", "gauge")]),
        refused("type-conflict", key("team-a-x", { instance: "i1" })),
      ],
    ],
  },
  {
    name: "no clash: another HELP, a summary beside _bucket, a counter beside its _count",
    steps: [
      [step("PUT", key("team-a-x"), [{ ...family("temperature", "gauge"), help: "One help." }]), "accepted"],
      [
        step("PUT", key("team-b-x"), [{ ...family("temperature", "gauge"), help: "Another help." }]),
        "accepted",
      ],
      [step("PUT", key("team-a-y"), [family("rpc_seconds", "summary")]), "accepted"],
      [step("POST", key("team-b-x"), [family("rpc_seconds_bucket", "untyped")]), "accepted"],
      [step("PUT", key("ops-z"), [family("jobs", "counter")]), "accepted"],
      [step("POST", key("team-a-y"), [family("jobs_count", "counter")], { format: "protobuf" }), "accepted"],
    ],
  },
  {
    name: "a restarted pushguard still knows every group's families",
    restartAt: 3,
    steps: [
      [step("PUT", key("team-a-x"), [family("restarts", "gauge", [["instance", "i1"]])]), "accepted"],
      [
        step(
          "PUT",
          key("team-a-y"),
          [family("uptime_seconds", "histogram"), family("batches", "gauge", [["x", "v"]])],
          {
            format: "protobuf",
          },
        ),
        "accepted",
      ],
      [step("PUT", key("team-b-x", { instance: "i2" }), [family("rpc", "summary", [["y", ""]])]), "accepted"],
      [
        step("PUT", key("team-b-x"), [family("restarts", "counter")]),
        refused("type-conflict", key("team-a-x")),
      ],
      [
        step("PUT", key("team-a-x", { instance: "i1" }), [family("restarts", "gauge")]),
        refused("series-conflict", key("team-a-x")),
      ],
      [
        step("POST", key("ops-z"), [family("uptime_seconds_sum", "gauge")]),
        refused("suffix-conflict", key("team-a-y")),
      ],
      [
        step("PUT", key("team-b-x"), [family("rpc", "summary", [["instance", "i2"]])]),
        refused("series-conflict", key("team-b-x", { instance: "i2" })),
      ],
      [
        step("PUT", key("team-a-x"), [family("restarts", "gauge"), family("rpc_count", "gauge")]),
        refused("suffix-conflict", key("team-b-x", { instance: "i2" })),
      ],
      [
        step("PUT", key("team-a-y", { x: "v" }), [family("batches", "gauge")]),
        refused("series-conflict", key("team-a-y")),
      ],
      [step("PUT", key("team-a-x"), [family("restarts", "gauge")]), "accepted"],
    ],
  },
  {
    name: `stricter: ${STRICTER[0]?.name}`,
    steps: [
      [
        step("PUT", key("team-a-x"), [
          family("queue_age", "gauge", [
            ["instance", "i1"],
            ["y", ""],
          ]),
        ]),
        "accepted",
      ],
      [
        step("PUT", key("team-a-x", { instance: "i1" }), [family("queue_age", "gauge")]),
        refused("series-conflict", key("team-a-x")),
      ],
    ],
  },
];

describe("store consistency across groups agrees with the real Pushgateway and Prometheus", () => {
  for (const { name, steps, restartAt } of HAND_WRITTEN) {
    it(name, async () => {
      const failures = await runSequence(
        name,
        steps.map(([s]) => s),
        newTally(),
        { expected: steps.map(([, e]) => e), restartBefore: restartAt === undefined ? [] : [restartAt] },
      );
      expect(failures).toEqual([]);
    });
  }

  it(`generated sequences (seed ${SEED})`, async () => {
    const tally = newTally();
    const failures: string[] = [];
    const sequences = fc.sample(storeSequence, { seed: SEED, numRuns: SEQUENCES });
    for (const [n, steps] of sequences.entries()) {
      // Twice, a new pushguard takes over, its index read from the store.
      const restartBefore = [Math.floor(steps.length / 3), Math.floor((2 * steps.length) / 3)];
      failures.push(
        ...(await runSequence(`sequence ${n + 1} of seed ${SEED}`, steps, tally, { restartBefore })),
      );
    }
    console.info(`generated store sequences, seed ${SEED}: ${JSON.stringify(tally)}`);
    expect(failures, `seed ${SEED} (STORE_FUZZ_SEED=${SEED} reproduces)`).toEqual([]);
    // Not vacuous: clean writes, and clashes of every rule.
    expect(tally.acknowledged, JSON.stringify(tally)).toBeGreaterThan(SEQUENCES * 5);
    for (const rule of RULES)
      expect(tally.clashes[rule], `${rule}: ${JSON.stringify(tally)}`).toBeGreaterThan(0);
  }, 120_000);
});
