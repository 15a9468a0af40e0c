-- wrk script: POST contacts, each to a case picked at random from the ids in
-- CASES (comma-separated). Random, not round-robin: wrk's threads walking
-- the list in step wrote the same case at the same moment and queued on its
-- row lock, which spread-out traffic does not (issue 19).
local cases = {}
for id in string.gmatch(os.getenv("CASES") or "", "[^,]+") do cases[#cases + 1] = id end
local token = os.getenv("TOKEN")
local body = '{"channel":"chat","direction":"inbound","author":"bench","body":"Hello, I was charged twice for my order last week and would like a refund. 我的订单被重复扣款了，请帮我退款。"}'
-- Each thread gets its own seed. SEED sets the process apart: two wrk
-- processes started in the same second (one per replica) drew the same
-- sequence, so both replicas wrote the same case at the same moment and
-- queued on each other's row locks.
local threads = 0
local process = tonumber(os.getenv("SEED") or "") or 0
setup = function(thread)
  threads = threads + 1
  thread:set("seed", os.time() + process * 104729 + threads * 7919)
end
init = function(args)
  math.randomseed(seed or os.time())
end
request = function()
  local path = "/api/v1/cases/" .. cases[math.random(#cases)] .. "/contacts"
  return wrk.format("POST", path, {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, body)
end
