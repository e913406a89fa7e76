import type { Logger } from "../observability/logger.js";
import { type PushedGroup, renderGroup, UnsupportedGroupError } from "./groups.js";
import type { Replica } from "./replica.js";

export interface RepairOptions {
  readonly timeoutMs: number;
  readonly logger: Logger;
  /** Rounds before giving up (a later health check starts over). */
  readonly maxRounds?: number;
  /** Checked before every round: false stops the repair (the source lost sync, the target missed a write). */
  readonly stillValid: () => string | undefined;
}

export interface RepairResult {
  readonly rounds: number;
  /** Groups written or deleted on the target. */
  readonly copied: number;
  /** Groups the target refused (a failed push's leftovers, which the text format cannot recreate). */
  readonly skipped: number;
}

const COPY_CONCURRENCY = 4;

/**
 * Brings `target` to the content of `source` while writes keep arriving at both (the caller fans
 * every write out to the target too, and records any it misses).
 *
 * Each round reads the source, then the target, then the source again. A group is settled when
 * the target's copy equals one of the two source readings: at that instant both held the same
 * content, and every later write reaches both (or is recorded as missed, which voids the repair).
 * Every other group is copied from the newer source reading (PUT of the whole group, or DELETE),
 * and checked again in the next round; the round with nothing left to copy proves the target
 * equal. A copy racing a live write to the same group can leave the target behind; the next round
 * sees that and copies again, so no lock is needed and other pushguard processes may write
 * meanwhile.
 *
 * What a copy cannot keep: `push_time_seconds` becomes the time of the copy (never earlier than
 * the original), per-family push timestamps and the last failed push's `push_failure_time_seconds`
 * are not carried over.
 */
export async function repairReplica(
  target: Replica,
  source: Replica,
  options: RepairOptions,
): Promise<RepairResult> {
  const maxRounds = options.maxRounds ?? 10;
  const refused = new Set<string>();
  let copied = 0;
  for (let round = 1; round <= maxRounds; round++) {
    const invalid = options.stillValid();
    if (invalid) throw new Error(invalid);
    const stale = await unsettledGroups(target, source, refused, options);
    if (stale.length === 0) return { rounds: round, copied, skipped: refused.size };
    // Deletes first: a group the source no longer has can clash with one it has (the same series
    // under another grouping key), and the target would refuse that PUT while the old group stays.
    // The Pushgateway applies writes in the order received, so the PUTs after see the deletes.
    const deletes = stale.filter((group) => group.desired === undefined);
    const puts = stale.filter((group) => group.desired !== undefined);
    for (const batch of [deletes, puts]) await forEachLimited(batch, COPY_CONCURRENCY, copy);
  }
  throw new Error(
    `the target did not converge within ${maxRounds} rounds (writes keep changing the same groups)`,
  );

  async function copy({ path, desired }: { path: string; desired: PushedGroup | undefined }) {
    const invalidNow = options.stillValid();
    if (invalidNow) throw new Error(invalidNow);
    const status =
      desired === undefined
        ? await target.write("DELETE", path)
        : await target.write("PUT", path, renderGroup(desired));
    if (status >= 200 && status < 300) {
      copied += 1;
      return;
    }
    // A push that failed upstream still leaves its group behind (with the last good metrics);
    // such a group can clash with another one and the target rightly refuses to recreate it.
    if (desired !== undefined && !desired.lastPushSuccessful && status === 400) {
      refused.add(path);
      options.logger.warn(
        { replica: target.url, group: path },
        "repair skipped a group whose last push failed upstream: the target refuses it",
      );
      return;
    }
    throw new Error(
      `${desired === undefined ? "DELETE" : "PUT"} ${path} on ${target.url} answered ${status}`,
    );
  }
}

interface UnsettledGroup {
  readonly path: string;
  /** The source's newer reading (`undefined`: the group is gone there). */
  readonly desired: PushedGroup | undefined;
  /** The target's content, rendered (`undefined`: absent there). */
  readonly have: string | undefined;
}

/**
 * One round: the source, the target, the source again. A group is settled when the target's copy
 * equals one of the two source readings; the others are returned. Groups the text format cannot
 * carry are added to `refused` (and skipped from then on) instead of failing the round.
 */
async function unsettledGroups(
  target: Replica,
  source: Replica,
  refused: Set<string>,
  options: { readonly timeoutMs: number; readonly logger: Logger; readonly activity?: string },
): Promise<UnsettledGroup[]> {
  const before = await source.snapshot(options.timeoutMs);
  const current = await target.snapshot(options.timeoutMs);
  const after = await source.snapshot(options.timeoutMs);
  const unsettled: UnsettledGroup[] = [];
  for (const path of new Set([...before.keys(), ...current.keys(), ...after.keys()])) {
    if (refused.has(path)) continue;
    let have: string | undefined;
    try {
      have = content(current.get(path));
      if (have === content(before.get(path)) || have === content(after.get(path))) continue;
    } catch (error) {
      // One group the text format cannot carry (a native or gauge histogram pushed as protobuf)
      // must not stop the round for every other group.
      if (!(error instanceof UnsupportedGroupError)) throw error;
      refused.add(path);
      options.logger.warn(
        { replica: target.url, group: path, reason: error.message },
        `${options.activity ?? "repair"} skipped a group the text format cannot carry`,
      );
      continue;
    }
    unsettled.push({ path, desired: after.get(path), have });
  }
  return unsettled;
}

/**
 * Compares two replicas both believed in sync, without writing anything: the groups that are
 * unsettled in every one of `rounds` rounds *and* unchanged on the target throughout. A group
 * being written meanwhile changes on the target and is not counted (it is compared again next
 * time); one that stays different while nobody writes it is real divergence: a write that landed
 * on one replica only (sent to it directly, or two pushguards' writes to one group crossing).
 */
export async function findDivergence(
  target: Replica,
  source: Replica,
  options: {
    readonly timeoutMs: number;
    readonly logger: Logger;
    readonly rounds: number;
    /** Checked before every round: a reason stops the comparison (shutting down, say). */
    readonly stillValid: () => string | undefined;
  },
): Promise<string[]> {
  const refused = new Set<string>();
  let suspects: Map<string, string | undefined> | undefined;
  for (let round = 0; round < options.rounds; round++) {
    const invalid = options.stillValid();
    if (invalid) throw new Error(invalid);
    const unsettled = await unsettledGroups(target, source, refused, { ...options, activity: "comparison" });
    const next = new Map<string, string | undefined>();
    for (const group of unsettled) {
      if (suspects === undefined || (suspects.has(group.path) && suspects.get(group.path) === group.have)) {
        next.set(group.path, group.have);
      }
    }
    suspects = next;
    if (suspects.size === 0) return [];
  }
  return [...(suspects ?? new Map()).keys()];
}

/** Rendered content, `undefined` for an absent group: equal strings mean equal scrapes. */
function content(group: PushedGroup | undefined): string | undefined {
  return group === undefined ? undefined : renderGroup(group);
}

async function forEachLimited<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
