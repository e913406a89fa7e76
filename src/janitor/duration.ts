const PART = /(\d+)(ms|s|m|h|d)/g;
const WHOLE = /^(\d+(ms|s|m|h|d))+$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Parses a TTL such as `90m`, `36h`, `7d` or `1h30m` into milliseconds; `never` is `Infinity`.
 * `undefined` for anything else (including zero: a TTL of nothing would expire every group).
 */
export function parseTtl(text: string): number | undefined {
  if (text === "never") return Number.POSITIVE_INFINITY;
  if (!WHOLE.test(text)) return undefined;
  let total = 0;
  for (const [, amount, unit] of text.matchAll(PART))
    total += Number(amount) * (UNIT_MS[unit as string] as number);
  return total > 0 && Number.isSafeInteger(total) ? total : undefined;
}
