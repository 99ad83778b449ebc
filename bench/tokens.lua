-- wrk script for GET /v1/tokens/{id}: every thread pre-builds one request per seeded
-- connection and picks one at random per request; each answer is checked (200 with an
-- access_token) and mismatches are counted as "bad". done() prints one RESULT line.
--   BENCH_OUT = directory with api_key.txt and connection_ids.txt (examples/seed_connections.rs)
--   BENCH_NAME = label of the RESULT line
local out = os.getenv("BENCH_OUT") or "bench/out"
local label = os.getenv("BENCH_NAME") or "tokens"
local threads = {}
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("tid", counter)
   table.insert(threads, thread)
end

local function read_lines(path)
   local t = {}
   for line in io.lines(path) do
      if line ~= "" then t[#t + 1] = line end
   end
   return t
end

local reqs = {}
bad = 0

function init(args)
   math.randomseed(os.time() * 1000 + (tid or 0) * 7919)
   local key = read_lines(out .. "/api_key.txt")[1]
   local headers = { ["Authorization"] = "Bearer " .. key, ["Accept"] = "application/json" }
   for _, cid in ipairs(read_lines(out .. "/connection_ids.txt")) do
      reqs[#reqs + 1] = wrk.format("GET", "/v1/tokens/" .. cid, headers, nil)
   end
end

function request()
   return reqs[math.random(#reqs)]
end

function response(status, headers, body)
   if status ~= 200 or not body:find('"access_token":"at_', 1, true) then bad = bad + 1 end
end

function done(summary, latency, requests)
   local total_bad = 0
   for _, t in ipairs(threads) do total_bad = total_bad + (tonumber(t:get("bad")) or 0) end
   local secs = summary.duration / 1e6
   local e = summary.errors
   io.write(string.format(
      "RESULT name=%s requests=%d rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f bad=%d non2xx=%d errors=%d\n",
      label, summary.requests, summary.requests / secs, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
      latency:percentile(99) / 1000, latency.max / 1000, total_bad, e.status, e.connect + e.read + e.write + e.timeout))
end
