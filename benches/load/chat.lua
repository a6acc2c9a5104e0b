-- wrk script: ~4 KB chat bodies from a few hundred accounts, round robin.
-- Usage: wrk -t2 -c64 -d20s -s benches/load/chat.lua http://127.0.0.1:PORT
local accounts = tonumber(os.getenv("ACCOUNTS") or "500")
local words = "the quick brown fox jumps over a lazy dog while the compiler checks every branch "
local user = string.rep(words, 48)
local body = '{"model":"gpt-4o","temperature":0.7,"max_tokens":64,"stream":false,"messages":[' ..
  '{"role":"system","content":"You are a helpful assistant that answers concisely."},' ..
  '{"role":"user","content":"' .. user .. '"}]}'
local n = 0

request = function()
  n = n + 1
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer sk-load-" .. (n % accounts),
    ["User-Agent"] = "OpenAI/Python 1.54.3",
  }
  return wrk.format("POST", "/v1/chat/completions", headers, body)
end

done = function(summary, latency, requests)
  io.write(string.format("RESULT requests_per_sec=%.1f p50_us=%d p99_us=%d errors=%d non2xx=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
