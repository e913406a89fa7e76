import { challenges } from "../auth/challenge.js";
import type { Identity } from "../auth/identity.js";
import type { Config } from "../config/load.js";
import type { Action } from "../config/schema.js";
import { ProblemError } from "../errors.js";
import { type Operation, requiredAction } from "../pushgateway/classify.js";
import { formatGroupingKey, type GroupingKey } from "../pushgateway/grouping-key.js";
import { compileMember, describeMember } from "./members.js";
import { compilePattern, expandTemplate, type TemplateVars, templateVars } from "./template.js";

/** The outcome of authorizing one operation. */
export interface Decision {
  /** The team whose rule allowed the operation; `undefined` for probes and anonymous reads. */
  readonly team: string | undefined;
  /** A short description of the rule that matched, for audit lines and `explain`. */
  readonly rule: string;
  /** What to forward: the operation's canonical path, or the one rebuilt after label injection. */
  readonly upstreamPath: string;
  /** For pushes and deletes: the grouping key actually sent (after injection). */
  readonly groupingKey?: GroupingKey;
}

/** Optional sink for the reasons each team did or did not apply (`pushguard explain`). */
export type Trace = string[];

export type Authorize = (identity: Identity, operation: Operation, trace?: Trace) => Decision;

interface CompiledTeam {
  readonly name: string;
  readonly actions: ReadonlySet<Action>;
  readonly jobPatterns: readonly string[];
  readonly isMember: (identity: Identity) => boolean;
  readonly matchJob: (job: string, vars: TemplateVars) => boolean;
  readonly require: ReadonlyArray<readonly [string, string]>;
  readonly inject: ReadonlyArray<readonly [string, string]>;
}

/**
 * Deny unless a rule allows. A team allows its actions to its members; push and delete also need
 * the job to match one of the team's patterns and the grouping key to carry the labels the team
 * requires. Labels the team injects are added to (or overwrite) the grouping key that is
 * forwarded, so two teams pushing the same job name land in different groups. Anonymous callers
 * get only what `anonymous.actions` grants; when that is not enough they are asked to
 * authenticate (401), not forbidden (403).
 */
export function createAuthorizer(config: Config): Authorize {
  const teams: CompiledTeam[] = config.teams.map((team) => {
    const members = team.members.map(compileMember);
    const patterns = team.jobs.map(compilePattern);
    return {
      name: team.name,
      actions: new Set(team.actions),
      jobPatterns: team.jobs,
      isMember: (identity) => members.some((isMember) => isMember(identity)),
      matchJob: (job, vars) => patterns.some((match) => match(job, vars)),
      require: Object.entries(team.groupingKey.require),
      inject: Object.entries(team.groupingKey.inject),
    };
  });
  const candidates = indexTeams(config, teams);
  const memberDescriptions = new Map(
    config.teams.map((team) => [team.name, team.members.map(describeMember)]),
  );
  const anonymousActions = new Set<Action>(config.anonymous.actions);

  return function authorize(identity, operation, trace) {
    const action = requiredAction(operation);
    if (action === undefined)
      return { team: undefined, rule: "probes are public", upstreamPath: operation.upstreamPath };
    const anonymousGrant = anonymousActions.has(action)
      ? { team: undefined, rule: `anonymous.actions grants ${action}`, upstreamPath: operation.upstreamPath }
      : undefined;
    if (identity.via === "anonymous") {
      if (anonymousGrant) return anonymousGrant;
      trace?.push(`no credential was presented and anonymous.actions does not grant ${action}`);
      throw new ProblemError(
        "ERR_AUTH_MISSING",
        `${action} needs a credential: send the token as "Authorization: Bearer <token>" or as the password of HTTP Basic auth (no other header, such as X-Auth-Token or X-Api-Key, and no query parameter is read)`,
        {
          headers: challenges(),
          details: { action },
          reason: "missing",
        },
      );
    }
    const key = "groupingKey" in operation ? operation.groupingKey : undefined;
    // `explain` walks every team to say why each did not apply; requests only look at the teams
    // that can name this identity at all (10k identities must not mean 10k checks per push).
    for (const team of trace ? teams : candidates(identity)) {
      if (!team.isMember(identity)) {
        trace?.push(
          `team ${team.name}: not a member (members: ${memberDescriptions.get(team.name)?.join("; ")})`,
        );
        continue;
      }
      if (!team.actions.has(action)) {
        trace?.push(`team ${team.name}: member, but the team may only ${[...team.actions].join(", ")}`);
        continue;
      }
      if (key === undefined) {
        return {
          team: team.name,
          rule: `team ${team.name} grants ${action}`,
          upstreamPath: operation.upstreamPath,
        };
      }
      const vars = templateVars(identity, team.name);
      if (!team.matchJob(key.job, vars)) {
        trace?.push(`team ${team.name}: job "${key.job}" matches none of ${team.jobPatterns.join(", ")}`);
        continue;
      }
      const unmet = unmetRequirement(team, key, vars);
      if (unmet) {
        trace?.push(`team ${team.name}: ${unmet}`);
        continue;
      }
      const groupingKey = inject(team, key, vars);
      if (!groupingKey) {
        trace?.push(`team ${team.name}: an injected label needs a value this identity does not have`);
        continue;
      }
      return {
        team: team.name,
        rule: `team ${team.name} grants ${action} on jobs ${team.jobPatterns.join(", ")}`,
        upstreamPath: team.inject.length > 0 ? formatGroupingKey(groupingKey) : operation.upstreamPath,
        groupingKey,
      };
    }
    if (anonymousGrant) return anonymousGrant;
    if (teams.length === 0) trace?.push("no teams are configured");
    const job = key?.job;
    throw new ProblemError(
      "ERR_ACL_DENIED",
      job === undefined
        ? `identity "${identity.name}" may not ${action}`
        : `identity "${identity.name}" may not ${action} job "${job}"`,
      { details: job === undefined ? { action } : { action, job }, reason: "no-rule" },
    );
  };
}

/**
 * The teams that could contain an identity, in config order: teams listing a static identity by
 * name, or teams with a selector for a JWT identity's issuer.
 */
function indexTeams(
  config: Config,
  teams: readonly CompiledTeam[],
): (identity: Identity) => readonly CompiledTeam[] {
  const byStaticName = new Map<string, CompiledTeam[]>();
  const byIssuer = new Map<string, CompiledTeam[]>();
  config.teams.forEach((team, index) => {
    const compiled = teams[index] as CompiledTeam;
    for (const member of team.members) {
      const [map, key] = typeof member === "string" ? [byStaticName, member] : [byIssuer, member.issuer];
      const list = map.get(key) ?? [];
      if (list.at(-1) !== compiled) list.push(compiled);
      map.set(key, list);
    }
  });
  return (identity) =>
    (identity.via === "static-token"
      ? byStaticName.get(identity.name)
      : identity.issuer !== undefined
        ? byIssuer.get(identity.issuer)
        : undefined) ?? [];
}

function unmetRequirement(team: CompiledTeam, key: GroupingKey, vars: TemplateVars): string | undefined {
  for (const [label, template] of team.require) {
    const expected = expandTemplate(template, vars);
    const actual = key.labels[label];
    if (expected === undefined) return `required label ${label} needs a value this identity does not have`;
    if (actual !== expected) {
      return `label ${label} must be "${expected}" (got ${actual === undefined ? "none" : `"${actual}"`})`;
    }
  }
  return undefined;
}

function inject(team: CompiledTeam, key: GroupingKey, vars: TemplateVars): GroupingKey | undefined {
  if (team.inject.length === 0) return key;
  const labels: Record<string, string> = { ...key.labels };
  for (const [label, template] of team.inject) {
    const value = expandTemplate(template, vars);
    if (value === undefined) return undefined;
    labels[label] = value;
  }
  return { job: key.job, labels };
}
