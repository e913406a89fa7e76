import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { CHART, REPO } from "./helm.js";

const SCRIPT = join(REPO, "scripts/chart-docs.mjs");

interface ValueKey {
  path: string[];
  description: string;
  value: unknown;
}
interface ChartDocs {
  readValueKeys(text: string, schema: object): ValueKey[];
  findProblems(keys: ValueKey[], schema: object): string[];
  withDescriptions(keys: ValueKey[], schema: object): object;
  renderTable(keys: ValueKey[], schema: object): string;
}
const load = async () => (await import(pathToFileURL(SCRIPT).href)) as ChartDocs;

const schema = {
  type: "object",
  additionalProperties: false,
  properties: {
    replicas: { type: "integer", description: "" },
    image: {
      type: "object",
      description: "",
      additionalProperties: false,
      properties: { tag: { type: "string", description: "" } },
    },
    labels: { type: "object", description: "", additionalProperties: { type: "string" } },
  },
};

describe("values documentation", () => {
  it("is in step: values.yaml comments, values.schema.json descriptions and the docs/chart.md table", () => {
    const check = spawnSync("node", [SCRIPT, "--check"], { cwd: REPO, encoding: "utf8" });
    expect(check.stderr).toBe("");
    expect(check.status).toBe(0);
  });

  it("describes every schema property and closes every object", async () => {
    const { findProblems, readValueKeys } = await load();
    const chartSchema = JSON.parse(readFileSync(join(CHART, "values.schema.json"), "utf8"));
    const keys = readValueKeys(readFileSync(join(CHART, "values.yaml"), "utf8"), chartSchema);
    expect(findProblems(keys, chartSchema)).toEqual([]);
    expect(keys.length).toBeGreaterThan(100);
  });

  it("reads `# --` descriptions, including the first key of a block and continued lines", async () => {
    const { readValueKeys } = await load();
    const keys = readValueKeys(
      "# file header\n\n# -- How many.\nreplicas: 1\n# -- The image.\nimage:\n  # -- Its tag,\n  # on two lines.\n  tag: v1\nlabels: {a: b}\n",
      schema,
    );
    expect(keys.map((key) => [key.path.join("."), key.description, key.value])).toEqual([
      ["replicas", "How many.", 1],
      ["image", "The image.", { tag: "v1" }],
      ["image.tag", "Its tag, on two lines.", "v1"],
      ["labels", "", { a: "b" }],
    ]);
  });

  it("names every key without a comment, every key missing from the schema and every schema property missing from values", async () => {
    const { readValueKeys, findProblems, withDescriptions } = await load();
    const keys = readValueKeys(
      "# -- n\nreplicas: 1\nimage:\n  # -- t\n  tag: v1\n# -- x\nextra: true\n",
      schema,
    );
    expect(findProblems(keys, withDescriptions(keys, schema))).toEqual([
      'chart/values.yaml: image has no "# -- description" comment',
      "values.schema.json: extra is in values.yaml but not in the schema",
      "values.schema.json: labels is in the schema but not in values.yaml",
      "values.schema.json: image has no description",
      "values.schema.json: labels has no description",
    ]);
  });

  it("renders a row per key, with the type from the schema and the default from values.yaml", async () => {
    const { readValueKeys, renderTable } = await load();
    const keys = readValueKeys(
      "# -- n\nreplicas: 1\n# -- i\nimage:\n  # -- t|u\n  tag: v1\n# -- l\nlabels: {}\n",
      schema,
    );
    const table = renderTable(keys, schema);
    expect(table).toContain("| `replicas` | integer | `1` | n |");
    expect(table).toContain("| `labels` | object | `{}` | l |");
    expect(table).toContain("### `image`\n\ni\n");
    expect(table).toContain('| `image.tag` | string | `"v1"` | t\\|u |');
  });
});
