import { describe, expect, it } from "vitest";
import type { MetricType } from "../../src/exposition/types.js";
import { seriesHash } from "../../src/store/series-hash.js";
import { StoreIndex } from "../../src/store/store-index.js";
import type { PushedFamilies } from "../../src/validation/validate-push.js";
import { PushViolation } from "../../src/validation/violation.js";

const A = "/metrics/job/team-a-x";
const B = "/metrics/job/team-b-y";

/** A family with one series per label set given (job and instance as the Pushgateway stores them). */
function family(
  name: string,
  type: MetricType,
  ...labelSets: Array<Record<string, string>>
): PushedFamilies[number] {
  const sets = labelSets.length > 0 ? labelSets : [{}];
  return {
    name,
    type,
    samples: sets.length,
    series: sets.map((labels) =>
      seriesHash(
        name,
        Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)),
      ),
    ),
    at: {},
  };
}

function ruleOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    if (error instanceof PushViolation) return error.rule;
    throw error;
  }
  return "accepted";
}

describe("StoreIndex", () => {
  it.each([
    ["the same type in another group", [family("x", "counter", { job: "b" })], "accepted"],
    ["another type in another group", [family("x", "gauge", { job: "b" })], "type-conflict"],
    [
      "x_count beside another group's histogram x",
      [family("h_count", "gauge", { job: "b" })],
      "suffix-conflict",
    ],
    [
      "a summary named like another group's x_sum base",
      [family("s", "summary", { job: "b" })],
      "suffix-conflict",
    ],
    [
      "the same series as another group",
      [family("m", "gauge", { instance: "i", job: "a" })],
      "series-conflict",
    ],
    ["the same name, other labels", [family("m", "gauge", { instance: "j", job: "a" })], "accepted"],
    ["a name of the Pushgateway's own, another type", [family("go_goroutines", "counter")], "type-conflict"],
  ])("a push of %s → %s", (_name, families, rule) => {
    const index = new StoreIndex((name) => (name === "go_goroutines" ? "gauge" : undefined));
    index.reservePush(A, "PUT", [
      family("x", "counter", { job: "a" }),
      family("h", "histogram", { job: "a" }),
      family("s_sum", "gauge", { job: "a" }),
      family("m", "gauge", { instance: "i", job: "a" }),
    ]);
    expect(ruleOf(() => index.reservePush(B, "PUT", families))).toBe(rule);
  });

  it("lets a group change its own family's type when no other group holds it (PUT and POST)", () => {
    const index = new StoreIndex();
    index.reservePush(A, "PUT", [family("x", "counter"), family("y", "gauge")]);
    expect(ruleOf(() => index.reservePush(A, "PUT", [family("x", "gauge")]))).toBe("accepted");
    expect(ruleOf(() => index.reservePush(A, "POST", [family("x", "counter")]))).toBe("accepted");
    // POST keeps the group's other families: y is still there for another group's push to clash with
    index.reservePush(A, "POST", [family("y", "gauge")]);
    expect(ruleOf(() => index.reservePush(B, "PUT", [family("y", "counter")]))).toBe("type-conflict");
  });

  it("a POST is checked against the group's own other families", () => {
    const index = new StoreIndex();
    index.reservePush(A, "PUT", [family("h", "histogram")]);
    expect(ruleOf(() => index.reservePush(A, "POST", [family("h_sum", "gauge")]))).toBe("suffix-conflict");
    expect(ruleOf(() => index.reservePush(A, "PUT", [family("h_sum", "gauge")]))).toBe("accepted");
  });

  it("frees names and series when a group is deleted, or the store wiped", () => {
    const index = new StoreIndex();
    index.reservePush(A, "PUT", [family("x", "counter", { job: "a" })]);
    index.deleteGroup(A);
    expect(ruleOf(() => index.reservePush(B, "PUT", [family("x", "gauge", { job: "a" })]))).toBe("accepted");
    index.clear();
    expect(index.groups).toBe(0);
    expect(index.series).toBe(0);
  });

  it("keeps a name held by two groups until both are gone", () => {
    const index = new StoreIndex();
    index.reservePush(A, "PUT", [family("x", "counter", { job: "a" })]);
    index.reservePush(B, "PUT", [family("x", "counter", { job: "b" })]);
    index.deleteGroup(A);
    expect(ruleOf(() => index.reservePush("/metrics/job/c", "PUT", [family("x", "gauge")]))).toBe(
      "type-conflict",
    );
    index.deleteGroup(B);
    expect(ruleOf(() => index.reservePush("/metrics/job/c", "PUT", [family("x", "gauge")]))).toBe("accepted");
  });

  it("rolls back a refused push, unless the group changed since", () => {
    const index = new StoreIndex();
    index.reservePush(A, "PUT", [family("x", "counter")]);
    const refused = index.reservePush(A, "PUT", [family("y", "gauge")]);
    refused.rollback();
    expect(ruleOf(() => index.reservePush(B, "PUT", [family("x", "gauge")]))).toBe("type-conflict");
    expect(ruleOf(() => index.reservePush(B, "PUT", [family("y", "counter")]))).toBe("accepted");

    const first = index.reservePush(A, "PUT", [family("z", "gauge")]);
    index.reservePush(A, "POST", [family("w", "gauge")]);
    first.rollback(); // too late: a later push changed the group; a resync settles it
    expect(ruleOf(() => index.reservePush(B, "PUT", [family("w", "counter")]))).toBe("type-conflict");
  });

  it("a rollback of a new group removes it", () => {
    const index = new StoreIndex();
    index.reservePush(A, "PUT", [family("x", "counter")]).rollback();
    expect(index.groups).toBe(0);
  });

  it("replays the changes made while a resync read the store", () => {
    const index = new StoreIndex();
    index.beginResync();
    index.reservePush(A, "PUT", [family("late", "counter")]);
    // The read saw B only (A's push landed after it).
    index.load([
      { path: B, team: "team-b", families: [["early", { type: "gauge", series: [], samples: 0 }]] },
    ]);
    expect(index.groups).toBe(2);
    expect(ruleOf(() => index.reservePush("/metrics/job/c", "PUT", [family("late", "gauge")]))).toBe(
      "type-conflict",
    );
    expect(ruleOf(() => index.reservePush("/metrics/job/c", "PUT", [family("early", "counter")]))).toBe(
      "type-conflict",
    );
  });

  describe("team quotas", () => {
    const QUOTA = { quota: { groups: 2, series: 3 }, firstTeamOwns: () => false, checkNames: true };
    const many = (count: number) =>
      family("m", "gauge", ...Array.from({ length: count }, (_, index) => ({ i: String(index) })));

    it("counts groups per team and refuses one too many", () => {
      const index = new StoreIndex();
      index.reservePush("/metrics/job/a1", "PUT", [many(1)], "team-a", QUOTA);
      index.reservePush("/metrics/job/a2", "PUT", [family("n", "gauge")], "team-a", QUOTA);
      expect(ruleOf(() => index.reservePush("/metrics/job/a3", "PUT", [], "team-a", QUOTA))).toBe(
        "team-groups",
      );
      // re-pushing a group it has is no new group; another team has its own count
      expect(
        ruleOf(() => index.reservePush("/metrics/job/a2", "PUT", [family("n", "gauge")], "team-a", QUOTA)),
      ).toBe("accepted");
      expect(
        ruleOf(() => index.reservePush("/metrics/job/b1", "PUT", [family("o", "gauge")], "team-b", QUOTA)),
      ).toBe("accepted");
      index.deleteGroup("/metrics/job/a1");
      expect(
        ruleOf(() => index.reservePush("/metrics/job/a3", "PUT", [family("p", "gauge")], "team-a", QUOTA)),
      ).toBe("accepted");
      expect(index.usage().get("team-a")).toEqual({ groups: 2, series: 2 });
    });

    it("counts series after what a push replaces", () => {
      const index = new StoreIndex();
      index.reservePush("/metrics/job/a1", "PUT", [many(3)], "team-a", QUOTA);
      // a PUT replacing the same three series stays within the quota; a fourth does not fit
      expect(ruleOf(() => index.reservePush("/metrics/job/a1", "PUT", [many(3)], "team-a", QUOTA))).toBe(
        "accepted",
      );
      expect(
        ruleOf(() => index.reservePush("/metrics/job/a1", "POST", [family("q", "gauge")], "team-a", QUOTA)),
      ).toBe("team-series");
      expect(ruleOf(() => index.reservePush("/metrics/job/a1", "POST", [many(2)], "team-a", QUOTA))).toBe(
        "accepted",
      );
      expect(index.usage().get("team-a")).toEqual({ groups: 1, series: 2 });
    });

    it("gives a rolled-back push's usage back", () => {
      const index = new StoreIndex();
      index.reservePush("/metrics/job/a1", "PUT", [many(3)], "team-a", QUOTA).rollback();
      expect(index.usage().get("team-a")).toBeUndefined();
    });
  });

  describe("metric-name ownership (store.names.ownership: first)", () => {
    const rules = (shared: string[] = []) => ({
      quota: { groups: 100, series: 100 },
      firstTeamOwns: (name: string) => !shared.includes(name),
      checkNames: true,
    });

    it("keeps a name for the team that stores it, while it stores it", () => {
      const index = new StoreIndex();
      index.reservePush(
        "/metrics/job/b1",
        "PUT",
        [family("team_b_rt", "gauge", { job: "b1" })],
        "team-b",
        rules(),
      );
      expect(
        ruleOf(() =>
          index.reservePush(
            "/metrics/job/a1",
            "PUT",
            [family("team_b_rt", "gauge", { job: "a1" })],
            "team-a",
            rules(),
          ),
        ),
      ).toBe("metric-name-owned");
      // its owner may push it to another group of its own, and replace it in its own group
      expect(
        ruleOf(() =>
          index.reservePush(
            "/metrics/job/b2",
            "PUT",
            [family("team_b_rt", "gauge", { job: "b2" })],
            "team-b",
            rules(),
          ),
        ),
      ).toBe("accepted");
      index.deleteGroup("/metrics/job/b1");
      index.deleteGroup("/metrics/job/b2");
      // stored nowhere any more: the next team to store it owns it
      expect(
        ruleOf(() =>
          index.reservePush(
            "/metrics/job/a1",
            "PUT",
            [family("team_b_rt", "gauge", { job: "a1" })],
            "team-a",
            rules(),
          ),
        ),
      ).toBe("accepted");
    });

    it("lets every team push a shared name, and a group's new pusher replace it", () => {
      const index = new StoreIndex();
      index.reservePush(
        "/metrics/job/b1",
        "PUT",
        [family("job_duration_seconds", "gauge", { job: "b1" })],
        "team-b",
        rules(),
      );
      expect(
        ruleOf(() =>
          index.reservePush(
            "/metrics/job/a1",
            "PUT",
            [family("job_duration_seconds", "gauge")],
            "team-a",
            rules(["job_duration_seconds"]),
          ),
        ),
      ).toBe("accepted");
      // a PUT replaces the whole group, so what it held is no longer another team's
      expect(
        ruleOf(() =>
          index.reservePush(
            "/metrics/job/b1",
            "PUT",
            [family("x", "gauge", { job: "b1" })],
            "team-a",
            rules(),
          ),
        ),
      ).toBe("accepted");
    });

    it("refuses nothing when ownership is off", () => {
      const index = new StoreIndex();
      index.reservePush("/metrics/job/b1", "PUT", [family("n", "gauge", { job: "b1" })], "team-b");
      expect(
        ruleOf(() =>
          index.reservePush("/metrics/job/a1", "PUT", [family("n", "gauge", { job: "a1" })], "team-a"),
        ),
      ).toBe("accepted");
    });
  });

  describe("with the names decided in Redis (checkNames false)", () => {
    it("still checks series, quotas and the Pushgateway's own families, but not other groups' names", () => {
      const index = new StoreIndex((name) => (name === "go_goroutines" ? "gauge" : undefined));
      const rules = { quota: { groups: 100, series: 100 }, firstTeamOwns: () => true, checkNames: false };
      index.reservePush("/metrics/job/b1", "PUT", [family("n", "gauge", { i: "1" })], "team-b", rules);
      expect(
        ruleOf(() =>
          index.reservePush(
            "/metrics/job/a1",
            "PUT",
            [family("n", "counter", { job: "a1" })],
            "team-a",
            rules,
          ),
        ),
      ).toBe("accepted");
      expect(
        ruleOf(() =>
          index.reservePush(
            "/metrics/job/a2",
            "PUT",
            [family("go_goroutines", "counter", { job: "a2" })],
            "team-a",
            rules,
          ),
        ),
      ).toBe("type-conflict");
    });
  });

  describe("what the hostile review found", () => {
    it("keeps a reservation that is still in flight when a resync reads the store without it", () => {
      const index = new StoreIndex();
      const inFlight = index.reservePush(A, "PUT", [family("fresh", "counter")]);
      index.beginResync();
      index.load([]);
      expect(ruleOf(() => index.reservePush(B, "PUT", [family("fresh", "gauge")]))).toBe("type-conflict");
      inFlight.commit();
      index.beginResync();
      index.load([]);
      expect(ruleOf(() => index.reservePush(B, "PUT", [family("fresh", "gauge")]))).toBe("accepted");
    });

    it("a DELETE settles only against the state it was sent in", () => {
      const index = new StoreIndex();
      index.reservePush(A, "PUT", [family("x", "counter")]);
      const sentAt = index.versionOf(A);
      index.reservePush(A, "PUT", [family("queued", "counter")]); // reserved after the DELETE was sent
      expect(index.deleteGroup(A, sentAt)).toBe(false);
      expect(ruleOf(() => index.reservePush(B, "PUT", [family("queued", "gauge")]))).toBe("type-conflict");
      expect(index.deleteGroup(A, index.versionOf(A))).toBe(true);
    });

    it("names another team's group only by its team", () => {
      const index = new StoreIndex();
      index.reservePush(
        "/metrics/job/team-b-billing/instance/db-prod-7",
        "PUT",
        [family("x", "counter")],
        "team-b",
      );
      try {
        index.reservePush(A, "PUT", [family("x", "gauge")], "team-a");
        expect.unreachable();
      } catch (error) {
        expect((error as PushViolation).details.holder).toBe("a group of team team-b");
      }
      try {
        index.reservePush(B, "PUT", [family("x", "gauge")], "team-b");
        expect.unreachable();
      } catch (error) {
        expect((error as PushViolation).details.holder).toBe(
          "group /metrics/job/team-b-billing/instance/db-prod-7",
        );
      }
    });
  });
});
