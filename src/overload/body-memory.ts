import { ProblemError } from "../errors.js";
import type { Metrics } from "../observability/metrics.js";

/** One request's share of the budget: what it holds now, given back all at once when it ends. */
export interface BodyReservation {
  /**
   * Takes `bytes` more for this request.
   * @throws ProblemError `503 ERR_OVERLOADED` (reason `body-memory`) when the budget has no room
   */
  take(bytes: number): void;
  /** Gives back `bytes` this request no longer holds (the gzip input once decoded). */
  give(bytes: number): void;
  /** Gives back everything it still holds; calling it again does nothing. */
  release(): void;
}

/**
 * A cap on request-body bytes held in memory at once, across every request: bodies are read,
 * decoded and checked before an upstream slot is taken (so a slow client never holds one), and
 * without this cap their memory would only be bounded by open connections × `body.maxBytes`.
 * Past the cap a request gets `503 ERR_OVERLOADED` with `Retry-After` and `Connection: close`
 * (its body is not read further) instead of pushguard running out of memory.
 */
export class BodyMemory {
  readonly #maxBytes: number;
  readonly #metrics: Metrics;
  #used = 0;

  constructor(maxBytes: number, metrics: Metrics) {
    this.#maxBytes = maxBytes;
    this.#metrics = metrics;
  }

  reserve(): BodyReservation {
    let held = 0;
    const give = (bytes: number) => {
      const returned = Math.min(bytes, held);
      held -= returned;
      this.#used -= returned;
      this.#metrics.bodyBufferedBytes.set(this.#used);
    };
    return {
      take: (bytes) => {
        if (this.#used + bytes > this.#maxBytes) {
          this.#metrics.overloadRejections.inc({ reason: "body-memory" });
          throw new ProblemError(
            "ERR_OVERLOADED",
            "too many request bodies are being received at once; retry shortly",
            { headers: { "retry-after": "1", connection: "close" }, reason: "body-memory" },
          );
        }
        held += bytes;
        this.#used += bytes;
        this.#metrics.bodyBufferedBytes.set(this.#used);
      },
      give,
      release: () => give(held),
    };
  }
}
