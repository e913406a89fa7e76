import type { MetricType } from "../exposition/types.js";
import { SUFFIXES } from "../validation/consistency.js";
import type { PushedFamilies } from "../validation/validate-push.js";
import { PushViolation } from "../validation/violation.js";

/** One family of one group, as indexed. */
interface IndexedFamily {
  readonly type: MetricType;
  /** `seriesHash` per metric. */
  readonly series: readonly number[];
  /** Series a scrape sees (a histogram's buckets, sum and count each count), for quotas. */
  readonly samples: number;
}

interface IndexedGroup {
  readonly path: string;
  /** The team the group counts against: its last pusher, or its owner by config after a resync. */
  readonly team: string | undefined;
  readonly families: Map<string, IndexedFamily>;
  /** Bumped on every change, so a late rollback can tell whether it would undo someone else's. */
  version: number;
}

/** A family name across the store: its one type, and the groups holding it. */
interface NameEntry {
  readonly type: MetricType;
  readonly holders: Set<string>;
}

/** What a write did to the index before it was sent, settled once the Pushgateway answers. */
export interface Reservation {
  /** The Pushgateway stored the write: keep it. */
  commit(): void;
  /** The Pushgateway definitely did not store it: undo it, if nothing changed the group since. */
  rollback(): void;
}

export type OwnFamilies = (name: string) => MetricType | undefined;

/** How much one team may store; `Infinity` for no limit. */
export interface TeamQuota {
  readonly groups: number;
  readonly series: number;
}

/** What one team stores. */
export interface TeamUsage {
  groups: number;
  series: number;
}

/** What a push by one team is checked against beyond consistency: its quota, and name ownership. */
export interface StoreRules {
  readonly quota: TeamQuota;
  /**
   * Whether `name`, once another team stores it, is that team's while it does
   * (`store.names.ownership: first`, except `store.names.shared`).
   */
  readonly firstTeamOwns: (name: string) => boolean;
  /**
   * Whether this index decides family names at all: false when they are decided across
   * replicas in Redis (this index then checks series and quotas only).
   */
  readonly checkNames: boolean;
}

const UNLIMITED: StoreRules = {
  quota: { groups: Number.POSITIVE_INFINITY, series: Number.POSITIVE_INFINITY },
  firstTeamOwns: () => false,
  checkNames: true,
};

/**
 * What the Pushgateway stores, as far as consistency needs it: for every group its families'
 * types and series, and across groups each family name's type and each series' holder. A push is
 * checked against everything but what it replaces (the whole group for PUT, its own families for
 * POST) the way client_golang's gatherer checks the store on every scrape, so that a push the
 * index accepts can never make `/metrics` fail, whether or not the Pushgateway checks too.
 *
 * Checks and their reservations happen in one synchronous step: two concurrent pushes cannot
 * both pass against a state that has neither. About 80 bytes per stored series (a hash in one
 * map, a number in its family's list).
 */
export class StoreIndex {
  readonly #groups = new Map<string, IndexedGroup>();
  readonly #names = new Map<string, NameEntry>();
  readonly #series = new Map<number, string>();
  readonly #usage = new Map<string, TeamUsage>();
  /** Counts changes, so every version a group gets is new (a group is rebuilt on most pushes). */
  #changes = 0;
  /** The changes of pushes not settled yet. */
  readonly #pending = new Set<() => unknown>();
  readonly #own: OwnFamilies;
  /** While a resync reads the store: every change since, to replay on top of what it read. */
  #journal: Array<() => void> | undefined;

  /** @param own the Pushgateway's own families (go_*, process_*, ...), which no push replaces */
  constructor(own: OwnFamilies = () => undefined) {
    this.#own = own;
  }

  get groups(): number {
    return this.#groups.size;
  }

  get series(): number {
    return this.#series.size;
  }

  /** Groups and series stored per team. */
  usage(): ReadonlyMap<string, Readonly<TeamUsage>> {
    return this.#usage;
  }

  /**
   * Checks a push to the group at `path` and records it as if stored.
   * @throws PushViolation `type-conflict`, `suffix-conflict`, `series-conflict`,
   *   `metric-name-owned`, `team-groups` or `team-series`
   */
  reservePush(
    path: string,
    method: "PUT" | "POST",
    families: PushedFamilies,
    team?: string,
    rules: StoreRules = UNLIMITED,
  ): Reservation {
    const group = this.#groups.get(path);
    const pushed = new Set(families.map((family) => family.name));
    const replaced = (holder: string, name: string) =>
      holder === path && (method === "PUT" || pushed.has(name));
    // With names decided in Redis, only the Pushgateway's own families are checked here.
    const holderOf = (name: string): { type: MetricType; holder: string } | undefined => {
      const entry = rules.checkNames ? this.#names.get(name) : undefined;
      if (entry) {
        for (const holder of entry.holders) {
          if (!replaced(holder, name))
            return { type: entry.type, holder: this.#describe(holder, path, team) };
        }
      }
      const own = this.#own(name);
      return own === undefined ? undefined : { type: own, holder: "the Pushgateway's own metrics" };
    };
    for (const family of families) {
      checkNames(family, holderOf);
      if (rules.checkNames && team !== undefined && rules.firstTeamOwns(family.name)) {
        const owner = this.#ownerOf(family.name, team, (holder) => replaced(holder, family.name));
        if (owner !== undefined) {
          throw new PushViolation(
            "metric-name-owned",
            `metric "${family.name}" is stored by team ${owner}, which owns it while it stores it (store.names.ownership: first); rename the metric`,
            { family: family.name, at: family.at, owner },
          );
        }
      }
      for (const hash of family.series) {
        const holder = this.#series.get(hash);
        if (holder !== undefined && holder !== path) {
          throw new PushViolation(
            "series-conflict",
            `a series of "${family.name}" is already stored by ${this.#describe(holder, path, team)} with the same labels (grouping labels included); one of the two must differ`,
            { family: family.name, at: family.at, holder: this.#describe(holder, path, team) },
          );
        }
      }
    }
    if (team !== undefined) checkQuota(this.#usage.get(team), team, rules.quota, group, method, families);

    const before = group ? { team: group.team, families: new Map(group.families) } : undefined;
    const apply = () => {
      const current = this.#groups.get(path);
      const owner = team ?? current?.team;
      let target: IndexedGroup;
      if (method === "POST" && current && current.team === owner) {
        // In place: a POST costs what it pushes, not what the group holds.
        target = current;
      } else {
        // The group now counts against its pusher; a POST keeps the families others pushed.
        const kept = method === "POST" && current ? [...current.families] : [];
        this.#removeGroup(path);
        target = this.#addGroup(path, owner);
        for (const [name, family] of kept) this.#addFamily(target, name, family);
      }
      for (const family of families) {
        this.#removeFamily(target, family.name);
        this.#addFamily(target, family.name, {
          type: family.type,
          series: family.series,
          samples: family.samples,
        });
      }
      this.#changes += 1;
      target.version = this.#changes;
      return target.version;
    };
    const version = this.#record(apply);
    // Until it settles, a resync's read may miss it: it is replayed on top of every read.
    this.#pending.add(apply);
    return {
      commit: () => {
        this.#pending.delete(apply);
      },
      rollback: () => {
        this.#pending.delete(apply);
        if (this.#groups.get(path)?.version !== version) return;
        this.#record(() => {
          this.#removeGroup(path);
          if (before === undefined) return;
          const restored = this.#addGroup(path, before.team);
          for (const [name, family] of before.families) this.#addFamily(restored, name, family);
        });
      },
    };
  }

  /** The group's version now: a DELETE settles only against the state it was sent in. */
  versionOf(path: string): number | undefined {
    return this.#groups.get(path)?.version;
  }

  /**
   * The Pushgateway deleted the group. With `ifVersion`, only if nothing was reserved for it since
   * the DELETE was sent (a PUT queued behind the DELETE lands after it); false when it was not.
   */
  deleteGroup(path: string, ifVersion?: number): boolean {
    if (ifVersion !== undefined && this.#groups.get(path)?.version !== ifVersion) return false;
    this.#record(() => this.#removeGroup(path));
    return true;
  }

  /** The Pushgateway was wiped. */
  clear(): void {
    this.#record(() => this.#clear());
  }

  /** Starts recording changes: a resync is about to read the store. */
  beginResync(): void {
    this.#journal = [];
  }

  /** Gives up a resync that could not read the store. */
  abandonResync(): void {
    this.#journal = undefined;
  }

  /**
   * Replaces everything with what the Pushgateway reported, then replays the changes made since
   * `beginResync` (all of them idempotent: a change the read already saw is applied twice).
   */
  load(
    groups: Iterable<{
      path: string;
      team: string | undefined;
      families: Iterable<readonly [string, IndexedFamily]>;
    }>,
  ): void {
    const journal = this.#journal ?? [];
    this.#journal = undefined;
    this.#clear();
    for (const { path, team, families } of groups) {
      const group = this.#addGroup(path, team);
      for (const [name, family] of families) this.#addFamily(group, name, family);
    }
    for (const change of journal) change();
    for (const change of this.#pending) change();
  }

  /** Another team storing `name` in a group `replaced` does not give up, if any. */
  #ownerOf(name: string, team: string, replaced: (holder: string) => boolean): string | undefined {
    for (const holder of this.#names.get(name)?.holders ?? []) {
      const owner = this.#groups.get(holder)?.team;
      if (owner !== undefined && owner !== team && !replaced(holder)) return owner;
    }
    return undefined;
  }

  /**
   * Who holds a clashing family, as the pushing team may learn it: its own groups by path,
   * another team's only by the team (its jobs and labels are not the pusher's to read).
   */
  #describe(holder: string, path: string, team: string | undefined): string {
    if (holder === path) return "this group";
    const owner = this.#groups.get(holder)?.team;
    if (team !== undefined && owner === team) return `group ${holder}`;
    return owner === undefined ? "another group" : `a group of team ${owner}`;
  }

  #record<T>(change: () => T): T {
    this.#journal?.push(change);
    return change();
  }

  #clear(): void {
    this.#usage.clear();
    this.#groups.clear();
    this.#names.clear();
    this.#series.clear();
  }

  #addGroup(path: string, team: string | undefined): IndexedGroup {
    const group: IndexedGroup = { path, team, families: new Map(), version: 0 };
    this.#groups.set(path, group);
    if (team !== undefined) {
      const usage = this.#usage.get(team) ?? { groups: 0, series: 0 };
      usage.groups += 1;
      this.#usage.set(team, usage);
    }
    return group;
  }

  #removeGroup(path: string): void {
    const group = this.#groups.get(path);
    if (!group) return;
    for (const name of [...group.families.keys()]) this.#removeFamily(group, name);
    this.#groups.delete(path);
    const usage = group.team === undefined ? undefined : this.#usage.get(group.team);
    if (usage) usage.groups -= 1;
    if (usage?.groups === 0 && group.team !== undefined) this.#usage.delete(group.team);
  }

  #addFamily(group: IndexedGroup, name: string, family: IndexedFamily): void {
    group.families.set(name, family);
    const entry = this.#names.get(name);
    if (entry) entry.holders.add(group.path);
    // A resync may load a store the Pushgateway let become inconsistent: the first type wins here.
    else this.#names.set(name, { type: family.type, holders: new Set([group.path]) });
    for (const hash of family.series) this.#series.set(hash, group.path);
    const usage = group.team === undefined ? undefined : this.#usage.get(group.team);
    if (usage) usage.series += family.samples;
  }

  #removeFamily(group: IndexedGroup, name: string): void {
    const family = group.families.get(name);
    if (!family) return;
    group.families.delete(name);
    const entry = this.#names.get(name);
    entry?.holders.delete(group.path);
    if (entry?.holders.size === 0) this.#names.delete(name);
    for (const hash of family.series) {
      if (this.#series.get(hash) === group.path) this.#series.delete(hash);
    }
    const usage = group.team === undefined ? undefined : this.#usage.get(group.team);
    if (usage) usage.series -= family.samples;
  }
}

/**
 * Refuses a family whose type differs from the family of that name stored elsewhere, or whose
 * series names collide with another family's (a histogram `x` beside a counter `x_count`).
 */
function checkNames(
  family: PushedFamilies[number],
  holderOf: (name: string) => { type: MetricType; holder: string } | undefined,
): void {
  const same = holderOf(family.name);
  if (same && same.type !== family.type) {
    throw new PushViolation(
      "type-conflict",
      `family "${family.name}" is a ${same.type} in ${same.holder}; it cannot be pushed as a ${family.type}`,
      { family: family.name, at: family.at, holder: same.holder },
    );
  }
  for (const [suffix, types] of SUFFIXES) {
    const base = family.name.endsWith(suffix) ? holderOf(family.name.slice(0, -suffix.length)) : undefined;
    const clash = types.includes(family.type) ? holderOf(family.name + suffix) : undefined;
    const holder = base && types.includes(base.type) ? base.holder : clash?.holder;
    if (holder !== undefined) {
      throw new PushViolation(
        "suffix-conflict",
        `family "${family.name}" collides with a family in ${holder}: a histogram's or summary's series share its name`,
        { family: family.name, at: family.at, holder },
      );
    }
  }
}

/**
 * Refuses a push that would take its team past its quota: a new group beyond `quota.groups`, or
 * more series than `quota.series` once the families it replaces are gone.
 */
function checkQuota(
  usage: Readonly<TeamUsage> | undefined,
  team: string,
  quota: TeamQuota,
  group: IndexedGroup | undefined,
  method: "PUT" | "POST",
  families: PushedFamilies,
): void {
  const ours = group?.team === team;
  const groups = (usage?.groups ?? 0) + (ours ? 0 : 1);
  if (groups > quota.groups) {
    throw new PushViolation(
      "team-groups",
      `team ${team} stores ${usage?.groups ?? 0} groups, its quota is ${quota.groups}: delete groups it no longer needs`,
      { limit: quota.groups, actual: groups },
    );
  }
  const pushed = new Set(families.map((family) => family.name));
  let replaced = 0;
  if (ours && group) {
    for (const [name, family] of group.families)
      if (method === "PUT" || pushed.has(name)) replaced += family.samples;
  }
  const series = (usage?.series ?? 0) - replaced + families.reduce((sum, family) => sum + family.samples, 0);
  if (series > quota.series) {
    throw new PushViolation(
      "team-series",
      `team ${team} would store ${series} series, its quota is ${quota.series}`,
      { limit: quota.series, actual: series },
    );
  }
}
