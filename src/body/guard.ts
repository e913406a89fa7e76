import type { IncomingMessage } from "node:http";
import { promisify } from "node:util";
import { gunzip } from "node:zlib";
import { ProblemError } from "../errors.js";
import type { BodyReservation } from "../overload/body-memory.js";

const gunzipAsync = promisify(gunzip);

export interface BodyLimits {
  /** Maximum bytes on the wire. */
  readonly maxBytes: number;
  /** Maximum bytes after gzip decompression. */
  readonly maxDecompressedBytes: number;
}

/** A request body that passed every guard, ready to forward. */
export interface GuardedBody {
  /** The bytes to send upstream: decompressed if the client sent gzip. */
  readonly bytes: Buffer;
  /** Bytes received on the wire (for audit and metrics). */
  readonly receivedBytes: number;
  /** Whether the body arrived gzip-encoded (and was decoded). */
  readonly decompressed: boolean;
}

/** How much of the body has been read so far, kept up to date even when the body is refused. */
export interface BodyProgress {
  receivedBytes: number;
}

/** Deflate's largest expansion: one input byte never decodes to more than ~1032 output bytes. */
const MAX_DEFLATE_RATIO = 1032;

const UNBOUNDED: BodyReservation = { take() {}, give() {}, release() {}, assign() {} };

/**
 * Reads and checks a write's body before anything is sent upstream. The wire size is capped
 * (Content-Length is checked before reading), and a gzip body is decoded here with a cap on its
 * output, because Pushgateway has no limit of its own: one 512 KB gzip bomb can take it to
 * gigabytes. The decoded bytes are forwarded without Content-Encoding, so the upstream parses
 * exactly what was checked (and Pushgateway 1.5.1, which only knows lowercase `gzip`, is never
 * asked to decode anything).
 *
 * Every byte held is taken from `memory` (the process-wide body budget) as it arrives, and the
 * decoded bytes once decoded; the caller releases the reservation when the request ends.
 */
export async function guardBody(
  request: IncomingMessage,
  limits: BodyLimits,
  progress: BodyProgress = { receivedBytes: 0 },
  memory: BodyReservation = UNBOUNDED,
): Promise<GuardedBody> {
  const encoding = contentEncoding(request.headers["content-encoding"]);
  const declared = request.headers["content-length"];
  if (declared !== undefined && Number(declared) > limits.maxBytes) throw tooLarge("body", limits.maxBytes);
  const raw = await readCapped(request, limits.maxBytes, progress, memory);
  if (encoding === "identity") return { bytes: raw, receivedBytes: raw.length, decompressed: false };
  // Room for the largest output this input can decode to, before decoding; the rest is given back.
  const bound = Math.min(limits.maxDecompressedBytes, raw.length * MAX_DEFLATE_RATIO);
  memory.take(bound);
  let bytes: Buffer;
  try {
    bytes = await gunzipAsync(raw, { maxOutputLength: limits.maxDecompressedBytes });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE") {
      throw tooLarge("decompressed body", limits.maxDecompressedBytes, "decompressed-too-large");
    }
    throw new ProblemError("ERR_BAD_BODY_ENCODING", "the body is not valid gzip", { reason: "corrupt-gzip" });
  }
  // Only the decoded bytes are kept from here on.
  memory.give(raw.length + bound - bytes.length);
  return { bytes, receivedBytes: raw.length, decompressed: true };
}

/** `identity` or `gzip`; header values are case-insensitive (RFC 9110 §8.4.1). */
function contentEncoding(header: string | undefined): "identity" | "gzip" {
  const codings = (header ?? "")
    .split(",")
    .map((coding) => coding.trim().toLowerCase())
    .filter((coding) => coding !== "" && coding !== "identity");
  if (codings.length === 0) return "identity";
  if (codings.length === 1 && (codings[0] === "gzip" || codings[0] === "x-gzip")) return "gzip";
  throw new ProblemError("ERR_UNSUPPORTED_ENCODING", "only gzip (or no) Content-Encoding is accepted", {
    headers: { "accept-encoding": "gzip" },
    reason: "unsupported-encoding",
  });
}

/**
 * Collects the body, failing as soon as it passes `maxBytes`. It stops reading instead of
 * destroying the request, so the client still gets its 413 (sent with `Connection: close`).
 */
function readCapped(
  request: IncomingMessage,
  maxBytes: number,
  progress: BodyProgress,
  memory: BodyReservation,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const cleanup = () => {
      request.off("data", onData);
      request.off("end", onEnd);
      request.off("error", onError);
      request.off("close", onClose);
    };
    const onData = (chunk: Buffer) => {
      total += chunk.length;
      progress.receivedBytes = total;
      if (total > maxBytes) {
        cleanup();
        request.pause();
        reject(tooLarge("body", maxBytes));
        return;
      }
      try {
        memory.take(chunk.length);
      } catch (error) {
        cleanup();
        request.pause();
        reject(error);
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, total));
    };
    const onError = (error: Error) => {
      cleanup();
      reject(
        new ProblemError("ERR_REQUEST_INCOMPLETE", "the request body could not be read", { cause: error }),
      );
    };
    // A client that goes away mid-body never sends "end"; without this the request would hang.
    const onClose = () => {
      cleanup();
      reject(
        new ProblemError("ERR_REQUEST_INCOMPLETE", "the client closed the connection before the body ended"),
      );
    };
    request.on("data", onData);
    request.on("end", onEnd);
    request.on("error", onError);
    request.on("close", onClose);
  });
}

function tooLarge(what: string, limit: number, reason = "too-large"): ProblemError {
  return new ProblemError("ERR_BODY_TOO_LARGE", `${what} exceeds ${limit} bytes`, {
    headers: { connection: "close" },
    details: { limit },
    reason,
  });
}
