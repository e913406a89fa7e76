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

/** Anything the template engine (src/policy/template.ts) reads as a placeholder. */
const PLACEHOLDER = /\{([A-Za-z][A-Za-z0-9_.:-]*)\}/g;
const KNOWN_VARIABLE = /^(team|subject|namespace|serviceAccount|claims\.[A-Za-z0-9_.:-]+)$/;

/** Placeholders in `template` that name no identity value (`{taem}`): they could never be filled. */
export function unknownTemplateVariables(template: string): string[] {
  return [...template.matchAll(PLACEHOLDER)]
    .map((match) => match[1] as string)
    .filter((name) => !KNOWN_VARIABLE.test(name));
}

const KNOWN_VARIABLES_HINT = "use {team}, {subject}, {namespace}, {serviceAccount} or {claims.PATH}";

/** A label value that may interpolate identity values; a misspelt placeholder is refused, not ignored. */
export const templateString = z
  .string()
  .min(1)
  .superRefine((template, ctx) => {
    const unknown = unknownTemplateVariables(template);
    if (unknown.length > 0) {
      ctx.addIssue({
        code: "custom",
        message: `unknown placeholder ${unknown.map((name) => `{${name}}`).join(", ")}: ${KNOWN_VARIABLES_HINT}`,
      });
    }
  });

/**
 * A glob where placeholders have nothing to be filled from: refused, since they would silently
 * never match. `where` completes "placeholders such as {namespace} ...".
 */
export const plainGlob = (where: string) =>
  z
    .string()
    .min(1)
    .refine(
      (glob) => [...glob.matchAll(PLACEHOLDER)].length === 0,
      `placeholders such as {namespace} ${where}`,
    );

/** A glob over one of the token's own values. */
const selectorGlob = plainGlob("work in jobs and groupingKey, not in member selectors");

/**
 * A team member: a static identity's name, or a selector over JWT identities. Every field given
 * must match; globs use `*` and `?`.
 */
export const memberSelector = z.union([
  z.string().min(1),
  z
    .strictObject({
      issuer: issuerName,
      subject: selectorGlob.optional(),
      group: z.string().min(1).optional(),
      namespace: selectorGlob.optional(),
      serviceAccount: selectorGlob.optional(),
      claims: z.record(z.string().min(1), selectorGlob).optional(),
    })
    .refine(
      // `claims: {}` counts as nothing: it would admit every identity of the issuer.
      (selector) =>
        [selector.subject, selector.group, selector.namespace, selector.serviceAccount].some(
          (field) => field !== undefined,
        ) || Object.keys(selector.claims ?? {}).length > 0,
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
    require: z.record(labelName, templateString).default({}),
    inject: z.record(labelName, templateString).default({}),
  })
  .prefault({});
