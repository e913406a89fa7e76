import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { load as parseYaml, YAMLException } from "js-yaml";
import { toJSONSchema, type z } from "zod";
import { configSchema, type RawConfig, staticTokenIdentity } from "./schema.js";

export interface StaticTokenIdentity {
  readonly name: string;
  /** SHA-256 digest of the token (32 bytes). */
  readonly sha256: Buffer;
  /** The file the token or hash was read from, if any (watched for live reload). */
  readonly file?: string;
}

/** The validated, secret-resolved, frozen configuration every other module receives. */
export type Config = DeepReadonly<
  Omit<RawConfig, "identities"> & {
    identities: Omit<RawConfig["identities"], "static"> & { static: StaticTokenIdentity[] };
  }
> & { readonly source: string };

type DeepReadonly<T> = T extends Buffer
  ? T
  : T extends (infer U)[]
    ? readonly DeepReadonly<U>[]
    : T extends object
      ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
      : T;

export interface ConfigIssue {
  /** Dotted key path, e.g. `teams.0.members.1`. */
  readonly path: string;
  readonly message: string;
}

/** Thrown when a config cannot be used; lists every problem at once. */
export class ConfigError extends Error {
  readonly issues: readonly ConfigIssue[];

  constructor(source: string, issues: readonly ConfigIssue[]) {
    super(
      `invalid configuration ${source}:\n${issues.map((issue) => `  - ${issue.path || "(root)"}: ${issue.message}`).join("\n")}`,
    );
    this.name = "ConfigError";
    this.issues = issues;
  }
}

/** Where the config file comes from: `--config FILE`, else `PUSHGUARD_CONFIG`. */
export function resolveConfigPath(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  const path = flag ?? env.PUSHGUARD_CONFIG;
  if (!path) {
    throw new ConfigError("(none)", [
      {
        path: "",
        message: "no configuration given: pass --config FILE or set PUSHGUARD_CONFIG (there is no open mode)",
      },
    ]);
  }
  return path;
}

export function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): Config {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigError(path, [{ path: "", message: `cannot read file: ${(error as Error).message}` }]);
  }
  return parseConfig(text, path, env);
}

export function parseConfig(text: string, source: string, env: NodeJS.ProcessEnv = process.env): Config {
  const input = loadYaml(text, source);
  const result = configSchema.safeParse(input);
  const issues: ConfigIssue[] = result.success ? [] : result.error.issues.flatMap(toIssues);
  // Secrets are resolved even when other keys are wrong, so one run names every problem.
  const identities = resolveIdentities(input, env, issues);
  if (!result.success || issues.length > 0) throw new ConfigError(source, issues);
  return deepFreeze({
    ...result.data,
    identities: { ...result.data.identities, static: identities },
    source,
  }) as Config;
}

/**
 * Resolves the token hash of every identity entry that is itself well-formed (the schema reports
 * the others), and refuses two identities sharing one token: the token could only ever
 * authenticate as one of them.
 */
function resolveIdentities(
  input: unknown,
  env: NodeJS.ProcessEnv,
  issues: ConfigIssue[],
): StaticTokenIdentity[] {
  const resolved: StaticTokenIdentity[] = [];
  const firstIndexByDigest = new Map<string, number>();
  staticIdentityEntries(input).forEach((entry, index) => {
    const parsed = staticTokenIdentity.safeParse(entry);
    if (!parsed.success) return;
    const path = `identities.static.${index}`;
    let sha256: Buffer;
    try {
      sha256 = resolveTokenHash(parsed.data, env);
    } catch (error) {
      issues.push({ path, message: (error as Error).message });
      return;
    }
    const first = firstIndexByDigest.get(sha256.toString("hex"));
    if (first !== undefined) {
      issues.push({
        path,
        message: `has the same token as identities.static.${first}; every identity needs its own token`,
      });
      return;
    }
    firstIndexByDigest.set(sha256.toString("hex"), index);
    const file = parsed.data.tokenFile ?? parsed.data.sha256File;
    resolved.push(
      file === undefined ? { name: parsed.data.name, sha256 } : { name: parsed.data.name, sha256, file },
    );
  });
  return resolved;
}

function staticIdentityEntries(input: unknown): unknown[] {
  const identities = isRecord(input) ? input.identities : undefined;
  const entries = isRecord(identities) ? identities.static : undefined;
  return Array.isArray(entries) ? entries : [];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Parses the YAML text into plain data. js-yaml builds values directly (the 10k-identity config of
 * the benchmark costs ~20 MiB to load, against ~90 MiB with a document model), refuses duplicate
 * keys, and names the line of every syntax error.
 */
function loadYaml(text: string, source: string): unknown {
  let value: unknown;
  try {
    value = parseYaml(text) ?? {};
  } catch (error) {
    if (!(error instanceof YAMLException)) throw error;
    // An empty (or comments-only) file is an empty config: the schema then names what is missing.
    if (/input is empty/.test(error.reason)) return {};
    const reason =
      error.reason === "duplicated mapping key"
        ? "duplicated mapping key (keys must be unique)"
        : error.reason;
    const where = error.mark ? ` at line ${error.mark.line + 1}, column ${error.mark.column + 1}` : "";
    throw new ConfigError(source, [{ path: "", message: `YAML: ${reason}${where}` }]);
  }
  // Aliases are shared references: a few lines can stand for millions of nodes ("billion
  // laughs"). A config has fewer nodes than characters unless aliases multiply them.
  if (exceedsNodes(value, text.length + 100)) {
    throw new ConfigError(source, [
      { path: "", message: "YAML: aliases expand to far more data than the file holds" },
    ]);
  }
  return value;
}

function exceedsNodes(value: unknown, budget: number): boolean {
  let remaining = budget;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const node = stack.pop();
    if (--remaining < 0) return true;
    if (node && typeof node === "object") stack.push(...Object.values(node));
  }
  return false;
}

function toIssues(issue: z.core.$ZodIssue): ConfigIssue[] {
  const path = issue.path.map(String).join(".");
  if (issue.code !== "unrecognized_keys") return [{ path, message: issue.message }];
  // One issue per key, each with the nearest key the section does have: a typo names its fix.
  const known = keysAt(issue.path);
  return issue.keys.map((key) => {
    const suggestion = nearestKey(key, known);
    return {
      path,
      message: `unknown key "${key}"${suggestion ? ` (did you mean "${suggestion}"?)` : ""}`,
    };
  });
}

interface JsonSchemaNode {
  properties?: Record<string, JsonSchemaNode>;
  items?: JsonSchemaNode;
  anyOf?: JsonSchemaNode[];
  oneOf?: JsonSchemaNode[];
  allOf?: JsonSchemaNode[];
}

let configJsonSchema: JsonSchemaNode | undefined;

/** The keys the schema accepts in the section at `path` (list indexes included, as zod reports them). */
function keysAt(path: readonly PropertyKey[]): string[] {
  configJsonSchema ??= toJSONSchema(configSchema, { io: "input", unrepresentable: "any" }) as JsonSchemaNode;
  let nodes = [configJsonSchema];
  for (const segment of path) {
    nodes = nodes.flatMap(alternatives).flatMap((node) => {
      if (typeof segment === "number") return node.items ? [node.items] : [];
      const child = node.properties?.[String(segment)];
      return child ? [child] : [];
    });
  }
  return [...new Set(nodes.flatMap(alternatives).flatMap((node) => Object.keys(node.properties ?? {})))];
}

function alternatives(node: JsonSchemaNode): JsonSchemaNode[] {
  const branches = [...(node.anyOf ?? []), ...(node.oneOf ?? []), ...(node.allOf ?? [])];
  return [node, ...branches.flatMap(alternatives)];
}

/** The known key closest to `key` (ignoring letter case) if it is a plausible typo of it. */
function nearestKey(key: string, known: readonly string[]): string | undefined {
  let best: { key: string; distance: number } | undefined;
  for (const candidate of known) {
    const distance = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (distance <= Math.max(1, Math.floor(candidate.length / 4)) && (!best || distance < best.distance)) {
      best = { key: candidate, distance };
    }
  }
  return best?.key;
}

/** Levenshtein distance, with a swap of two neighbours counted as one edit (`tokenFlie`). */
function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = rows[i] as number[];
      const above = rows[i - 1] as number[];
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min(
        (above[j] as number) + 1,
        (row[j - 1] as number) + 1,
        (above[j - 1] as number) + cost,
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        row[j] = Math.min(row[j] as number, ((rows[i - 2] as number[])[j - 2] as number) + 1);
      }
    }
  }
  return (rows[a.length] as number[])[b.length] as number;
}

type StaticIdentityInput = RawConfig["identities"]["static"][number];

function resolveTokenHash(identity: StaticIdentityInput, env: NodeJS.ProcessEnv): Buffer {
  if (identity.sha256 !== undefined) return hexDigest(identity.sha256, "sha256");
  if (identity.sha256File !== undefined) {
    return hexDigest(readSecretFile(identity.sha256File, "sha256File"), "sha256File");
  }
  if (identity.sha256Env !== undefined) {
    return hexDigest(readSecretEnv(identity.sha256Env, "sha256Env", env), "sha256Env");
  }
  if (identity.tokenFile !== undefined) return hashToken(readSecretFile(identity.tokenFile, "tokenFile"));
  if (identity.tokenEnv !== undefined) return hashToken(readSecretEnv(identity.tokenEnv, "tokenEnv", env));
  throw new Error("no token source");
}

/** Trailing newlines are what `echo` and most secret tooling add; they are never part of a token. */
function readSecretFile(path: string, key: string): string {
  let value: string;
  try {
    value = readFileSync(path, "utf8").replace(/[\r\n]+$/, "");
  } catch (error) {
    throw new Error(`${key}: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? "error"}`);
  }
  if (value.length === 0) throw new Error(`${key}: ${path} is empty`);
  return value;
}

function readSecretEnv(name: string, key: string, env: NodeJS.ProcessEnv): string {
  const value = env[name]?.replace(/[\r\n]+$/, "");
  if (!value) throw new Error(`${key}: environment variable ${name} is not set or empty`);
  return value;
}

function hexDigest(value: string, key: string): Buffer {
  const hex = value.trim().replace(/^sha256:/, "");
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) {
    throw new Error(`${key}: not a SHA-256 hex digest (see \`pushguard hash-token\`)`);
  }
  return Buffer.from(hex, "hex");
}

export function hashToken(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object" && !Buffer.isBuffer(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
