-- wrk script: each wrk thread uploads its own chain, in order, as its own topic
-- (PUT /v1/machines/{did}/topics/{topic}/chunks/{index}, multipart/form-data:
-- the envelope part, then the ciphertext part). Run with one connection per
-- thread (-c equal to -t): with a request() function wrk sends one request
-- at a time per connection, so each thread's uploads are sequential and the
-- chain links hold. Environment:
--   CHAIN_DIR  prefix of the published chains: thread k uploads CHAIN_DIR-k
--              (chunk-N.json, chunk-N.bin); a chunk is held under one chain only
--   CHUNKS     number of chunks in each
--   TOKEN      a session token of the machine
--   MACHINE    the machine's DID (did:peaq:0x…)
--   TOPIC      topic prefix; thread k uploads TOPIC-k
-- Results (one line `RESULT …` on stdout from done()): uploads answered 201
-- and their bytes of ciphertext; 200s (held: a chunk sent again after a
-- reconnection); other answers (failed; the chunk is sent again); threads that ran
-- out of chunks before the end (exhausted: they stop, so the run measured
-- less than it should and must be repeated with a longer chain).

local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

-- Percent-encodes a path segment (RFC 3986 unreserved characters kept).
local function encode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

function init(args)
  dir = os.getenv("CHAIN_DIR") .. "-" .. id
  chunks = tonumber(os.getenv("CHUNKS"))
  token = os.getenv("TOKEN")
  machine = encode(os.getenv("MACHINE"))
  topic = encode(os.getenv("TOPIC") .. "-" .. id)
  assert(dir and chunks and token and machine, "CHAIN_DIR, CHUNKS, TOKEN, MACHINE and TOPIC must be set")
  boundary = "sealstream-bench-boundary-7f3a9c"
  index = 0      -- the next chunk to send
  sent = 0       -- the chunk of the last request built
  sent_bytes = 0 -- its ciphertext length
  stored = 0
  held = 0
  failed = 0
  bytes = 0
  exhausted = 0
end

function request()
  -- request() does not move on: wrk calls it once more than it sends (on
  -- thread 0, to check the script) and again after a reconnection; the
  -- chunk to send is the one after the last one answered (response()).
  if index >= chunks then
    -- Out of chunks: stop this thread (the run is then reported as too short).
    exhausted = 1
    wrk.thread:stop()
    index = chunks - 1
  end
  local env = read_file(dir .. "/chunk-" .. index .. ".json")
  local bin = read_file(dir .. "/chunk-" .. index .. ".bin")
  sent = index
  sent_bytes = #bin
  local body = table.concat({
    "--", boundary, "\r\n",
    "Content-Disposition: form-data; name=\"envelope\"\r\nContent-Type: application/json\r\n\r\n",
    env, "\r\n--", boundary, "\r\n",
    "Content-Disposition: form-data; name=\"ciphertext\"\r\nContent-Type: application/octet-stream\r\n\r\n",
    bin, "\r\n--", boundary, "--\r\n",
  })
  local path = "/v1/machines/" .. machine .. "/topics/" .. topic .. "/chunks/" .. index
  return wrk.format("PUT", path, {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "multipart/form-data; boundary=" .. boundary,
  }, body)
end

function response(status, headers, body)
  if status == 201 then
    stored = stored + 1
    bytes = bytes + sent_bytes
    index = sent + 1
  elseif status == 200 then
    held = held + 1 -- already held (sent again after a reconnection): nothing stored
    index = sent + 1
  else
    -- Sent again next time: a refused upload stores nothing.
    failed = failed + 1
    if failed <= 3 then
      io.stderr:write("upload of chunk " .. sent .. " answered " .. status .. ": " .. body .. "\n")
    end
  end
end

function done(summary, latency, requests)
  local total = { stored = 0, held = 0, bytes = 0, failed = 0, exhausted = 0 }
  for _, t in ipairs(threads) do
    for k, _ in pairs(total) do
      total[k] = total[k] + t:get(k)
    end
  end
  io.write(string.format(
    "RESULT stored=%d held=%d bytes=%d failed=%d exhausted=%d duration_us=%d p50_us=%d p99_us=%d\n",
    total.stored, total.held, total.bytes, total.failed, total.exhausted, summary.duration,
    latency:percentile(50), latency:percentile(99)))
end
