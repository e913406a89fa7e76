import { accessSync, constants } from "node:fs";
import type { Config } from "../config/load.js";
import { ambiguousPatternWarnings } from "../policy/ambiguous-patterns.js";
import { describeMember } from "../policy/members.js";
import { describeUpstream } from "../upstream/create-gateway.js";

/** The human summary `pushguard check` prints: what listens, where it forwards, who may do what. */
export function summarizeConfig(config: Config): string {
  const issuers = [
    ...config.identities.oidc.map((issuer) => `oidc ${issuer.name} (${issuer.issuer})`),
    ...config.identities.kubernetes.map((issuer) => `kubernetes ${issuer.name} (${issuer.issuer})`),
  ];
  const lines = [
    `config ${config.source} is valid`,
    `listeners: api ${config.listen.api}, metrics ${config.listen.metrics}`,
    `upstream: ${describeUpstream(config.upstream)} (timeout ${config.upstream.timeoutMs} ms, ${config.upstream.connections} connections)`,
    `body: max ${config.body.maxBytes} bytes, max ${config.body.maxDecompressedBytes} bytes decompressed`,
    `identities: ${config.identities.static.length} static token(s)${config.identities.static.length ? `: ${config.identities.static.map((i) => i.name).join(", ")}` : ""}`,
    `issuers: ${issuers.length ? issuers.join(", ") : "none"}`,
    "teams:",
    ...config.teams.map(
      (team) =>
        `  ${team.name}: ${team.actions.join(", ")}${team.jobs.length ? ` on jobs ${team.jobs.join(", ")}` : ""} — members ${team.members.map(describeMember).join(", ")}${labelRules(team.groupingKey)}${team.ttl ? `; groups expire after ${team.ttl}` : ""}`,
    ),
    `anonymous: ${config.anonymous.actions.length ? config.anonymous.actions.join(", ") : "nothing (every request needs a credential)"}`,
    ...rateLimits(config),
    storeIndex(config.store),
    `overload: at most ${config.overload.maxConcurrent} upstream requests at once, ${config.overload.maxQueued} queued for ${config.overload.maxQueueWaitMs} ms, ${config.overload.maxBufferedBodyBytes} body bytes in memory`,
    `janitor: ${
      config.janitor.enabled
        ? `every ${config.janitor.intervalMs} ms${config.janitor.dryRun ? " (dry run)" : ""}, default ttl ${config.janitor.defaultTtl ?? "none"}, lease ${config.janitor.lease.store}`
        : "off (pushed groups never expire)"
    }`,
  ];
  if (config.teams.length === 0) lines.splice(lines.indexOf("teams:") + 1, 0, "  (none)");
  const warnings = configWarnings(config);
  if (warnings.length > 0) lines.push("warnings:", ...warnings.map((warning) => `  - ${warning}`));
  return `${lines.join("\n")}\n`;
}

/**
 * What is valid but probably not what was meant: job patterns that let one identity reach
 * another's jobs, and issuer files that cannot be read here (read only when keys are fetched, so
 * a config for the cluster can still be checked, and explained, on a laptop).
 */
export function configWarnings(config: Config): string[] {
  const unreadable = config.identities.kubernetes.flatMap((issuer, index) =>
    (["caFile", "tokenFile"] as const).flatMap((key) => {
      const file = issuer[key];
      if (file === undefined || readable(file)) return [];
      return [
        `identities.kubernetes.${index}.${key}: cannot read ${file}; tokens of issuer ${issuer.name} are refused (503) until it can be read`,
      ];
    }),
  );
  return [...ambiguousPatternWarnings(config), ...unreadable];
}

function readable(file: string): boolean {
  try {
    accessSync(file, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

function rateLimits(config: Config): string[] {
  const { rules, store, onStoreError, authFailures } = config.rateLimit;
  const where = store === "redis" ? `redis, ${onStoreError} when it is down` : "memory, per replica";
  return [
    `rate limits (${where}):${rules.length ? "" : " none"}`,
    ...rules.map(
      (rule) =>
        `  ${rule.kind}s per ${rule.scope}${rule.team ? ` (team ${rule.team} only)` : ""}${rule.jobs ? ` on jobs ${rule.jobs.join(", ")}` : ""}: ${rule.rate}/s, burst ${rule.burst}`,
    ),
    `  failed authentications per client address: ${authFailures.rate}/s, burst ${authFailures.burst}`,
  ];
}

function storeIndex({ index, quotas }: Config["store"]): string {
  return index.enabled
    ? `store index: on, every push checked against every stored group (full re-read every ${index.resyncIntervalMs} ms); per team at most ${quotas.groupsPerTeam} groups, ${quotas.seriesPerTeam} series`
    : "store index: off (keep the Pushgateway's own consistency check on)";
}

function labelRules(rules: Config["teams"][number]["groupingKey"]): string {
  const pairs = (labels: Readonly<Record<string, string>>) =>
    Object.entries(labels)
      .map(([name, value]) => `${name}=${value}`)
      .join(", ");
  const parts = [];
  if (Object.keys(rules.require).length) parts.push(`requires labels ${pairs(rules.require)}`);
  if (Object.keys(rules.inject).length) parts.push(`injects labels ${pairs(rules.inject)}`);
  return parts.length ? `; ${parts.join("; ")}` : "";
}
