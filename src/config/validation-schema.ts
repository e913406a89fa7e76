import { z } from "zod";
import { plainGlob } from "./jwt-schema.js";

/**
 * What a push body may contain: limits per push, metric-name patterns and reserved labels.
 * `validation` sets them for everyone; `teams[].validation` overrides limits and narrows names
 * for one team. The defaults protect a Pushgateway nobody tuned.
 */

const limit = (max: number) => z.number().int().positive().max(max);

/** Every limit with its default; a team's `validation.limits` overrides any of them. */
export const DEFAULT_PUSH_LIMITS = {
  seriesPerPush: 10_000,
  labelsPerSeries: 32,
  metricNameBytes: 256,
  labelNameBytes: 128,
  labelValueBytes: 2_048,
  helpBytes: 4_096,
} as const;

export type PushLimits = { readonly [K in keyof typeof DEFAULT_PUSH_LIMITS]: number };

const limitShape = {
  seriesPerPush: limit(10_000_000),
  labelsPerSeries: limit(1_000),
  metricNameBytes: limit(65_536),
  labelNameBytes: limit(65_536),
  labelValueBytes: limit(1_048_576),
  helpBytes: limit(1_048_576),
};

export const metricNameGlob = plainGlob("are not filled in metric-name patterns");

/**
 * Names nobody may push unless `validation.metricNames.deny` says otherwise: Prometheus's own
 * series (`up`, `scrape_*`), which would be mistaken for the scrape's, and the Pushgateway's own
 * metrics.
 */
export const DEFAULT_DENIED_METRIC_NAMES = ["up", "scrape_*", "pushgateway_*"] as const;

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export const validationSection = z
  .strictObject({
    enabled: z.boolean().default(true),
    utf8Names: z.boolean().default(false),
    limits: z
      .strictObject({
        seriesPerPush: limitShape.seriesPerPush.default(DEFAULT_PUSH_LIMITS.seriesPerPush),
        labelsPerSeries: limitShape.labelsPerSeries.default(DEFAULT_PUSH_LIMITS.labelsPerSeries),
        metricNameBytes: limitShape.metricNameBytes.default(DEFAULT_PUSH_LIMITS.metricNameBytes),
        labelNameBytes: limitShape.labelNameBytes.default(DEFAULT_PUSH_LIMITS.labelNameBytes),
        labelValueBytes: limitShape.labelValueBytes.default(DEFAULT_PUSH_LIMITS.labelValueBytes),
        helpBytes: limitShape.helpBytes.default(DEFAULT_PUSH_LIMITS.helpBytes),
      })
      .prefault({}),
    metricNames: z
      .strictObject({
        allow: z
          .array(metricNameGlob)
          .min(1, 'allow at least one pattern ("*" allows every name)')
          .default(["*"]),
        deny: z.array(metricNameGlob).default([...DEFAULT_DENIED_METRIC_NAMES]),
      })
      .prefault({}),
    reservedLabels: z
      .array(
        z
          .string()
          .regex(LABEL_NAME, "must be a valid label name")
          .refine((name) => name !== "job" && name !== "instance", "job and instance cannot be reserved"),
      )
      .default([]),
  })
  .prefault({});

/** A team's own limits and metric-name patterns. */
export const teamValidation = z
  .strictObject({
    limits: z
      .strictObject({
        seriesPerPush: limitShape.seriesPerPush.optional(),
        labelsPerSeries: limitShape.labelsPerSeries.optional(),
        metricNameBytes: limitShape.metricNameBytes.optional(),
        labelNameBytes: limitShape.labelNameBytes.optional(),
        labelValueBytes: limitShape.labelValueBytes.optional(),
        helpBytes: limitShape.helpBytes.optional(),
      })
      .prefault({}),
    metricNames: z
      .strictObject({
        allow: z.array(metricNameGlob).min(1, "allow at least one pattern").optional(),
        deny: z.array(metricNameGlob).default([]),
        own: z.array(metricNameGlob).default([]),
      })
      .prefault({}),
  })
  .prefault({});
