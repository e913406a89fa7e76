import { type DestinationStream, type Logger, pino } from "pino";

export type { Logger };

/**
 * Structured JSON logs on stdout. Request headers are never logged, so no credential can leak;
 * `redact` is a second line of defence for any object that might carry one.
 *
 * Stdout is written asynchronously: under load, lines that arrive while a write is in flight go
 * out together instead of costing one synchronous write each (one audit line per push made that
 * the largest cost of the 401 path). pino flushes what is buffered when the process exits.
 */
export function createLogger(
  level: string,
  destination: DestinationStream = pino.destination({ dest: 1, sync: false }),
): Logger {
  return pino(
    {
      level,
      base: { service: "pushguard" },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: [
          "authorization",
          "*.authorization",
          "headers.authorization",
          "token",
          "*.token",
          "password",
          "*.password",
          // ioredis errors carry the failed command: a refused HELLO/AUTH holds the Redis password.
          "*.command.args",
        ],
        censor: "[redacted]",
      },
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}
