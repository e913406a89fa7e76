import type { Config } from "../config/load.js";

/** The human summary `pushguard check` prints: what listens, where it forwards, who may do what. */
export function summarizeConfig(config: Config): string {
  const lines = [
    `config ${config.source} is valid`,
    `listeners: api ${config.listen.api}, metrics ${config.listen.metrics}`,
    `upstream: ${config.upstream.url} (timeout ${config.upstream.timeoutMs} ms, ${config.upstream.connections} connections)`,
    `body: max ${config.body.maxBytes} bytes, max ${config.body.maxDecompressedBytes} bytes decompressed`,
    `identities: ${config.identities.static.length} static token(s)${config.identities.static.length ? `: ${config.identities.static.map((i) => i.name).join(", ")}` : ""}`,
    "teams:",
    ...config.teams.map(
      (team) =>
        `  ${team.name}: ${team.actions.join(", ")}${team.jobs.length ? ` on jobs ${team.jobs.join(", ")}` : ""} — members ${team.members.join(", ")}`,
    ),
    `anonymous: ${config.anonymous.actions.length ? config.anonymous.actions.join(", ") : "nothing (every request needs a credential)"}`,
  ];
  if (config.teams.length === 0) lines.splice(lines.indexOf("teams:") + 1, 0, "  (none)");
  return `${lines.join("\n")}\n`;
}
