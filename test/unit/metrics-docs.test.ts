import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { Metrics } from "../../src/observability/metrics.js";

describe("README documents every pushguard metric", () => {
  const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
  // Node's default process metrics are documented as a family, not one by one.
  const names = new Metrics().registry
    .getMetricsAsArray()
    .map((metric) => metric.name)
    .filter((name) => !/^pushguard_(process|nodejs)_/.test(name));

  it("finds pushguard's own metrics", () => {
    expect(names).toContain("pushguard_requests_total");
  });

  it.each(names)("%s is named in the README", (name) => {
    expect(readme).toContain(name);
  });
});
