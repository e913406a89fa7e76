import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { VERSION } from "../version.js";

/** One team's stored groups and series, with its quota. */
export interface TeamUsageSample {
  readonly team: string;
  readonly groups: number;
  readonly series: number;
  readonly quota: { readonly groups: number; readonly series: number };
}

/** Latency buckets in seconds: pushes are usually sub-millisecond to tens of milliseconds. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * pushguard's own metrics, all prefixed `pushguard_`, on their own registry so they are served
 * only by the metrics listener and never mix with the Pushgateway's `/metrics`.
 */
export class Metrics {
  readonly registry = new Registry();

  readonly requests = new Counter({
    name: "pushguard_requests_total",
    help: 'Requests handled, by action (push, delete, wipe, read, probe, unknown), team ("" when no team rule applied), outcome and HTTP status code.',
    labelNames: ["action", "team", "outcome", "code"] as const,
    registers: [this.registry],
  });

  readonly requestDuration = new Histogram({
    name: "pushguard_request_duration_seconds",
    help: "Time from request start to response, by action.",
    labelNames: ["action"] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });

  readonly upstreamDuration = new Histogram({
    name: "pushguard_upstream_duration_seconds",
    help: "Time the Pushgateway took to answer forwarded requests, by action.",
    labelNames: ["action"] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });

  readonly upstreamErrors = new Counter({
    name: "pushguard_upstream_errors_total",
    help: "Forwarded requests that got no answer from the Pushgateway, by problem code and reason.",
    labelNames: ["code", "reason"] as const,
    registers: [this.registry],
  });

  readonly authFailures = new Counter({
    name: "pushguard_auth_failures_total",
    help: "Requests refused for missing or invalid credentials, by reason (missing, malformed, unknown-token).",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });

  readonly denials = new Counter({
    name: "pushguard_acl_denials_total",
    help: "Authenticated requests refused by the policy, by action.",
    labelNames: ["action"] as const,
    registers: [this.registry],
  });

  readonly bodyRejections = new Counter({
    name: "pushguard_body_rejections_total",
    help: "Bodies refused before forwarding, by reason (too-large, decompressed-too-large, unsupported-encoding, corrupt-gzip).",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });

  readonly pushRejections = new Counter({
    name: "pushguard_push_rejections_total",
    help: "Pushes refused for what they contain (body or grouping key), by team and rule (syntax, duplicate-series, series-per-push, metric-name-denied, ...).",
    labelNames: ["team", "rule"] as const,
    registers: [this.registry],
  });

  /** Where the team gauges read from: the store index, when `store.index.enabled`. */
  teamUsage: (() => ReadonlyArray<TeamUsageSample>) | undefined;

  readonly teamGroups = this.#teamGauge(
    "pushguard_team_groups",
    "Groups each team stores (store index).",
    (usage) => usage.groups,
  );
  readonly teamSeries = this.#teamGauge(
    "pushguard_team_series",
    "Series each team stores, as a scrape counts them (store index).",
    (usage) => usage.series,
  );
  readonly teamGroupsQuota = this.#teamGauge(
    "pushguard_team_groups_quota",
    "Groups each team may store (store.quotas, teams[].quotas).",
    (usage) => usage.quota.groups,
  );
  readonly teamSeriesQuota = this.#teamGauge(
    "pushguard_team_series_quota",
    "Series each team may store (store.quotas, teams[].quotas).",
    (usage) => usage.quota.series,
  );

  readonly bytesReceived = new Counter({
    name: "pushguard_received_bytes_total",
    help: "Body bytes received on the wire for forwarded writes, by action.",
    labelNames: ["action"] as const,
    registers: [this.registry],
  });

  readonly inFlight = new Gauge({
    name: "pushguard_in_flight_requests",
    help: "Requests currently being handled.",
    registers: [this.registry],
  });

  readonly rateLimited = new Counter({
    name: "pushguard_rate_limited_total",
    help: "Requests refused with 429, by team (empty when none) and reason (identity, team, job, auth-failures).",
    labelNames: ["team", "reason"] as const,
    registers: [this.registry],
  });

  readonly rateLimitStoreErrors = new Counter({
    name: "pushguard_ratelimit_store_errors_total",
    help: "Requests that could not use the shared rate-limit store, by store and reason (disconnected, timeout, error, cooling-down).",
    labelNames: ["store", "reason"] as const,
    registers: [this.registry],
  });

  readonly rateLimitStoreAvailable = new Gauge({
    name: "pushguard_ratelimit_store_available",
    help: "1 while the shared rate-limit store answers, 0 while limits fall back to this replica or fail closed.",
    labelNames: ["store"] as const,
    registers: [this.registry],
  });

  readonly upstreamInFlight = new Gauge({
    name: "pushguard_upstream_in_flight_requests",
    help: "Requests holding one of the overload.maxConcurrent upstream slots.",
    registers: [this.registry],
  });

  readonly upstreamQueueDepth = new Gauge({
    name: "pushguard_upstream_queue_depth",
    help: "Requests waiting for an upstream slot (at most overload.maxQueued).",
    registers: [this.registry],
  });

  readonly bodyBufferedBytes = new Gauge({
    name: "pushguard_body_buffered_bytes",
    help: "Request-body bytes held in memory now, received or decoded (at most overload.maxBufferedBodyBytes).",
    registers: [this.registry],
  });

  readonly overloadRejections = new Counter({
    name: "pushguard_overload_rejections_total",
    help: "Requests refused with 503 ERR_OVERLOADED, by reason (queue-full, queue-timeout, client-gone, body-memory, team-share).",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });

  readonly configReloads = new Counter({
    name: "pushguard_config_reloads_total",
    help: "Config reload attempts (SIGHUP or a changed file), by result (success, failure).",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });

  readonly configLastReloadSuccessful = new Gauge({
    name: "pushguard_config_last_reload_successful",
    help: "1 if the last config reload succeeded (or none was attempted), 0 if it was rejected.",
    registers: [this.registry],
  });

  readonly configLastReloadTime = new Gauge({
    name: "pushguard_config_last_reload_success_timestamp_seconds",
    help: "Unix time of the last successful config load.",
    registers: [this.registry],
  });

  readonly replicaUp = new Gauge({
    name: "pushguard_upstream_replica_up",
    help: "1 while a Pushgateway replica answers health checks, 0 otherwise.",
    labelNames: ["replica"] as const,
    registers: [this.registry],
  });

  readonly replicaInSync = new Gauge({
    name: "pushguard_upstream_replica_in_sync",
    help: "1 while a Pushgateway replica holds every acknowledged write and may serve reads, 0 otherwise.",
    labelNames: ["replica"] as const,
    registers: [this.registry],
  });

  readonly replicaDemotions = new Counter({
    name: "pushguard_upstream_replica_demotions_total",
    help: "Replicas marked out of sync, by replica and reason (write-failed, write-rejected, down, restarted).",
    labelNames: ["replica", "reason"] as const,
    registers: [this.registry],
  });

  readonly replicaRepairs = new Counter({
    name: "pushguard_upstream_replica_repairs_total",
    help: "Repairs of out-of-sync replicas, by replica and result (success, failure).",
    labelNames: ["replica", "result"] as const,
    registers: [this.registry],
  });

  readonly replicaGroupsCopied = new Counter({
    name: "pushguard_upstream_replica_groups_copied_total",
    help: "Groups written or deleted on a replica by repair.",
    labelNames: ["replica"] as const,
    registers: [this.registry],
  });

  readonly replicaRepairDuration = new Histogram({
    name: "pushguard_upstream_replica_repair_duration_seconds",
    help: "Time from the start of a successful repair until the replica was back in sync.",
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    registers: [this.registry],
  });

  readonly replicationStateErrors = new Counter({
    name: "pushguard_upstream_replication_state_errors_total",
    help: "Failed calls to the shared replication state (Redis); meanwhile only this replica's own view counts.",
    registers: [this.registry],
  });

  readonly janitorRuns = new Counter({
    name: "pushguard_janitor_runs_total",
    help: "Janitor runs, by result (success, error, standby: another replica holds the lease).",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });

  readonly janitorExpired = new Counter({
    name: "pushguard_janitor_groups_expired_total",
    help: "Groups the janitor expired, by owning team and mode (delete, dry-run).",
    labelNames: ["team", "mode"] as const,
    registers: [this.registry],
  });

  readonly janitorErrors = new Counter({
    name: "pushguard_janitor_errors_total",
    help: "Janitor failures, by stage (lease, read, delete).",
    labelNames: ["stage"] as const,
    registers: [this.registry],
  });

  readonly janitorOldestGroupAge = new Gauge({
    name: "pushguard_janitor_oldest_group_age_seconds",
    help: "Age of the least recently pushed group at the last run, by owning team (empty: owned by no team).",
    labelNames: ["team"] as const,
    registers: [this.registry],
  });

  readonly janitorLeader = new Gauge({
    name: "pushguard_janitor_leader",
    help: "1 while this replica's janitor holds the lease (always 1 without a lease store).",
    registers: [this.registry],
  });

  readonly janitorLastRun = new Gauge({
    name: "pushguard_janitor_last_success_timestamp_seconds",
    help: "Unix time of the janitor's last successful run on this replica.",
    registers: [this.registry],
  });

  constructor() {
    this.configLastReloadSuccessful.set(1);
    this.configLastReloadTime.set(Date.now() / 1000);
    new Gauge({
      name: "pushguard_build_info",
      help: "Build information; the value is always 1.",
      labelNames: ["version", "node_version"] as const,
      registers: [this.registry],
    }).set({ version: VERSION, node_version: process.version }, 1);
    collectDefaultMetrics({ register: this.registry, prefix: "pushguard_" });
  }

  #teamGauge(name: string, help: string, value: (usage: TeamUsageSample) => number): Gauge<"team"> {
    const metrics = this;
    return new Gauge({
      name,
      help,
      labelNames: ["team"] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const usage of metrics.teamUsage?.() ?? []) this.set({ team: usage.team }, value(usage));
      },
    });
  }
}
