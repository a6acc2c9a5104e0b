-- wrk script for the soak (benches/soak.sh): every request from a fresh API key
-- and a fresh client address (X-Forwarded-For, believed from loopback), with its
-- own header set and order and its own prompt; both dialects, a fifth streamed.
-- One in ten requests comes from a small pool of returning accounts.
-- Usage: CHUNK=N wrk -t1 -c32 -d30s -s benches/load/churn.lua http://127.0.0.1:PORT
local chunk = tonumber(os.getenv("CHUNK") or "0")
local regulars = 200
local words = {
  "explain", "the", "difference", "between", "a", "compiler", "and", "interpreter",
  "write", "short", "poem", "about", "rust", "ownership", "summarise", "this",
  "paragraph", "translate", "into", "french", "list", "three", "reasons", "why",
  "database", "index", "speeds", "up", "queries", "step", "by", "carefully",
  "garden", "river", "mountain", "quantum", "ledger", "invoice", "recipe", "orbit",
}
local agents = {
  "OpenAI/Python 1.54.3", "OpenAI/JS 4.73.1", "Anthropic/Python 0.40.0",
  "python-httpx/0.27.2", "curl/8.5.0", "Go-http-client/1.1", "node-fetch/1.0",
}
local optional = {
  {"Accept", "application/json"}, {"X-Stainless-Lang", "python"},
  {"X-Stainless-Package-Version", "1.54.3"}, {"X-Stainless-OS", "Linux"},
  {"Accept-Language", "en-US"}, {"X-Request-Source", "batch"},
}
local n = 0

init = function(args)
  math.randomseed(chunk * 7919 + os.time())
end

local function prompt()
  local parts = {}
  for i = 1, math.random(8, 120) do
    parts[i] = words[math.random(#words)]
  end
  parts[#parts + 1] = tostring(math.random(1, 1000000000))
  return table.concat(parts, " ")
end

request = function()
  n = n + 1
  local key
  if n % 10 == 0 then
    key = "sk-soak-regular-" .. (n % regulars)
  else
    key = "sk-soak-" .. chunk .. "-" .. n
  end
  local addr = string.format("%d.%d.%d.%d", math.random(1, 223), math.random(0, 255),
    math.random(0, 255), math.random(1, 254))
  local headers = {
    ["Content-Type"] = "application/json",
    ["User-Agent"] = agents[math.random(#agents)],
    ["X-Forwarded-For"] = addr,
  }
  for _, h in ipairs(optional) do
    if math.random() < 0.5 then headers[h[1]] = h[2] end
  end
  local stream = math.random() < 0.2 and "true" or "false"
  local max_tokens = math.random(16, 128)
  local path, body
  if math.random() < 0.5 then
    path = "/v1/chat/completions"
    headers["Authorization"] = "Bearer " .. key
    body = '{"model":"gpt-4o","max_tokens":' .. max_tokens .. ',"stream":' .. stream ..
      ',"messages":[{"role":"user","content":"' .. prompt() .. '"}]}'
  else
    path = "/v1/messages"
    headers["x-api-key"] = key
    headers["anthropic-version"] = "2023-06-01"
    body = '{"model":"claude-sonnet-4","max_tokens":' .. max_tokens .. ',"stream":' .. stream ..
      ',"messages":[{"role":"user","content":"' .. prompt() .. '"}]}'
  end
  return wrk.format("POST", path, headers, body)
end

done = function(summary, latency, requests)
  io.write(string.format(
    "RESULT requests=%d requests_per_sec=%.1f p50_us=%d p90_us=%d p99_us=%d errors=%d non2xx=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
