-- POST /v1/track/batch with <size> events per request, drawn like track.lua. Bodies are built
-- once in init() (a pool of 64) so wrk spends its CPU on sending, not on string building.
-- Arguments: <contacts> <names> <size>.
local pool = {}

local function seed()
  local f = io.open("/dev/urandom", "rb")
  local b1, b2, b3 = f:read(3):byte(1, 3)
  f:close()
  return os.time() + b1 * 65536 + b2 * 256 + b3
end

function init(args)
  local contacts = tonumber(args[1]) or 100000
  local names = tonumber(args[2]) or 20
  local size = tonumber(args[3]) or 100
  math.randomseed(seed())
  for b = 1, 64 do
    local items = {}
    for i = 1, size do
      items[i] = string.format(
        '{"event":"event_%d","email":"user%d@example.com","data":{"plan":"pro","n":%d}}',
        math.random(1, names), math.random(1, contacts), math.random(1, 1000))
    end
    pool[b] = '{"events":[' .. table.concat(items, ",") .. ']}'
  end
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

request = function()
  return wrk.format(nil, nil, nil, pool[math.random(1, #pool)])
end
