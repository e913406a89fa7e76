import type { Config } from "../config/load.js";
import { compileGlob } from "../policy/glob.js";
import type { StoreRules } from "./store-index.js";

/** Each team's store rules under one config; rebuilt on every reload, like the policy. */
export interface TeamStoreRules {
  /** The rules for pushes of `team` (undefined: no team, no quota). */
  (team: string | undefined): StoreRules;
  /** Every configured team, for the usage gauges. */
  readonly teams: readonly string[];
}

/**
 * Quotas (a team's own `quotas` over `store.quotas`) and name ownership
 * (`store.names.ownership`, `store.names.shared`) per team. `checkNames` is false when the names
 * are decided in Redis across replicas (`store.index.redis`).
 */
export function createStoreRules(config: Config): TeamStoreRules {
  const defaults = config.store.quotas;
  const checkNames = config.store.index.redis === undefined;
  const shared = config.store.names.shared.map(compileGlob);
  const firstTeamOwns =
    config.store.names.ownership === "first"
      ? (name: string) => !shared.some((matches) => matches(name))
      : () => false;
  const fallback: StoreRules = {
    quota: { groups: defaults.groupsPerTeam, series: defaults.seriesPerTeam },
    firstTeamOwns,
    checkNames,
  };
  const byTeam = new Map<string, StoreRules>(
    config.teams.map((team) => [
      team.name,
      {
        quota: {
          groups: team.quotas.groups ?? defaults.groupsPerTeam,
          series: team.quotas.series ?? defaults.seriesPerTeam,
        },
        firstTeamOwns,
        checkNames,
      },
    ]),
  );
  const unlimited: StoreRules = {
    quota: { groups: Number.POSITIVE_INFINITY, series: Number.POSITIVE_INFINITY },
    firstTeamOwns,
    checkNames,
  };
  return Object.assign(
    (team: string | undefined) => (team === undefined ? unlimited : (byTeam.get(team) ?? fallback)),
    { teams: config.teams.map((team) => team.name) },
  );
}
