import type { Identity } from "../auth/identity.js";
import { claimAt } from "../auth/jwt.js";

/** Values a pattern or label template may interpolate, e.g. `{namespace}-*` or `{team}`. */
export type TemplateVars = (name: string) => string | undefined;

const VARIABLE = /\{([A-Za-z][A-Za-z0-9_.:-]*)\}/g;

export function templateVars(identity: Identity, team: string): TemplateVars {
  return (name) => {
    if (name === "team") return team;
    if (name === "subject") return identity.via === "anonymous" ? undefined : identity.name;
    if (name === "namespace") return identity.namespace;
    if (name === "serviceAccount") return identity.serviceAccount;
    if (name.startsWith("claims.")) {
      const value = claimAt(identity.claims, name.slice("claims.".length));
      return typeof value === "string" || typeof value === "number" || typeof value === "boolean"
        ? String(value)
        : undefined;
    }
    return undefined;
  };
}

/** Fills `{var}` placeholders; `undefined` when the identity lacks a value (the rule then cannot apply). */
export function expandTemplate(template: string, vars: TemplateVars): string | undefined {
  let missing = false;
  const result = template.replace(VARIABLE, (_, name: string) => {
    const value = vars(name);
    if (value === undefined || value === "") missing = true;
    return value ?? "";
  });
  return missing ? undefined : result;
}

/**
 * Compiles a glob that may contain placeholders: `*` matches any run of characters, `?` one,
 * `{var}` the identity's value taken literally (a namespace called `a*` matches only `a*`).
 */
export function compilePattern(pattern: string): (value: string, vars: TemplateVars) => boolean {
  const parts = pattern.split(/(\{[A-Za-z][A-Za-z0-9_.:-]*\}|\*|\?)/).filter((part) => part !== "");
  const hasVariables = parts.some((part) => part.startsWith("{"));
  const build = (vars: TemplateVars): RegExp | undefined => {
    let source = "";
    for (const part of parts) {
      if (part === "*") source += ".*";
      else if (part === "?") source += ".";
      else if (part.startsWith("{")) {
        const value = vars(part.slice(1, -1));
        if (value === undefined || value === "") return undefined;
        source += escapeRegex(value);
      } else source += escapeRegex(part);
    }
    return new RegExp(`^${source}$`, "su");
  };
  if (!hasVariables) {
    const fixed = build(() => undefined) as RegExp;
    return (value) => fixed.test(value);
  }
  return (value, vars) => build(vars)?.test(value) ?? false;
}

function escapeRegex(text: string): string {
  return text.replace(/[\\^$.|+()[\]{}*?]/g, "\\$&");
}
