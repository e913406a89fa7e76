import type { Config } from "../config/load.js";
import type { PushLimits } from "../config/validation-schema.js";
import { compileGlob } from "../policy/glob.js";

/** What one team may push: its limits, which metric names, and which labels it may not set. */
export interface PushPolicy {
  readonly limits: PushLimits;
  /** The Pushgateway runs with `--push.enable-utf8-names`: names may be any UTF-8. */
  readonly utf8Names: boolean;
  /** Why `name` may not be pushed (the pattern that denies it), or undefined when it may. */
  readonly deniedName: (name: string) => string | undefined;
  /**
   * The team that claims `name` by its `metricNames.own` patterns when this team does not, so this
   * team may not push it; undefined when nobody else claims it.
   */
  readonly ownedElsewhere: (name: string) => { team: string; pattern: string } | undefined;
  /**
   * Labels this team may not set: those other teams' `groupingKey` injects or requires, and those
   * reserved in config, except the ones the team's own `groupingKey` injects or requires.
   */
  readonly reservedLabels: ReadonlySet<string>;
  /** One line per setting, for `pushguard explain`. */
  readonly summary: readonly string[];
}

/**
 * Compiles each team's push policy once per config: the global `validation` section with the
 * team's `validation` over it. Team limits replace the global ones; a team's `metricNames.allow`
 * replaces the global allow list, and its `deny` adds to the global one (nobody escapes it).
 * `undefined` (no team) gets the global policy.
 */
export function createPushPolicies(config: Config): (team: string | undefined) => PushPolicy {
  const global = config.validation;
  // A team sets the labels it injects, and those it requires (the authorizer checks their value):
  // they mark the team's namespace, so nobody else may set them.
  const owned = (team: Config["teams"][number]) => [
    ...Object.keys(team.groupingKey.inject),
    ...Object.keys(team.groupingKey.require),
  ];
  const reservedByAnyone = new Set([...global.reservedLabels, ...config.teams.flatMap(owned)]);
  // Names claimed by a team's `metricNames.own`: others may not push them (patterns that overlap
  // let each of their teams push the names they share).
  const claims = config.teams.flatMap((team) =>
    team.validation.metricNames.own.map((pattern) => ({
      team: team.name,
      pattern,
      matches: compileGlob(pattern),
    })),
  );
  const build = (
    limits: PushLimits,
    allow: readonly string[],
    deny: readonly string[],
    own: readonly string[],
    team?: string,
  ): PushPolicy => {
    const allowed = allow.map(compileGlob);
    const denied = deny.map((pattern) => ({ pattern, matches: compileGlob(pattern) }));
    const reservedLabels = new Set([...reservedByAnyone].filter((label) => !own.includes(label)));
    return {
      limits,
      utf8Names: global.utf8Names,
      deniedName(name) {
        const deniedBy = denied.find(({ matches }) => matches(name));
        if (deniedBy) return `it matches the denied pattern "${deniedBy.pattern}"`;
        if (!allowed.some((matches) => matches(name))) return `it matches none of ${allow.join(", ")}`;
        return undefined;
      },
      ownedElsewhere(name) {
        let elsewhere: { team: string; pattern: string } | undefined;
        for (const claim of claims) {
          if (!claim.matches(name)) continue;
          if (claim.team === team) return undefined;
          elsewhere ??= { team: claim.team, pattern: claim.pattern };
        }
        return elsewhere;
      },
      reservedLabels,
      summary: [
        `limits: ${Object.entries(limits)
          .map(([key, value]) => `${key} ${value}`)
          .join(", ")}`,
        `metric names: allow ${allow.join(", ")}${deny.length > 0 ? `; deny ${deny.join(", ")}` : ""}`,
        `reserved labels: ${reservedLabels.size > 0 ? [...reservedLabels].sort().join(", ") : "none"}`,
        ...(team !== undefined && claims.some((claim) => claim.team === team)
          ? [
              `owns metric names: ${claims
                .filter((claim) => claim.team === team)
                .map((claim) => claim.pattern)
                .join(", ")}`,
            ]
          : []),
      ],
    };
  };
  const fallback = build(global.limits, global.metricNames.allow, global.metricNames.deny, []);
  const byTeam = new Map(
    config.teams.map((team) => {
      const own = team.validation;
      const limits = { ...global.limits, ...withoutUndefined(own.limits) } as PushLimits;
      const allow = own.metricNames.allow ?? global.metricNames.allow;
      const deny = [...global.metricNames.deny, ...own.metricNames.deny];
      return [team.name, build(limits, allow, deny, owned(team), team.name)];
    }),
  );
  return (team) => (team === undefined ? fallback : (byTeam.get(team) ?? fallback));
}

function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, item]) => item !== undefined)) as Partial<T>;
}
