-- Realistic postbacks for wrk: 80% GET with query params, 10% form POST,
-- 10% JSON POST (AppsFlyer-style), each with its own click id.
-- PBM_DELAY_MS paces each connection (for latency at a fixed rate).
-- wrk's URL is an endpoint's capture_url: the capture listener (--capture-port).

local thread_count = 0

function setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
end

function init(args)
  counter = 0
  delay_ms = tonumber(os.getenv("PBM_DELAY_MS") or "0")
  math.randomseed(os.time() + tid * 7919)
end

function request()
  counter = counter + 1
  local click = string.format("c%d-%d-%d", tid, counter, math.random(1, 1000000000))
  local kind = counter % 10
  if kind < 8 then
    return wrk.format("GET", wrk.path .. "?click_id=" .. click ..
      "&event=purchase&payout=1.50&currency=USD&sub1=campaign42&txid=t" .. counter)
  elseif kind == 8 then
    return wrk.format("POST", wrk.path,
      {["Content-Type"] = "application/x-www-form-urlencoded"},
      "click_id=" .. click .. "&event=lead&payout=0.40&currency=EUR")
  else
    return wrk.format("POST", wrk.path, {["Content-Type"] = "application/json"},
      '{"click_id":"' .. click .. '","event":"install","payout":"2.10","currency":"USD"}')
  end
end

function delay()
  return delay_ms
end
