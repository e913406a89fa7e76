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
  /**
   * Counts this request against `team`'s share from now on (called once authorization knows the
   * team, before the body is read; `undefined`: the callers without a team, together).
   */
  assign(team: string | undefined): void;
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
  readonly #maxTeamBytes: number;
  readonly #metrics: Metrics;
  #used = 0;
  readonly #usedByTeam = new Map<string, number>();

  /**
   * @param maxTeamShare the fraction of `maxBytes` one team may hold at once, so that one team's
   *   large or slow bodies cannot lock every other team out (1: no per-team cap)
   * @param largestBody what one request may hold at most: a team's share is never less, so its
   *   largest body always fits
   */
  constructor(maxBytes: number, metrics: Metrics, maxTeamShare = 1, largestBody = 0) {
    this.#maxBytes = maxBytes;
    this.#maxTeamBytes = Math.max(Math.floor(maxBytes * maxTeamShare), largestBody);
    this.#metrics = metrics;
  }

  reserve(): BodyReservation {
    let held = 0;
    let team = "";
    const adjust = (delta: number) => {
      held += delta;
      this.#used += delta;
      const teamBytes = (this.#usedByTeam.get(team) ?? 0) + delta;
      if (teamBytes === 0) this.#usedByTeam.delete(team);
      else this.#usedByTeam.set(team, teamBytes);
      this.#metrics.bodyBufferedBytes.set(this.#used);
    };
    const give = (bytes: number) => adjust(-Math.min(bytes, held));
    return {
      take: (bytes) => {
        const overall = this.#used + bytes > this.#maxBytes;
        if (overall || (this.#usedByTeam.get(team) ?? 0) + bytes > this.#maxTeamBytes) {
          const reason = overall ? "body-memory" : "team-share";
          this.#metrics.overloadRejections.inc({ reason });
          throw new ProblemError(
            "ERR_OVERLOADED",
            overall
              ? "too many request bodies are being received at once; retry shortly"
              : "this team's requests already hold their share of the memory for request bodies; retry shortly",
            { headers: { "retry-after": "1", connection: "close" }, reason },
          );
        }
        adjust(bytes);
      },
      give,
      release: () => give(held),
      assign: (next) => {
        const bytes = held;
        give(bytes);
        team = next ?? "";
        adjust(bytes);
      },
    };
  }
}
