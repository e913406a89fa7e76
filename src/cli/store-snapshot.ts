import type { Config } from "../config/load.js";
import { compileOwnership } from "../janitor/ownership.js";
import { StoreIndex } from "../store/store-index.js";
import { indexedGroup } from "../store/store-sync.js";
import { parseGroups } from "../upstream/groups.js";

/**
 * The store index as `serve` would build it at start, from one read of the Pushgateway's
 * `/api/v1/metrics` (the first replica's, with `upstream.urls`), for `explain --store`.
 */
export async function readStoreSnapshot(config: Config, timeoutMs = 10_000): Promise<StoreIndex> {
  const base = config.upstream.url ?? config.upstream.urls?.[0];
  if (base === undefined) {
    throw new Error("explain --store needs upstream.url or upstream.urls (it cannot resolve upstream.dns)");
  }
  const url = `${base.replace(/\/+$/, "")}/api/v1/metrics`;
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) }).catch((error: Error) => {
    throw new Error(
      `explain --store: cannot read ${url}: ${error.cause instanceof Error ? error.cause.message : error.message}`,
    );
  });
  if (response.status !== 200) throw new Error(`explain --store: ${url} answered ${response.status}`);
  const { groups } = parseGroups(await response.json());
  const attribute = compileOwnership(config.teams, undefined);
  const index = new StoreIndex();
  index.load([...groups.values()].map((group) => indexedGroup(group, attribute(group.labels).owners[0])));
  return index;
}
