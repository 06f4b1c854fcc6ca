-- wrk Lua script: spreads the requests over a set of cache keys, then reports
-- like wrk-report.lua (one WRKJSON line). Arguments after `--`:
--
--   wrk ... -s loadtest/wrk-keys.lua http://HOST:PORT/ltc/c/k -- path N T
--       requests the URL's path + 0 .. N-1 (/ltc/c/k0 ... /ltc/c/k7), each
--       connection cycling through all N (built once, so as cheap as a
--       fixed request);
--   wrk ... -s loadtest/wrk-keys.lua http://HOST:PORT/ltm/q -- query N T
--       requests the URL's path + ?k=0 .. ?k=N-1; thread t of T walks keys
--       t, t+T, t+2T, ... so the threads together cover all N keys once per
--       N requests.
--
-- T is wrk's thread count (-t).
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "wrk-report.lua")

local counter = 0
setup = function(thread)
  thread:set("id", counter)
  counter = counter + 1
end

local mode, n, threads, next_key
local prebuilt = {}

init = function(args)
  mode = args[1] or "path"
  n = tonumber(args[2] or "8")
  threads = tonumber(args[3] or "1")
  next_key = id or 0
  if mode == "path" then
    for i = 0, n - 1 do
      prebuilt[i + 1] = wrk.format(nil, wrk.path .. i)
    end
    next_key = next_key % n
  end
end

request = function()
  if mode == "path" then
    next_key = next_key % n + 1
    return prebuilt[next_key]
  end
  local k = next_key % n
  next_key = next_key + threads
  return wrk.format(nil, wrk.path .. "?k=" .. k)
end
