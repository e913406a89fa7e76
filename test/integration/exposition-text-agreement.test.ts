import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExpositionError } from "../../src/exposition/errors.js";
import { parseText } from "../../src/exposition/text.js";
import { type Pushgateway, startPushgateway } from "../support/pushgateway.js";

/**
 * Agreement between pushguard's text parser and the real Pushgateway's (1.5.1, prometheus/common
 * expfmt). With `--push.disable-consistency-check` the Pushgateway answers 400 exactly when its
 * parser refuses a body and 202 otherwise, which makes it an oracle for the parser alone. Bodies
 * come from a small grammar with mutations, so most are almost valid: the interesting side of the
 * boundary. pushguard's `syntax` must be exactly the Pushgateway's 400; its stricter rules
 * (`invalid-utf8` HELP) sit on the accepted side, and `unknown-type` (gauge_histogram samples)
 * on the refused side, where Go fails with "unexpected type".
 */

let pushgateway: Pushgateway;

beforeAll(async () => {
  pushgateway = await startPushgateway(["--push.disable-consistency-check"]);
});

afterAll(async () => {
  await pushgateway?.stop();
});

/** How many bodies each side of the boundary got: a generator that only makes one kind proves nothing. */
const tally = { refused: 0, accepted: 0 };

async function goRefuses(body: Buffer): Promise<boolean> {
  const response = await fetch(`${pushgateway.url}/metrics/job/agreement`, { method: "PUT", body });
  await response.arrayBuffer();
  expect([202, 400]).toContain(response.status);
  tally[response.status === 400 ? "refused" : "accepted"] += 1;
  return response.status === 400;
}

function pushguardRefuses(body: Buffer): boolean {
  try {
    parseText(body, { maxSeries: 1_000_000, maxLabels: 1_000_000 });
    return false;
  } catch (error) {
    if (!(error instanceof ExpositionError)) throw error;
    return error.rule === "syntax" || error.rule === "unknown-type";
  }
}

/** Mostly valid atoms, sometimes a broken one: bodies land on both sides of the boundary. */
const mostly = <T>(good: readonly T[], bad: readonly T[]) =>
  fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...good) },
    { weight: 1, arbitrary: fc.constantFrom(...bad) },
  );

const name = mostly(["x", "x_count", "x_sum", "x_bucket", "y", "_a:b"], ["1x", "", "x y"]);
const labelName = mostly(["a", "b", "le", "quantile", "job", "__x"], ["__name__", "1a", ""]);
const labelValue = mostly(["", "1", "0.5", "+Inf", "x", 'q\\"', "\\\\", "\\n", "日本"], ["\\t", '"', "\n"]);
const value = mostly(
  ["1", "-2.5", "1e3", "+Inf", "-inf", "NaN", "nan", "Infinity", ".5", "1e-400"],
  ["+NaN", "0x1", "1_0", "1e400", ""],
);
const blank = mostly(["", " "], ["\t", "  "]);
const typeName = mostly(
  ["counter", "gauge", "histogram", "summary", "untyped", "COUNTER", "Gauge"],
  ["gauge_histogram", "timer", "counter "],
);
const help = mostly(["help", "with \\\\ and \\n", "", "ünï"], ["bad \\t escape", "trailing \\"]);

const labels = fc.array(fc.tuple(labelName, blank, labelValue), { maxLength: 3 }).chain((pairs) =>
  fc.tuple(fc.constant(pairs), fc.boolean(), blank).map(([items, trailingComma, pad]) => {
    if (items.length === 0 && !trailingComma) return "";
    const inner = items.map(([n, b, v]) => `${n}${b}=${b}"${v}"`).join(",");
    return `{${pad}${inner}${trailingComma && items.length > 0 ? "," : ""}${pad}}`;
  }),
);

const sampleLine = fc
  .tuple(
    name,
    labels,
    blank,
    value,
    fc.option(mostly(["1700000000000", "-1"], ["1.5", "x"]), { nil: undefined, freq: 8 }),
    mostly([""], [" "]),
  )
  .map(
    ([n, l, b, v, ts, tail]) => `${n}${l}${b === "" ? " " : b}${v}${ts !== undefined ? ` ${ts}` : ""}${tail}`,
  );

const commentLine = fc.oneof(
  fc.tuple(blank, name, typeName).map(([b, n, t]) => `#${b === "" ? " " : b}TYPE ${n} ${t}`),
  fc.tuple(name, help).map(([n, h]) => `# HELP ${n} ${h}`),
  fc.constantFrom("# plain comment", "#", "#HELP x h", "# TYPE", "# HELP x"),
);

const body = fc
  .tuple(
    fc.array(
      fc.oneof({ weight: 3, arbitrary: sampleLine }, { weight: 2, arbitrary: commentLine }, fc.constant("")),
      {
        minLength: 1,
        maxLength: 6,
      },
    ),
    mostly(["\n"], ["\r\n"]),
    mostly(["\n", "\n  "], [""]),
  )
  .map(([lines, newline, end]) => Buffer.from(lines.join(newline) + end));

describe("text parser agrees with the Pushgateway's", () => {
  it("on generated bodies", async () => {
    await fc.assert(
      fc.asyncProperty(body, async (generated) => {
        expect({ body: generated.toString(), refused: pushguardRefuses(generated) }).toEqual({
          body: generated.toString(),
          refused: await goRefuses(generated),
        });
      }),
      { numRuns: 2_000, seed: 20261207 },
    );
    expect(tally.accepted).toBeGreaterThan(300);
    expect(tally.refused).toBeGreaterThan(300);
  });

  it("on raw bytes around the syntax", async () => {
    const bytes = fc
      .array(fc.constantFrom(...'x1 {}=",#\n\t\\le_.+-eE'.split(""), "\u00ff", "é"), { maxLength: 24 })
      .map((chars) => Buffer.from(`${chars.join("")}\n`, "utf8"));
    await fc.assert(
      fc.asyncProperty(bytes, async (generated) => {
        expect({ body: generated.toString(), refused: pushguardRefuses(generated) }).toEqual({
          body: generated.toString(),
          refused: await goRefuses(generated),
        });
      }),
      { numRuns: 1_000, seed: 7 },
    );
  });
});
