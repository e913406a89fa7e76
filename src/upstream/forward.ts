import type { IncomingHttpHeaders } from "node:http";
import { Pool } from "undici";
import { ProblemError } from "../errors.js";

export interface UpstreamOptions {
  readonly url: string;
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly connections: number;
}

export interface UpstreamRequest {
  readonly method: string;
  /** The canonical path (plus query for reads) decided by classification. */
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body?: Buffer;
  /** Whether `body` was decoded from gzip (the client's Content-Encoding must then be dropped). */
  readonly bodyDecoded?: boolean;
  /** The Content-Type to send instead of the client's: the format the body was validated as. */
  readonly contentType?: string;
  readonly clientAddress: string | undefined;
  readonly requestId: string;
  /** Aborts the upstream request (used for reads when the client goes away). */
  readonly signal?: AbortSignal;
}

export interface UpstreamResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly body: NodeJS.ReadableStream & AsyncIterable<Buffer>;
}

/**
 * RFC 9110 §7.6.1 connection-specific fields, plus ones a proxy must not pass on. `expect` is
 * answered by pushguard's own server (curl sends `Expect: 100-continue` for large bodies) and the
 * body is complete before anything goes upstream.
 */
const HOP_BY_HOP = new Set([
  "connection",
  "expect",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  "content-length",
]);

/**
 * The one way to talk to the Pushgateway: a pooled keep-alive client that sends exactly the
 * request pushguard decided on. Writes are never retried (a retried push could land after a newer
 * one); connection failures become 502 and slowness 504, each with a stable code.
 */
export class Upstream {
  readonly origin: string;
  readonly #host: string;
  readonly #pool: Pool;
  readonly #basePath: string;
  readonly #timeoutMs: number;

  constructor(options: UpstreamOptions) {
    const url = new URL(options.url);
    this.origin = url.origin;
    this.#host = url.host;
    this.#basePath = url.pathname.replace(/\/+$/, "");
    this.#timeoutMs = options.timeoutMs;
    this.#pool = new Pool(url.origin, {
      connections: options.connections,
      pipelining: 1,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
      connectTimeout: options.connectTimeoutMs,
      keepAliveTimeout: 30_000,
    });
  }

  async request(request: UpstreamRequest): Promise<UpstreamResponse> {
    try {
      const response = await this.#pool.request({
        method: request.method as "GET",
        path: this.#basePath + request.path,
        headers: forwardHeaders(request, this.#host),
        body: request.body,
        signal: request.signal,
        idempotent: request.method === "GET" || request.method === "HEAD",
      });
      const headers = new Headers();
      for (const [name, value] of Object.entries(response.headers)) {
        if (value === undefined || HOP_BY_HOP.has(name)) continue;
        for (const item of Array.isArray(value) ? value : [value]) headers.append(name, item);
      }
      return { status: response.statusCode, headers, body: response.body };
    } catch (error) {
      throw toProblem(error, this.#timeoutMs);
    }
  }

  /** Whether the Pushgateway answers `/-/ready` within `timeoutMs`. */
  async ready(timeoutMs = 1_000): Promise<boolean> {
    try {
      const response = await this.#pool.request({
        method: "GET",
        path: `${this.#basePath}/-/ready`,
        signal: AbortSignal.timeout(timeoutMs),
      });
      await response.body.dump();
      return response.statusCode === 200;
    } catch {
      return false;
    }
  }

  /**
   * Closes the pool. Called once the API listener has drained: a request still waiting on the
   * Pushgateway then has no client left to answer, so it is aborted rather than awaited.
   */
  async close(): Promise<void> {
    await this.#pool.destroy();
  }
}

/** The headers sent upstream: the client's, minus hop-by-hop fields and the credential, plus X-Forwarded-*. */
export function forwardHeaders(request: UpstreamRequest, upstreamHost: string): Record<string, string> {
  const connectionListed = new Set(
    String(request.headers.connection ?? "")
      .split(",")
      .map((name) => name.trim().toLowerCase()),
  );
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || connectionListed.has(name)) continue;
    // The credential was for pushguard; the Pushgateway never needs to see it.
    if (name === "authorization" || name === "cookie") continue;
    if (name === "content-encoding" && request.bodyDecoded) continue;
    if (name.startsWith("x-forwarded-") || name === "forwarded") continue;
    headers[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  const host = request.headers.host;
  if (request.clientAddress) headers["x-forwarded-for"] = request.clientAddress;
  if (host) headers["x-forwarded-host"] = host;
  headers["x-forwarded-proto"] = "http";
  headers["x-request-id"] = request.requestId;
  headers.host = upstreamHost;
  if (request.contentType !== undefined) headers["content-type"] = request.contentType;
  if (request.body !== undefined) headers["content-length"] = String(request.body.length);
  return headers;
}

/** Maps an upstream failure to its problem; exported for errors met while reading a response body. */
export function toProblem(error: unknown, timeoutMs?: number): ProblemError {
  const code = (error as { code?: string }).code;
  if (code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT") {
    const within = timeoutMs === undefined ? "in time" : `within ${timeoutMs} ms`;
    return new ProblemError("ERR_UPSTREAM_TIMEOUT", `the Pushgateway did not answer ${within}`, {
      cause: error,
      reason: "timeout",
    });
  }
  if (error instanceof ProblemError) return error;
  // A request undici refuses to build is pushguard's bug, not an unreachable Pushgateway (which
  // would also mark a replica down).
  if (code === "UND_ERR_NOT_SUPPORTED" || code === "UND_ERR_INVALID_ARG") {
    return new ProblemError("ERR_INTERNAL", "the upstream request could not be built", {
      cause: error,
      reason: code,
    });
  }
  return new ProblemError("ERR_UPSTREAM_UNAVAILABLE", "the Pushgateway could not be reached", {
    cause: error,
    reason: code ?? "error",
  });
}
