#!/usr/bin/env node
// Summarizes a V8 .cpuprofile (from `node --cpu-prof`): the functions with the most self time,
// and self time grouped by where the code lives (pushguard's own files, each npm package, Node's
// internals, GC, idle). Usage: node bench/cpuprofile-summary.mjs FILE.cpuprofile [--top N] [--json]
// [--from US --to US]: only samples inside that window, in the profile's clock (CLOCK_MONOTONIC
// microseconds on Linux, the same as `process.hrtime.bigint() / 1000n` in another process), so
// start-up (module loading, config parsing) can be left out.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

/** Where a profile node's code lives, for the grouped view. */
export function origin(callFrame) {
  const { url, functionName } = callFrame;
  if (!url) {
    if (functionName === "(garbage collector)") return "(gc)";
    if (functionName === "(idle)") return "(idle)";
    if (functionName === "(program)") return "(program: native/V8)";
    return "(native)";
  }
  const modules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (modules) return `npm:${modules[1]}`;
  if (url.startsWith("node:internal/deps/")) return `node:internal/deps/${url.split("/")[2]}`;
  if (url.startsWith("node:internal/")) return `node:internal/${url.split("/")[1]}`;
  if (url.startsWith("node:")) return url;
  const dist = /\/dist\/(.+)$/.exec(url);
  if (dist) return `pushguard:${dist[1]}`;
  return url;
}

/**
 * Self time per function and per origin, in milliseconds, sorted descending. A sample's time is
 * the gap to the next sample; `window` ({ from, to } in the profile's microsecond clock) keeps
 * only samples taken inside it.
 */
export function summarize(profile, window = {}) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const hits = new Map();
  const deltas = profile.timeDeltas ?? [];
  const from = window.from ?? Number.NEGATIVE_INFINITY;
  const to = window.to ?? Number.POSITIVE_INFINITY;
  let at = profile.startTime;
  profile.samples.forEach((id, index) => {
    at += deltas[index] ?? 0;
    if (at < from || at > to) return;
    hits.set(id, (hits.get(id) ?? 0) + (deltas[index + 1] ?? 0));
  });
  const parents = new Map();
  for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node.id);
  const label = (callFrame) => {
    const file = callFrame.url ? callFrame.url.replace(/^file:\/\/.*?\/(node_modules|dist)\//, "$1/") : "";
    return `${callFrame.functionName || "(anonymous)"}${file ? `  ${file}:${callFrame.lineNumber + 1}` : ""}`;
  };
  const functions = new Map();
  const callers = new Map();
  const origins = new Map();
  let total = 0;
  for (const [id, micros] of hits) {
    const { callFrame } = byId.get(id);
    total += micros;
    const key = label(callFrame);
    functions.set(key, (functions.get(key) ?? 0) + micros);
    // Who calls it: the nearest frame above that has source (native frames like writev have
    // none) and, when that is inside Node itself, the nearest application or npm frame too.
    const above = (from, accept) => {
      let parent = parents.get(from);
      while (parent !== undefined && !accept(byId.get(parent).callFrame) && parents.has(parent)) {
        parent = parents.get(parent);
      }
      return parent;
    };
    const nearest = above(id, (frame) => Boolean(frame.url));
    const app = above(id, (frame) => Boolean(frame.url) && !frame.url.startsWith("node:"));
    let caller = nearest === undefined ? "(root)" : label(byId.get(nearest).callFrame);
    if (app !== undefined && app !== nearest && byId.get(app).callFrame.url) {
      caller += `  ⟸ ${label(byId.get(app).callFrame)}`;
    }
    const byCaller = callers.get(key) ?? new Map();
    byCaller.set(caller, (byCaller.get(caller) ?? 0) + micros);
    callers.set(key, byCaller);
    const where = origin(callFrame);
    origins.set(where, (origins.get(where) ?? 0) + micros);
  }
  const sorted = (map) =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .map(([name, micros]) => ({ name, ms: micros / 1000, pct: total ? (100 * micros) / total : 0 }));
  const idle = origins.get("(idle)") ?? 0;
  return {
    totalMs: total / 1000,
    busyMs: (total - idle) / 1000,
    functions: sorted(functions).map((entry) => ({
      ...entry,
      callers: sorted(callers.get(entry.name)).slice(0, 3),
    })),
    origins: sorted(origins),
  };
}

export function formatSummary(summary, top = 25) {
  const busy = summary.busyMs || 1;
  const line = (entry) =>
    `${entry.ms.toFixed(0).padStart(8)} ms ${entry.pct.toFixed(1).padStart(5)}% ${entry.name === "(idle)" ? "      " : `${((100 * entry.ms) / busy).toFixed(1).padStart(5)}%b`}  ${entry.name}`;
  return [
    `profile: ${summary.totalMs.toFixed(0)} ms sampled, ${summary.busyMs.toFixed(0)} ms not idle ("%b" = share of non-idle time)`,
    "",
    `top ${top} functions by self time (the top 10 with their main callers):`,
    ...summary.functions
      .slice(0, top)
      .flatMap((entry, index) => [
        line(entry),
        ...(index < 10 && !entry.name.startsWith("(")
          ? entry.callers.map((caller) => `${" ".repeat(27)}<- ${caller.pct.toFixed(1)}% ${caller.name}`)
          : []),
      ]),
    "",
    "self time by origin:",
    ...summary.origins.slice(0, 20).map(line),
  ].join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      top: { type: "string", default: "25" },
      json: { type: "boolean", default: false },
      from: { type: "string" },
      to: { type: "string" },
    },
  });
  if (positionals.length !== 1) {
    process.stderr.write("usage: node bench/cpuprofile-summary.mjs FILE.cpuprofile [--top N] [--json]\n");
    process.exit(1);
  }
  const window = {
    ...(values.from ? { from: Number(values.from) } : {}),
    ...(values.to ? { to: Number(values.to) } : {}),
  };
  const summary = summarize(JSON.parse(readFileSync(positionals[0], "utf8")), window);
  const top = Number(values.top);
  process.stdout.write(
    values.json
      ? `${JSON.stringify({ ...summary, functions: summary.functions.slice(0, top), origins: summary.origins }, null, 2)}\n`
      : `${formatSummary(summary, top)}\n`,
  );
}
