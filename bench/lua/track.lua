-- POST /v1/track (or the naive baseline): random contact of the seeded ones, a common event name
-- and a small data object (the ingest load of BENCHMARKS.md). Arguments: <contacts> <names>.
local contacts, names = 100000, 20

local function seed()
  local f = io.open("/dev/urandom", "rb")
  local b1, b2, b3 = f:read(3):byte(1, 3)
  f:close()
  return os.time() + b1 * 65536 + b2 * 256 + b3
end

function init(args)
  contacts = tonumber(args[1]) or contacts
  names = tonumber(args[2]) or names
  math.randomseed(seed())
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

request = function()
  local body = string.format(
    '{"event":"event_%d","email":"user%d@example.com","data":{"plan":"pro","n":%d}}',
    math.random(1, names), math.random(1, contacts), math.random(1, 1000))
  return wrk.format(nil, nil, nil, body)
end
