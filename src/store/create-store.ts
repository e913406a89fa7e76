import type { Config } from "../config/load.js";
import { ProblemError } from "../errors.js";
import { compileOwnership } from "../janitor/ownership.js";
import type { Logger } from "../observability/logger.js";
import type { Operation } from "../pushgateway/classify.js";
import type { Gateway } from "../upstream/gateway.js";
import type { PushedFamilies } from "../validation/validate-push.js";
import { PushViolation } from "../validation/violation.js";
import type { GatewayFamilies } from "./gateway-families.js";
import { type Reservation, StoreIndex, type TeamQuota } from "./store-index.js";
import { StoreSync } from "./store-sync.js";

/** The consistency stage: what a write may store given everything else stored, and after it. */
export interface StoreStage {
  /** Whether the index has been built (pushes are refused until it is). */
  readonly ready: boolean;
  /** @throws ProblemError 409 ERR_FAMILY_CONFLICT, or 503 while the index is not built */
  /** @param team the pushing team, whose quota applies */
  reservePush(
    path: string,
    method: "PUT" | "POST",
    families: PushedFamilies,
    team: string | undefined,
  ): Reservation;
  /** Groups and series stored per team, with each team's quota (for the `pushguard_team_*` gauges). */
  usage(): Array<{ team: string; groups: number; series: number; quota: TeamQuota }>;
  /** Call before sending a write: what its settlement must compare against. */
  beforeSend(operation: Operation, path: string): number | undefined;
  /** Records what the Pushgateway answered to a write: `undefined` when no answer came. */
  settle(
    operation: Operation,
    path: string,
    status: number | undefined,
    reservation?: Reservation,
    sentAt?: number,
  ): void;
  /** `gateway`, with the deletes other writers (the janitor) send through it kept in the index. */
  observe(gateway: Gateway): Gateway;
  start(): Promise<void>;
  stop(): void;
}

/** `store.index` as a stage, or undefined when it is off. */
export function createStore(
  config: Config,
  deps: { gateway: Gateway; logger: Logger; gatewayFamilies: GatewayFamilies },
): StoreStage | undefined {
  if (!config.store.index.enabled) return undefined;
  const index = new StoreIndex((name) => deps.gatewayFamilies.holder(name)?.type);
  const attribute = compileOwnership(config.teams, undefined);
  const sync = new StoreSync(
    index,
    deps.gateway,
    deps.logger,
    config.store.index.resyncIntervalMs,
    (labels) => attribute(labels).owners[0],
  );
  const quotas = teamQuotas(config);
  return {
    get ready() {
      return sync.ready;
    },
    reservePush(path, method, families, team) {
      if (!sync.ready) {
        throw new ProblemError(
          "ERR_STORE_UNAVAILABLE",
          "the store index is not built yet, so the push cannot be checked",
          {
            headers: { "retry-after": "2" },
          },
        );
      }
      try {
        return index.reservePush(path, method, families, team, team === undefined ? undefined : quotas(team));
      } catch (error) {
        throw error instanceof PushViolation ? error.toProblem() : error;
      }
    },
    beforeSend(operation, path) {
      return operation.action === "delete" ? index.versionOf(path) : undefined;
    },
    settle(operation, path, status, reservation, sentAt) {
      if (status === undefined || status >= 500) {
        // It may or may not have been stored: keep what was reserved, and read the store again.
        sync.resyncSoon();
        return;
      }
      const stored = status >= 200 && status < 300;
      if (operation.action === "push") {
        if (stored) reservation?.commit();
        else reservation?.rollback();
      } else if (operation.action === "delete" && stored) {
        // A push reserved after the DELETE was sent lands after it: keep it, and read the store.
        if (!index.deleteGroup(path, sentAt ?? index.versionOf(path))) sync.resyncSoon();
      } else if (operation.action === "wipe" && stored) {
        index.clear();
      }
    },
    usage() {
      const teams = new Set([...config.teams.map((team) => team.name), ...index.usage().keys()]);
      return [...teams].map((team) => {
        const used = index.usage().get(team);
        return { team, groups: used?.groups ?? 0, series: used?.series ?? 0, quota: quotas(team) };
      });
    },
    observe(gateway) {
      return {
        locks: gateway.locks,
        ready: () => gateway.ready(),
        replicas: () => gateway.replicas(),
        close: () => gateway.close(),
        async request(request) {
          const sentAt = request.method === "DELETE" ? index.versionOf(request.path) : undefined;
          const response = await gateway.request(request);
          if (request.method === "DELETE" && response.status >= 200 && response.status < 300) {
            if (!index.deleteGroup(request.path, sentAt)) sync.resyncSoon();
          }
          return response;
        },
      };
    },
    async start() {
      await sync.resync();
      sync.start();
    },
    stop() {
      sync.stop();
    },
  };
}

/** Each team's quota: its own `quotas` over `store.quotas`. */
function teamQuotas(config: Config): (team: string) => TeamQuota {
  const defaults = config.store.quotas;
  const byTeam = new Map(
    config.teams.map((team) => [
      team.name,
      {
        groups: team.quotas.groups ?? defaults.groupsPerTeam,
        series: team.quotas.series ?? defaults.seriesPerTeam,
      },
    ]),
  );
  const fallback = { groups: defaults.groupsPerTeam, series: defaults.seriesPerTeam };
  return (team) => byTeam.get(team) ?? fallback;
}
