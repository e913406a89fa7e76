/**
 * Every request pushguard refuses ends up as one of these codes: in the problem+json body
 * (RFC 9457), in metric labels and in tests. Codes are a closed union so callers can switch on
 * them; messages are for humans and may change.
 */
export const problemCodes = {
  ERR_AUTH_MISSING: 401,
  ERR_AUTH_INVALID: 401,
  ERR_AUTH_UNAVAILABLE: 503,
  ERR_ACL_DENIED: 403,
  ERR_ROUTE_FORBIDDEN: 403,
  ERR_ROUTE_NOT_FOUND: 404,
  ERR_METHOD_NOT_ALLOWED: 405,
  ERR_BAD_GROUPING_KEY: 400,
  ERR_BAD_BODY_ENCODING: 400,
  ERR_REQUEST_INCOMPLETE: 400,
  ERR_BODY_TOO_LARGE: 413,
  ERR_UNSUPPORTED_ENCODING: 415,
  ERR_BAD_EXPOSITION: 400,
  ERR_INVALID_METRIC: 400,
  ERR_PUSH_TOO_LARGE: 413,
  ERR_PUSH_LIMIT: 422,
  ERR_METRIC_NAME_DENIED: 422,
  ERR_LABEL_RESERVED: 422,
  ERR_FAMILY_CONFLICT: 409,
  ERR_QUOTA_EXCEEDED: 429,
  ERR_RATE_LIMITED: 429,
  ERR_UPSTREAM_REFUSED: 400,
  ERR_UPSTREAM_UNAVAILABLE: 502,
  ERR_UPSTREAM_TIMEOUT: 504,
  ERR_OVERLOADED: 503,
  ERR_STORE_UNAVAILABLE: 503,
  ERR_RATE_LIMIT_STORE: 503,
  ERR_INTERNAL: 500,
} as const;

export type ProblemCode = keyof typeof problemCodes;

const titles: Record<ProblemCode, string> = {
  ERR_AUTH_MISSING: "Authentication required",
  ERR_AUTH_INVALID: "Invalid credentials",
  ERR_AUTH_UNAVAILABLE: "Identity provider unavailable",
  ERR_ACL_DENIED: "Not allowed",
  ERR_ROUTE_FORBIDDEN: "Route is closed",
  ERR_ROUTE_NOT_FOUND: "Not found",
  ERR_METHOD_NOT_ALLOWED: "Method not allowed",
  ERR_BAD_GROUPING_KEY: "Malformed grouping key",
  ERR_BAD_BODY_ENCODING: "Malformed body encoding",
  ERR_REQUEST_INCOMPLETE: "Request body incomplete",
  ERR_BODY_TOO_LARGE: "Body too large",
  ERR_UNSUPPORTED_ENCODING: "Unsupported content encoding",
  ERR_BAD_EXPOSITION: "Malformed metrics body",
  ERR_INVALID_METRIC: "Metrics the Pushgateway cannot serve",
  ERR_PUSH_TOO_LARGE: "Too many series in one push",
  ERR_PUSH_LIMIT: "Push exceeds a limit",
  ERR_METRIC_NAME_DENIED: "Metric name not allowed",
  ERR_LABEL_RESERVED: "Label is reserved",
  ERR_FAMILY_CONFLICT: "Conflicts with a stored metric family",
  ERR_QUOTA_EXCEEDED: "Team quota exceeded",
  ERR_RATE_LIMITED: "Quota Exceeded",
  ERR_UPSTREAM_REFUSED: "Refused by the Pushgateway",
  ERR_UPSTREAM_UNAVAILABLE: "Pushgateway unavailable",
  ERR_UPSTREAM_TIMEOUT: "Pushgateway timed out",
  ERR_OVERLOADED: "Temporary Reduced Capacity",
  ERR_STORE_UNAVAILABLE: "Store index not ready",
  ERR_RATE_LIMIT_STORE: "Temporary Reduced Capacity",
  ERR_INTERNAL: "Internal error",
};

export interface ProblemOptions {
  /** Extra response headers, e.g. `WWW-Authenticate`, `Allow` or `Retry-After`. */
  headers?: Record<string, string>;
  /** Structured, non-secret details added to the problem body (e.g. `action`, `job`). */
  details?: Record<string, unknown>;
  /** A finer, internal reason for metrics (e.g. `malformed` vs `unknown-token`); never sent. */
  reason?: string;
  cause?: unknown;
}

/** A request-level failure with a stable code. Never put a credential in `detail` or `details`. */
export class ProblemError extends Error {
  readonly code: ProblemCode;
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly details: Record<string, unknown>;
  readonly reason: string;

  constructor(code: ProblemCode, detail: string, options: ProblemOptions = {}) {
    // A refused request is an expected outcome, not a bug: its stack says nothing, and capturing
    // it was the largest single cost of answering a 401 (see the benchmark's profiles).
    const stackTraceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(detail, { cause: options.cause });
    Error.stackTraceLimit = stackTraceLimit;
    this.name = "ProblemError";
    this.code = code;
    this.status = problemCodes[code];
    this.headers = options.headers ?? {};
    this.details = options.details ?? {};
    this.reason = options.reason ?? code;
  }
}

/**
 * The problem types that draft-ietf-httpapi-ratelimit-headers-11 defines (section 5) and asks
 * IANA to register (section 10.2), for the codes they describe; every other code has its own
 * pushguard URI. The codes sharing a type also share its registered title (RFC 9457 section
 * 3.1.3: a title does not change between occurrences of a type), and `code` tells them apart.
 */
const registeredTypes: Partial<Record<ProblemCode, string>> = {
  ERR_RATE_LIMITED: "https://iana.org/assignments/http-problem-types#quota-exceeded",
  ERR_OVERLOADED: "https://iana.org/assignments/http-problem-types#temporary-reduced-capacity",
  ERR_RATE_LIMIT_STORE: "https://iana.org/assignments/http-problem-types#temporary-reduced-capacity",
};

/** Builds the RFC 9457 response for a problem. */
export function problemResponse(problem: ProblemError, requestId: string): Response {
  const body = {
    type:
      registeredTypes[problem.code] ?? `https://github.com/pushguard/pushguard#${problem.code.toLowerCase()}`,
    title: titles[problem.code],
    status: problem.status,
    detail: problem.message,
    code: problem.code,
    requestId,
    ...problem.details,
  };
  return new Response(JSON.stringify(body), {
    status: problem.status,
    headers: { "content-type": "application/problem+json", ...problem.headers },
  });
}
