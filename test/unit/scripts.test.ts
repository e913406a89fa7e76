import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../support/docs.js";

/**
 * The scripts a newcomer and CI run share the machine with other work: they stop only what they
 * started, by its process id, never every process of a name or a system service.
 */

const SCRIPTS = [
  ".ci/run",
  ...readdirSync(join(REPO_ROOT, "scripts"), { recursive: true, encoding: "utf8" })
    .filter((name) => name.endsWith(".sh"))
    .map((name) => `scripts/${name}`),
];

const BY_NAME = [
  /\bpkill\b/,
  /\bkillall\b/,
  /\bsystemctl\s+(stop|kill|restart)\b/,
  /\bservice\s+\S+\s+(stop|restart)\b/,
  /\bkill\b[^\n]*\$\(\s*pgrep\b/,
  /\bfuser\s+-k\b/,
];

describe("scripts stop only what they started", () => {
  it("finds the scripts", () => {
    expect(SCRIPTS).toEqual(expect.arrayContaining([".ci/run", "scripts/demo.sh", "scripts/test.sh"]));
  });

  it.each(SCRIPTS)("%s stops nothing by name", (script) => {
    // Comments and quoted text (advice printed to the user) are not commands.
    const code = readFileSync(join(REPO_ROOT, script), "utf8")
      .split("\n")
      .filter((line) => !line.trimStart().startsWith("#"))
      .map((line) => line.replace(/"(?:[^"\\]|\\.)*"|'[^']*'/g, '""'));
    const found = code.filter((line) => BY_NAME.some((pattern) => pattern.test(line)));
    expect(found).toEqual([]);
  });
});
