-- Embeddings of one short input: wrk -s embed.lua http://HOST:PORT/v1/embeddings
package.path = debug.getinfo(1, "S").source:match("^@?(.*/)") .. "?.lua;" .. package.path
require("common").setup_request(
  '{"model":"{MODEL}","input":"The quick brown fox jumps over the lazy dog."}',
  "bench-embed"
)
