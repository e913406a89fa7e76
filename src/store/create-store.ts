import type { Config } from "../config/load.js";
import { ProblemError } from "../errors.js";
import { compileOwnership } from "../janitor/ownership.js";
import type { Logger } from "../observability/logger.js";
import type { Operation } from "../pushgateway/classify.js";
import { redisPassword } from "../redis-client.js";
import type { Gateway } from "../upstream/gateway.js";
import type { PushedFamilies } from "../validation/validate-push.js";
import { PushViolation } from "../validation/violation.js";
import type { GatewayFamilies } from "./gateway-families.js";
import { SharedNames } from "./shared-names.js";
import { type Reservation, StoreIndex, type StoreRules, type TeamQuota } from "./store-index.js";
import type { TeamStoreRules } from "./store-rules.js";
import { StoreSync } from "./store-sync.js";

/** The consistency stage: what a write may store given everything else stored, and after it. */
export interface StoreStage {
  /** Whether the index has been built (pushes are refused until it is). */
  readonly ready: boolean;
  /**
   * Checks a push against the store (and, with `store.index.redis`, the names every replica
   * recorded) and records it as if stored, until `settle`.
   * @throws ProblemError 409 ERR_FAMILY_CONFLICT, 422, 429 ERR_QUOTA_EXCEEDED, or 503 while the
   *   index is not built or its Redis is unreachable
   */
  reservePush(
    path: string,
    method: "PUT" | "POST",
    families: PushedFamilies,
    team: string | undefined,
    rules: StoreRules,
  ): Promise<Reservation>;
  /** Groups and series stored per team, with each team's quota (for the `pushguard_team_*` gauges). */
  usage(rules: TeamStoreRules): Array<{ team: string; groups: number; series: number; quota: TeamQuota }>;
  /** Call before sending a write: what its settlement must compare against. */
  beforeSend(operation: Operation, path: string): Promise<SentAt | undefined>;
  /** Records what the Pushgateway answered to a write: `undefined` when no answer came. */
  settle(
    operation: Operation,
    path: string,
    status: number | undefined,
    reservation?: Reservation,
    sentAt?: SentAt,
  ): void;
  /** `gateway`, with the deletes other writers (the janitor) send through it kept in the index. */
  observe(gateway: Gateway): Gateway;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** The versions a DELETE was sent against: the local index's, and Redis's. */
export interface SentAt {
  readonly local: number | undefined;
  readonly shared: string | undefined;
}

/** `store.index` as a stage, or undefined when it is off. */
export function createStore(
  config: Config,
  deps: { gateway: Gateway; logger: Logger; gatewayFamilies: GatewayFamilies; env?: NodeJS.ProcessEnv },
): StoreStage | undefined {
  if (!config.store.index.enabled) return undefined;
  const index = new StoreIndex((name) => deps.gatewayFamilies.holder(name)?.type);
  const attribute = compileOwnership(config.teams, undefined);
  const redis = config.store.index.redis;
  const shared =
    redis === undefined
      ? undefined
      : new SharedNames(
          {
            ...redis,
            password: () => redisPassword(redis, "store.index.redis", deps.env ?? process.env),
          },
          (error) => deps.logger.debug({ err: error }, "store index redis connection error"),
        );
  const sync = new StoreSync(
    index,
    deps.gateway,
    deps.logger,
    config.store.index.resyncIntervalMs,
    (labels) => attribute(labels).owners[0],
    shared && {
      names: shared,
      // A push recorded in Redis may take this long to reach the store (queue, then upstream).
      graceMs: 2 * config.upstream.timeoutMs + config.overload.maxQueueWaitMs + 5_000,
    },
  );
  const unavailable = (detail: string) =>
    new ProblemError("ERR_STORE_UNAVAILABLE", detail, { headers: { "retry-after": "2" } });
  const deleted = (path: string, sentAt: SentAt | undefined) => {
    // A push reserved after the DELETE was sent lands after it: keep it, and read the store.
    if (!index.deleteGroup(path, sentAt?.local ?? index.versionOf(path))) sync.resyncSoon();
    if (shared && sentAt?.shared !== undefined) {
      shared.delete(path, sentAt.shared).catch((error) => {
        deps.logger.warn(
          { err: error },
          "store index: could not record a delete in Redis; the next resync will",
        );
      });
    }
  };
  const sentAtOf = async (path: string): Promise<SentAt> => ({
    local: index.versionOf(path),
    // Without a version from Redis the delete is not recorded there; the next resync corrects it.
    shared: shared ? await shared.versionOf(path).catch(() => undefined) : undefined,
  });
  return {
    get ready() {
      return sync.ready;
    },
    async reservePush(path, method, families, team, rules) {
      if (!sync.ready) {
        throw unavailable(`the store index is not built yet, so the push cannot be checked: ${sync.failure}`);
      }
      let local: Reservation;
      try {
        local = index.reservePush(path, method, families, team, rules);
      } catch (error) {
        throw error instanceof PushViolation ? error.toProblem() : error;
      }
      if (!shared) return local;
      try {
        const recorded = await shared.reserve(path, method, families, team, rules.firstTeamOwns);
        return {
          commit: () => local.commit(),
          rollback: () => {
            local.rollback();
            recorded.rollback().catch((error) => {
              deps.logger.warn(
                { err: error },
                "store index: could not undo a refused push in Redis; the next resync will",
              );
            });
          },
        };
      } catch (error) {
        local.rollback();
        if (error instanceof PushViolation) throw error.toProblem();
        deps.logger.warn({ err: error }, "store index: Redis unreachable, push refused");
        throw unavailable(
          "the store index's Redis (store.index.redis) is unreachable, so the push cannot be checked",
        );
      }
    },
    async beforeSend(operation, path) {
      return operation.action === "delete" ? sentAtOf(path) : undefined;
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
        deleted(path, sentAt);
      } else if (operation.action === "wipe" && stored) {
        index.clear();
        shared?.clear().catch((error) => {
          deps.logger.warn(
            { err: error },
            "store index: could not record a wipe in Redis; the next resync will",
          );
        });
      }
    },
    usage(rules) {
      const teams = new Set([...rules.teams, ...index.usage().keys()]);
      return [...teams].map((team) => {
        const used = index.usage().get(team);
        return { team, groups: used?.groups ?? 0, series: used?.series ?? 0, quota: rules(team).quota };
      });
    },
    observe(gateway) {
      return {
        locks: gateway.locks,
        ready: () => gateway.ready(),
        replicas: () => gateway.replicas(),
        close: () => gateway.close(),
        async request(request) {
          const sentAt = request.method === "DELETE" ? await sentAtOf(request.path) : undefined;
          const response = await gateway.request(request);
          if (request.method === "DELETE" && response.status >= 200 && response.status < 300) {
            deleted(request.path, sentAt);
          }
          return response;
        },
      };
    },
    async start() {
      await sync.resync();
      sync.start();
    },
    async stop() {
      sync.stop();
      await shared?.close();
    },
  };
}
