import { describe, expect, it } from "vitest";
import { parseText } from "../../src/exposition/text.js";
import { ownFamilies } from "../../src/store/gateway-families.js";
import { checkConsistency, type StoredFamilies } from "../../src/validation/consistency.js";
import { PushViolation } from "../../src/validation/violation.js";

/** A slice of what Pushgateway 1.5.1 serves on /metrics: its own families beside pushed ones. */
const EXPOSITION = `# HELP go_gc_duration_seconds A summary of the pause duration of garbage collection cycles.
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0"} 2.1e-05
go_gc_duration_seconds_sum 0.0001
go_gc_duration_seconds_count 3
# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 0.12
process_cpu_seconds_total{instance="",job="python-batch"} 4.5
# HELP pushgateway_http_requests_total Total HTTP requests processed by the Pushgateway, excluding scrapes.
# TYPE pushgateway_http_requests_total counter
pushgateway_http_requests_total{code="200",handler="push",method="put"} 3
# TYPE backup_runs gauge
backup_runs{instance="",job="team-a-backup"} 1
# TYPE push_time_seconds gauge
push_time_seconds{instance="",job="team-a-backup"} 1.7e+09
# TYPE lonely counter
`;

describe("ownFamilies", () => {
  it("keeps the families none of whose series carry a job label", () => {
    expect([...ownFamilies(EXPOSITION)]).toEqual([
      ["go_gc_duration_seconds", "summary"],
      ["pushgateway_http_requests_total", "counter"],
    ]);
  });
});

describe("checkConsistency", () => {
  const own = ownFamilies(EXPOSITION);
  own.set("process_cpu_seconds_total", "counter");
  const stored: StoredFamilies = {
    holder: (name) => {
      const type = own.get(name);
      return type === undefined ? undefined : { type, holder: "the Pushgateway's own metrics" };
    },
  };
  const ruleOf = (body: string) => {
    try {
      checkConsistency(parseText(Buffer.from(body), { maxSeries: 100, maxLabels: 100 }), stored);
    } catch (error) {
      if (error instanceof PushViolation) return error.rule;
      throw error;
    }
    return "accepted";
  };

  it.each([
    [
      "the same type as the Pushgateway's own (Python's default registry)",
      "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1\n",
      "accepted",
    ],
    [
      "another type",
      "# TYPE process_cpu_seconds_total gauge\nprocess_cpu_seconds_total 1\n",
      "type-conflict",
    ],
    ["untyped is another type too", "process_cpu_seconds_total 1\n", "type-conflict"],
    ["a gauge named like a series of its own summary", "go_gc_duration_seconds_count 1\n", "suffix-conflict"],
    [
      "a gauge named _bucket beside its own summary (no such series)",
      "go_gc_duration_seconds_bucket 1\n",
      "accepted",
    ],
    [
      "a histogram whose _count is an own family",
      "# TYPE pushgateway_http_requests histogram\npushgateway_http_requests_count 1\n",
      "accepted",
    ],
    [
      "a histogram whose _total is not a series",
      "# TYPE process_cpu_seconds histogram\nprocess_cpu_seconds_count 1\n",
      "accepted",
    ],
    [
      "a summary x where x_sum is stored",
      "# TYPE process_cpu_seconds_total summary\nprocess_cpu_seconds_total_sum 1\n",
      "type-conflict",
    ],
  ])("%s → %s", (_name, body, rule) => {
    expect(ruleOf(body)).toBe(rule);
  });

  it("refuses a histogram x when x_count is stored", () => {
    own.set("latency_count", "gauge");
    expect(ruleOf("# TYPE latency histogram\nlatency_sum 1\n")).toBe("suffix-conflict");
    own.delete("latency_count");
  });

  it("names the holder in the problem", () => {
    try {
      checkConsistency(
        parseText(Buffer.from("process_cpu_seconds_total 1\n"), { maxSeries: 10, maxLabels: 10 }),
        stored,
      );
      expect.unreachable();
    } catch (error) {
      const problem = (error as PushViolation).toProblem();
      expect(problem.status).toBe(409);
      expect(problem.details).toMatchObject({
        rule: "type-conflict",
        family: "process_cpu_seconds_total",
        holder: "the Pushgateway's own metrics",
      });
    }
  });
});
