import { createAuthenticator } from "../auth/authenticate.js";
import { ANONYMOUS, type Identity } from "../auth/identity.js";
import type { Config } from "../config/load.js";
import { ProblemError } from "../errors.js";
import { createAuthorizer, type Trace } from "../policy/decide.js";
import { classify, type Operation } from "../pushgateway/classify.js";
import { describeGroupingKey, type GroupingKey } from "../pushgateway/grouping-key.js";
import type { StoreIndex } from "../store/store-index.js";
import { createStoreRules } from "../store/store-rules.js";
import { createPushValidator } from "../validation/create-validator.js";
import type { PushedFamilies } from "../validation/validate-push.js";
import { PushViolation } from "../validation/violation.js";

export interface ExplainRequest {
  readonly method: string;
  /** The request path as a client would send it (percent-encoding and all), query allowed. */
  readonly path: string;
  /** The raw token, or undefined for an anonymous request. */
  readonly token: string | undefined;
  /** A push body to validate as the server would (decompressed), with its Content-Type. */
  readonly body?: Buffer;
  readonly contentType?: string;
  /** What the Pushgateway stores now (`--store`): the push is checked against it and the quotas. */
  readonly store?: StoreIndex;
}

export interface Explanation {
  readonly allowed: boolean;
  readonly text: string;
}

/**
 * Runs one request through the same classify → authenticate → authorize stages the server uses
 * and says what happened at each, so "why is my push 403" has an answer without a redeploy.
 */
export async function explain(config: Config, request: ExplainRequest): Promise<Explanation> {
  const lines = [`request:   ${request.method} ${request.path}`];
  const query = request.path.indexOf("?");
  const rawPath = query === -1 ? request.path : request.path.slice(0, query);
  const search = query === -1 ? "" : request.path.slice(query);

  let operation: Operation;
  try {
    operation = classify(request.method.toUpperCase(), rawPath, search);
  } catch (error) {
    return deny(lines, "classify", error);
  }
  lines.push(
    `operation: ${operation.action}${"groupingKey" in operation ? ` ${describeGroupingKey(operation.groupingKey)}` : ""}`,
  );

  let identity: Identity;
  try {
    const authenticate = createAuthenticator(config);
    if (request.token === undefined) identity = ANONYMOUS;
    else {
      const { header, how } = authorizationFor(request.token);
      if (how) lines.push(`credential: ${how}`);
      identity = await authenticate(header);
    }
  } catch (error) {
    return deny(lines, "authenticate", error);
  }
  lines.push(`identity:  ${describeIdentity(identity)}`);

  const trace: Trace = [];
  try {
    const decision = createAuthorizer(config)(identity, operation, trace);
    lines.push("rules:", ...trace.map((line) => `  - ${line}`));
    lines.push(`decision:  ALLOW (${decision.rule})`);
    if (
      decision.groupingKey &&
      "groupingKey" in operation &&
      decision.upstreamPath !== operation.upstreamPath
    ) {
      lines.push(`rewrite:   grouping key becomes ${describeGroupingKey(decision.groupingKey)}`);
    }
    if (operation.action === "push") {
      const validated = validate(
        config,
        request,
        decision.groupingKey ?? operation.groupingKey,
        decision.team,
        lines,
      );
      if (validated && "denied" in validated) return validated.denied;
      const denied = checkStore(config, request, operation, decision, validated?.families, lines);
      if (denied) return denied;
    }
    lines.push(
      `upstream:  ${operation.method} ${(config.upstream.url ?? "<every replica>").replace(/\/+$/, "")}${decision.upstreamPath}`,
    );
    return { allowed: true, text: `${lines.join("\n")}\n` };
  } catch (error) {
    if (trace.length > 0) lines.push("rules:", ...trace.map((line) => `  - ${line}`));
    return deny(lines, "authorize", error);
  }
}

/** The validate stage for an allowed push: the team's limits, then the key and (if given) the body. */
function validate(
  config: Config,
  request: ExplainRequest,
  groupingKey: GroupingKey,
  team: string | undefined,
  lines: string[],
): { denied: Explanation } | { families: PushedFamilies } | undefined {
  const validator = createPushValidator(config);
  if (!config.validation.enabled) lines.push("validation: off (validation.enabled: false)");
  else lines.push("validation:", ...validator.policy(team).summary.map((line) => `  - ${line}`));
  try {
    validator.checkKey(groupingKey, team);
    if (request.body === undefined) {
      lines.push("body:      not given (--body FILE checks one)");
      return undefined;
    }
    const validated = validator.checkBody(request.body, request.contentType, groupingKey, team);
    if (!validated) return undefined;
    lines.push(
      `body:      valid ${validated.format}: ${validated.summary.families} families, ${validated.summary.series} series`,
    );
    return { families: validated.families };
  } catch (error) {
    if (error instanceof ProblemError && typeof error.details.rule === "string") {
      const where = ["family", "label", "line", "message", "metric"]
        .filter((key) => error.details[key] !== undefined)
        .map((key) => `${key} ${JSON.stringify(error.details[key])}`);
      if (where.length > 0) lines.push(`rule:      ${error.details.rule} (${where.join(", ")})`);
    }
    return { denied: deny(lines, "validate", error) };
  }
}

/**
 * The store stage: the team's quota and name ownership, and with `--store` (the Pushgateway's
 * store, read now) the team's usage and whether this push would clash with a stored family or
 * take the team past its quota.
 */
function checkStore(
  config: Config,
  request: ExplainRequest,
  operation: Extract<Operation, { action: "push" }>,
  decision: { team?: string; upstreamPath: string },
  families: PushedFamilies | undefined,
  lines: string[],
): Explanation | undefined {
  if (!config.store.index.enabled) {
    lines.push("store:     index off (store.index.enabled: false): no cross-group check, no quotas");
    return undefined;
  }
  const rules = createStoreRules(config)(decision.team);
  const { quota } = rules;
  lines.push(
    `store:     quota ${quota.groups} groups, ${quota.series} series; names owned by ${config.store.names.ownership === "first" ? "claim, and by the first team to store them" : "claim only"}`,
  );
  if (!request.store) {
    lines.push("           (--store reads the Pushgateway: this team's usage, and whether the push fits)");
    return undefined;
  }
  const before = decision.team === undefined ? undefined : request.store.usage().get(decision.team);
  lines.push(
    `usage:     ${before?.groups ?? 0} groups, ${before?.series ?? 0} series stored by team ${decision.team ?? "(none)"}`,
  );
  if (families === undefined) return undefined;
  try {
    request.store
      .reservePush(decision.upstreamPath, operation.method, families, decision.team, {
        ...rules,
        checkNames: true,
      })
      .rollback();
  } catch (error) {
    if (!(error instanceof PushViolation)) throw error;
    const problem = error.toProblem();
    const where = ["family", "holder", "owner", "limit", "actual"]
      .filter((key) => problem.details[key] !== undefined)
      .map((key) => `${key} ${JSON.stringify(problem.details[key])}`);
    lines.push(`rule:      ${error.rule}${where.length > 0 ? ` (${where.join(", ")})` : ""}`);
    return deny(lines, "store", problem);
  }
  lines.push("store:     fits: no stored family clashes with it, and it stays within the quota");
  return undefined;
}

/** RFC 6750 token68: what a Bearer credential may consist of. */
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/;

/**
 * The Authorization header a client would send this token in. A token outside the Bearer
 * character set (a static token may be anything) only works as the Basic password, so it is
 * presented that way, as serve would see it from a client using basic auth.
 */
function authorizationFor(token: string): { header: string; how?: string } {
  if (TOKEN68.test(token)) return { header: `Bearer ${token}` };
  return {
    header: `Basic ${Buffer.from(`explain:${token}`, "utf8").toString("base64")}`,
    how: "sent as the Basic password (it has characters a Bearer token cannot carry)",
  };
}

function describeIdentity(identity: Identity): string {
  const parts = [`${identity.name} (${identity.via}${identity.issuer ? `, issuer ${identity.issuer}` : ""})`];
  if (identity.namespace)
    parts.push(`namespace ${identity.namespace}, serviceAccount ${identity.serviceAccount}`);
  if (identity.groups.length > 0) parts.push(`groups ${identity.groups.join(", ")}`);
  return parts.join("; ");
}

function deny(lines: string[], stage: string, error: unknown): Explanation {
  if (!(error instanceof ProblemError)) throw error;
  lines.push(`decision:  DENY at ${stage}: ${error.status} ${error.code} — ${error.message}`);
  // Why an identity provider is unavailable (a missing caFile, say): for the operator asking.
  if (error.cause instanceof Error) lines.push(`cause:     ${error.cause.message}`);
  lines.push("upstream:  nothing is forwarded");
  return { allowed: false, text: `${lines.join("\n")}\n` };
}
