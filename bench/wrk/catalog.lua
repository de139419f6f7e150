-- wrk script: anonymous catalog searches (GET /v1/catalog), rotating through
-- PATHS (a file of request paths, one a line: words, filters, sorts), each
-- thread starting at a different line. Environment:
--   PATHS  the file of paths
-- Results (one line `RESULT …` on stdout from done()): answers by status,
-- and items returned (a search answering no item is suspicious).

local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  paths = {}
  for line in assert(io.open(os.getenv("PATHS"), "r")):lines() do
    if #line > 0 then
      table.insert(paths, line)
    end
  end
  assert(#paths > 0, "PATHS is empty")
  next_path = id * 7
  ok = 0
  failed = 0
  empty = 0
end

function request()
  next_path = next_path + 1
  return wrk.format("GET", paths[(next_path % #paths) + 1])
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
    if body:find('"items":[]', 1, true) then
      empty = empty + 1
    end
  else
    failed = failed + 1
    if failed <= 3 then
      io.stderr:write("search answered " .. status .. ": " .. body .. "\n")
    end
  end
end

function done(summary, latency, requests)
  local t_ok, t_failed, t_empty = 0, 0, 0
  for _, t in ipairs(threads) do
    t_ok = t_ok + t:get("ok")
    t_failed = t_failed + t:get("failed")
    t_empty = t_empty + t:get("empty")
  end
  io.write(string.format(
    "RESULT ok=%d failed=%d empty=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
    t_ok, t_failed, t_empty, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
