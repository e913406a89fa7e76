import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { Metrics } from "../../src/observability/metrics.js";

describe("docs/operations.md documents every pushguard metric", () => {
  const operations = readFileSync(new URL("../../docs/operations.md", import.meta.url), "utf8");
  // Node's default process metrics are documented as a family, not one by one.
  const names = new Metrics().registry
    .getMetricsAsArray()
    .map((metric) => metric.name)
    .filter((name) => !/^pushguard_(process|nodejs)_/.test(name));

  it("finds pushguard's own metrics", () => {
    expect(names).toContain("pushguard_requests_total");
  });

  it.each(names)("%s is named there", (name) => {
    expect(operations).toContain(name);
  });
});
