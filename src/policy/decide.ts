import { challenges } from "../auth/challenge.js";
import type { Identity } from "../auth/identity.js";
import type { Config } from "../config/load.js";
import type { Action } from "../config/schema.js";
import { ProblemError } from "../errors.js";
import { type Operation, requiredAction } from "../pushgateway/classify.js";
import { compileGlob } from "./glob.js";

/** The outcome of authorizing one operation: which team's rule allowed it (if any rule was needed). */
export interface Decision {
  /** The team whose rule allowed the operation; `undefined` for probes and anonymous reads. */
  readonly team: string | undefined;
  /** A short description of the rule that matched, for audit lines and `explain`. */
  readonly rule: string;
}

export type Authorize = (identity: Identity, operation: Operation) => Decision;

interface CompiledTeam {
  readonly name: string;
  readonly actions: ReadonlySet<Action>;
  readonly jobPatterns: readonly string[];
  readonly matchJob: (job: string) => boolean;
}

/**
 * Deny unless a rule allows. A team allows an action to its members; push and delete also need
 * the job to match one of the team's patterns. Anonymous callers get only what `anonymous.actions`
 * grants; when that is not enough they are told to authenticate (401), not forbidden (403).
 */
export function createAuthorizer(config: Config): Authorize {
  const teamsByMember = new Map<string, CompiledTeam[]>();
  for (const team of config.teams) {
    const matchers = team.jobs.map(compileGlob);
    const compiled: CompiledTeam = {
      name: team.name,
      actions: new Set(team.actions),
      jobPatterns: team.jobs,
      matchJob: (job) => matchers.some((match) => match(job)),
    };
    for (const member of team.members) {
      const list = teamsByMember.get(member) ?? [];
      list.push(compiled);
      teamsByMember.set(member, list);
    }
  }
  const anonymousActions = new Set<Action>(config.anonymous.actions);

  return function authorize(identity, operation) {
    const action = requiredAction(operation);
    if (action === undefined) return { team: undefined, rule: "probes are public" };
    if (identity.via === "anonymous") {
      if (anonymousActions.has(action))
        return { team: undefined, rule: `anonymous.actions grants ${action}` };
      throw new ProblemError("ERR_AUTH_MISSING", `${action} needs a credential`, {
        headers: challenges(),
        details: { action },
        reason: "missing",
      });
    }
    const teams = teamsByMember.get(identity.name) ?? [];
    const job = "groupingKey" in operation ? operation.groupingKey.job : undefined;
    for (const team of teams) {
      if (!team.actions.has(action)) continue;
      if (job === undefined) return { team: team.name, rule: `team ${team.name} grants ${action}` };
      if (team.matchJob(job)) {
        return {
          team: team.name,
          rule: `team ${team.name} grants ${action} on jobs ${team.jobPatterns.join(", ")}`,
        };
      }
    }
    if (anonymousActions.has(action)) return { team: undefined, rule: `anonymous.actions grants ${action}` };
    throw new ProblemError(
      "ERR_ACL_DENIED",
      job === undefined
        ? `identity "${identity.name}" may not ${action}`
        : `identity "${identity.name}" may not ${action} job "${job}"`,
      { details: job === undefined ? { action } : { action, job }, reason: "no-rule" },
    );
  };
}
