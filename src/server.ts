import { randomUUID } from "node:crypto";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { type AuthenticatorDeps, createAuthenticator } from "./auth/authenticate.js";
import { type Config, ConfigError } from "./config/load.js";
import { ProblemError, problemResponse } from "./errors.js";
import { createJanitor, janitorAttribution } from "./janitor/create-janitor.js";
import type { Janitor } from "./janitor/janitor.js";
import { createLogger, type Logger } from "./observability/logger.js";
import { Metrics } from "./observability/metrics.js";
import { BodyMemory } from "./overload/body-memory.js";
import { UpstreamSlots } from "./overload/upstream-slots.js";
import { createApiApp, type PipelineStages } from "./pipeline.js";
import { createAuthorizer } from "./policy/decide.js";
import { createAuthFailureLimiter } from "./ratelimit/auth-failures.js";
import { type ClientAddress, createClientAddress } from "./ratelimit/client-address.js";
import { createLimitStore, storeSettings } from "./ratelimit/create-store.js";
import { createRateLimiter } from "./ratelimit/limiter.js";
import type { Clock, LimitStore } from "./ratelimit/store.js";
import { createStore, type StoreStage } from "./store/create-store.js";
import { GatewayFamilies } from "./store/gateway-families.js";
import { createStoreRules } from "./store/store-rules.js";
import { createGateway, describeUpstream } from "./upstream/create-gateway.js";
import type { Gateway } from "./upstream/gateway.js";
import type { ResolveHost } from "./upstream/replica-discovery.js";
import { createPushValidator } from "./validation/create-validator.js";

export interface RunningServer {
  readonly apiUrl: string;
  readonly metricsUrl: string;
  readonly metrics: Metrics;
  /** The stale-group janitor when `janitor.enabled` (tests call `runOnce()`). */
  readonly janitor: Janitor | undefined;
  /**
   * Swaps identities, rules and limits for new requests; requests in flight finish with the old
   * ones. Listener and upstream changes need a restart: they are reported, not applied.
   */
  reload(config: Config): void;
  /** Stops accepting, lets in-flight requests finish within the grace period, then closes. */
  close(): Promise<void>;
}

export interface ServerOptions {
  readonly logger?: Logger;
  readonly authenticator?: AuthenticatorDeps;
  /** Milliseconds since the epoch for the local rate limiters (tests move it instead of sleeping). */
  readonly clock?: Clock;
  /** Resolves `upstream.dns.name` to replica addresses (tests inject them). */
  readonly resolveHost?: ResolveHost;
}

/** The parts of a running server that survive a reload. */
interface Shared {
  readonly upstream: Gateway;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly options: ServerOptions;
  /** JWKS key sets by issuer, kept across reloads so a reload during an issuer outage keeps working keys. */
  readonly keySources: NonNullable<AuthenticatorDeps["keySources"]>;
  /** Buckets and upstream slots outlive reloads: a reload must not hand out fresh budgets. */
  readonly limitStore: LimitStore;
  readonly upstreamSlots: UpstreamSlots;
  readonly bodyMemory: BodyMemory;
  readonly clientAddress: ClientAddress;
  readonly clock: Clock;
  /** The Pushgateway's own families, which no push may contradict. */
  readonly gatewayFamilies: GatewayFamilies;
  /** The store index, built once (`store.index` needs a restart). */
  readonly store: StoreStage | undefined;
}

/** Builds the per-config stages; everything here is replaced on reload. */
function buildStages(config: Config, shared: Shared): PipelineStages {
  const { limitStore: store, metrics, clock } = shared;
  return {
    clientAddress: shared.clientAddress,
    authenticate: createAuthenticator(config, {
      ...shared.options.authenticator,
      keySources: shared.keySources,
    }),
    authorize: createAuthorizer(config),
    limitAuthFailures: createAuthFailureLimiter({ ...config.rateLimit.authFailures, store, metrics, clock }),
    rateLimit: createRateLimiter({ rules: config.rateLimit.rules, store, metrics, clock }),
    bodyLimits: config.body,
    bodyMemory: shared.bodyMemory,
    // With the index on, it checks the Pushgateway's own families along with everything stored.
    validator: createPushValidator(config, shared.store ? undefined : shared.gatewayFamilies),
    store: shared.store,
    storeRules: createStoreRules(config),
    upstreamSlots: shared.upstreamSlots,
    upstream: shared.upstream,
    metrics: shared.metrics,
    logger: shared.logger,
  };
}

/** Composition root: builds every stage from one Config and starts both listeners. */
export async function startServer(config: Config, options: ServerOptions = {}): Promise<RunningServer> {
  const logger = options.logger ?? createLogger(config.log.level);
  const metrics = new Metrics();
  const upstream = await createGateway(config.upstream, {
    logger,
    metrics,
    resolveHost: options.resolveHost,
  });
  const gatewayFamilies = new GatewayFamilies(upstream, logger);
  const shared: Shared = {
    upstream,
    metrics,
    logger,
    options,
    keySources: new Map(),
    limitStore: await createLimitStore(config.rateLimit, { logger, metrics }),
    upstreamSlots: new UpstreamSlots(config.overload, metrics),
    bodyMemory: new BodyMemory(
      config.overload.maxBufferedBodyBytes,
      metrics,
      config.overload.maxTeamShare,
      config.body.maxBytes + config.body.maxDecompressedBytes,
    ),
    clientAddress: createClientAddress(config.server.trustedProxies),
    clock: options.clock ?? Date.now,
    gatewayFamilies,
    store: createStore(config, { gateway: upstream, logger, gatewayFamilies }),
  };
  let active = config;
  let stages = buildStages(config, shared);
  const api = createApiApp(() => stages);

  let draining = false;
  const ops = new Hono();
  ops.get("/metrics", async (c) => {
    return c.body(await metrics.registry.metrics(), 200, { "content-type": metrics.registry.contentType });
  });
  ops.get("/healthz", (c) => c.json({ status: "ok" }));
  ops.get("/readyz", async (c) => {
    if (draining) return c.json({ status: "draining" }, 503);
    const upstreamReady = (await upstream.ready()) && (shared.store?.ready ?? true);
    const replicas = upstream.replicas();
    return c.json(
      {
        status: upstreamReady ? "ready" : "upstream unavailable",
        upstream: upstreamReady,
        ...(replicas.length > 0 ? { replicas } : {}),
      },
      upstreamReady ? 200 : 503,
    );
  });
  // A push sent to this port by mistake learns where pushes go instead of getting a bare 404.
  ops.notFound(() =>
    problemResponse(
      new ProblemError(
        "ERR_ROUTE_NOT_FOUND",
        `this is pushguard's metrics listener, serving only /metrics, /healthz and /readyz: push to the API listener (listen.api) at ${apiUrl}`,
      ),
      randomUUID(),
    ),
  );

  // Before listening, so the first push is already checked against the Pushgateway's own families.
  shared.gatewayFamilies.start(await shared.gatewayFamilies.refresh());
  await shared.store?.start();
  if (shared.store) metrics.teamUsage = () => (shared.store as StoreStage).usage(stages.storeRules);
  const janitor = createJanitor(config, {
    gateway: shared.store?.observe(upstream) ?? upstream,
    clock: shared.clock,
    logger,
    metrics,
  });
  // A Redis client would keep a process that failed to listen alive.
  const closeStore = async (error: unknown): Promise<never> => {
    await janitor?.stop();
    await upstream.close();
    await shared.limitStore.close();
    await shared.store?.stop();
    throw error;
  };
  const { server: apiServer, url: apiUrl } = await listen(api.fetch, config.listen.api, config).catch(
    closeStore,
  );
  const { server: metricsServer, url: metricsUrl } = await listen(
    ops.fetch,
    config.listen.metrics,
    config,
  ).catch(closeStore);
  logger.info(
    { api: apiUrl, metrics: metricsUrl, upstream: describeUpstream(config.upstream), config: config.source },
    "pushguard listening",
  );
  janitor?.start();

  return {
    apiUrl,
    metricsUrl,
    metrics,
    janitor,
    reload(next) {
      // The body budget is fixed at start (overload.* needs a restart): the new body limits must fit it.
      const largestBody = next.body.maxBytes + next.body.maxDecompressedBytes;
      if (largestBody > config.overload.maxBufferedBodyBytes) {
        throw new ConfigError("(reload)", [
          {
            path: "body.maxBytes",
            message: `body.maxBytes + body.maxDecompressedBytes (${largestBody}) exceed the running overload.maxBufferedBodyBytes (${config.overload.maxBufferedBodyBytes}), which only a restart changes; the largest bodies would be refused`,
          },
        ]);
      }
      const needsRestart = ["listen", "upstream", "server", "overload"].filter(
        (key) => JSON.stringify(next[key as keyof Config]) !== JSON.stringify(active[key as keyof Config]),
      );
      // Quotas and name ownership follow a reload; the index itself is built once.
      if (JSON.stringify(next.store.index) !== JSON.stringify(active.store.index))
        needsRestart.push("store.index");
      // TTLs follow a reload; whether and how the janitor runs is fixed at start.
      const { defaultTtl: _next, ...janitorNext } = next.janitor;
      const { defaultTtl: _active, ...janitorActive } = active.janitor;
      if (JSON.stringify(janitorNext) !== JSON.stringify(janitorActive)) needsRestart.push("janitor");
      janitor?.setAttribution(janitorAttribution(next));
      if (JSON.stringify(storeSettings(next.rateLimit)) !== JSON.stringify(storeSettings(active.rateLimit))) {
        needsRestart.push("rateLimit.store");
      }
      if (needsRestart.length > 0) {
        logger.warn(
          { keys: needsRestart },
          "config reloaded, but these keys only take effect after a restart",
        );
      }
      stages = buildStages(next, shared);
      logger.level = next.log.level;
      active = next;
    },
    async close() {
      draining = true;
      shared.gatewayFamilies.stop();
      const storeStopped = shared.store?.stop();
      await closeGracefully(apiServer, config.server.shutdownGraceMs);
      await closeGracefully(metricsServer, 0);
      await janitor?.stop();
      await upstream.close();
      await shared.limitStore.close();
      await storeStopped;
    },
  };
}

type Fetch = (request: Request, env: never) => Response | Promise<Response>;

function listen(fetch: Fetch, address: string, config: Config): Promise<{ server: Server; url: string }> {
  const separator = address.lastIndexOf(":");
  const host = address.slice(0, separator).replace(/^\[|\]$/g, "") || "0.0.0.0";
  const port = Number(address.slice(separator + 1));
  return new Promise((resolve, reject) => {
    const server = serve(
      {
        fetch: fetch as never,
        hostname: host,
        port,
        serverOptions: {
          requestTimeout: config.server.requestTimeoutMs,
          headersTimeout: config.server.headersTimeoutMs,
          keepAliveTimeout: config.server.keepAliveTimeoutMs,
        },
      },
      (info: AddressInfo) => {
        const shownHost = info.family === "IPv6" ? `[${info.address}]` : info.address;
        resolve({ server: server as Server, url: `http://${shownHost}:${info.port}` });
      },
    );
    server.once("error", reject);
  });
}

/**
 * `close()` stops accepting; keep-alive connections are closed as soon as they fall idle, so
 * requests in flight finish. Whatever is still open after the grace period is cut.
 */
function closeGracefully(server: Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const sweep = setInterval(() => server.closeIdleConnections(), 50);
    const deadline = setTimeout(() => server.closeAllConnections(), graceMs);
    server.close(() => {
      clearInterval(sweep);
      clearTimeout(deadline);
      resolve();
    });
    server.closeIdleConnections();
  });
}
