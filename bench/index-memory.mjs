#!/usr/bin/env node
// The store index's memory per stored series: fills a StoreIndex (dist/, so `npm run build`
// first) the way pushes do, then reports the heap it holds. Run by `npm run bench`, or alone:
//
//   node --expose-gc bench/index-memory.mjs [--groups N] [--series-per-group N] [--json]
//
// Each group is one batch job instance (job="batch-<g % 100>", instance="i<g>") PUTting 100
// series in five families with realistic label sets (stage, shard, outcome), the same family
// names in every group, as a fleet of one kind of job does. Hashes are built per push (as
// validation does) and handed to the index, which keeps them; nothing else holds them.
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const { values: options } = parseArgs({
  options: {
    groups: { type: "string", default: "10000" },
    "series-per-group": { type: "string", default: "100" },
    json: { type: "boolean", default: false },
  },
});
const GROUPS = Number(options.groups);
const PER_GROUP = Number(options["series-per-group"]);

if (typeof globalThis.gc !== "function") {
  console.error("index-memory: run with node --expose-gc");
  process.exit(1);
}
const dist = (path) => pathToFileURL(join(ROOT, "dist", path)).href;
const { StoreIndex } = await import(dist("store/store-index.js"));
const { seriesHash } = await import(dist("store/series-hash.js"));

/** Five families; their label sets without the grouping labels, `PER_GROUP` series in all. */
function familyShapes() {
  const stages = ["extract", "transform", "load", "verify"];
  const outcomes = ["ok", "retried", "failed"];
  const shapes = [
    { name: "batch_last_success_timestamp_seconds", type: "gauge", labels: [[]] },
    { name: "batch_duration_seconds", type: "gauge", labels: stages.map((stage) => [["stage", stage]]) },
    {
      name: "batch_records_total",
      type: "counter",
      labels: stages.flatMap((stage) =>
        outcomes.map((outcome) => [
          ["outcome", outcome],
          ["stage", stage],
        ]),
      ),
    },
  ];
  const used = shapes.reduce((sum, shape) => sum + shape.labels.length, 0);
  // The rest per shard: rows and bytes per stage and shard, split between two families.
  const rest = PER_GROUP - used;
  const perShard = (count) =>
    Array.from({ length: count }, (_, index) => [
      ["shard", String(Math.floor(index / stages.length))],
      ["stage", stages[index % stages.length]],
    ]);
  shapes.push(
    { name: "batch_partition_rows", type: "gauge", labels: perShard(Math.ceil(rest / 2)) },
    { name: "batch_partition_bytes", type: "gauge", labels: perShard(Math.floor(rest / 2)) },
  );
  return shapes;
}

const SHAPES = familyShapes();
const byName = ([a], [b]) => (a < b ? -1 : a > b ? 1 : 0);

/** The families one PUT of group `g` carries, as validation hands them to the index. */
function pushedFamilies(g) {
  const grouping = [
    ["instance", `i${g}`],
    ["job", `batch-${g % 100}`],
  ];
  return SHAPES.map((shape) => ({
    name: shape.name,
    type: shape.type,
    series: shape.labels.map((labels) => seriesHash(shape.name, [...grouping, ...labels].sort(byName))),
    samples: shape.labels.length,
    at: { line: 1 },
  }));
}

const settle = () => {
  for (let i = 0; i < 4; i++) globalThis.gc();
};

settle();
const before = process.memoryUsage().heapUsed;
const index = new StoreIndex();
const started = performance.now();
for (let g = 0; g < GROUPS; g++) {
  index.reservePush(`/job/batch-${g % 100}/instance/i${g}`, "PUT", pushedFamilies(g), "batch").commit();
}
const fillMs = performance.now() - started;
settle();
const after = process.memoryUsage().heapUsed;

const series = index.series;
const expected = GROUPS * PER_GROUP;
if (index.groups !== GROUPS || series !== expected) {
  console.error(
    `index-memory: index holds ${index.groups} groups, ${series} series; expected ${GROUPS}, ${expected}`,
  );
  process.exit(1);
}
const result = {
  groups: index.groups,
  series,
  families_per_group: SHAPES.length,
  heap_bytes: after - before,
  index_bytes_per_series: Math.round(((after - before) / series) * 10) / 10,
  fill_ms: Math.round(fillMs),
  node: process.version,
};
if (options.json) process.stdout.write(`INDEX_MEMORY_JSON ${JSON.stringify(result)}\n`);
else
  process.stdout.write(
    `store index: ${result.groups} groups, ${result.series} series (${result.families_per_group} families each group): ` +
      `${(result.heap_bytes / 2 ** 20).toFixed(1)} MiB of heap, ${result.index_bytes_per_series} bytes per series ` +
      `(filled in ${result.fill_ms} ms)\n`,
  );
// Keeps the index alive until after the measurement.
if (index.series < 0) console.log(index);
