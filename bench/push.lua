-- wrk script for `npm run bench`: small PUTs spread over many groups, every request prebuilt in
-- init() so wrk spends its time on the network, not in Lua. Configured through the environment:
--   BENCH_PATHS     "groups" (default): /metrics/job/bench-<i>/instance/i<i>, i < BENCH_GROUPS
--                   "identities": /metrics/job/soak-t<i/100>-<i>, each with its own token
--                   soak-token-<i> (i < BENCH_GROUPS), for the 10k-identity RSS soak
--   BENCH_GROUPS    number of distinct groups (default 700)
--   BENCH_AUTH      Authorization header value sent with every request ("" = none)
-- done() prints one line "BENCH_JSON {...}" with counts and latency percentiles (microseconds).

local prebuilt = {}
local count = 0
local index = 0

function init(args)
  local groups = tonumber(os.getenv("BENCH_GROUPS") or "700")
  local paths = os.getenv("BENCH_PATHS") or "groups"
  local auth = os.getenv("BENCH_AUTH") or ""
  for i = 0, groups - 1 do
    local headers = { ["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8" }
    local path
    if paths == "identities" then
      path = string.format("/metrics/job/soak-t%d-%d", math.floor(i / 100), i)
      headers["Authorization"] = "Bearer soak-token-" .. i
    else
      path = string.format("/metrics/job/bench-%d/instance/i%d", i, i)
      if auth ~= "" then headers["Authorization"] = auth end
    end
    local body = string.format(
      "# TYPE bench_last_success_seconds gauge\nbench_last_success_seconds %d\n"
        .. "# TYPE bench_items_processed gauge\nbench_items_processed{kind=\"rows\"} %d\n",
      1700000000 + i, i)
    prebuilt[i + 1] = wrk.format("PUT", path, headers, body)
  end
  count = groups
  -- Threads start at different places in the ring.
  math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0))
  index = math.random(count) - 1
end

function request()
  index = index % count + 1
  return prebuilt[index]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
