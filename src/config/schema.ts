import { z } from "zod";
import { parseTtl } from "../janitor/duration.js";
import { parseCidr } from "../ratelimit/client-address.js";
import {
  groupingKeyRules,
  kubernetesIssuer,
  memberSelector,
  oidcIssuer,
  plainGlob,
  templateString,
} from "./jwt-schema.js";
import { metricNameGlob, teamValidation, validationSection } from "./validation-schema.js";

/**
 * The one source of truth for pushguard's configuration file. Every key is documented in
 * docs/configuration.md; a test keeps the two in step.
 */

const MiB = 1024 * 1024;

/** `host:port`; an IPv6 host is written in brackets (`[::1]:9091`). */
const LISTEN_ADDRESS = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):(\d{1,5})$/;

/** One check, so a bad address gets one issue rather than a second, confusing one about its port. */
const listenAddress = z
  .string()
  .refine(
    (value) => Number(LISTEN_ADDRESS.exec(value)?.[2] ?? Number.NaN) <= 65535,
    "must be host:port with a port from 0 to 65535, e.g. 127.0.0.1:9091, [::1]:9091 or :9091",
  );

const WILDCARD_HOSTS = new Set(["", "0.0.0.0", "[::]"]);

/** Two listeners on one port fail at bind time with EADDRINUSE; say so while validating instead. */
function listenersCollide(api: string, metrics: string): boolean {
  const split = (address: string) => {
    const separator = address.lastIndexOf(":");
    return { host: address.slice(0, separator).toLowerCase(), port: Number(address.slice(separator + 1)) };
  };
  const a = split(api);
  const b = split(metrics);
  if (a.port === 0 || a.port !== b.port) return false;
  return a.host === b.host || WILDCARD_HOSTS.has(a.host) || WILDCARD_HOSTS.has(b.host);
}

/**
 * The Pushgateway's base URL. Parsed here with `URL.canParse` first: a refinement that throws
 * would escape zod and crash the loader instead of naming the key.
 */
const upstreamUrl = z.string().superRefine((value, ctx) => {
  const url = URL.canParse(value) ? new URL(value) : undefined;
  const problem =
    url === undefined
      ? "must be an absolute http:// or https:// URL"
      : url.protocol !== "http:" && url.protocol !== "https:"
        ? "must be an http:// or https:// URL"
        : url.search !== ""
          ? "must not have a query string"
          : url.hash !== ""
            ? "must not have a fragment"
            : url.username !== "" || url.password !== ""
              ? "must not carry credentials: pushguard would silently drop them"
              : undefined;
  if (problem) ctx.addIssue({ code: "custom", message: problem });
});

export const actions = ["push", "delete", "wipe", "read"] as const;
export type Action = (typeof actions)[number];

const identityName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$/, "must be 1-128 characters of letters, digits, _ . : @ -")
  .refine((name) => name !== "anonymous", "anonymous is reserved for callers without a credential");

const sha256Hex = z
  .string()
  .trim()
  .regex(/^(sha256:)?[0-9a-fA-F]{64}$/, "must be a SHA-256 hex digest (see `pushguard hash-token`)");

/**
 * A static token identity. The token itself is never written in the config: give its SHA-256 hash
 * (inline, from a file or an env var), or point at the raw token in a file or env var (a
 * Kubernetes Secret), which pushguard hashes when it loads.
 */
export const staticTokenIdentity = z
  .strictObject({
    name: identityName,
    sha256: sha256Hex.optional(),
    sha256File: z.string().min(1).optional(),
    sha256Env: z.string().min(1).optional(),
    tokenFile: z.string().min(1).optional(),
    tokenEnv: z.string().min(1).optional(),
  })
  .superRefine((identity, ctx) => {
    const given = ["sha256", "sha256File", "sha256Env", "tokenFile", "tokenEnv"].filter(
      (key) => identity[key as keyof typeof identity] !== undefined,
    );
    if (given.length !== 1) {
      ctx.addIssue({
        code: "custom",
        message: `give exactly one of sha256, sha256File, sha256Env, tokenFile, tokenEnv (got ${given.length === 0 ? "none" : given.join(", ")})`,
      });
    }
  });

const TTL_FORMAT = "must be a duration such as 90m, 36h, 7d or 1h30m (units ms, s, m, h, d), or never";

/** A job-name glob: `*` matches any run of characters, `?` one character. */
const jobPattern = templateString;

const team = z.strictObject({
  name: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, "must be 1-64 characters of letters, digits, _ . -"),
  members: z.array(memberSelector).min(1, "a team needs at least one member"),
  jobs: z.array(jobPattern).default([]),
  actions: z.array(z.enum(actions)).min(1, "a team needs at least one action"),
  groupingKey: groupingKeyRules,
  validation: teamValidation,
  quotas: z
    .strictObject({
      groups: z.number().int().positive().max(100_000_000).optional(),
      series: z.number().int().positive().max(1_000_000_000).optional(),
    })
    .prefault({}),
  ttl: z
    .string()
    .refine((value) => parseTtl(value) !== undefined, TTL_FORMAT)
    .optional(),
});

/** A token bucket: `burst` requests at once, refilled at `rate` requests per second. */
const bucket = {
  rate: z.number().positive().max(1_000_000),
  burst: z.number().int().positive().max(1_000_000),
};

const rateLimitRule = z
  .strictObject({
    scope: z.enum(["identity", "team", "job"]),
    kind: z.enum(["write", "read"]).default("write"),
    team: z.string().min(1).optional(),
    // Rate-limit rules see the job name only, never the caller's values (compileGlob, not compilePattern).
    jobs: z
      .array(plainGlob("work in team jobs and groupingKey, not in rate-limit rules"))
      .min(1, "give at least one job pattern")
      .optional(),
    ...bucket,
  })
  .superRefine((rule, ctx) => {
    const problem =
      rule.scope === "job" && rule.jobs === undefined
        ? { path: ["jobs"], message: "a job-scoped rule needs job patterns (jobs: [...])" }
        : rule.scope !== "job" && rule.jobs !== undefined
          ? { path: ["jobs"], message: "only job-scoped rules take job patterns (scope: job)" }
          : rule.scope === "job" && rule.kind === "read"
            ? { path: ["kind"], message: "reads have no job: job-scoped rules limit writes only" }
            : undefined;
    if (problem) ctx.addIssue({ code: "custom", ...problem });
  });

const redisUrl = z.string().refine((value) => {
  const protocol = URL.canParse(value) ? new URL(value).protocol : "";
  return protocol === "redis:" || protocol === "rediss:";
}, "must be a redis:// or rediss:// URL, e.g. redis://redis:6379/0");

const rateLimit = z
  .strictObject({
    rules: z.array(rateLimitRule).default([]),
    authFailures: z
      .strictObject({
        rate: bucket.rate.default(1),
        burst: bucket.burst.default(30),
      })
      .prefault({}),
    store: z.enum(["memory", "redis"]).default("memory"),
    onStoreError: z.enum(["failOpen", "failClosed"]).default("failOpen"),
    memory: z
      .strictObject({
        maxKeys: z.number().int().positive().max(10_000_000).default(100_000),
      })
      .prefault({}),
    redis: z
      .strictObject({
        url: redisUrl,
        passwordFile: z.string().min(1).optional(),
        passwordEnv: z.string().min(1).optional(),
        keyPrefix: z.string().max(128).default("pushguard:rl:"),
        timeoutMs: z.number().int().positive().max(10_000).default(200),
      })
      .refine((redis) => redis.passwordFile === undefined || redis.passwordEnv === undefined, {
        message: "give at most one of passwordFile, passwordEnv",
      })
      .optional(),
  })
  .superRefine((section, ctx) => {
    if (section.store === "redis" && section.redis === undefined) {
      ctx.addIssue({ code: "custom", path: ["redis"], message: "store: redis needs rateLimit.redis.url" });
    }
  })
  .prefault({});

/** A Redis that pushguard replicas coordinate through (janitor lease, replica sync state). */
const coordinationRedis = (keyPrefix: string, timeoutMs: number) =>
  z
    .strictObject({
      url: redisUrl,
      passwordFile: z.string().min(1).optional(),
      passwordEnv: z.string().min(1).optional(),
      keyPrefix: z.string().max(128).default(keyPrefix),
      timeoutMs: z.number().int().positive().max(10_000).default(timeoutMs),
    })
    .refine((redis) => redis.passwordFile === undefined || redis.passwordEnv === undefined, {
      message: "give at most one of passwordFile, passwordEnv",
    });

/**
 * Where the Pushgateway is: one `url`, a list of replicas (`urls`), or a DNS name whose every
 * address is a replica (`dns`, e.g. a headless Service). Exactly one of the three.
 */
const upstream = z
  .strictObject({
    url: upstreamUrl.optional(),
    urls: z.array(upstreamUrl).min(1, "give at least one replica URL").optional(),
    dns: z
      .strictObject({
        name: z
          .string()
          .regex(
            /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$/,
            "must be a DNS name",
          ),
        port: z.number().int().min(1).max(65535).default(9091),
        scheme: z.enum(["http", "https"]).default("http"),
        refreshMs: z.number().int().positive().max(3_600_000).default(10_000),
      })
      .optional(),
    timeoutMs: z.number().int().positive().max(600_000).default(10_000),
    connectTimeoutMs: z.number().int().positive().max(60_000).default(2_000),
    connections: z.number().int().positive().max(1024).default(64),
    replication: z
      .strictObject({
        writePolicy: z.enum(["allInSync", "majority", "all"]).default("allInSync"),
        healthCheckIntervalMs: z.number().int().min(50).max(600_000).default(1_000),
        bootstrapWaitMs: z.number().int().nonnegative().max(600_000).default(10_000),
        probeTimeoutMs: z.number().int().positive().max(600_000).default(2_000),
        stragglerMs: z.number().int().nonnegative().max(600_000).default(1_000),
        verifyIntervalMs: z.number().int().nonnegative().max(86_400_000).default(300_000),
        redis: coordinationRedis("pushguard:replication:", 200).optional(),
      })
      .prefault({}),
  })
  .superRefine((section, ctx) => {
    const given = (["url", "urls", "dns"] as const).filter((key) => section[key] !== undefined);
    if (given.length !== 1) {
      ctx.addIssue({
        code: "custom",
        path: given.length === 0 ? ["url"] : [],
        message:
          given.length === 0
            ? "required: give the Pushgateway's url, the replicas' urls, or a dns name resolving to every replica"
            : `give exactly one of url, urls, dns (got ${given.join(", ")})`,
      });
    }
    const seen = new Set<string>();
    section.urls?.forEach((url, index) => {
      const origin = URL.canParse(url) ? new URL(url).origin : url;
      if (seen.has(origin)) {
        ctx.addIssue({ code: "custom", path: ["urls", index], message: `duplicate replica ${origin}` });
      }
      seen.add(origin);
    });
  });

const janitor = z
  .strictObject({
    enabled: z.boolean().default(false),
    intervalMs: z.number().int().min(1_000).max(86_400_000).default(60_000),
    dryRun: z.boolean().default(false),
    defaultTtl: z
      .string()
      .refine((value) => parseTtl(value) !== undefined, TTL_FORMAT)
      .optional(),
    lease: z
      .strictObject({
        store: z.enum(["none", "redis"]).default("none"),
        ttlMs: z.number().int().min(1_000).max(86_400_000).optional(),
        redis: coordinationRedis("pushguard:janitor:", 500).optional(),
      })
      .superRefine((lease, ctx) => {
        if (lease.store === "redis" && lease.redis === undefined) {
          ctx.addIssue({
            code: "custom",
            path: ["redis"],
            message: "store: redis needs janitor.lease.redis.url",
          });
        }
      })
      .prefault({}),
  })
  .prefault({});

const cidr = z
  .string()
  .refine((value) => parseCidr(value) !== undefined, "must be an IP address or CIDR block, e.g. 10.0.0.0/8");

/**
 * The shape the cross-reference checks below read. They run whenever it holds, even if an
 * unrelated key (say `body: lots`) has the wrong type, so one run still names every problem.
 */
const crossReferenced = z.object({
  identities: z.object({
    static: z.array(z.object({ name: z.string() })),
    oidc: z.array(z.object({ name: z.string() })),
    kubernetes: z.array(z.object({ name: z.string() })),
  }),
  teams: z.array(
    z.object({
      name: z.string(),
      members: z.array(z.union([z.string(), z.object({ issuer: z.string() })])),
      jobs: z.array(z.string()),
      actions: z.array(z.string()),
    }),
  ),
  anonymous: z.object({ actions: z.array(z.string()) }),
});

/** A TTL that could never act is refused rather than silently ignored. */
function checkExpiry(
  config: { teams: ReadonlyArray<{ actions: readonly string[]; ttl?: unknown }>; janitor?: unknown },
  ctx: z.RefinementCtx,
): void {
  const janitor = config.janitor as { enabled?: unknown; defaultTtl?: unknown } | undefined;
  const enabled = janitor?.enabled === true;
  config.teams.forEach((team, index) => {
    if (team.ttl === undefined) return;
    const problem = !team.actions.includes("push")
      ? "a TTL applies to groups the team pushes, and this team may not push"
      : !enabled
        ? "has no effect unless janitor.enabled is true"
        : undefined;
    if (problem) ctx.addIssue({ code: "custom", path: ["teams", index, "ttl"], message: problem });
  });
  if (enabled && janitor?.defaultTtl === undefined && config.teams.every((team) => team.ttl === undefined)) {
    ctx.addIssue({
      code: "custom",
      path: ["janitor", "enabled"],
      message: "nothing could ever expire: set janitor.defaultTtl or a ttl on a team",
    });
  }
}

const crossReferencesReadable = {
  when: (payload: { value: unknown }) => crossReferenced.safeParse(payload.value).success,
};

export const configSchema = z
  .strictObject({
    listen: z
      .strictObject({
        api: listenAddress.default("0.0.0.0:9091"),
        metrics: listenAddress.default("0.0.0.0:9092"),
      })
      .superRefine((listen, ctx) => {
        if (listenersCollide(listen.api, listen.metrics)) {
          ctx.addIssue({
            code: "custom",
            path: ["metrics"],
            message: `must not share a port with listen.api (${listen.api})`,
          });
        }
      })
      .prefault({}),
    upstream,
    identities: z
      .strictObject({
        static: z.array(staticTokenIdentity).default([]),
        oidc: z.array(oidcIssuer).default([]),
        kubernetes: z.array(kubernetesIssuer).default([]),
      })
      .prefault({}),
    teams: z.array(team).default([]),
    anonymous: z
      .strictObject({
        actions: z
          .array(z.literal("read", { error: "anonymous callers may only be granted read" }))
          .default([]),
      })
      .prefault({}),
    validation: validationSection,
    store: z
      .strictObject({
        index: z
          .strictObject({
            enabled: z.boolean().default(true),
            resyncIntervalMs: z.number().int().min(1_000).max(86_400_000).default(300_000),
            redis: coordinationRedis("pushguard:store:", 200).optional(),
          })
          .prefault({}),
        names: z
          .strictObject({
            ownership: z.enum(["claimed", "first"]).default("claimed"),
            shared: z.array(metricNameGlob).default([]),
          })
          .prefault({}),
        quotas: z
          .strictObject({
            groupsPerTeam: z.number().int().positive().max(100_000_000).default(10_000),
            seriesPerTeam: z.number().int().positive().max(1_000_000_000).default(200_000),
          })
          .prefault({}),
      })
      .prefault({}),
    body: z
      .strictObject({
        maxBytes: z
          .number()
          .int()
          .positive()
          .max(64 * MiB)
          .default(8 * MiB),
        maxDecompressedBytes: z
          .number()
          .int()
          .positive()
          .max(256 * MiB)
          .default(32 * MiB),
      })
      .prefault({}),
    server: z
      .strictObject({
        shutdownGraceMs: z.number().int().nonnegative().max(600_000).default(10_000),
        requestTimeoutMs: z.number().int().positive().max(600_000).default(30_000),
        headersTimeoutMs: z.number().int().positive().max(120_000).default(10_000),
        keepAliveTimeoutMs: z.number().int().positive().max(600_000).default(65_000),
        trustedProxies: z.array(cidr).default([]),
      })
      .prefault({}),
    rateLimit,
    overload: z
      .strictObject({
        maxConcurrent: z.number().int().positive().max(1000).default(64),
        maxQueued: z.number().int().nonnegative().max(10_000).default(64),
        maxQueueWaitMs: z.number().int().positive().max(60_000).default(1_000),
        maxTeamShare: z.number().positive().max(1).default(0.5),
        maxBufferedBodyBytes: z
          .number()
          .int()
          .positive()
          .max(4096 * MiB)
          .default(128 * MiB),
      })
      .prefault({}),
    log: z
      .strictObject({
        level: z.enum(["fatal", "error", "warn", "info", "debug", "trace"]).default("info"),
      })
      .prefault({}),
    janitor,
  })
  .superRefine((config, ctx) => {
    const names = new Set<string>();
    config.identities.static.forEach((identity, index) => {
      if (names.has(identity.name)) {
        ctx.addIssue({
          code: "custom",
          path: ["identities", "static", index, "name"],
          message: `duplicate identity "${identity.name}"`,
        });
      }
      names.add(identity.name);
    });
    const issuers = new Set<string>();
    const issuerUrls = new Set<string>();
    for (const kind of ["oidc", "kubernetes"] as const) {
      config.identities[kind].forEach((issuer, index) => {
        if (issuers.has(issuer.name)) {
          ctx.addIssue({
            code: "custom",
            path: ["identities", kind, index, "name"],
            message: `duplicate issuer name "${issuer.name}"`,
          });
        }
        // Tokens are routed to a verifier by their iss: two entries for one iss cannot both apply.
        if (issuerUrls.has(issuer.issuer)) {
          ctx.addIssue({
            code: "custom",
            path: ["identities", kind, index, "issuer"],
            message: `issuer "${issuer.issuer}" is configured twice`,
          });
        }
        issuers.add(issuer.name);
        issuerUrls.add(issuer.issuer);
      });
    }
    const teamNames = new Set<string>();
    config.teams.forEach((team, index) => {
      if (teamNames.has(team.name)) {
        ctx.addIssue({
          code: "custom",
          path: ["teams", index, "name"],
          message: `duplicate team "${team.name}"`,
        });
      }
      teamNames.add(team.name);
      team.members.forEach((member, memberIndex) => {
        if (typeof member === "string" ? !names.has(member) : !issuers.has(member.issuer)) {
          ctx.addIssue({
            code: "custom",
            path: ["teams", index, "members", memberIndex, ...(typeof member === "string" ? [] : ["issuer"])],
            message:
              typeof member === "string"
                ? `unknown identity "${member}" (not in identities.static)`
                : `unknown issuer "${member.issuer}" (not in identities.oidc or identities.kubernetes)`,
          });
        }
      });
      const jobScoped = team.actions.some((action) => action === "push" || action === "delete");
      if (jobScoped && team.jobs.length === 0) {
        ctx.addIssue({
          code: "custom",
          path: ["teams", index, "jobs"],
          message: "push and delete need at least one job pattern",
        });
      }
    });
    if (config.teams.length === 0 && config.anonymous.actions.length === 0) {
      ctx.addIssue({
        code: "custom",
        path: ["teams"],
        message: "the config grants nothing: define at least one team (pushguard has no open mode)",
      });
    }
    // These sections may themselves be invalid here (their own issues are already reported).
    const rules: unknown = config.rateLimit?.rules;
    (Array.isArray(rules) ? rules : []).forEach((rule: { team?: unknown }, index) => {
      if (typeof rule?.team === "string" && !teamNames.has(rule.team)) {
        ctx.addIssue({
          code: "custom",
          path: ["rateLimit", "rules", index, "team"],
          message: `unknown team "${rule.team}" (not in teams)`,
        });
      }
    });
    const maxConcurrent: unknown = config.overload?.maxConcurrent;
    const connections: unknown = config.upstream?.connections;
    // Only against a valid pool size: an invalid one is already reported under its own key.
    const validConnections =
      typeof connections === "number" && Number.isInteger(connections) && connections >= 1;
    if (typeof maxConcurrent === "number" && validConnections && maxConcurrent > connections) {
      ctx.addIssue({
        code: "custom",
        path: ["overload", "maxConcurrent"],
        message: `must not exceed upstream.connections (${connections}): the excess would queue unbounded in the connection pool`,
      });
    }
    const buffered: unknown = config.overload?.maxBufferedBodyBytes;
    // The largest gzip body holds its wire bytes and room for its decoded bytes at once.
    const largest = Number(config.body?.maxBytes) + Number(config.body?.maxDecompressedBytes);
    if (typeof buffered === "number" && Number.isFinite(largest) && buffered < largest) {
      ctx.addIssue({
        code: "custom",
        path: ["overload", "maxBufferedBodyBytes"],
        message: `must be at least body.maxBytes + body.maxDecompressedBytes (${largest}): the largest body could never be accepted`,
      });
    }
    if (config.validation?.enabled === false && config.store?.index?.enabled === true) {
      ctx.addIssue({
        code: "custom",
        path: ["store", "index", "enabled"],
        message: "the store index checks what validation parses: it needs validation.enabled",
      });
    }
    checkExpiry(config, ctx);
  }, crossReferencesReadable);

/** The configuration file as written, before secrets are resolved. */
export type RawConfig = z.infer<typeof configSchema>;
