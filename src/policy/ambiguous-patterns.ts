import type { Config } from "../config/load.js";

/**
 * Identity values whose syntax Kubernetes fixes: a namespace is a DNS-1123 label, a
 * ServiceAccount name a DNS-1123 subdomain
 * (https://kubernetes.io/docs/concepts/overview/working-with-objects/names/).
 */
const VALUE_SYNTAX: Record<string, { characters: RegExp; described: string; separator: string }> = {
  namespace: { characters: /^[a-z0-9-]$/, described: 'a-z, 0-9 and "-"', separator: "_" },
  serviceAccount: { characters: /^[a-z0-9.-]$/, described: 'a-z, 0-9, "-" and "."', separator: "_" },
};

const PARTS = /(\{[A-Za-z][A-Za-z0-9_.:-]*\}|\*|\?)/;

/**
 * Job patterns that do not keep identities apart: `{namespace}-*` owned by namespace `payments`
 * also matches `payments-prod-x`, a job of namespace `payments-prod`, because a namespace name
 * may itself contain `-`; and `*-{namespace}` owned by `prod` matches `a-b-prod`, a job of
 * `b-prod`. A placeholder is safe only when it ends the pattern or is followed by a character its
 * value can never contain, and when no `*` comes before it unless such a character stands between
 * them. A team that injects or requires the same value as a grouping-key label keeps groups apart
 * anyway, so its patterns are not reported.
 */
export function ambiguousPatternWarnings(config: Config): string[] {
  const warnings: string[] = [];
  config.teams.forEach((team, teamIndex) => {
    const labelled = new Set(
      [...Object.values(team.groupingKey.inject), ...Object.values(team.groupingKey.require)].filter(
        (template) => /^\{[A-Za-z]+\}$/.test(template),
      ),
    );
    team.jobs.forEach((pattern, patternIndex) => {
      const parts = pattern.split(PARTS).filter((part) => part !== "");
      parts.forEach((part, index) => {
        const name = part.startsWith("{") ? part.slice(1, -1) : undefined;
        const syntax = name === undefined ? undefined : VALUE_SYNTAX[name];
        if (!syntax || labelled.has(part)) return;
        const key = `teams.${teamIndex}.jobs.${patternIndex}`;
        const ending = ambiguousEnding(part, parts[index + 1], syntax);
        if (ending) {
          warnings.push(
            `${key}: "${pattern}" does not keep ${name}s apart: a ${name} may contain ${syntax.described}, ` +
              `so "${ending.follower}" after {${name}} lets payments match the jobs of payments-prod; use a ` +
              `character it cannot contain, e.g. "${pattern.replace(ending.replace, ending.with)}", or ` +
              `inject {${name}} as a grouping-key label`,
          );
        }
        const between = wildcardBefore(parts.slice(0, index), syntax);
        if (between !== undefined) {
          warnings.push(
            `${key}: "${pattern}" does not keep ${name}s apart: a ${name} may contain ${syntax.described}, ` +
              `so a "*" before {${name}} lets prod match the jobs of b-prod; put a character it cannot ` +
              `contain before it, e.g. "${pattern.replace(`*${between}${part}`, `*${syntax.separator}${part}`)}", ` +
              `or inject {${name}} as a grouping-key label`,
          );
        }
      });
    });
  });
  return warnings;
}

type Syntax = (typeof VALUE_SYNTAX)[string];

/** What follows `part` lets its value run on: the follower, and the fix (replace with separator). */
function ambiguousEnding(
  part: string,
  next: string | undefined,
  syntax: Syntax,
): { follower: string; replace: string; with: string } | undefined {
  if (next === undefined) return undefined;
  const literal = next !== "*" && next !== "?" && !next.startsWith("{");
  if (literal && !syntax.characters.test(next.charAt(0))) return undefined;
  const follower = literal ? next.charAt(0) : next;
  return { follower, replace: `${part}${literal ? follower : ""}`, with: `${part}${syntax.separator}` };
}

/**
 * The literal text between a `*` and the placeholder when every character of it could belong to
 * the value (so the `*` can swallow the start of another identity's value); `undefined` when the
 * placeholder starts the pattern, follows a fixed prefix, `?` or another placeholder, or a
 * character the value cannot contain stands between.
 */
function wildcardBefore(before: readonly string[], syntax: Syntax): string | undefined {
  let between = "";
  for (let index = before.length - 1; index >= 0; index--) {
    const part = before[index] as string;
    if (part === "*") return between;
    if (part === "?" || part.startsWith("{")) return undefined;
    if (![...part].every((character) => syntax.characters.test(character))) return undefined;
    between = part + between;
  }
  return undefined;
}
