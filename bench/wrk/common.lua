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

return M
