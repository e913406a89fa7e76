import { execFileSync } from "node:child_process";

/**
 * Builds `dist/` once per run, for the suites that spawn `node dist/main.js` like a user would;
 * the same step as `npm test`, `npm run demo` and `npm run bench`, so it is skipped when nothing
 * in src/ changed since the last build.
 */
export default function buildOnce(): void {
  execFileSync("bash", ["-c", "source scripts/lib/ensure.sh && ensure_build"], { stdio: "inherit" });
}
