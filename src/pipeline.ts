import { randomUUID } from "node:crypto";
import type { HttpBindings } from "@hono/node-server";
import { Hono } from "hono";
import type { Authenticate } from "./auth/authenticate.js";
import { ANONYMOUS, type Identity } from "./auth/identity.js";
import { type BodyLimits, type GuardedBody, guardBody } from "./body/guard.js";
import { ProblemError, problemResponse } from "./errors.js";
import type { Logger } from "./observability/logger.js";
import type { Metrics } from "./observability/metrics.js";
import type { BodyMemory } from "./overload/body-memory.js";
import type { UpstreamSlots } from "./overload/upstream-slots.js";
import type { Authorize, Decision } from "./policy/decide.js";
import { classify, type Operation } from "./pushgateway/classify.js";
import { describeGroupingKey } from "./pushgateway/grouping-key.js";
import type { LimitAuthFailures } from "./ratelimit/auth-failures.js";
import type { ClientAddress } from "./ratelimit/client-address.js";
import type { RateLimit } from "./ratelimit/limiter.js";
import type { StoreStage } from "./store/create-store.js";
import type { Reservation } from "./store/store-index.js";
import type { TeamStoreRules } from "./store/store-rules.js";
import { toProblem, type UpstreamResponse } from "./upstream/forward.js";
import { type Gateway, NOT_SENT_REASONS } from "./upstream/gateway.js";
import type { PushValidator, ValidatedPush } from "./validation/create-validator.js";

export interface PipelineStages {
  readonly clientAddress: ClientAddress;
  readonly authenticate: Authenticate;
  readonly authorize: Authorize;
  readonly limitAuthFailures: LimitAuthFailures;
  readonly rateLimit: RateLimit;
  readonly bodyLimits: BodyLimits;
  readonly bodyMemory: BodyMemory;
  readonly validator: PushValidator;
  /** The store index (`store.index.enabled`): consistency with everything already stored. */
  readonly store: StoreStage | undefined;
  /** Quotas and name ownership per team under this config. */
  readonly storeRules: TeamStoreRules;
  readonly upstreamSlots: UpstreamSlots;
  readonly upstream: Gateway;
  readonly metrics: Metrics;
  readonly logger: Logger;
}

const WRITE_METHODS = new Set(["PUT", "POST", "DELETE"]);
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * The API listener's one handler: each request runs the stages in order —
 * classify → authenticate → authorize → rate limit → body guard → validate → forward → record —
 * each taking the previous stage's typed result and never reaching back.
 *
 * `currentStages` is read once per request: a config reload swaps the stages for new requests
 * while requests in flight finish with the ones they started with.
 */
export function createApiApp(currentStages: () => PipelineStages): Hono<{ Bindings: HttpBindings }> {
  const app = new Hono<{ Bindings: HttpBindings }>();

  app.all("*", async function handleRequest(c) {
    const stages = currentStages();
    const { authenticate, authorize, rateLimit, bodyLimits, upstreamSlots, upstream, metrics, logger } =
      stages;
    const started = performance.now();
    const incoming = c.env.incoming;
    const method = incoming.method ?? "GET";
    const rawUrl = incoming.url ?? "/";
    const query = rawUrl.indexOf("?");
    const rawPath = query === -1 ? rawUrl : rawUrl.slice(0, query);
    const search = query === -1 ? "" : rawUrl.slice(query);
    const suppliedId = incoming.headers["x-request-id"];
    const requestId =
      typeof suppliedId === "string" && REQUEST_ID.test(suppliedId) ? suppliedId : randomUUID();
    const clientAddress = stages.clientAddress(
      incoming.socket.remoteAddress,
      incoming.headers["x-forwarded-for"],
    );

    let operation: Operation | undefined;
    let identity: Identity = ANONYMOUS;
    let decision: Decision | undefined;
    let body: GuardedBody | undefined;
    let validated: ValidatedPush | undefined;
    const bodyProgress = { receivedBytes: 0 };
    const bodyReservation = stages.bodyMemory.reserve();
    let status = 500;
    let problem: ProblemError | undefined;
    metrics.inFlight.inc();
    try {
      try {
        operation = classify(method, rawPath, search);
      } catch (error) {
        // The response stays the 400; the audit line still says who sent it, if that is known.
        if (WRITE_METHODS.has(method)) {
          identity = await identifyForAudit(authenticate, incoming.headers, (failure) =>
            stages.limitAuthFailures(failure, clientAddress),
          );
        }
        throw error;
      }
      try {
        identity = await authenticate(incoming.headers.authorization);
        decision = authorize(identity, operation);
      } catch (error) {
        throw await stages.limitAuthFailures(error, clientAddress);
      }
      // From here on the request's body bytes and upstream slot count against its team's share.
      bodyReservation.assign(decision.team);
      const rateLimitHeaders = await rateLimit({
        identity,
        team: decision.team,
        action: operation.action,
        job: "groupingKey" in operation ? operation.groupingKey.job : undefined,
        clientAddress,
      });
      if (operation.action === "push") {
        const groupingKey = decision.groupingKey ?? operation.groupingKey;
        stages.validator.checkKey(groupingKey, decision.team);
        body = await guardBody(incoming, bodyLimits, bodyProgress, bodyReservation);
        validated = stages.validator.checkBody(
          body.bytes,
          incoming.headers["content-type"],
          groupingKey,
          decision.team,
        );
      }
      await holdUpstreamSlot(upstreamSlots, c.env.outgoing, decision.team);
      let reservation: Reservation | undefined;
      if (validated && stages.store && operation.action === "push") {
        reservation = await stages.store.reservePush(
          decision.upstreamPath,
          operation.method,
          validated.families,
          decision.team,
          stages.storeRules(decision.team),
        );
      }
      const upstreamRequest = {
        method,
        path: decision.upstreamPath,
        headers: incoming.headers,
        body: body?.bytes,
        bodyDecoded: body?.decompressed,
        contentType: validated?.contentType,
        // The client as established above: the socket peer, or behind a trusted proxy its X-Forwarded-For.
        clientAddress,
        requestId,
        signal: operation.action === "read" ? abortOnClientGone(c.env.outgoing) : undefined,
      };
      const upstreamStarted = performance.now();
      const response = await forward(stages.store, operation, upstreamRequest.path, reservation, () =>
        upstream.request(upstreamRequest),
      );
      status = response.status;
      for (const [name, value] of Object.entries(rateLimitHeaders)) response.headers.set(name, value);
      const result = await toClientResponse(response, operation, requestId);
      if (body === undefined && !drainable(incoming.headers)) result.headers.set("connection", "close");
      metrics.upstreamDuration.observe(
        { action: operation.action },
        (performance.now() - upstreamStarted) / 1000,
      );
      return result;
    } catch (error) {
      problem = error instanceof ProblemError ? error : internalError(error, logger, requestId);
      status = problem.status;
      // The client only learns that an issuer is unavailable; the operator needs to know why.
      if (problem.code === "ERR_AUTH_UNAVAILABLE") {
        logger.warn({ requestId, cause: (problem.cause as Error | undefined)?.message }, problem.message);
      }
      const response = problemResponse(problem, requestId);
      response.headers.set("x-request-id", requestId);
      // Node drains an unread body after we answer so the connection can be reused; that is cheap
      // for a small body, but a large or unbounded one is cut off instead.
      if (body === undefined && !drainable(incoming.headers)) response.headers.set("connection", "close");
      return response;
    } finally {
      bodyReservation.release();
      metrics.inFlight.dec();
      const action = operation?.action ?? "unknown";
      const seconds = (performance.now() - started) / 1000;
      metrics.requests.inc({
        action,
        team: decision?.team ?? "",
        outcome: problem?.code ?? "forwarded",
        code: String(status),
      });
      metrics.requestDuration.observe({ action }, seconds);
      if (problem) countProblem(metrics, problem, action, decision?.team);
      if (body) metrics.bytesReceived.inc({ action }, body.receivedBytes);
      const audit = WRITE_METHODS.has(method);
      // Building the record costs more than the rest of this block; skip it when it is not logged.
      if (logger.isLevelEnabled(audit ? "info" : "debug")) {
        const record = {
          requestId,
          identity: identity.name,
          via: identity.via,
          team: decision?.team,
          action,
          method,
          groupingKey:
            decision?.groupingKey !== undefined
              ? describeGroupingKey(decision.groupingKey)
              : operation && "groupingKey" in operation
                ? describeGroupingKey(operation.groupingKey)
                : undefined,
          decision: problem && !forwardedThenFailed(problem) ? "deny" : "allow",
          status,
          code: problem?.code,
          bytes: body?.receivedBytes ?? bodyProgress.receivedBytes,
          durationMs: Math.round(seconds * 1e6) / 1e3,
        };
        if (audit) logger.info({ audit: record }, "audit");
        else logger.debug({ access: record }, "access");
      }
    }
  });

  return app;
}

async function toClientResponse(
  response: UpstreamResponse,
  operation: Operation,
  requestId: string,
): Promise<Response> {
  response.headers.set("x-request-id", requestId);
  if (operation.action === "read" && operation.method !== "HEAD") {
    return new Response(toWebStream(response.body), { status: response.status, headers: response.headers });
  }
  // Write (and HEAD) answers are tiny, usually empty; buffering them keeps the hot path simple.
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of response.body) chunks.push(chunk);
  } catch (error) {
    throw toProblem(error);
  }
  if (operation.method === "HEAD")
    return new Response(null, { status: response.status, headers: response.headers });
  const bytes = Buffer.concat(chunks);
  if (operation.action === "push" && response.status === 400) throw upstreamRefused(bytes);
  const nullBody = response.status === 204 || response.status === 304;
  return new Response(nullBody ? null : bytes, { status: response.status, headers: response.headers });
}

function toWebStream(body: AsyncIterable<Buffer>): ReadableStream<Uint8Array> {
  const iterator = body[Symbol.asyncIterator]();
  return new ReadableStream({
    async pull(controller) {
      const { value, done } = await iterator.next();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    async cancel() {
      await iterator.return?.();
    },
  });
}

/**
 * Sends a request and tells the store index what became of a write: stored, refused, or unknown
 * (no answer, or a 5xx).
 */
async function forward(
  store: StoreStage | undefined,
  operation: Operation,
  path: string,
  reservation: Reservation | undefined,
  send: () => Promise<UpstreamResponse>,
): Promise<UpstreamResponse> {
  if (!store || operation.action === "read" || operation.action === "probe") return send();
  const sentAt = await store.beforeSend(operation, path);
  let response: UpstreamResponse;
  try {
    response = await send();
  } catch (error) {
    store.settle(operation, path, undefined, reservation, sentAt);
    throw error;
  }
  store.settle(operation, path, response.status, reservation, sentAt);
  return response;
}

/**
 * Takes one of the capped upstream slots, waiting in the bounded queue if need be. The slot is
 * held until the response to the client is finished or the client is gone (`close` covers both),
 * so a read streaming a large exposition holds its slot for as long as it holds a connection.
 */
async function holdUpstreamSlot(
  slots: UpstreamSlots,
  outgoing: HttpBindings["outgoing"],
  team: string | undefined,
): Promise<void> {
  const release = slots.tryAcquire(team) ?? (await waitForSlot(slots, outgoing, team));
  if (outgoing.closed) release();
  else outgoing.once("close", release);
}

/** Queues for a slot; a client that goes away while queued gives up its place. */
async function waitForSlot(
  slots: UpstreamSlots,
  outgoing: HttpBindings["outgoing"],
  team: string | undefined,
) {
  const gone = new AbortController();
  const abandon = () => gone.abort();
  outgoing.once("close", abandon);
  return slots.acquire(gone.signal, team).finally(() => outgoing.off("close", abandon));
}

/**
 * Aborts a streamed read when the client goes away before its response is finished. Listening
 * on the response (not the keep-alive socket) means nothing is left behind once it completes.
 */
function abortOnClientGone(outgoing: HttpBindings["outgoing"]): AbortSignal {
  const controller = new AbortController();
  outgoing.once("close", () => {
    if (!outgoing.writableFinished) controller.abort();
  });
  return controller.signal;
}

/** Bodies up to this size are drained (keeping the connection) when a request is refused unread. */
const DRAIN_LIMIT = 64 * 1024;

function drainable(headers: HttpBindings["incoming"]["headers"]): boolean {
  if (headers["transfer-encoding"] !== undefined) return false;
  return Number(headers["content-length"] ?? 0) <= DRAIN_LIMIT;
}

/**
 * Who sent a write refused before authentication (a malformed path), for its audit line only.
 * A credential that fails still counts against the address's failed-authentication budget, so
 * malformed paths are no way around it; the answer stays the 400.
 */
async function identifyForAudit(
  authenticate: Authenticate,
  headers: HttpBindings["incoming"]["headers"],
  countFailure: (error: unknown) => Promise<unknown>,
): Promise<Identity> {
  try {
    return await authenticate(headers.authorization);
  } catch (error) {
    await countFailure(error);
    return ANONYMOUS;
  }
}

/**
 * The Pushgateway's own refusal of a push that passed validation: its consistency check found a
 * conflict with what other groups store (or with its own metrics). Answered as a problem like
 * every other refusal, with the Pushgateway's words (less the series it quotes) as the detail.
 */
function upstreamRefused(body: Buffer): ProblemError {
  // Its words without the metrics it quotes: those may be another group's labels and values.
  const text = body
    .toString("utf8")
    .trim()
    .replace(/\{[^{}]*\}/g, "{…}")
    .slice(0, 300);
  return new ProblemError("ERR_UPSTREAM_REFUSED", `the Pushgateway refused the push: ${text}`, {
    reason: "upstream-refused",
  });
}

/** Failures of a request pushguard let through: the Pushgateway, not the policy, said no. */
function forwardedThenFailed(problem: ProblemError): boolean {
  if (problem.code === "ERR_UPSTREAM_TIMEOUT" || problem.code === "ERR_UPSTREAM_REFUSED") return true;
  return problem.code === "ERR_UPSTREAM_UNAVAILABLE" && !NOT_SENT_REASONS.has(problem.reason);
}

function countProblem(
  metrics: Metrics,
  problem: ProblemError,
  action: string,
  team: string | undefined,
): void {
  switch (problem.code) {
    case "ERR_AUTH_MISSING":
    case "ERR_AUTH_INVALID":
      metrics.authFailures.inc({ reason: problem.reason });
      break;
    case "ERR_ACL_DENIED":
      metrics.denials.inc({ action });
      break;
    case "ERR_BODY_TOO_LARGE":
    case "ERR_UNSUPPORTED_ENCODING":
    case "ERR_BAD_BODY_ENCODING":
      metrics.bodyRejections.inc({ reason: problem.reason });
      break;
    case "ERR_BAD_EXPOSITION":
    case "ERR_INVALID_METRIC":
    case "ERR_PUSH_TOO_LARGE":
    case "ERR_PUSH_LIMIT":
    case "ERR_METRIC_NAME_DENIED":
    case "ERR_LABEL_RESERVED":
    case "ERR_FAMILY_CONFLICT":
    case "ERR_QUOTA_EXCEEDED":
      metrics.pushRejections.inc({ team: team ?? "", rule: problem.reason });
      break;
    case "ERR_BAD_GROUPING_KEY":
      if (problem.reason === "empty-grouping-value")
        metrics.pushRejections.inc({ team: team ?? "", rule: problem.reason });
      break;
    case "ERR_UPSTREAM_UNAVAILABLE":
    case "ERR_UPSTREAM_TIMEOUT":
      metrics.upstreamErrors.inc({ code: problem.code, reason: problem.reason });
      break;
    default:
      break;
  }
}

function internalError(error: unknown, logger: Logger, requestId: string): ProblemError {
  logger.error({ err: error, requestId }, "unexpected error while handling a request");
  return new ProblemError("ERR_INTERNAL", "internal error", { cause: error });
}
