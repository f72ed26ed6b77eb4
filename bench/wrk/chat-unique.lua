-- Chat completion, not streamed, each request's message different (so a cache misses):
-- wrk -s chat-unique.lua http://HOST:PORT/v1/chat/completions
package.path = debug.getinfo(1, "S").source:match("^@?(.*/)") .. "?.lua;" .. package.path
local common = require("common")
common.setup_request(
  '{"model":"{MODEL}","messages":[{"role":"system","content":"You are a helpful assistant."},'
    .. '{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":64,"temperature":0}',
  "bench-model"
)
common.vary("Say hello in one short sentence.")
