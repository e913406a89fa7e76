-- wrk script for `npm run bench`: one fixed text body (run.mjs writes it: 1,000 gauge series) PUT
-- over a few groups, every request prebuilt in init(). Configured through the environment:
--   BENCH_BODY_FILE the body to send (required)
--   BENCH_GROUPS    number of distinct groups /metrics/job/bench-batch-<i>/instance/i<i> (default 20)
--   BENCH_AUTH      Authorization header value sent with every request ("" = none)
-- done() is push.lua's: one line "BENCH_JSON {...}", the format run.mjs reads.

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "push.lua")

local prebuilt = {}
local count = 0
local index = 0

function init(args)
  local file = assert(io.open(assert(os.getenv("BENCH_BODY_FILE"), "BENCH_BODY_FILE is not set"), "rb"))
  local body = file:read("*a")
  file:close()
  local groups = tonumber(os.getenv("BENCH_GROUPS") or "20")
  local auth = os.getenv("BENCH_AUTH") or ""
  for i = 0, groups - 1 do
    local headers = { ["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8" }
    if auth ~= "" then headers["Authorization"] = auth end
    local path = string.format("/metrics/job/bench-batch-%d/instance/i%d", i, i)
    prebuilt[i + 1] = wrk.format("PUT", path, headers, body)
  end
  count = groups
  math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0))
  index = math.random(count) - 1
end

function request()
  index = index % count + 1
  return prebuilt[index]
end
