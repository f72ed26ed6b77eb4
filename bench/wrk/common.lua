-- Shared by the scenario scripts: POST with a JSON body, key and extra headers from the environment.
-- BENCH_KEY: sent as "Authorization: Bearer <key>" when set.
-- BENCH_HEADERS: extra headers, "Name: value" separated by newlines.
-- BENCH_MODEL: the model name put in the body (the scenario script gives the default).
local M = {}

function M.setup_request(body_template, default_model)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  local key = os.getenv("BENCH_KEY")
  if key and key ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. key
  end
  local extra = os.getenv("BENCH_HEADERS") or ""
  for line in string.gmatch(extra, "[^\n]+") do
    local name, value = string.match(line, "^%s*([^:]+):%s*(.-)%s*$")
    if name then
      wrk.headers[name] = value
    end
  end
  local model = os.getenv("BENCH_MODEL")
  if not model or model == "" then
    model = default_model
  end
  wrk.body = string.gsub(body_template, "{MODEL}", model)
end

-- Make every request's body different (a counter after the user's message), so a cache in the
-- gateway misses as it would on real traffic. Call after setup_request.
function M.vary(marker)
  local body = wrk.body
  local s, e = string.find(body, marker, 1, true)
  local head, tail = string.sub(body, 1, e), string.sub(body, e + 1)
  math.randomseed(os.time() + math.floor(os.clock() * 1000000) + tonumber(string.sub(tostring({}), 8), 16))
  local prefix = " #" .. tostring(math.random(1, 1000000000)) .. "-"
  local n = 0
  request = function()
    n = n + 1
    return wrk.format(nil, nil, nil, head .. prefix .. n .. tail)
  end
end

return M
