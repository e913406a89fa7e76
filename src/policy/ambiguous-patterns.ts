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
 * may itself contain `-`. A placeholder is safe only at the end of the pattern or followed by a
 * character its value can never contain. A team that injects or requires the same value as a
 * grouping-key label keeps groups apart anyway, so its patterns are not reported.
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
        const next = parts[index + 1];
        if (!syntax || labelled.has(part) || next === undefined) return;
        const literal = next !== "*" && next !== "?" && !next.startsWith("{");
        if (literal && !syntax.characters.test(next.charAt(0))) return;
        const follower = literal ? next.charAt(0) : next;
        const safe = pattern.replace(`${part}${literal ? follower : ""}`, `${part}${syntax.separator}`);
        warnings.push(
          `teams.${teamIndex}.jobs.${patternIndex}: "${pattern}" does not keep ${name}s apart: a ${name} ` +
            `may contain ${syntax.described}, so "${follower}" after {${name}} lets payments match the ` +
            `jobs of payments-prod; use a character it cannot contain, e.g. "${safe}", or inject ` +
            `{${name}} as a grouping-key label`,
        );
      });
    });
  });
  return warnings;
}
