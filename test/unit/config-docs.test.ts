import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { configSchema } from "../../src/config/schema.js";

interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
}

/** Every key path the schema accepts, arrays written `key[].child` as in docs/configuration.md. */
function keyPaths(schema: JsonSchema, prefix = ""): string[] {
  const paths: string[] = [];
  for (const [name, child] of Object.entries(schema.properties ?? {})) {
    const path = prefix ? `${prefix}.${name}` : name;
    // Sections (plain objects) are documented through their keys; leaves and lists by name.
    if (!child.properties) paths.push(path);
    if (child.items?.properties) paths.push(...keyPaths(child.items, `${path}[]`));
    else if (child.properties) paths.push(...keyPaths(child, path));
  }
  return paths;
}

describe("docs/configuration.md documents every config key", () => {
  const reference = readFileSync(new URL("../../docs/configuration.md", import.meta.url), "utf8");
  const documented = new Set(
    [...reference.matchAll(/^\| *`([A-Za-z0-9.[\]]+)` *\|/gm)].map((match) => match[1]),
  );
  const paths = keyPaths(z.toJSONSchema(configSchema, { io: "input", unrepresentable: "any" }) as JsonSchema);

  it("finds the schema's keys", () => {
    expect(paths).toContain("upstream.url");
    expect(paths).toContain("identities.static[].tokenFile");
  });

  it.each(paths)("%s is in the key tables", (path) => {
    expect(documented.has(path)).toBe(true);
  });

  it("documents no key the schema does not have", () => {
    const stale = [...documented].filter((key) => key?.includes(".") && !paths.includes(key as string));
    expect(stale).toEqual([]);
  });
});
