import { describe, expect, it } from "vitest";
import { ExpositionError } from "../../src/exposition/errors.js";
import { parseGoFloat, parseText } from "../../src/exposition/text.js";

const LIMITS = { maxSeries: 10_000, maxLabels: 64 };
const parse = (body: string | Buffer, limits = LIMITS) =>
  parseText(typeof body === "string" ? Buffer.from(body) : body, limits);

function ruleOf(body: string | Buffer, limits = LIMITS): string {
  try {
    parse(body, limits);
  } catch (error) {
    if (error instanceof ExpositionError) return error.rule;
    throw error;
  }
  return "accepted";
}

describe("parseText: what Go's expfmt.TextParser accepts", () => {
  it.each([
    ["empty body", ""],
    ["blank lines and blanks only", "\n  \n\t\n   "],
    ["one sample", "x 1\n"],
    ["labels, trailing comma, blanks around tokens", 'x{ a = "1" , b="2", } 1\n'],
    ["no blank between labels and value", 'x{a="1"}1\n'],
    ["timestamp", "x 1 1700000000000\n"],
    ["negative timestamp", "x 1 -5\n"],
    ["special values", "a +Inf\nb -inf\nc NaN\nd Infinity\ne 1e-400\nf .5\ng 5.\nh -0\n"],
    ["escapes in label values", 'x{a="q\\"b\\\\n\\n"} 1\n'],
    ["escapes in HELP", "# HELP x a\\\\b\\nc\nx 1\n"],
    ["comments of any kind", "# just a comment\n#HELP x written without blank\n#\n# \nx 1\n"],
    ["TYPE in any case", "# TYPE x COUNTER\nx 1\n# TYPE y Gauge\ny 2\n"],
    ["a TYPE without samples", "# TYPE lonely counter\nx 1\n"],
    ["colons and underscores in names", "_a:b_c 1\n:x 2\n"],
    [
      "histogram lines in any order",
      '# TYPE h histogram\nh_sum 3\nh_bucket{le="1"} 1\nh_count 2\nh_bucket{le="+Inf"} 2\n',
    ],
    ["summary", '# TYPE s summary\ns{quantile="0.5"} 1\ns_sum 2\ns_count 3\n'],
    ["unicode label value", 'x{a="日本 ✓"} 1\n'],
    ["NUL in a label value", 'x{a="\u0000"} 1\n'],
    ["le and quantile are plain labels of a gauge", 'x{le="a",quantile="b"} 1\n'],
  ])("%s", (_name, body) => {
    expect(ruleOf(body)).toBe("accepted");
  });

  it.each([
    ["no newline at the end", "x 1"],
    ["comment without newline at the end", "x 1\n# c"],
    ["CRLF line endings", "x 1\r\n"],
    ["trailing blank after the value", "x 1 \n"],
    ["trailing blank after the timestamp", "x 1 2 \n"],
    ["spurious text after timestamp", "x 1 2 3\n"],
    ["float timestamp", "x 1 2.5\n"],
    ["no value", "x\n"],
    ["hex value", "x 0x10\n"],
    ["underscore in value", "x 1_000\n"],
    ["value beyond float64", "x 1e400\n"],
    ["+nan", "x +NaN\n"],
    ["invalid metric name", "1x 1\n"],
    ["invalid metric name in comment", "# HELP 1x help\nx 1\n"],
    ["__name__ label", 'x{__name__="y"} 1\n'],
    ["duplicate label", 'x{a="1",a="2"} 1\n'],
    ["unquoted label value", "x{a=1} 1\n"],
    ["unknown escape in label value", 'x{a="\\t"} 1\n'],
    ["raw newline in label value", 'x{a="a\nb"} 1\n'],
    ["invalid UTF-8 label value", Buffer.from([...Buffer.from('x{a="'), 0xff, ...Buffer.from('"} 1\n')])],
    ["unknown escape in HELP", "# HELP x a\\tb\nx 1\n"],
    ["second HELP", "# HELP x a\n# HELP x b\nx 1\n"],
    ["TYPE after samples", "x 1\n# TYPE x gauge\n"],
    ["unknown type", "# TYPE x timer\nx 1\n"],
    ["trailing blank after type", "# TYPE x counter \nx 1\n"],
    ["non-float le", '# TYPE h histogram\nh_bucket{le="x"} 1\n'],
    ["non-float quantile", '# TYPE s summary\ns{quantile="x"} 1\n'],
    ["unterminated labels", 'x{a="1" 1\n'],
  ])("refuses %s (syntax)", (_name, body) => {
    expect(ruleOf(body)).toBe("syntax");
  });

  it("refuses invalid UTF-8 in HELP (Go keeps it; Prometheus rejects the scrape)", () => {
    const body = Buffer.concat([
      Buffer.from("# HELP x bad "),
      Buffer.from([0xc3, 0x28]),
      Buffer.from("\nx 1\n"),
    ]);
    expect(ruleOf(body)).toBe("invalid-utf8");
    // A family without samples is dropped, HELP and all, as Go does: nothing to refuse.
    const dropped = Buffer.concat([
      Buffer.from("# HELP y bad "),
      Buffer.from([0xff]),
      Buffer.from("\nx 1\n"),
    ]);
    expect(parse(dropped).families.map((family) => family.name)).toEqual(["x"]);
  });

  it("refuses samples of type gauge_histogram, drops the bare declaration as Go does", () => {
    expect(ruleOf("# TYPE g gauge_histogram\ng 1\n")).toBe("unknown-type");
    expect(parse("# TYPE g gauge_histogram\nx 1\n").families.map((family) => family.name)).toEqual(["x"]);
  });

  it.each([
    ["a bare summary sample", "# TYPE s summary\ns_sum 1\ns 5\n"],
    ["a bare histogram sample", '# TYPE h histogram\nh_count 1\nh{x="1"} 2\n'],
    ["a histogram bucket without le", "# TYPE h histogram\nh_bucket 1\n"],
  ])("refuses %s, whose value Go would drop", (_name, body) => {
    expect(ruleOf(body)).toBe("dropped-sample");
  });

  it("stops at the series limit before reading the rest", () => {
    const body = `${"x 1\n".repeat(5)}garbage that is never reached`;
    expect(ruleOf(body, { maxSeries: 4, maxLabels: 64 })).toBe("too-many-series");
    expect(
      ruleOf("# TYPE a counter\n# TYPE b counter\n# TYPE c counter\n", { maxSeries: 2, maxLabels: 64 }),
    ).toBe("too-many-series");
  });

  it("stops at the label limit of one series", () => {
    const labels = Array.from({ length: 10 }, (_, index) => `l${index}="v"`).join(",");
    expect(ruleOf(`x{${labels}} 1\n`, { maxSeries: 10, maxLabels: 9 })).toBe("too-many-labels");
    expect(ruleOf(`x{${labels}} 1\n`, { maxSeries: 10, maxLabels: 10 })).toBe("accepted");
  });

  it("finds a duplicate label among many (the set-based check)", () => {
    const labels = Array.from({ length: 20 }, (_, index) => `l${index}="v"`);
    expect(ruleOf(`x{${[...labels, 'l3="again"'].join(",")}} 1\n`)).toBe("syntax");
  });

  it("reports the line of the error", () => {
    try {
      parse("x 1\ny 2\nz\n");
      expect.unreachable();
    } catch (error) {
      expect((error as ExpositionError).at).toEqual({ line: 3 });
    }
  });
});

describe("parseText: the model", () => {
  it("merges histogram lines into one metric per label set and counts scrape series", () => {
    const push = parse(
      [
        "# HELP h a histogram",
        "# TYPE h histogram",
        'h_bucket{a="1",le="0.5"} 1',
        'h_bucket{le="1",a="1"} 2',
        'h_sum{a="1"} 3',
        'h_count{a="1"} 2',
        'h_bucket{a="2",le="+Inf"} 0',
        "",
      ].join("\n"),
    );
    expect(push.families).toHaveLength(1);
    const [family] = push.families;
    expect(family).toMatchObject({ name: "h", help: "a histogram", type: "histogram", at: { line: 1 } });
    expect(family?.metrics).toEqual([
      {
        labels: [["a", "1"]],
        values: ["histogram"],
        buckets: [0.5, 1],
        sums: 1,
        counts: 1,
        timestamped: false,
        at: { line: 3 },
      },
      {
        labels: [["a", "2"]],
        values: ["histogram"],
        buckets: [Number.POSITIVE_INFINITY],
        timestamped: false,
        at: { line: 7 },
      },
    ]);
    // metric 1: 2 buckets + implicit +Inf + sum + count; metric 2: +Inf + sum + count
    expect(push.series).toBe(5 + 3);
  });

  it("keeps every counter line as its own metric (duplicates are validation's to refuse)", () => {
    const push = parse('# TYPE c counter\nc{a="1"} 1\nc{a="1"} 2\n');
    expect(push.families[0]?.metrics).toHaveLength(2);
  });

  it("attaches HELP of x_count to a summary x, as Go does", () => {
    const push = parse("# TYPE s summary\n# HELP s_count counted\ns_count 1\n");
    expect(push.families).toMatchObject([{ name: "s", help: "counted", type: "summary" }]);
  });

  it("treats x_bucket before `# TYPE x histogram` as a family of its own", () => {
    const push = parse('h_bucket{le="1"} 1\n# TYPE h histogram\nh_count 1\n');
    expect(push.families.map((family) => [family.name, family.type])).toEqual([
      ["h_bucket", "untyped"],
      ["h", "histogram"],
    ]);
  });

  it("marks timestamped metrics", () => {
    expect(parse("x 1 5\n").families[0]?.metrics[0]?.timestamped).toBe(true);
  });
});

describe("parseGoFloat", () => {
  it.each([
    ["1", 1],
    ["-1.5e3", -1500],
    ["+.5", 0.5],
    ["INF", Number.POSITIVE_INFINITY],
    ["-Infinity", Number.NEGATIVE_INFINITY],
    ["nan", Number.NaN],
    ["1e-400", 0],
  ])("%s → %d", (text, value) => {
    expect(parseGoFloat(text)).toBe(value);
  });

  it.each(["", " 1", "1 ", "0x1", "0b1", "1_0", "infin", "+nan", ".", "e5", "1e", "1e400", "--1"])(
    "%j is not a Go float",
    (text) => {
      expect(parseGoFloat(text)).toBeUndefined();
    },
  );
});

describe("parseText: hostile bodies stay cheap", () => {
  // No timing asserted: with the backtracking regex this took about 20 s per 200,000 digits, and
  // grows with the square, so 2,000,000 digits would run into the test's timeout.
  it("parses a 2,000,000-digit value without backtracking", () => {
    expect(ruleOf(`m ${"1".repeat(2_000_000)}x\n`)).toBe("syntax");
    expect(ruleOf(`m ${"0".repeat(2_000_000)}\n`)).toBe("accepted");
    // Beyond float64: an error in Go, not +Inf.
    expect(ruleOf(`m ${"1".repeat(400)}\n`)).toBe("syntax");
  });

  it("decodes a value of a million escapes into one buffer", () => {
    const push = parse(`m{a="${"\\\\".repeat(1_000_000)}"} 1\n`);
    expect(push.families[0]?.metrics[0]?.labels[0]?.[1]).toBe("\\".repeat(1_000_000));
    const help = parse(`# HELP m ${"\\n".repeat(1_000_000)}\nm 1\n`);
    expect(help.families[0]?.help).toBe("\n".repeat(1_000_000));
  });

  it("keeps label sets apart that a separator character would have merged", () => {
    const push = parse('# TYPE h histogram\nh_count{a="1ÿbÿ2"} 1\nh_count{a="1",b="2"} 1\n');
    expect(push.families[0]?.metrics).toHaveLength(2);
  });

  it("upper-cases type names as Go does, one character at a time", () => {
    expect(ruleOf("# TYPE x hiﬆogram\nx_count 1\n")).toBe("syntax");
  });
});
