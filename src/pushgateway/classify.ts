import type { Action } from "../config/schema.js";
import { ProblemError } from "../errors.js";
import { formatGroupingKey, type GroupingKey, parseGroupingKey } from "./grouping-key.js";

/**
 * What a request asks of the Pushgateway, decided from method and path alone. `upstreamPath` is
 * what pushguard forwards: for writes it is rebuilt from the parsed grouping key, never copied
 * from the request, so the upstream acts on exactly what was authorized.
 */
export type Operation =
  | {
      readonly action: "push";
      readonly method: "PUT" | "POST";
      readonly groupingKey: GroupingKey;
      readonly upstreamPath: string;
    }
  | {
      readonly action: "delete";
      readonly method: "DELETE";
      readonly groupingKey: GroupingKey;
      readonly upstreamPath: string;
    }
  | { readonly action: "wipe"; readonly method: "PUT"; readonly upstreamPath: string }
  | { readonly action: "read"; readonly method: "GET" | "HEAD"; readonly upstreamPath: string }
  /** `/-/healthy` and `/-/ready`: probes, answered for anyone. */
  | { readonly action: "probe"; readonly method: "GET" | "HEAD"; readonly upstreamPath: string };

export type WriteOperation = Extract<Operation, { action: "push" | "delete" }>;

/** Every operation except probes needs one of the configurable actions. */
export function requiredAction(operation: Operation): Action | undefined {
  return operation.action === "probe" ? undefined : operation.action;
}

const PUSH_PREFIX = "/metrics/job/";
const PUSH_PREFIX_BASE64 = "/metrics/job@base64/";
/** The push routes with the job missing entirely: a malformed grouping key, not an unknown route. */
const PUSH_WITHOUT_JOB = new Set(["/metrics/job", "/metrics/job@base64"]);

/** Routes that can stop, reconfigure or profile the Pushgateway. Never forwarded. */
const CLOSED = [/^\/-\/(quit|reload)$/, /^\/debug\/pprof(\/|$)/];

const READ_PATHS = new Set(["/metrics", "/api/v1/metrics", "/api/v1/status", "/"]);
const STATIC_ASSET = /^\/static\/[A-Za-z0-9_.\-/]+$/;

/**
 * @param method request method, upper case
 * Routes are matched on the raw path. Pushgateway decodes first (`/metrics/jo%62/x` is a push
 * there); pushguard does not, so such spellings are simply unknown routes here, never forwarded.
 *
 * @param rawPath the request path exactly as received (percent-encoded, without query string)
 * @param search the query string including `?`, or "" (kept only for UI and API reads)
 */
export function classify(method: string, rawPath: string, search = ""): Operation {
  const jobBase64 = rawPath.startsWith(PUSH_PREFIX_BASE64);
  if (jobBase64 || rawPath.startsWith(PUSH_PREFIX) || PUSH_WITHOUT_JOB.has(rawPath)) {
    if (method !== "PUT" && method !== "POST" && method !== "DELETE") throw notAllowed("PUT, POST, DELETE");
    if (PUSH_WITHOUT_JOB.has(rawPath)) throw new ProblemError("ERR_BAD_GROUPING_KEY", "job name is required");
    const rest = rawPath.slice(jobBase64 ? PUSH_PREFIX_BASE64.length : PUSH_PREFIX.length);
    const groupingKey = parseGroupingKey(jobBase64, rest);
    const upstreamPath = formatGroupingKey(groupingKey);
    return method === "DELETE"
      ? { action: "delete", method, groupingKey, upstreamPath }
      : { action: "push", method, groupingKey, upstreamPath };
  }
  if (rawPath === "/api/v1/admin/wipe") {
    if (method !== "PUT") throw notAllowed("PUT");
    return { action: "wipe", method, upstreamPath: rawPath };
  }
  if (CLOSED.some((pattern) => pattern.test(rawPath))) {
    throw new ProblemError("ERR_ROUTE_FORBIDDEN", "this Pushgateway route is never forwarded by pushguard");
  }
  if (rawPath === "/-/healthy" || rawPath === "/-/ready") {
    if (method !== "GET" && method !== "HEAD") throw notAllowed("GET, HEAD");
    return { action: "probe", method, upstreamPath: rawPath };
  }
  if (READ_PATHS.has(rawPath) || (STATIC_ASSET.test(rawPath) && !rawPath.includes(".."))) {
    if (method !== "GET" && method !== "HEAD") throw notAllowed("GET, HEAD");
    return { action: "read", method, upstreamPath: rawPath + search };
  }
  throw new ProblemError("ERR_ROUTE_NOT_FOUND", "not a Pushgateway route that pushguard serves");
}

function notAllowed(allow: string): ProblemError {
  return new ProblemError("ERR_METHOD_NOT_ALLOWED", `method not allowed here; use ${allow}`, {
    headers: { allow },
  });
}
