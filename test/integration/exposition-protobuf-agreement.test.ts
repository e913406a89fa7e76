import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExpositionError } from "../../src/exposition/errors.js";
import { parseProtobuf } from "../../src/exposition/protobuf.js";
import {
  applyEdits,
  type ByteEdit,
  encodeFamilies,
  type FamilySpec,
  type MetricSpec,
  PROTOBUF_CONTENT_TYPE,
  pb,
} from "../support/protobuf.js";
import { type Pushgateway, startPushgateway } from "../support/pushgateway.js";

/**
 * Agreement between pushguard's protobuf parser and the real Pushgateway (1.5.1 from Debian):
 * every body is PUT straight to the pushgateway, and its answer is compared with parseProtobuf's.
 * The parser may be stricter (refuse what the pushgateway decodes: each case below says why),
 * never looser: a body the pushgateway cannot decode must never parse here.
 *
 * The pushgateway answers 400 both when it cannot decode a body and when its consistency check
 * refuses what it decoded ("pushed metrics are invalid or inconsistent ..."); only the first kind
 * is the parser's business, the second is validation's.
 */

type Verdict = "accepted" | "undecodable" | "inconsistent";

let pushgateway: Pushgateway;
beforeAll(async () => {
  pushgateway = await startPushgateway();
});
afterAll(async () => {
  await pushgateway?.stop();
});

async function pushgatewayVerdict(body: Buffer): Promise<Verdict> {
  const response = await fetch(`${pushgateway.url}/metrics/job/agreement`, {
    method: "PUT",
    headers: { "content-type": PROTOBUF_CONTENT_TYPE },
    body,
  });
  const text = await response.text();
  if (response.ok) return "accepted";
  expect(response.status, text).toBe(400);
  return text.startsWith("pushed metrics are invalid or inconsistent") ? "inconsistent" : "undecodable";
}

function parserVerdict(body: Buffer): "parsed" | ExpositionError["rule"] {
  try {
    parseProtobuf(body, { maxSeries: Number.MAX_SAFE_INTEGER, maxLabels: Number.POSITIVE_INFINITY });
    return "parsed";
  } catch (error) {
    if (error instanceof ExpositionError) return error.rule;
    throw error;
  }
}

const cat = (...parts: Buffer[]) => Buffer.concat(parts);
const gauge = pb.message(2, pb.double(1, 1));
/** A gauge family the pushgateway stores, with `extra` fields in the family or its metric. */
const family = (family: Buffer[] = [], metric: Buffer[] = []) =>
  cat(
    pb.bytes(1, "agreement_value"),
    pb.bytes(2, "Help."),
    pb.varint(3, 1),
    pb.message(4, gauge, ...metric),
    ...family,
  );
const valid = pb.delimited(family());

interface Case {
  readonly name: string;
  readonly body: Buffer;
  /** accepted: both decode it; rejected: neither does; stricter: only the pushgateway does. */
  readonly expect: "accepted" | "rejected" | "stricter";
  readonly why?: string;
}

const corpus: Case[] = [
  { name: "a gauge family", body: valid, expect: "accepted" },
  { name: "an empty body", body: Buffer.alloc(0), expect: "accepted" },
  {
    name: "a 5-byte length prefix",
    body: cat(Buffer.from([0x80 | family().length, 0x80, 0x80, 0x80, 0x00]), family()),
    expect: "accepted",
  },
  { name: "an unknown varint field", body: pb.delimited(family([pb.varint(99, 1)])), expect: "accepted" },
  {
    name: "an unknown fixed32 field",
    body: pb.delimited(family([], [pb.fixed32(99, 1)])),
    expect: "accepted",
  },
  {
    name: "the type as an int32 beyond 32 bits",
    body: pb.delimited(family([pb.varint(3, 2 ** 32 + 1)])),
    expect: "accepted",
  },
  {
    name: "a 6-byte length prefix",
    body: cat(Buffer.from([0x80 | family().length, 0x80, 0x80, 0x80, 0x80, 0x00]), family()),
    expect: "rejected",
  },
  { name: "a message cut short", body: cat(valid, Buffer.from([0x05, 0x0a, 0x01])), expect: "rejected" },
  { name: "field number 0", body: pb.delimited(family([pb.varint(0, 1)])), expect: "rejected" },
  { name: "an end-group tag", body: pb.delimited(family([pb.tag(99, 4)])), expect: "rejected" },
  {
    name: "wire type 6",
    body: pb.delimited(family([cat(pb.tag(99, 6), Buffer.alloc(8))])),
    expect: "rejected",
  },
  {
    name: "a varint overflowing 64 bits",
    body: pb.delimited(family([cat(pb.tag(99, 0), Buffer.from([...Array(9).fill(0xff), 0x02]))])),
    expect: "rejected",
  },
  {
    name: "a packed double list of 7 bytes",
    body: pb.delimited(
      cat(pb.bytes(1, "h"), pb.varint(3, 4), pb.message(4, pb.message(7, pb.bytes(11, Buffer.alloc(7))))),
    ),
    expect: "rejected",
  },
  {
    name: "a body ending inside a length prefix",
    body: cat(valid, Buffer.from([0x80])),
    expect: "stricter",
    why: "ReadDelimited returns io.EOF, which the pushgateway takes for a clean end of the body",
  },
  {
    name: "a body ending right after a length prefix",
    body: cat(valid, Buffer.from([0x05])),
    expect: "stricter",
    why: "io.ReadFull returns io.EOF when it reads nothing, taken for a clean end",
  },
  {
    name: "an unknown group",
    body: pb.delimited(family([pb.tag(99, 3), pb.varint(1, 1), pb.tag(99, 4)])),
    expect: "stricter",
    why: "Go skips unknown groups; metrics.proto has none",
  },
  {
    name: "field number 2^29",
    body: pb.delimited(family([pb.varint(2 ** 29, 1)])),
    expect: "stricter",
    why: "beyond the highest field number; protobuf-go refuses it, golang/protobuf 1.3 skips it",
  },
  {
    name: "timestamp_ms as fixed64",
    body: pb.delimited(family([], [pb.double(6, 1)])),
    expect: "stricter",
    why: "Go skips a known field with the wrong wire type as unknown",
  },
  {
    name: "a label value as varint",
    body: pb.delimited(family([], [pb.message(1, pb.bytes(1, "l"), pb.varint(2, 1))])),
    expect: "stricter",
    why: "Go skips a known field with the wrong wire type as unknown",
  },
  {
    name: "a counter exemplar label as varint",
    body: pb.delimited(
      cat(pb.bytes(1, "c"), pb.message(4, pb.message(3, pb.double(1, 1), pb.message(2, pb.varint(1, 1))))),
    ),
    expect: "stricter",
    why: "Go skips a known field with the wrong wire type as unknown",
  },
  {
    name: "help that is not UTF-8",
    body: pb.delimited(
      cat(pb.bytes(1, "a"), pb.bytes(2, Buffer.from([0xff])), pb.varint(3, 1), pb.message(4, gauge)),
    ),
    expect: "stricter",
    why: "proto2 strings are bytes to Go, and the pushgateway keeps the help as is",
  },
  {
    name: "an exemplar label value that is not UTF-8",
    body: pb.delimited(
      cat(
        pb.bytes(1, "c"),
        pb.message(
          4,
          pb.message(
            3,
            pb.double(1, 1),
            pb.message(2, pb.message(1, pb.bytes(1, "l"), pb.bytes(2, Buffer.from([0xff])))),
          ),
        ),
      ),
    ),
    expect: "stricter",
    why: "proto2 strings are bytes to Go, and the pushgateway never looks at exemplars",
  },
];

describe("protobuf parser agreement with the real Pushgateway", () => {
  it.each(corpus)("$name: $expect", async ({ body, expect: expectation }) => {
    const theirs = await pushgatewayVerdict(body);
    const ours = parserVerdict(body);
    if (expectation === "accepted") {
      expect(theirs).toBe("accepted");
      expect(ours).toBe("parsed");
    } else if (expectation === "rejected") {
      expect(theirs).toBe("undecodable");
      expect(ours).toBe("syntax");
    } else {
      expect(theirs).toBe("accepted");
      expect(ours).not.toBe("parsed");
    }
  });

  it("a body the pushgateway cannot decode never parses, however it was broken", async () => {
    // Families the pushgateway's consistency check lets through, so that what it refuses after
    // the edits is mostly what it cannot decode.
    const kinds = { 0: "counter", 1: "gauge", 2: "summary", 4: "histogram" } as const;
    const family: fc.Arbitrary<FamilySpec> = fc
      .record({
        name: fc.stringMatching(/^[a-z][a-z0-9_]{0,8}$/),
        help: fc.string({ maxLength: 6 }),
        type: fc.constantFrom(0, 1, 2, 4),
        metrics: fc.array(
          fc.record({
            value: fc.string({ maxLength: 6 }),
            buckets: fc.uniqueArray(fc.double({ noNaN: true, noDefaultInfinity: true }), { maxLength: 3 }),
            quantiles: fc.uniqueArray(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 3 }),
          }),
          { minLength: 1, maxLength: 3 },
        ),
      })
      .map(({ name, help, type, metrics }) => ({
        name,
        help,
        type,
        metrics: metrics.map(
          ({ value, buckets, quantiles }, index): MetricSpec => ({
            labels: [
              ["i", String(index)],
              ["l", value],
            ],
            values: [kinds[type as keyof typeof kinds]],
            buckets: buckets.sort((a, b) => a - b),
            quantiles,
          }),
        ),
      }));
    const families = fc.uniqueArray(family, { minLength: 1, maxLength: 2, selector: (f) => f.name });
    const edit: fc.Arbitrary<ByteEdit> = fc.tuple(
      fc.constantFrom("set", "insert", "delete"),
      fc.nat(),
      fc.integer({ min: 0, max: 255 }),
    );
    const seen = { undecodable: 0, accepted: 0, stricter: 0, inconsistent: 0 };
    await fc.assert(
      fc.asyncProperty(families, fc.array(edit, { maxLength: 3 }), async (specs, edits) => {
        const body = applyEdits(encodeFamilies(specs), edits);
        const theirs = await pushgatewayVerdict(body);
        const ours = parserVerdict(body);
        if (theirs === "undecodable") {
          seen.undecodable++;
          expect(ours, body.toString("hex")).not.toBe("parsed");
        } else if (theirs === "accepted") {
          if (ours === "parsed") seen.accepted++;
          else seen.stricter++;
        } else {
          seen.inconsistent++;
        }
      }),
      { numRuns: 400 },
    );
    // Not vacuous: many bodies are broken for the pushgateway, many still decode on both sides.
    expect(seen.undecodable).toBeGreaterThan(40);
    expect(seen.accepted).toBeGreaterThan(40);
  });
});
