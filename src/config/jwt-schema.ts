import { z } from "zod";

/**
 * Config for JWT identities: OIDC issuers (company IdP, CI systems) and Kubernetes
 * ServiceAccount token issuers. Asymmetric algorithms only: `none` and HMAC (whose "key" would be
 * public JWKS material) can never be configured.
 */
export const jwtAlgorithms = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
] as const;

const issuerName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, "must be 1-64 characters of letters, digits, _ . -");

const httpUrl = z.string().refine((value) => {
  if (!URL.canParse(value)) return false;
  const protocol = new URL(value).protocol;
  return protocol === "https:" || protocol === "http:";
}, "must be an absolute http:// or https:// URL");

const jwks = z
  .strictObject({
    cooldownMs: z.number().int().nonnegative().max(3_600_000).default(30_000),
    cacheMaxAgeMs: z.number().int().positive().max(86_400_000).default(600_000),
    timeoutMs: z.number().int().positive().max(60_000).default(5_000),
  })
  .prefault({});

const common = {
  name: issuerName,
  audiences: z
    .array(z.string().min(1))
    .min(1, "give at least one audience: tokens for other services must not work here"),
  jwksUri: httpUrl.optional(),
  algorithms: z.array(z.enum(jwtAlgorithms)).min(1).default(["RS256", "ES256"]),
  clockToleranceSec: z.number().int().nonnegative().max(300).default(30),
  maxTokenBytes: z.number().int().positive().max(65_536).default(8_192),
  jwks,
};

export const oidcIssuer = z.strictObject({
  ...common,
  issuer: httpUrl,
  typ: z.string().min(1).optional(),
  claims: z
    .strictObject({
      subject: z.string().min(1).default("sub"),
      groups: z.string().min(1).optional(),
    })
    .prefault({}),
});

export const kubernetesIssuer = z.strictObject({
  ...common,
  issuer: z.string().min(1).default("https://kubernetes.default.svc.cluster.local"),
  /** In cluster: discovery and keys come from the API server, authenticated with the pod's token. */
  apiServer: httpUrl.optional(),
  caFile: z.string().min(1).optional(),
  tokenFile: z.string().min(1).optional(),
});

export type OidcIssuerConfig = z.infer<typeof oidcIssuer>;
export type KubernetesIssuerConfig = z.infer<typeof kubernetesIssuer>;

/** The claim, label and identity values a pattern may interpolate, e.g. `{namespace}-*`. */
export const TEMPLATE_VARIABLE = /\{(team|subject|namespace|serviceAccount|claims\.[A-Za-z0-9_.:-]+)\}/g;

/**
 * A team member: a static identity's name, or a selector over JWT identities. Every field given
 * must match; globs use `*` and `?`.
 */
export const memberSelector = z.union([
  z.string().min(1),
  z
    .strictObject({
      issuer: issuerName,
      subject: z.string().min(1).optional(),
      group: z.string().min(1).optional(),
      namespace: z.string().min(1).optional(),
      serviceAccount: z.string().min(1).optional(),
      claims: z.record(z.string().min(1), z.string()).optional(),
    })
    .refine(
      (selector) => Object.keys(selector).length > 1,
      "a selector needs at least one of subject, group, namespace, serviceAccount, claims besides issuer",
    ),
]);

export type MemberSelector = z.infer<typeof memberSelector>;

const labelName = z
  .string()
  .regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/, "must be a valid label name")
  .refine((name) => !name.startsWith("__"), "names starting with __ are reserved")
  .refine((name) => name !== "job", "job is set by the path; use jobs patterns instead");

/** Grouping-key rules: labels that must be present with a value, and labels pushguard sets. */
export const groupingKeyRules = z
  .strictObject({
    require: z.record(labelName, z.string().min(1)).default({}),
    inject: z.record(labelName, z.string().min(1)).default({}),
  })
  .prefault({});
