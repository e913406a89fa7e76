import { z } from "zod";
import { groupingKeyRules, kubernetesIssuer, memberSelector, oidcIssuer } from "./jwt-schema.js";

/**
 * The one source of truth for pushguard's configuration file. Every key is documented in the
 * README's "Configuration" section; a test keeps the two in step.
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
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$/, "must be 1-128 characters of letters, digits, _ . : @ -");

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

/** A job-name glob: `*` matches any run of characters, `?` one character. */
const jobPattern = z.string().min(1, "must not be empty");

const team = z.strictObject({
  name: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, "must be 1-64 characters of letters, digits, _ . -"),
  members: z.array(memberSelector).min(1, "a team needs at least one member"),
  jobs: z.array(jobPattern).default([]),
  actions: z.array(z.enum(actions)).min(1, "a team needs at least one action"),
  groupingKey: groupingKeyRules,
});

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
    upstream: z.strictObject({
      url: upstreamUrl,
      timeoutMs: z.number().int().positive().max(600_000).default(10_000),
      connectTimeoutMs: z.number().int().positive().max(60_000).default(2_000),
      connections: z.number().int().positive().max(1024).default(64),
    }),
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
      })
      .prefault({}),
    log: z
      .strictObject({
        level: z.enum(["fatal", "error", "warn", "info", "debug", "trace"]).default("info"),
      })
      .prefault({}),
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
    for (const kind of ["oidc", "kubernetes"] as const) {
      config.identities[kind].forEach((issuer, index) => {
        if (issuers.has(issuer.name)) {
          ctx.addIssue({
            code: "custom",
            path: ["identities", kind, index, "name"],
            message: `duplicate issuer name "${issuer.name}"`,
          });
        }
        issuers.add(issuer.name);
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
  }, crossReferencesReadable);

/** The configuration file as written, before secrets are resolved. */
export type RawConfig = z.infer<typeof configSchema>;
