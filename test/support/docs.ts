import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The README and docs/ read at test time, so the documentation cannot drift from what works.
 *
 * Every ```sh block of a documentation page is run against a demo started with `npm run demo`
 * (test/e2e/docs.test.ts), with only the demo's addresses replaced by the test's own ports. A
 * block is a series of examples: comment lines, then the commands up to the next blank line or
 * comment (a command may continue over `\` lines and here-documents; one example is one script,
 * so a later command may use a variable an earlier one set, and exported variables carry over to
 * the next example). The comment says what the example must do:
 * - `: 403 ERR_ACL_DENIED` — the last `HTTP/1.1 <status>` line it prints (`curl -i`) has that
 *   status, and its problem body that code; a refusal with a single `curl` must leave the
 *   Pushgateway's store as it was;
 * - `exit 2` — its exit status (otherwise it must exit 0);
 * - ``prints `text` `` — its output contains `text`.
 * A ```text block right after a ```sh block is the output of the block's last example: its lines
 * must appear in that output, in order. Output shown for illustration goes in ```http or ```json.
 * The Python, Go and JavaScript examples run in test/e2e/clients.test.ts.
 */

export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** The pages whose shell blocks run against the demo: the README, then docs/ (the Helm chart's page needs a cluster). */
export function documentationPages(): string[] {
  const docs = readdirSync(join(REPO_ROOT, "docs"))
    .filter((name) => name.endsWith(".md") && name !== "chart.md")
    .sort()
    .map((name) => `docs/${name}`);
  return ["README.md", ...docs];
}

export function readPage(page: string): string {
  return readFileSync(join(REPO_ROOT, page), "utf8");
}

export function readme(): string {
  return readPage("README.md");
}

/** The text under `heading` (e.g. "## Quick start") up to the next heading of the same or a higher level. */
export function section(markdown: string, heading: string): string {
  const level = /^#+/.exec(heading)?.[0].length ?? 0;
  const lines = markdown.split("\n");
  const start = lines.findIndex((line) => line.trim() === heading);
  if (start < 0) throw new Error(`no "${heading}" heading`);
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

export interface CodeBlock {
  /** The info string after the opening fence (`sh`, `yaml`, ...; empty for none). */
  readonly info: string;
  /** The block's contents, ending with a newline. */
  readonly body: string;
  /** 1-based line of the opening fence. */
  readonly line: number;
  /** The block that follows this one with only blank lines between, if any. */
  readonly next?: CodeBlock;
}

/** Every fenced code block, in order. */
export function codeBlocks(markdown: string): CodeBlock[] {
  const found: Array<{ info: string; body: string; line: number; start: number; end: number }> = [];
  const lines = markdown.split("\n");
  let open: { info: string; line: number } | undefined;
  let current: string[] = [];
  lines.forEach((line, index) => {
    if (open === undefined) {
      const fence = /^```(.*)$/.exec(line);
      if (fence) {
        open = { info: (fence[1] as string).trim(), line: index + 1 };
        current = [];
      }
    } else if (line.trim() === "```") {
      found.push({ ...open, body: `${current.join("\n")}\n`, start: open.line - 1, end: index });
      open = undefined;
    } else {
      current.push(line);
    }
  });
  const blocks: CodeBlock[] = [];
  for (let i = found.length - 1; i >= 0; i--) {
    const block = found[i] as (typeof found)[number];
    const following = found[i + 1];
    const adjacent =
      following !== undefined &&
      lines.slice(block.end + 1, following.start).every((line) => line.trim() === "");
    const next = adjacent ? blocks[0] : undefined;
    blocks.unshift({ info: block.info, body: block.body, line: block.line, ...(next ? { next } : {}) });
  }
  return blocks;
}

/** The contents of the fenced code blocks whose info string is exactly `info` (e.g. "sh"). */
export function fencedBlocks(markdown: string, info: string): string[] {
  return codeBlocks(markdown)
    .filter((block) => block.info === info)
    .map((block) => block.body);
}

/** The one block of language `info` in a section; fails loudly if the page changed shape. */
export function onlyBlock(markdown: string, heading: string, info: string): string {
  const blocks = fencedBlocks(section(markdown, heading), info);
  if (blocks.length !== 1) {
    throw new Error(`expected one \`\`\`${info} block under "${heading}", found ${blocks.length}`);
  }
  return blocks[0] as string;
}

export interface ShellExample {
  /** The comment line(s) before the command, without `#`. */
  readonly comment: string;
  /** The command as written (continuation lines and here-documents included). */
  readonly command: string;
  /** The HTTP status the comment promises, if any. */
  readonly expectStatus?: number;
  /** The problem code the comment promises, if any. */
  readonly expectCode?: string;
  /** The exit status the comment promises (0 when it names none). */
  readonly expectExit: number;
  /** Text the output must contain. */
  readonly expectPrints: readonly string[];
}

/** Splits a shell block into its commented examples (see the conventions above). */
export function shellExamples(block: string): ShellExample[] {
  const examples: ShellExample[] = [];
  let comment: string[] = [];
  let command: string[] = [];
  let hereDocEnd: string | undefined;
  const flush = () => {
    if (command.length === 0) return;
    examples.push({ ...expectations(comment.join(" ")), command: command.join("\n") });
    comment = [];
    command = [];
  };
  for (const line of block.split("\n")) {
    const continuing = command.length > 0 && (command[command.length - 1] as string).trimEnd().endsWith("\\");
    if (hereDocEnd !== undefined) {
      command.push(line);
      if (line.trim() === hereDocEnd) hereDocEnd = undefined;
    } else if (continuing) {
      command.push(line);
    } else if (line.trim() === "") {
      flush();
    } else if (line.trimStart().startsWith("#")) {
      flush();
      comment.push(line.trim().replace(/^#\s?/, ""));
    } else {
      command.push(line);
    }
    if (hereDocEnd === undefined && command.at(-1) === line) {
      hereDocEnd = /<<-?\s*['"]?([A-Za-z_]+)['"]?/.exec(line)?.[1];
    }
  }
  flush();
  return examples;
}

function expectations(comment: string): Omit<ShellExample, "command"> {
  const expectPrints = [...comment.matchAll(/prints `([^`]+)`/g)].map((match) => match[1] as string);
  const rest = comment.replace(/prints `[^`]+`/g, "");
  const status = /:\s*(\d{3})\b(?:\s+(ERR_[A-Z_]+))?/.exec(rest);
  const exit = /\bexit (\d+)\b/.exec(rest);
  return {
    comment,
    ...(status ? { expectStatus: Number(status[1]) } : {}),
    ...(status?.[2] ? { expectCode: status[2] } : {}),
    expectExit: exit ? Number(exit[1]) : 0,
    expectPrints,
  };
}
