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
 * What may appear unencoded in the request path: visible ASCII only. Go's server also takes raw
 * bytes >= 0x80 (raw UTF-8); we require those to be percent-encoded, as every client library does.
 */
const RAW_PATH = /^[\x21-\x7e]*$/;

/**
 * Parses the part of a push path after `/metrics/job/` exactly as Pushgateway does: the whole
 * path is percent-decoded first (so `%2F` separates segments), the first segment is the job
 * (optionally `job@base64`), then name/value pairs; a `job` among them is ignored, a repeated
 * name keeps its last value, `__`-prefixed or invalid names, an odd pair count and an empty job
 * are errors.
 *
 * Stricter than Pushgateway 1.5.1 where its answer would not be "this exact group" (see
 * test/integration/grouping-key-agreement.test.ts for the full list):
 * - a decoded path that Go's `http.ServeMux` would clean (`//`, `.` or `..` segments, also when
 *   written `%2F`/`%2e`) is refused: upstream answers 301 to a *different* path there;
 * - anything that is not valid UTF-8 after decoding is refused (upstream stores a failed group
 *   that makes every later push fail its consistency check);
 * - raw non-ASCII bytes, base64 with non-zero trailing bits or embedded CR/LF are refused.
 *
 * @param jobBase64 whether the route was `/metrics/job@base64/…`
 * @param rest the still percent-encoded remainder: `<job>{/<name>/<value>}`
 */
export function parseGroupingKey(jobBase64: boolean, rest: string): GroupingKey {
  const segments = percentDecode(rest).split("/");
  const last = segments.length - 1;
  segments.forEach((segment, index) => {
    if (segment === "." || segment === "..") throw badKey("dot segments are not allowed in a push path");
    // An empty job is reported below; an empty last segment is a trailing slash (or an empty value).
    if (segment === "" && index > 0 && index < last) throw badKey("empty path segment (//)");
  });
  const rawJob = segments[0] as string;
  const job = jobBase64 ? decodeBase64Value("job", rawJob) : rawJob;
  if (job === "") throw badKey("job name is required");
  const labels: Record<string, string> = {};
  // Pushgateway treats "" and "/" after the job as "no labels": a single trailing slash is harmless.
  const pairs = segments.length === 2 && segments[1] === "" ? [] : segments.slice(1);
  if (pairs.length % 2 === 1) {
    // The usual cause: a client URL-encoded a "/" in the job name (prom-client's jobName does).
    throw badKey(
      'odd number of label path segments (a label name without a value); "/" separates segments even when sent as %2F: send a job name or label value that contains "/" base64url-encoded, as /metrics/job@base64/<value> or /<label>@base64/<value>, or leave the "/" out',
    );
  }
  for (let i = 0; i < pairs.length; i += 2) {
    const name = pairs[i] as string;
    const value = pairs[i + 1] as string;
    const encoded = name.endsWith(BASE64_SUFFIX);
    const bareName = encoded ? name.slice(0, -BASE64_SUFFIX.length) : name;
    if (!isLabelName(bareName)) throw badKey(`improper label name "${bareName}"`);
    const labelValue = encoded ? decodeBase64Value(bareName, value) : value;
    if (bareName !== "job") labels[bareName] = labelValue;
  }
  return { job, labels: sortLabels(labels) };
}

/**
 * The canonical upstream path for a grouping key. Values that are not plainly safe in a URL
 * segment (empty, `.`/`..`, anything with `/`, `%`, spaces or non-ASCII) use `@base64`, so the
 * upstream decodes exactly the key that was authorized. A key that could not round-trip (empty
 * job, a `job` or invalid label name) is refused rather than silently altered.
 */
export function formatGroupingKey(key: GroupingKey): string {
  if (key.job === "") throw badKey("job name is required");
  for (const name of Object.keys(key.labels)) {
    if (!isLabelName(name) || name === "job") throw badKey(`improper label name "${name}"`);
  }
  let path = `/metrics/${segment("job", key.job)}`;
  for (const [name, value] of Object.entries(sortLabels(key.labels))) path += `/${segment(name, value)}`;
  return path;
}

/** A short human form for logs and explanations: `job="x",instance="y"`. */
export function describeGroupingKey(key: GroupingKey): string {
  return [
    `job=${JSON.stringify(key.job)}`,
    ...Object.entries(key.labels).map(([n, v]) => `${n}=${JSON.stringify(v)}`),
  ].join(",");
}

function isLabelName(name: string): boolean {
  return LABEL_NAME.test(name) && !name.startsWith("__");
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

/**
 * Go's `base64.RawURLEncoding` after trimming `=` padding, as Pushgateway decodes, but stricter:
 * Go's (non-`Strict()`) decoder also skips CR/LF and ignores non-zero trailing bits, so several
 * texts decode to one value; we accept only the canonical text.
 */
function decodeBase64Value(name: string, value: string): string {
  const trimmed = value.replace(/=+$/, "");
  // Raw (unpadded) base64 never has a length of 1 mod 4; Go rejects it too.
  if (!BASE64URL.test(trimmed) || trimmed.length % 4 === 1) {
    throw badKey(`invalid base64 encoding for label "${name}"`);
  }
  const bytes = Buffer.from(trimmed, "base64url");
  // Node silently drops non-zero trailing bits; re-encoding tells us whether there were any.
  if (bytes.toString("base64url") !== trimmed) throw badKey(`invalid base64 encoding for label "${name}"`);
  return utf8(bytes, name);
}

function percentDecode(text: string): string {
  // Checked on every path, with or without `%`: a char above U+00FF would otherwise be truncated
  // to one byte by the latin1 conversion below (U+0174 → "t").
  if (!RAW_PATH.test(text)) throw badKey("path contains characters that must be percent-encoded");
  if (/%(?![0-9a-fA-F]{2})/.test(text)) throw badKey("invalid percent-encoding in path");
  const bytes = Buffer.from(
    text.replace(/%([0-9a-fA-F]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16))),
    "latin1",
  );
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
