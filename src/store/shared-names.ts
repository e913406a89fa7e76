import { createHash, randomUUID } from "node:crypto";
import type { MetricType } from "../exposition/types.js";
import { createRedisClient, type RedisClient, type RedisPassword } from "../redis-client.js";
import type { PushedFamilies } from "../validation/validate-push.js";
import { PushViolation } from "../validation/violation.js";

/**
 * The part of the store index several pushguard replicas must decide together: which groups hold
 * which family names, so each name's one type (and, with `store.names.ownership: first`, its
 * owning team) is checked and claimed in one atomic step, whichever replica a push arrives at.
 *
 * Three Redis hashes under the prefix: `groups` (path → {v: version, t: Redis time in ms, team,
 * f: {name: type}}), `holders` (name → how many groups hold it) and `names` (name → "type|team",
 * the team that first stored it while it has been held without a break). A name no group holds is
 * forgotten at once, so a family deleted everywhere may come back with another type, as the
 * Pushgateway allows.
 */
const PRELUDE = `
if redis.replicate_commands then redis.replicate_commands() end
local names, holders, groups = KEYS[1], KEYS[2], KEYS[3]
local function claim(n)
  local v = redis.call('HGET', names, n)
  if not v then return nil end
  local sep = string.find(v, '|', 1, true)
  return string.sub(v, 1, sep - 1), string.sub(v, sep + 1)
end
local function release(n)
  if redis.call('HINCRBY', holders, n, -1) <= 0 then
    redis.call('HDEL', holders, n)
    redis.call('HDEL', names, n)
  end
end
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function entry(path)
  local raw = redis.call('HGET', groups, path)
  if not raw then return nil, raw end
  return cjson.decode(raw), raw
end
`;

/**
 * ARGV: path, team ('' for none), method, version, then per family: name, type, owned ('1' when
 * a name another team holds is that team's). Checks every family against the names held by
 * every other group (and by this group's families the push keeps), then records the push.
 * Reply: {'ok', previous entry or ''} or {rule, name, held type, holding team}.
 */
const RESERVE = script(`${PRELUDE}
local path, team, method, version = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local old, raw = entry(path)
local oldf = old and old.f or {}
local pushed, nextf, order = {}, {}, {}
for i = 5, #ARGV, 3 do pushed[ARGV[i]] = ARGV[i + 1]; order[#order + 1] = ARGV[i] end
if method == 'POST' then for n, ty in pairs(oldf) do if not pushed[n] then nextf[n] = ty end end end
for n, ty in pairs(pushed) do nextf[n] = ty end
local function held(n)
  local count = tonumber(redis.call('HGET', holders, n) or '0')
  if oldf[n] and (method == 'PUT' or pushed[n]) then count = count - 1 end
  if count <= 0 then return nil end
  return claim(n)
end
local suffixes = { {'_bucket', {histogram = true}}, {'_count', {histogram = true, summary = true}}, {'_sum', {histogram = true, summary = true}} }
local owners = {}
for i = 5, #ARGV, 3 do
  local n, ty, owned = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local hty, howner = held(n)
  if hty and hty ~= ty then return {'type-conflict', n, hty, howner} end
  if hty and owned == '1' and howner ~= '' and howner ~= team then return {'metric-name-owned', n, hty, howner} end
  owners[n] = hty and howner or team
  for _, s in ipairs(suffixes) do
    local suffix, types = s[1], s[2]
    if #n > #suffix and string.sub(n, -#suffix) == suffix then
      local bty, bowner = held(string.sub(n, 1, #n - #suffix))
      if bty and types[bty] then return {'suffix-conflict', n, bty, bowner} end
    end
    if types[ty] then
      local cty, cowner = held(n .. suffix)
      if cty then return {'suffix-conflict', n, cty, cowner} end
    end
  end
end
for n in pairs(oldf) do if not nextf[n] then release(n) end end
for n in pairs(nextf) do if not oldf[n] then redis.call('HINCRBY', holders, n, 1) end end
for _, n in ipairs(order) do redis.call('HSET', names, n, pushed[n] .. '|' .. owners[n]) end
redis.call('HSET', groups, path, cjson.encode({ v = version, t = now(), team = team, f = nextf }))
return {'ok', raw or ''}
`);

/**
 * ARGV: path, version the group must still have ('' for any), the entry to set ('' to remove
 * the group). Used to roll a push back, to record a delete, and to reconcile with the store.
 * A name the entry brings whose claim has another type keeps it unless only this group holds
 * it. Reply: 1 when applied, 0 when the group changed since.
 */
const RESTORE = script(`${PRELUDE}
local path, version, wanted = ARGV[1], ARGV[2], ARGV[3]
local cur = entry(path)
if version ~= '' and (not cur or cur.v ~= version) then return 0 end
local curf = cur and cur.f or {}
local target = wanted ~= '' and cjson.decode(wanted) or nil
local nextf = target and target.f or {}
for n in pairs(curf) do if not nextf[n] then release(n) end end
for n, ty in pairs(nextf) do
  if not curf[n] then redis.call('HINCRBY', holders, n, 1) end
  local count = tonumber(redis.call('HGET', holders, n))
  local cty = claim(n)
  if cty == nil or (cty ~= ty and count <= 1) then redis.call('HSET', names, n, ty .. '|' .. (target.team or '')) end
end
if target then redis.call('HSET', groups, path, wanted) else redis.call('HDEL', groups, path) end
return 1
`);

interface Script {
  readonly source: string;
  readonly sha1: string;
}

function script(source: string): Script {
  return { source, sha1: createHash("sha1").update(source).digest("hex") };
}

interface SharedEntry {
  readonly v: string;
  readonly t: number;
  readonly team: string;
  readonly f: Readonly<Record<string, MetricType>>;
}

export interface SharedNamesOptions {
  readonly url: string;
  readonly password?: RedisPassword;
  readonly keyPrefix: string;
  readonly timeoutMs: number;
}

/** A push recorded in Redis: undone by `rollback` when the Pushgateway did not store it. */
export interface SharedReservation {
  rollback(): Promise<void>;
}

export class SharedNames {
  readonly #client: RedisClient;
  readonly #keys: [string, string, string];

  constructor(options: SharedNamesOptions, onError: (error: Error) => void = () => {}) {
    const { keyPrefix } = options;
    this.#keys = [`${keyPrefix}names`, `${keyPrefix}holders`, `${keyPrefix}groups`];
    this.#client = createRedisClient({ ...options, connectionName: "pushguard-store" });
    this.#client.on("error", onError);
  }

  /**
   * Checks the push's family names against every group's, and records them.
   * @param owned whether a name another team holds is that team's (`store.names.ownership: first`)
   * @throws PushViolation `type-conflict`, `suffix-conflict` or `metric-name-owned`
   */
  async reserve(
    path: string,
    method: "PUT" | "POST",
    families: PushedFamilies,
    team: string | undefined,
    owned: (name: string) => boolean,
  ): Promise<SharedReservation> {
    const version = randomUUID();
    const args = [path, team ?? "", method, version];
    for (const family of families) args.push(family.name, family.type, owned(family.name) ? "1" : "0");
    const reply = (await this.#run(RESERVE, args)) as string[];
    if (reply[0] !== "ok") {
      const [rule, name, type, owner] = reply as [string, string, string, string];
      const holder = owner === "" ? "another group" : `a group of team ${owner}`;
      const family = families.find((candidate) => candidate.name === name);
      const at = family?.at;
      if (rule === "metric-name-owned") {
        throw new PushViolation(
          "metric-name-owned",
          `metric "${name}" is stored by team ${owner}, which owns it while it stores it (store.names.ownership: first); rename the metric`,
          { family: name, at, owner },
        );
      }
      const message =
        rule === "type-conflict"
          ? `family "${name}" is a ${type} in ${holder}; it cannot be pushed as a ${family?.type}`
          : `family "${name}" collides with a family in ${holder}: a histogram's or summary's series share its name`;
      throw new PushViolation(rule as "type-conflict" | "suffix-conflict", message, {
        family: name,
        at,
        holder,
      });
    }
    const previous = reply[1] as string;
    return {
      rollback: async () => {
        await this.#run(RESTORE, [path, version, previous]);
      },
    };
  }

  /** The group's version now, for a DELETE to settle against. */
  async versionOf(path: string): Promise<string> {
    await this.#connected();
    const raw = await this.#client.hget(this.#keys[2], path);
    return raw === null ? "" : (JSON.parse(raw) as SharedEntry).v;
  }

  /** The Pushgateway deleted the group: forget it, unless a push was recorded since `version`. */
  async delete(path: string, version: string): Promise<void> {
    await this.#run(RESTORE, [path, version === "" ? "-" : version, ""]);
  }

  /** The Pushgateway was wiped. */
  async clear(): Promise<void> {
    await this.#connected();
    await this.#client.del(...this.#keys);
  }

  /** Redis's clock, in milliseconds: the one every entry's `t` is in. */
  async now(): Promise<number> {
    await this.#connected();
    const [seconds, micros] = await this.#client.time();
    return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  }

  /**
   * Makes Redis agree with a read of the store that started at `readAt` (Redis time): groups it
   * lacks or has otherwise are set as read, groups no longer stored are removed, except those
   * changed within `graceMs` before the read (a push still on its way). Returns how many groups
   * were corrected.
   */
  async reconcile(
    stored: ReadonlyMap<string, { team: string | undefined; families: ReadonlyMap<string, MetricType> }>,
    readAt: number,
    graceMs: number,
  ): Promise<number> {
    await this.#connected();
    const recorded = new Map(
      Object.entries(await this.#client.hgetall(this.#keys[2])).map(
        ([path, raw]) => [path, JSON.parse(raw) as SharedEntry] as const,
      ),
    );
    const settled = (entry: SharedEntry | undefined) => entry === undefined || entry.t < readAt - graceMs;
    let corrected = 0;
    for (const [path, group] of stored) {
      const entry = recorded.get(path);
      if (!settled(entry) || (entry && sameFamilies(entry.f, group.families))) continue;
      const wanted: SharedEntry = {
        v: randomUUID(),
        t: readAt,
        team: entry?.team ?? group.team ?? "",
        f: Object.fromEntries(group.families),
      };
      corrected += Number(await this.#run(RESTORE, [path, entry?.v ?? "", JSON.stringify(wanted)]));
    }
    for (const [path, entry] of recorded) {
      if (stored.has(path) || !settled(entry)) continue;
      corrected += Number(await this.#run(RESTORE, [path, entry.v, ""]));
    }
    return corrected;
  }

  async close(): Promise<void> {
    if (this.#client.status === "ready") await this.#client.quit().catch(() => this.#client.disconnect());
    else this.#client.disconnect();
  }

  async #run(script: Script, args: readonly string[]): Promise<unknown> {
    await this.#connected();
    try {
      return await this.#client.evalsha(script.sha1, 3, ...this.#keys, ...args);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith("NOSCRIPT")) throw error;
      return this.#client.eval(script.source, 3, ...this.#keys, ...args);
    }
  }

  async #connected(): Promise<void> {
    if (this.#client.status === "wait") await this.#client.connect();
  }
}

function sameFamilies(
  recorded: Readonly<Record<string, MetricType>>,
  stored: ReadonlyMap<string, MetricType>,
): boolean {
  const names = Object.keys(recorded);
  return names.length === stored.size && names.every((name) => stored.get(name) === recorded[name]);
}
