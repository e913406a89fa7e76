import { execFileSync } from "node:child_process";

/** Builds `dist/` once per run, for the suites that spawn `node dist/main.js` like a user would. */
export default function buildOnce(): void {
  execFileSync("npx", ["tsc", "-p", "tsconfig.build.json"], { stdio: "inherit" });
}
