import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CHART, HELMS, helmBinary, type K8sObject, lint, REPO, render, runHelm, VARIANTS } from "./helm.js";

describe.each(HELMS)("$name", (helm) => {
  it("is the expected major version", () => {
    const version = runHelm(helm, ["version", "--short"]).stdout;
    expect(version).toMatch(new RegExp(`^v${helm.major}\\.`));
    expect(helmBinary(helm)).toContain(".tmp");
  });

  it.each(VARIANTS)("lints $name with --strict", ({ files }) => {
    const result = lint(helm, files);
    expect(result.stderr + result.stdout, "helm lint --strict").toMatch(
      /1 chart\(s\) linted, 0 chart\(s\) failed/,
    );
    expect(result.status).toBe(0);
  });

  it.each(VARIANTS)("templates $name", ({ files }) => {
    const kinds = render(helm, files).map((object) => object.kind);
    expect(kinds).toEqual(expect.arrayContaining(["Deployment", "StatefulSet", "Service", "ConfigMap"]));
  });
});

/** Secret data and its checksum hold random tokens; everything else must be byte-identical. */
function withoutRandomness(objects: readonly K8sObject[]): unknown[] {
  return objects.map((object) => {
    const copy = structuredClone(object);
    if (copy.kind === "Secret") copy.data = Object.keys(copy.data ?? {});
    if (copy.kind === "Deployment") delete copy.spec.template.metadata.annotations["checksum/tokens"];
    return copy;
  });
}

describe("helm 3 and helm 4", () => {
  it.each(VARIANTS)("render $name identically", ({ files }) => {
    const [helm3, helm4] = HELMS.map((helm) => withoutRandomness(render(helm, files)));
    const digest = (value: unknown) => createHash("sha256").update(JSON.stringify(value)).digest("hex");
    expect(helm4).toEqual(helm3);
    expect(digest(helm4)).toBe(digest(helm3));
  });
});

/** yamllint: Debian's `yamllint` package; skipped where it is missing, like promtool. */
const yamllintMissing = spawnSync("yamllint", ["--version"]).error !== undefined;

describe.skipIf(yamllintMissing)("yamllint with chart-testing's rules (ct lint)", () => {
  it("passes Chart.yaml, values.yaml, the profiles and the ci scenarios", () => {
    const files = [
      "Chart.yaml",
      "values.yaml",
      ...readdirSync(CHART).filter((file) => /^values-.*\.yaml$/.test(file)),
      ...readdirSync(join(CHART, "ci")).map((file) => `ci/${file}`),
    ].map((file) => join(CHART, file));
    const result = spawnSync(
      "yamllint",
      ["--strict", "-c", join(REPO, "test/chart/fixtures/ct-lintconf.yaml"), ...files],
      { encoding: "utf8" },
    );
    expect(result.stdout + result.stderr).toBe("");
    expect(result.status).toBe(0);
  });
});
