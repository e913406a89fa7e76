import { ProblemError } from "../errors.js";

/**
 * A Pushgateway grouping key: the job plus the other labels of `/metrics/job/<job>{/<name>/<value>}`.
 * `labels` never contains `job`; names are kept in sorted order.
 */
export interface GroupingKey {
  readonly job: string;
  readonly labels: Readonly<Record<string, string>>;
}

const BASE64_SUFFIX = "@base64";
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
/** Values safe to write unencoded in a path segment; everything else is sent as `@base64`. */
const PLAIN_VALUE = /^[A-Za-z0-9_:.~-]+$/;
const BASE64URL = /^[A-Za-z0-9_-]*$/;

/**
 * Parses the part of a push path after `/metrics/job/` exactly as Pushgateway does: the whole
 * path is percent-decoded first (so `%2F` separates segments), the first segment is the job
 * (optionally `job@base64`), then name/value pairs; a `job` among them is ignored, a repeated
 * name keeps its last value, `__`-prefixed or invalid names, an odd pair count and an empty job
 * are errors.
 *
 * @param jobBase64 whether the route was `/metrics/job@base64/…`
 * @param rest the still percent-encoded remainder: `<job>{/<name>/<value>}`
 */
export function parseGroupingKey(jobBase64: boolean, rest: string): GroupingKey {
  const decoded = percentDecode(rest);
  const slash = decoded.indexOf("/");
  const rawJob = slash === -1 ? decoded : decoded.slice(0, slash);
  const job = jobBase64 ? decodeBase64Value("job", rawJob) : rawJob;
  if (job === "") throw badKey("job name is required");
  const labels: Record<string, string> = {};
  if (slash !== -1) {
    const labelPart = decoded.slice(slash);
    // Pushgateway treats "" and "/" as "no labels": a single trailing slash is harmless.
    if (labelPart.length > 1) {
      const components = labelPart.split("/");
      if (components.length % 2 === 0) throw badKey("odd number of label path segments (name without value)");
      for (let i = 1; i < components.length; i += 2) {
        const name = components[i] as string;
        const value = components[i + 1] as string;
        const encoded = name.endsWith(BASE64_SUFFIX);
        const bareName = encoded ? name.slice(0, -BASE64_SUFFIX.length) : name;
        if (!LABEL_NAME.test(bareName) || bareName.startsWith("__")) {
          throw badKey(`improper label name "${bareName}"`);
        }
        const labelValue = encoded ? decodeBase64Value(bareName, value) : value;
        if (bareName !== "job") labels[bareName] = labelValue;
      }
    }
  }
  return { job, labels: sortLabels(labels) };
}

/**
 * The canonical upstream path for a grouping key. Values that are not plainly safe in a URL
 * segment (empty, `.`/`..`, anything with `/`, `%`, spaces or non-ASCII) use `@base64`, so the
 * upstream decodes exactly the key that was authorized.
 */
export function formatGroupingKey(key: GroupingKey): string {
  let path = `/metrics/${segment("job", key.job)}`;
  for (const [name, value] of Object.entries(sortLabels(key.labels))) {
    path += `/${segment(name, value)}`;
  }
  return path;
}

/** A short human form for logs and explanations: `job="x",instance="y"`. */
export function describeGroupingKey(key: GroupingKey): string {
  return [`job=${JSON.stringify(key.job)}`, ...Object.entries(key.labels).map(([n, v]) => `${n}=${JSON.stringify(v)}`)].join(
    ",",
  );
}

function segment(name: string, value: string): string {
  if (PLAIN_VALUE.test(value) && value !== "." && value !== "..") return `${name}/${value}`;
  const encoded = Buffer.from(value, "utf8").toString("base64url");
  return `${name}${BASE64_SUFFIX}/${encoded === "" ? "=" : encoded}`;
}

function sortLabels(labels: Readonly<Record<string, string>>): Record<string, string> {
  const sorted: Record<string, string> = {};
  for (const name of Object.keys(labels).sort()) sorted[name] = labels[name] as string;
  return sorted;
}

/** Go's base64.RawURLEncoding after trimming `=` padding, as Pushgateway decodes. */
function decodeBase64Value(name: string, value: string): string {
  const trimmed = value.replace(/=+$/, "");
  // Raw (unpadded) base64 never has a length of 1 mod 4; Go rejects it, so do we.
  if (!BASE64URL.test(trimmed) || trimmed.length % 4 === 1) {
    throw badKey(`invalid base64 encoding for label "${name}"`);
  }
  const bytes = Buffer.from(trimmed, "base64url");
  if (!hasCanonicalTail(trimmed, bytes)) throw badKey(`invalid base64 encoding for label "${name}"`);
  return utf8(bytes, name);
}

/** Go's strict decoder rejects non-zero trailing bits; Node silently drops them. */
function hasCanonicalTail(text: string, bytes: Buffer): boolean {
  return bytes.toString("base64url") === text;
}

function percentDecode(text: string): string {
  let bytes: Buffer;
  if (!text.includes("%")) {
    bytes = Buffer.from(text, "latin1");
    if (/[^\x20-\x7e]/.test(text)) throw badKey("path contains characters that must be percent-encoded");
  } else {
    if (/%(?![0-9a-fA-F]{2})/.test(text)) throw badKey("invalid percent-encoding in path");
    bytes = Buffer.from(
      text.replace(/%([0-9a-fA-F]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16))),
      "latin1",
    );
  }
  return utf8(bytes, "path");
}

function utf8(bytes: Buffer, what: string): string {
  const text = bytes.toString("utf8");
  if (!Buffer.from(text, "utf8").equals(bytes)) throw badKey(`${what} is not valid UTF-8`);
  return text;
}

function badKey(detail: string): ProblemError {
  return new ProblemError("ERR_BAD_GROUPING_KEY", detail);
}
