import { createHash } from "node:crypto";
import { compileGlob } from "../policy/glob.js";
import type { RatePolicy } from "./gcra.js";
import type { LimitCheck } from "./store.js";

export const scopes = ["identity", "team", "job"] as const;
export type Scope = (typeof scopes)[number];
/** Writes are push, delete and wipe; reads are everything under `read`. Probes are never limited. */
export type LimitKind = "write" | "read";

/** One `rateLimit.rules[]` entry. */
export interface RateLimitRule {
  readonly scope: Scope;
  readonly kind: LimitKind;
  /** Only for requests authorized through this team. */
  readonly team?: string;
  /** `job` scope: the job-name globs the rule covers. */
  readonly jobs?: readonly string[];
  readonly rate: number;
  readonly burst: number;
}

/** What a request is, in the terms rules match on. */
export interface LimitSubject {
  readonly kind: LimitKind;
  /** Whose bucket the identity scope uses: the identity, or the client address when anonymous. */
  readonly identityKey: string;
  readonly team: string | undefined;
  readonly job: string | undefined;
}

export interface ScopedCheck extends LimitCheck {
  readonly scope: Scope;
}

interface CompiledRule extends RateLimitRule {
  readonly matchJob: (job: string) => boolean;
  readonly policy: RatePolicy;
}

/** Job names are client-chosen and may be long; past this they are hashed into the key. */
const MAX_KEY_PART = 128;

/**
 * Picks, for each scope, the one rule that applies to a request, and turns it into a bucket:
 * - identity: `identity:<kind>:<identity>`, one bucket per identity (per client address when
 *   anonymous);
 * - team: `team:<kind>:<team>`, shared by every member pushing through that team;
 * - job: `job:write:<job>`, one bucket per job name matching the rule's patterns.
 *
 * Within a scope and kind, a rule naming the request's team wins over rules naming none; among
 * those, the first listed wins. A request must fit every bucket picked.
 */
export function compileRules(rules: readonly RateLimitRule[]): (subject: LimitSubject) => ScopedCheck[] {
  const compiled: CompiledRule[] = rules.map((rule) => {
    const matchers = (rule.jobs ?? []).map(compileGlob);
    return {
      ...rule,
      matchJob: (job) => matchers.some((match) => match(job)),
      policy: { name: `${rule.scope}-${rule.kind}`, rate: rule.rate, burst: rule.burst },
    };
  });
  const candidates = (scope: Scope, kind: LimitKind) => {
    const inScope = compiled.filter((rule) => rule.scope === scope && rule.kind === kind);
    return [...inScope.filter((rule) => rule.team !== undefined), ...inScope.filter((rule) => !rule.team)];
  };
  const byScope = new Map<string, CompiledRule[]>();
  for (const scope of scopes) {
    for (const kind of ["write", "read"] as const) byScope.set(`${scope}:${kind}`, candidates(scope, kind));
  }

  return function checksFor(subject) {
    const checks: ScopedCheck[] = [];
    for (const scope of scopes) {
      const subjectKey = keyPart(scope, subject);
      if (subjectKey === undefined) continue;
      const rule = byScope
        .get(`${scope}:${subject.kind}`)
        ?.find(
          (candidate) =>
            (candidate.team === undefined || candidate.team === subject.team) &&
            (scope !== "job" || candidate.matchJob(subject.job as string)),
        );
      if (rule) checks.push({ scope, key: `${scope}:${subject.kind}:${subjectKey}`, policy: rule.policy });
    }
    return checks;
  };
}

function keyPart(scope: Scope, subject: LimitSubject): string | undefined {
  switch (scope) {
    case "identity":
      return subject.identityKey;
    case "team":
      return subject.team;
    case "job":
      if (subject.job === undefined) return undefined;
      return subject.job.length > MAX_KEY_PART
        ? `sha256:${createHash("sha256").update(subject.job).digest("hex")}`
        : subject.job;
  }
}
