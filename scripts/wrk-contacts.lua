-- wrk script: POST contacts round-robin over the case ids in CASES (comma-separated).
local cases = {}
for id in string.gmatch(os.getenv("CASES") or "", "[^,]+") do cases[#cases + 1] = id end
local token = os.getenv("TOKEN")
local body = '{"channel":"chat","direction":"inbound","author":"bench","body":"Hello, I was charged twice for my order last week and would like a refund. 我的订单被重复扣款了，请帮我退款。"}'
local i = 0
request = function()
  i = i + 1
  local path = "/api/v1/cases/" .. cases[(i % #cases) + 1] .. "/contacts"
  return wrk.format("POST", path, {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, body)
end
