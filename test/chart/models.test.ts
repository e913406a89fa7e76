import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { HELMS, REPO, render, VARIANTS } from "./helm.js";
import { CRD_SCHEMAS, MODELS, modelKey, schemaProblems } from "./kubernetes-schemas.js";

const helm = HELMS[HELMS.length - 1] as (typeof HELMS)[number];

describe("every rendered object is valid against the Kubernetes and prometheus-operator schemas", () => {
  it.each(VARIANTS)("$name", ({ files }) => {
    const objects = render(helm, files);
    for (const object of objects) {
      expect(schemaProblems(object), `${object.kind}/${object.metadata.name}`).toEqual([]);
    }
  });
});

/**
 * The JSON-schema validators accept unknown fields (the API server, with strict field validation,
 * does not). TypeScript's excess-property check against the same models' types catches a
 * misspelled or misplaced field in any rendered object.
 */
describe("rendered objects have no unknown fields", () => {
  it("type-checks every object of every variant against its kubernetes-models type", () => {
    const directory = join(REPO, ".tmp/chart-types");
    mkdirSync(directory, { recursive: true });
    const imports = Object.values(MODELS).map(
      ({ module, type }) => `import type { ${type} } from "${module}";`,
    );
    const declarations = VARIANTS.flatMap(({ name, files }) =>
      render(helm, files).flatMap((object, index) => {
        if (CRD_SCHEMAS[modelKey(object)]) return [];
        const entry = MODELS[modelKey(object)];
        const label = `${name} ${object.kind}/${object.metadata.name}`.replaceAll("*/", "*\\/");
        return [
          `/* ${label} */ export const o${VARIANTS.findIndex((v) => v.name === name)}_${index}: ${entry?.type ?? "never"} = ${JSON.stringify(object)};`,
        ];
      }),
    );
    const file = join(directory, "objects.ts");
    writeFileSync(file, `${imports.join("\n")}\n${declarations.join("\n")}\n`);
    const program = ts.createProgram([file], {
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      types: [],
    });
    const problems = ts.getPreEmitDiagnostics(program).map((diagnostic) => {
      const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n");
      if (!diagnostic.file || diagnostic.start === undefined) return message;
      const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
      const source = diagnostic.file.text.split("\n")[line] ?? "";
      return `${source.slice(0, source.indexOf("*/") + 2)} ${message}`;
    });
    expect(problems).toEqual([]);
  }, 120_000);
});

describe("the HTTPRoute check", () => {
  it("refuses a field the Gateway API does not have, and a rule without its backend's port", () => {
    const validate = CRD_SCHEMAS["gateway.networking.k8s.io/v1/HTTPRoute"] as NonNullable<
      (typeof CRD_SCHEMAS)[string]
    >;
    const route = {
      apiVersion: "gateway.networking.k8s.io/v1",
      kind: "HTTPRoute",
      metadata: { name: "r" },
      spec: { parentRefs: [{ name: "gw" }], rules: [{ backendRefs: [{ name: "pg", port: 9091 }] }] },
    };
    expect(validate(route)).toBe(true);
    expect(validate({ ...route, spec: { ...route.spec, hostname: "x" } })).toBe(false);
    expect(
      validate({
        ...route,
        spec: { ...route.spec, rules: [{ backendRefs: [{ name: "pg", port: "http" }] }] },
      }),
    ).toBe(false);
  });
});
