/** The body formats the Pushgateway accepts, with the Content-Type pushguard forwards for each. */
export const CONTENT_TYPES = {
  text: "text/plain; version=0.0.4; charset=utf-8",
  protobuf: "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited",
} as const;

export type BodyFormat = keyof typeof CONTENT_TYPES;

/**
 * The format the Pushgateway would parse a body as: delimited protobuf when the media type is
 * `application/vnd.google.protobuf` with `proto=io.prometheus.client.MetricFamily` and
 * `encoding=delimited` (Go's `mime.ParseMediaType`: type and parameter names in any case,
 * values exact, optionally quoted), text format 0.0.4 for anything else. pushguard forwards the
 * canonical Content-Type of the format it chose, so the Pushgateway always parses the body the way
 * it was validated, whatever this function and Go's parser disagree on.
 */
export function bodyFormat(contentType: string | undefined): BodyFormat {
  if (contentType === undefined) return "text";
  const [mediaType, ...parameters] = contentType.split(";");
  if (mediaType?.trim().toLowerCase() !== "application/vnd.google.protobuf") return "text";
  const values = new Map<string, string>();
  for (const parameter of parameters) {
    const separator = parameter.indexOf("=");
    if (separator === -1) continue;
    const name = parameter.slice(0, separator).trim().toLowerCase();
    const value = parameter
      .slice(separator + 1)
      .trim()
      .replace(/^"(.*)"$/, "$1");
    values.set(name, value);
  }
  return values.get("proto") === "io.prometheus.client.MetricFamily" && values.get("encoding") === "delimited"
    ? "protobuf"
    : "text";
}
