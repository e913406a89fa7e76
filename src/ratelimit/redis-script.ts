import { createHash } from "node:crypto";

/**
 * GCRA over every bucket of one request, all or nothing, in one atomic script: the same
 * arithmetic as gcra.ts. KEYS[i] is a bucket; ARGV[2i-1] its emission interval in milliseconds,
 * ARGV[2i] its burst. The time comes from the Redis server (TIME), so replicas whose clocks drift
 * apart still share one timeline. Each key expires when its bucket is full again, so Redis holds
 * only buckets in debt.
 *
 * Reply: { allowed, then per key: fits, remaining, ceil(resetMs), ceil(retryAfterMs) }, integers
 * only (Redis truncates Lua numbers in replies).
 */
export const GCRA_SCRIPT = `
if redis.replicate_commands then redis.replicate_commands() end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
local epsilon = 1e-3
local tats, fits = {}, {}
local allowed = true
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key) or 0) or 0
  if tat < now then tat = now end
  tats[i] = tat
  fits[i] = tat + interval - now <= interval * burst + epsilon
  if not fits[i] then allowed = false end
end
local reply = { allowed and 1 or 0 }
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = tats[i]
  if allowed then
    tat = tat + interval
    redis.call('SET', key, string.format('%.17g', tat), 'PX', math.ceil(tat - now))
  end
  local debt = tat - now
  local remaining = math.floor((interval * burst - debt + epsilon) / interval)
  if remaining < 0 then remaining = 0 end
  local retryAfter = 0
  if remaining == 0 then retryAfter = math.max(0, debt - interval * (burst - 1)) end
  reply[#reply + 1] = fits[i] and 1 or 0
  reply[#reply + 1] = remaining
  reply[#reply + 1] = math.ceil(debt)
  reply[#reply + 1] = math.ceil(retryAfter)
end
return reply
`;

export const GCRA_SCRIPT_SHA1 = createHash("sha1").update(GCRA_SCRIPT).digest("hex");
