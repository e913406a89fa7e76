/**
 * Compiles a job-name glob into an anchored matcher: `*` matches any run of characters
 * (including none), `?` exactly one; everything else is literal.
 */
export function compileGlob(pattern: string): (value: string) => boolean {
  if (!/[*?]/.test(pattern)) return (value) => value === pattern;
  const source = pattern
    .split("")
    .map((char) => (char === "*" ? ".*" : char === "?" ? "." : char.replace(/[\\^$.|+()[\]{}]/g, "\\$&")))
    .join("");
  const regex = new RegExp(`^${source}$`, "su");
  return (value) => regex.test(value);
}
