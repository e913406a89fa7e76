import { expect } from "vitest";
import { ProblemError } from "../../src/errors.js";

/** Runs `run`, which must throw a ProblemError, and returns it. */
export function problemOf(run: () => unknown): ProblemError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ProblemError);
    return error as ProblemError;
  }
  throw new Error("expected a ProblemError, got a result");
}

/** Awaits `run`, which must reject with a ProblemError, and returns it. */
export async function rejectionOf(run: () => Promise<unknown>): Promise<ProblemError> {
  try {
    await run();
  } catch (error) {
    expect(error).toBeInstanceOf(ProblemError);
    return error as ProblemError;
  }
  throw new Error("expected a ProblemError, got a result");
}
