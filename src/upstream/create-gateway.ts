import type { Config } from "../config/load.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { redisPassword } from "../redis-client.js";
import { Upstream } from "./forward.js";
import { type Gateway, SingleGateway } from "./gateway.js";
import { GroupLocks } from "./group-locks.js";
import { type ResolveHost, resolveReplicas, resolveWithSystem } from "./replica-discovery.js";
import { ReplicatedUpstream } from "./replicated.js";
import { RedisMisses } from "./replication-state.js";

export interface GatewayDeps {
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Resolves `upstream.dns.name` (tests inject addresses). */
  readonly resolveHost?: ResolveHost;
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * The upstream for a config: the pooled `Upstream` for one `url`, or a `ReplicatedUpstream` over
 * `urls` or the addresses of `dns.name`. Both order writes per group with one `GroupLocks`.
 */
export async function createGateway(config: Config["upstream"], deps: GatewayDeps): Promise<Gateway> {
  const locks = new GroupLocks();
  const { timeoutMs, connectTimeoutMs, connections } = config;
  if (config.url !== undefined) {
    return new SingleGateway(
      new Upstream({ url: config.url, timeoutMs, connectTimeoutMs, connections }),
      locks,
    );
  }
  const { urls, dns } = config;
  const resolveHost = deps.resolveHost ?? resolveWithSystem;
  const stateRedis = config.replication.redis;
  const shared =
    stateRedis === undefined
      ? undefined
      : new RedisMisses(
          {
            url: stateRedis.url,
            password: () => redisPassword(stateRedis, "upstream.replication.redis", deps.env ?? process.env),
            keyPrefix: stateRedis.keyPrefix,
            timeoutMs: stateRedis.timeoutMs,
          },
          (error) => deps.logger.debug({ err: error }, "replication state store connection error"),
        );
  return ReplicatedUpstream.start({
    discover:
      urls !== undefined
        ? async () => urls
        : () => resolveReplicas(dns as NonNullable<typeof dns>, resolveHost),
    discoverEveryMs: dns?.refreshMs,
    upstream: { timeoutMs, connectTimeoutMs, connections },
    replication: config.replication,
    locks,
    shared,
    logger: deps.logger,
    metrics: deps.metrics,
  });
}

/** How the upstream reads in logs: its URL, or the replicas' source. */
export function describeUpstream(config: Config["upstream"]): string {
  if (config.url !== undefined) return config.url;
  if (config.urls !== undefined) return config.urls.join(", ");
  return `every address of ${config.dns?.name}:${config.dns?.port}`;
}
