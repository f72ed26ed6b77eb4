"""`lmgate simulate`: a wire-faithful stand-in for every provider lmgate talks to.

It shares no code with lmgate's wire/ or providers/: it is the independent reference the
adapters are tested against. Each protocol is served at the provider's real paths, with its
auth headers and request checks, and answers deterministically (same request, same text).

Protocols (module):
  OpenAI / vLLM (openai, openai_extra)  /v1/models, /v1/chat/completions, /v1/embeddings,
                                        /v1/images/generations, /v1/audio/transcriptions
  Azure OpenAI (azure)                  /openai/deployments/{d}/...?api-version=  (api-key)
  Anthropic (anthropic)                 /v1/messages, /v1/messages/count_tokens
  Gemini AI Studio (gemini)             /v1beta/models/{m}:generateContent|streamGenerateContent|
                                        embedContent|batchEmbedContents|countTokens (also /v1)
  Vertex AI (vertex)                    /v1[beta1]/projects/{p}/locations/{l}/publishers/google/
                                        models/{m}:generateContent|streamGenerateContent|predict,
                                        and POST /token (service-account JWT-bearer grant)
  Bedrock runtime (bedrock*)            /model/{id}/converse|converse-stream|invoke|
                                        invoke-with-response-stream  (SigV4, AKIDSIMULATOR /
                                        simulator-secret)
  Cohere (cohere)                       /v2/embed

Knobs, in the text of the last user message (any protocol) or in a path prefix:
  [[sim: status=429 retry_after=2]]   fail with that status in the provider's error shape
  [[sim: status=503 fail_first=1 id=x]]  fail only the first N requests with this directive
  [[sim: delay_ms=300]]               wait before answering; chunk_delay_ms=N between frames
  [[sim: tool=get_weather args={"city":"Paris"}]]  answer with that tool call
  [[sim: tool=auto]]                  call the first offered tool, arguments from its schema
  [[sim: cut_after=5]]                stream 5 frames then drop the connection
  [[sim: stall_after=3]]              stream 3 frames then go silent until shutdown
  [[sim: finish=length]]              or stop | content_filter | tool_calls
  [[sim: reply=exact text]]           answer exactly this
  [[sim: tokens=N]]                   answer N output tokens long
  [[sim: cached=N cache_write=M]]     report N cached (and M cache-write) input tokens
  [[sim: error_after=3]]              stream 3 frames, then the provider's in-stream error
                                      event (Anthropic `event: error`, Bedrock exception
                                      message, OpenAI/Gemini `data: {"error": ...}`)
  [[sim: status=429 error=ModelNotReadyException]]  the provider's error type/code to use
                                      (also the kind of an error_after event)
  /_sim/flavor=vllm/v1/...            an OpenAI-compatible vLLM server: vLLM's error shape,
                                      extra sampling parameters accepted
  /_sim/status=500,fail_first=2/...   the same knobs, comma separated, before the real path;
                                      fail_first state is kept per exact prefix.
A key containing "invalid" is refused as a wrong key. Gemma models on the OpenAI routes
refuse turns that do not alternate, as Gemma's chat template does under vLLM. A conversation ending in a tool result
is answered with text that quotes the result.

Service routes: GET /_sim/requests (request log, newest last), DELETE /_sim/requests,
POST /_sim/reset (forget fail_first counters), GET /_sim/health.

Tests use `lmgate.simulator.testing.start_simulator()`.
"""
