import { parseTtl } from "./duration.js";

/** The parts of a team rule that decide which groups it could have pushed. */
export interface TeamRule {
  readonly name: string;
  readonly actions: readonly string[];
  readonly jobs: readonly string[];
  readonly ttl?: string;
  readonly groupingKey: {
    readonly require: Readonly<Record<string, string>>;
    readonly inject: Readonly<Record<string, string>>;
  };
}

/** Who a stored group belongs to, and how long it may live. */
export interface Attribution {
  /** Every team that could have pushed the group, in config order. */
  readonly owners: readonly string[];
  /** The owner whose TTL governs: the longest-lived one. `undefined` when no team owns the group. */
  readonly team: string | undefined;
  /** Milliseconds the group may go without a push; `Infinity` when it never expires. */
  readonly ttlMs: number;
}

export type Attribute = (labels: Readonly<Record<string, string>>) => Attribution;

const PLACEHOLDER = /^\{([A-Za-z][A-Za-z0-9_.:-]*)\}$/;
const TOKENS = /(\{[A-Za-z][A-Za-z0-9_.:-]*\}|\*|\?)/;

/**
 * Attributes stored groups to team rules without knowing who pushed them. A team could have
 * pushed a group when it may push, the group's job matches one of its patterns, and the group
 * carries every label the team requires or injects with a value the template can produce.
 * Placeholders are bound from those labels where the template is exactly one placeholder
 * (`inject: { namespace: "{namespace}" }` binds `{namespace}` for the job pattern
 * `{namespace}-*`); `{team}` is the team's name; any other placeholder matches any value. So the
 * answer can only err towards "could have": never towards missing a real owner.
 *
 * A group expires only when every team that could own it lets it: its TTL is the longest of its
 * owners' (a team without `ttl` uses `defaultTtl`; without either it never expires). A team's TTL
 * therefore never removes a group another team could own and keeps. Groups no team owns (pushed
 * before pushguard, or by a team since removed) never expire.
 */
export function compileOwnership(teams: readonly TeamRule[], defaultTtl: string | undefined): Attribute {
  const fallback = defaultTtl === undefined ? Number.POSITIVE_INFINITY : (parseTtl(defaultTtl) as number);
  const rules = teams
    .filter((team) => team.actions.includes("push"))
    .map((team) => ({
      name: team.name,
      ttlMs: team.ttl === undefined ? fallback : (parseTtl(team.ttl) as number),
      couldOwn: compileTeam(team),
    }));
  return function attribute(labels) {
    const owners = rules.filter((rule) => rule.couldOwn(labels));
    if (owners.length === 0) return { owners: [], team: undefined, ttlMs: Number.POSITIVE_INFINITY };
    const governing = owners.reduce((longest, rule) => (rule.ttlMs > longest.ttlMs ? rule : longest));
    return { owners: owners.map((rule) => rule.name), team: governing.name, ttlMs: governing.ttlMs };
  };
}

function compileTeam(team: TeamRule): (labels: Readonly<Record<string, string>>) => boolean {
  // The stored value of an injected label is the injected one, whatever the client sent.
  const constraints = Object.entries({ ...team.groupingKey.require, ...team.groupingKey.inject });
  const jobs = team.jobs.map((pattern) => pattern.split(TOKENS).filter((part) => part !== ""));
  return (labels) => {
    const bound = new Map<string, string>([["team", team.name]]);
    for (const [label, template] of constraints) {
      const value = labels[label];
      if (value === undefined || value === "") return false;
      const variable = PLACEHOLDER.exec(template)?.[1];
      if (variable !== undefined && variable !== "team") {
        if (bound.has(variable) && bound.get(variable) !== value) return false;
        bound.set(variable, value);
      } else if (!toRegExp(template.split(TOKENS), bound, false).test(value)) {
        return false;
      }
    }
    const job = labels.job ?? "";
    return jobs.some((parts) => toRegExp(parts, bound, true).test(job));
  };
}

/** A pattern or template as an anchored regex; unbound placeholders match any non-empty value. */
function toRegExp(parts: readonly string[], bound: ReadonlyMap<string, string>, glob: boolean): RegExp {
  let source = "";
  for (const part of parts) {
    if (part === "") continue;
    const variable = PLACEHOLDER.exec(part)?.[1];
    if (variable !== undefined)
      source += bound.has(variable) ? escapeRegExp(bound.get(variable) as string) : ".+";
    else if (glob && part === "*") source += ".*";
    else if (glob && part === "?") source += ".";
    else source += escapeRegExp(part);
  }
  return new RegExp(`^${source}$`, "su");
}

function escapeRegExp(text: string): string {
  return text.replace(/[\\^$.|+()[\]{}*?]/g, "\\$&");
}
