import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize } from "node:path";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import { problemCodes } from "../../src/errors.js";
import { codeBlocks, documentationPages, REPO_ROOT, readme, readPage, section } from "../support/docs.js";

/**
 * The README is a front door (short, the sections a newcomer needs, a map of docs/), and the
 * pages it leads to hold together: every relative link and anchor resolves, every problem code
 * has its row, the smallest config shown is the one in examples/.
 */

const ALL_PAGES = [
  "README.md",
  ...readdirSync(join(REPO_ROOT, "docs"))
    .filter((name) => name.endsWith(".md"))
    .map((name) => `docs/${name}`),
];

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function anchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

function anchors(page: string): Set<string> {
  const found = new Set<string>();
  for (const line of readPage(page).split("\n")) {
    const heading = /^#{1,6}\s+(.*)$/.exec(line);
    if (heading) found.add(anchor(heading[1] as string));
  }
  return found;
}

/** Links outside code blocks: `[text](target)`. */
function links(page: string): string[] {
  let text = readPage(page);
  for (const block of codeBlocks(text)) text = text.replace(block.body, "");
  return [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((match) => match[1] as string);
}

describe("the README is a front door", () => {
  const text = readme();

  it("has at most 300 lines", () => {
    expect(text.split("\n").length).toBeLessThanOrEqual(300);
  });

  it.each([
    "## Quick start",
    "## Pushing through pushguard",
    "## The smallest useful config",
    "## Documentation",
    "## Running the tests",
  ])("has %s", (heading) => {
    expect(section(text, heading).trim()).not.toBe("");
  });

  it("maps every page in docs/", () => {
    const map = section(text, "## Documentation");
    for (const page of ALL_PAGES.filter((page) => page !== "README.md")) expect(map).toContain(`(${page})`);
  });

  it("shows examples/minimal.yaml as it is, and it is a valid config", () => {
    const yaml = codeBlocks(section(text, "## The smallest useful config")).find(
      (block) => block.info === "yaml",
    );
    const file = readFileSync(join(REPO_ROOT, "examples/minimal.yaml"), "utf8");
    expect(yaml?.body).toBe(file);
    expect(parseConfig(file, "examples/minimal.yaml", {}).teams.map((team) => team.name)).toEqual(["team-a"]);
  });

  it("runs every documented command as `npx pushguard` (a clone has no `pushguard` on PATH)", () => {
    for (const page of documentationPages()) {
      for (const block of codeBlocks(readPage(page)).filter((b) => b.info === "sh")) {
        const bare = block.body.split("\n").filter((line) => /(^|[|;&]\s*)pushguard\s/.test(line));
        expect(bare, `${page}:${block.line}`).toEqual([]);
      }
    }
  });
});

describe("links between the pages resolve", () => {
  it.each(ALL_PAGES)("%s", (page) => {
    const broken = links(page).filter((target) => {
      if (/^[a-z]+:/.test(target)) return false;
      const [path = "", fragment] = target.split("#");
      const file = path === "" ? page : normalize(join(dirname(page), path));
      if (!existsSync(join(REPO_ROOT, file))) return true;
      return fragment !== undefined && file.endsWith(".md") && !anchors(file).has(fragment);
    });
    expect(broken).toEqual([]);
  });
});

describe("docs/errors.md lists every problem code", () => {
  const rows = new Map<string, number>(
    [...readPage("docs/errors.md").matchAll(/^\| (\d{3}) \| `(ERR_[A-Z_]+)` \|/gm)].map((match) => [
      match[2] as string,
      Number(match[1]),
    ]),
  );

  it.each(Object.entries(problemCodes))("%s, with its status %d", (code, status) => {
    expect(rows.get(code)).toBe(status);
  });

  it("and no code that does not exist", () => {
    expect([...rows.keys()].filter((code) => !(code in problemCodes))).toEqual([]);
  });
});
