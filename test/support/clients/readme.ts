import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/**
 * Code examples taken from README.md at test time, so the documentation cannot drift from what
 * works. Conventions the tests rely on:
 * - Quick start: the ```sh blocks of "## Quick start" that contain `127.0.0.1:9091` are run
 *   verbatim against a pushguard started with examples/demo.yaml (only host and port replaced).
 *   Each command is preceded by a comment; a status in it (`: 200`, `: 403 ERR_ACL_DENIED`) is
 *   what the command must print in its `curl -i` status line and problem body.
 * - "## Pushing through pushguard": the ```sh, ```python, ```go and ```js blocks of the curl,
 *   Python, Go and Node sections, whose host `pushguard.example` (with or without `:9091`) is the
 *   only thing replaced.
 */

export const README_PATH = fileURLToPath(new URL("../../../README.md", import.meta.url));

export function readme(): string {
  return readFileSync(README_PATH, "utf8");
}

/** The text under `heading` (e.g. "## Quick start") up to the next heading of the same or a higher level. */
export function section(markdown: string, heading: string): string {
  const level = /^#+/.exec(heading)?.[0].length ?? 0;
  const lines = markdown.split("\n");
  const start = lines.findIndex((line) => line.trim() === heading);
  if (start < 0) throw new Error(`README has no "${heading}" heading`);
  let inFence = false;
  const body: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (line.startsWith("```")) inFence = !inFence;
    const match = inFence ? null : /^(#+)\s/.exec(line);
    if (match && (match[1] as string).length <= level) break;
    body.push(line);
  }
  return body.join("\n");
}

/** The contents of the fenced code blocks whose info string is exactly `info` (e.g. "sh"). */
export function fencedBlocks(markdown: string, info: string): string[] {
  const blocks: string[] = [];
  let current: string[] | undefined;
  let fenceInfo = "";
  for (const line of markdown.split("\n")) {
    if (current === undefined) {
      const open = /^```(.*)$/.exec(line);
      if (open) {
        fenceInfo = (open[1] as string).trim();
        current = [];
      }
    } else if (line.trim() === "```") {
      if (fenceInfo === info) blocks.push(`${current.join("\n")}\n`);
      current = undefined;
    } else {
      current.push(line);
    }
  }
  return blocks;
}

/** The one block of language `info` in a section; fails loudly if the README changed shape. */
export function onlyBlock(markdown: string, heading: string, info: string): string {
  const blocks = fencedBlocks(section(markdown, heading), info);
  if (blocks.length !== 1) {
    throw new Error(
      `expected one \`\`\`${info} block under "${heading}" in README.md, found ${blocks.length}`,
    );
  }
  return blocks[0] as string;
}

export interface ShellExample {
  /** The comment line(s) before the command, without `#`. */
  readonly comment: string;
  /** The command as written (continuation lines joined with their backslashes kept). */
  readonly command: string;
  /** The HTTP status the comment promises, if any. */
  readonly expectStatus?: number;
  /** The problem code the comment promises, if any. */
  readonly expectCode?: string;
}

/**
 * Splits a shell block into commented examples: a comment, then the commands up to the next
 * blank line or comment, run as one script (a command may continue over `\` lines, and a later
 * command may use a variable an earlier one set).
 */
export function shellExamples(block: string): ShellExample[] {
  const examples: ShellExample[] = [];
  let comment: string[] = [];
  let command: string[] = [];
  const flush = () => {
    if (command.length === 0) return;
    const text = comment.join(" ");
    const expectation = /:\s*(\d{3})\b(?:\s+(ERR_[A-Z_]+))?/.exec(text);
    examples.push({
      comment: text,
      command: command.join("\n"),
      ...(expectation ? { expectStatus: Number(expectation[1]) } : {}),
      ...(expectation?.[2] ? { expectCode: expectation[2] } : {}),
    });
    comment = [];
    command = [];
  };
  for (const line of block.split("\n")) {
    const continuing = command.length > 0 && (command[command.length - 1] as string).trimEnd().endsWith("\\");
    if (continuing) {
      command.push(line);
    } else if (line.trim() === "") {
      flush();
    } else if (line.trimStart().startsWith("#")) {
      flush();
      comment.push(line.trim().replace(/^#\s?/, ""));
    } else {
      command.push(line);
    }
  }
  flush();
  return examples;
}

/** The Quick start's runnable blocks: ```sh in "## Quick start" that talk to 127.0.0.1:9091. */
export function quickStartExamples(markdown: string = readme()): ShellExample[] {
  const blocks = fencedBlocks(section(markdown, "## Quick start"), "sh").filter((block) =>
    block.includes("127.0.0.1:9091"),
  );
  return blocks.flatMap(shellExamples);
}
