-- Chat completion, streamed with usage: wrk -s stream.lua http://HOST:PORT/v1/chat/completions
package.path = debug.getinfo(1, "S").source:match("^@?(.*/)") .. "?.lua;" .. package.path
require("common").setup_request(
  '{"model":"{MODEL}","messages":[{"role":"system","content":"You are a helpful assistant."},'
    .. '{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":64,"temperature":0,'
    .. '"stream":true,"stream_options":{"include_usage":true}}',
  "bench-stream"
)
