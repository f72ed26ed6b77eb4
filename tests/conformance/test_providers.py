"""One conformance suite over every provider type (issue 4 point 10), each deployment against the
simulator, all driven through the OpenAI surface with the openai SDK: text, system prompt,
multi-turn, image, document, tools round trip, stream, usage and cost, each error kind, finish
reasons. Each test checks the answer the client got and the request the upstream received."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import openai
import pytest
from conformance_kit import sample_pdf, sample_png
from conformance_cases import CASES, EMBEDDING_CASES, KEY, Case
from upstream_view import forced_tool, media_blocks, sampling, system_text, tool_call_and_result_ids, tool_names, turns

from lmgate.catalog.catalog import Catalog

PNG = sample_png("conformance")
PDF = sample_pdf("Conformance document")
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}}]
CALL_WEATHER = '[[sim: tool=get_weather args={"city": "Paris"}]] What is the weather in Paris?'

case_param = pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])


@pytest.fixture(scope="module")
def client(conformance_gw) -> openai.OpenAI:  # type: ignore[no-untyped-def]
    return openai.OpenAI(base_url=conformance_gw.base_url + "/v1", api_key=KEY, max_retries=0)


def last_body(sim, path: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    got = [r for r in sim.requests() if r["path"] == path]
    assert got, f"the simulator received nothing at {path}; it saw {[r['path'] for r in sim.requests()][-5:]}"
    return got[-1]["body"]


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


# ---------------------------------------------------------------- requests and answers


@case_param
def test_text(client: openai.OpenAI, sim, case: Case) -> None:  # type: ignore[no-untyped-def]
    sim.clear()
    r = client.chat.completions.create(model=case.name, messages=[user("Hello there, conformance")])
    assert r.object == "chat.completion" and r.choices[0].message.role == "assistant"
    assert 'you said "Hello there, conformance"' in r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop"
    assert turns(case.protocol, last_body(sim, case.chat_path)) == [("user", "Hello there, conformance")]


@case_param
def test_system_prompt(client: openai.OpenAI, sim, case: Case) -> None:  # type: ignore[no-untyped-def]
    sim.clear()
    r = client.chat.completions.create(model=case.name, messages=[
        {"role": "system", "content": "You are a pirate and only speak in pirate"}, user("Hello")])
    assert 'you said "Hello"' in r.choices[0].message.content
    body = last_body(sim, case.chat_path)
    assert system_text(case.protocol, body) == "You are a pirate and only speak in pirate"
    assert turns(case.protocol, body) == [("user", "Hello")]


@case_param
def test_multi_turn(client: openai.OpenAI, sim, case: Case) -> None:  # type: ignore[no-untyped-def]
    sim.clear()
    r = client.chat.completions.create(model=case.name, messages=[
        user("My name is Ada."), {"role": "assistant", "content": "Hello Ada."}, user("What is my name?")])
    assert 'you said "What is my name?"' in r.choices[0].message.content
    assert turns(case.protocol, last_body(sim, case.chat_path)) == [
        ("user", "My name is Ada."), ("assistant", "Hello Ada."), ("user", "What is my name?")]


@case_param
def test_image_data_uri(client: openai.OpenAI, sim, case: Case) -> None:  # type: ignore[no-untyped-def]
    sim.clear()
    uri = "data:image/png;base64," + base64.b64encode(PNG).decode()
    r = client.chat.completions.create(model=case.name, messages=[{"role": "user", "content": [
        {"type": "text", "text": "What's in this image?"}, {"type": "image_url", "image_url": {"url": uri, "detail": "low"}}]}])
    assert "I received 1 image." in r.choices[0].message.content
    sent = media_blocks(case.protocol, last_body(sim, case.chat_path))
    assert [data for _, data in sent] == [PNG]
    assert sent[0][0] in ("image/png", "png")


@case_param
def test_document_pdf(client: openai.OpenAI, sim, case: Case) -> None:  # type: ignore[no-untyped-def]
    sim.clear()
    uri = "data:application/pdf;base64," + base64.b64encode(PDF).decode()
    r = client.chat.completions.create(model=case.name, messages=[{"role": "user", "content": [
        {"type": "text", "text": "Please summarize this document."},
        {"type": "file", "file": {"filename": "report.pdf", "file_data": uri}}]}])
    assert "I received 1 document." in r.choices[0].message.content
    sent = media_blocks(case.protocol, last_body(sim, case.chat_path))
    assert [data for _, data in sent] == [PDF]
    assert sent[0][0] in ("application/pdf", "pdf")


@case_param
def test_tools_round_trip_keeps_the_call_id(client: openai.OpenAI, sim, case: Case) -> None:  # type: ignore[no-untyped-def]
    sim.clear()
    first = client.chat.completions.create(model=case.name, messages=[user(CALL_WEATHER)], tools=TOOLS)
    assert first.choices[0].finish_reason == "tool_calls"
    call = first.choices[0].message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    assert call.id
    assert tool_names(case.protocol, last_body(sim, case.chat_path)) == ["get_weather"]

    second = client.chat.completions.create(model=case.name, tools=TOOLS, messages=[
        user(CALL_WEATHER),
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump(exclude_none=True)]},
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature_c": 21})},
    ])
    assert second.choices[0].finish_reason == "stop"
    returned = second.choices[0].message.content.split("returned: ", 1)[1]
    assert json.loads(returned) == {"temperature_c": 21}  # Gemini carries the result as an object: spacing may change
    calls, results = tool_call_and_result_ids(case.protocol, last_body(sim, case.chat_path))
    assert len(calls) == 1 and calls == results  # the upstream sees one call and its result, paired
    if case.protocol != "gemini":  # Gemini's wire ids are optional; the others carry the client's id back
        assert calls == [call.id]


@case_param
def test_stream_text_equals_whole_and_ends_with_usage_and_cost(client: openai.OpenAI, sim, case: Case) -> None:  # type: ignore[no-untyped-def]
    messages = [user("Stream me a sentence, conformance")]
    whole = client.chat.completions.create(model=case.name, messages=messages)
    sim.clear()
    chunks = list(client.chat.completions.create(model=case.name, messages=messages, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.prompt_tokens > 0 and last.usage.completion_tokens > 0
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (whole.usage.prompt_tokens, whole.usage.completion_tokens)
    assert (last.usage.model_extra or {}).get("estimated_cost", 0) > 0
    assert sim.requests(case.stream_path), "the stream did not reach the provider's stream endpoint"


@case_param
def test_streamed_tool_call(client: openai.OpenAI, case: Case) -> None:
    chunks = list(client.chat.completions.create(model=case.name, messages=[user(CALL_WEATHER)], tools=TOOLS, stream=True))
    deltas = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert deltas and deltas[0].id and deltas[0].function.name == "get_weather"
    assert all(d.index == 0 for d in deltas)
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {"city": "Paris"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


@case_param
def test_usage_and_cost_follow_the_catalog_price(client: openai.OpenAI, case: Case) -> None:
    raw = client.chat.completions.with_raw_response.create(model=case.name, messages=[user("What does this cost?")])
    r = raw.parse()
    price = Catalog.builtin().get(case.upstream).price
    scale = {"1M tokens": 1e-6, "1K tokens": 1e-3}[price.unit]
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    expected = (r.usage.prompt_tokens * price.input + r.usage.completion_tokens * price.output) * scale
    assert expected > 0
    cost = r.usage.model_extra["estimated_cost"]
    assert cost == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert float(raw.headers["x-lmgate-cost"]) == pytest.approx(expected, rel=1e-6, abs=1e-12)


@case_param
def test_stream_cost_equals_the_whole_answer_cost(client: openai.OpenAI, case: Case) -> None:
    messages = [user("What does a streamed answer cost?")]
    whole = client.chat.completions.create(model=case.name, messages=messages)
    chunks = list(client.chat.completions.create(model=case.name, messages=messages, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].usage.model_extra["estimated_cost"] == pytest.approx(whole.usage.model_extra["estimated_cost"], rel=1e-9)


@case_param
def test_cached_input_tokens_are_reported_and_priced(client: openai.OpenAI, case: Case) -> None:
    """`[[sim: cached=40 cache_write=10]]`: each protocol reports cache reads (and Anthropic and
    Bedrock cache writes) its own way; the OpenAI surface shows cached_tokens, the cost charges each
    kind of input token at the catalog's price for it."""
    prompt = "[[sim: cached=40 cache_write=10]] " + "word " * 200
    for stream in (False, True):
        if stream:
            usage = list(client.chat.completions.create(model=case.name, messages=[user(prompt)], stream=True, stream_options={"include_usage": True}))[-1].usage
        else:
            usage = client.chat.completions.create(model=case.name, messages=[user(prompt)]).usage
        assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 40
        price = Catalog.builtin().get(case.upstream).price
        scale = {"1M tokens": 1e-6, "1K tokens": 1e-3}[price.unit]
        written = 10 if case.protocol in ("anthropic", "bedrock") else 0  # protocols with cache-write counts
        fresh = usage.prompt_tokens - 40 - written
        cached_price = price.input if price.cached_input is None else price.cached_input
        write_price = price.input if price.cache_write is None else price.cache_write
        expected = (fresh * price.input + 40 * cached_price + written * write_price + usage.completion_tokens * price.output) * scale
        assert usage.model_extra["estimated_cost"] == pytest.approx(expected, rel=1e-9, abs=1e-12)


@case_param
def test_sampling_parameters_reach_the_upstream(client: openai.OpenAI, sim, case: Case) -> None:  # type: ignore[no-untyped-def]
    sim.clear()
    client.chat.completions.create(model=case.name, messages=[user("Be careful")], temperature=0.3, top_p=0.8, max_tokens=200, stop=["END"])
    assert sampling(case.protocol, last_body(sim, case.chat_path)) == {"temperature": 0.3, "top_p": 0.8, "max_tokens": 200, "stop": ["END"]}


@case_param
def test_a_forced_tool_choice_reaches_the_upstream(client: openai.OpenAI, sim, case: Case) -> None:  # type: ignore[no-untyped-def]
    sim.clear()
    r = client.chat.completions.create(model=case.name, messages=[user(CALL_WEATHER)], tools=TOOLS,
                                       tool_choice={"type": "function", "function": {"name": "get_weather"}})
    assert r.choices[0].message.tool_calls[0].function.name == "get_weather"
    assert forced_tool(case.protocol, last_body(sim, case.chat_path)) == "get_weather"


@case_param
def test_image_url(client: openai.OpenAI, sim, case: Case) -> None:  # type: ignore[no-untyped-def]
    """An http image URL: OpenAI- and Anthropic-protocol upstreams take it as it is (after lmgate
    checked the address: 127.0.0.1 is allowlisted in this config); the others get the bytes lmgate fetched."""
    sim.clear()
    url = sim.base_url + "/_sim/images/conformance.png"
    r = client.chat.completions.create(model=case.name, messages=[{"role": "user", "content": [
        {"type": "text", "text": "Describe it"}, {"type": "image_url", "image_url": {"url": url}}]}])
    assert "I received 1 image." in r.choices[0].message.content
    body = last_body(sim, case.chat_path)
    if case.protocol == "openai":
        assert body["messages"][0]["content"][1]["image_url"]["url"] == url
    elif case.protocol == "anthropic":  # Anthropic fetches URL sources itself
        assert body["messages"][0]["content"][1]["source"] == {"type": "url", "url": url}
    else:
        fetched = [data for _, data in media_blocks(case.protocol, body)]
        assert len(fetched) == 1 and fetched[0].startswith(b"\x89PNG")


@case_param
def test_parallel_tool_calls_history(client: openai.OpenAI, sim, case: Case) -> None:  # type: ignore[no-untyped-def]
    """An assistant turn with text and two tool calls, then two tool results (one as a list of text
    parts, with non-ASCII): every protocol must pair each result with its call."""
    sim.clear()
    calls = [
        {"id": "call_paris_01", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_zurich_02", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Zürich"}'}},
    ]
    r = client.chat.completions.create(model=case.name, tools=TOOLS, messages=[
        user("Weather in Paris and Zürich?"),
        {"role": "assistant", "content": "Let me look both up.", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "call_paris_01", "content": '{"temperature_c": 21}'},
        {"role": "tool", "tool_call_id": "call_zurich_02", "content": [{"type": "text", "text": '{"temperature_c": 14, "sky": "bewölkt"}'}]},
    ])
    assert r.choices[0].finish_reason == "stop" and "returned" in r.choices[0].message.content
    body = last_body(sim, case.chat_path)
    sent_calls, results = tool_call_and_result_ids(case.protocol, body)
    assert len(sent_calls) == 2 and sorted(results) == sorted(sent_calls)
    if case.protocol != "gemini":
        assert sent_calls == ["call_paris_01", "call_zurich_02"]
    assert "bewölkt" in json.dumps(body, ensure_ascii=False)


@case_param
def test_developer_role_is_a_system_prompt(client: openai.OpenAI, sim, case: Case) -> None:  # type: ignore[no-untyped-def]
    sim.clear()
    client.chat.completions.create(model=case.name, messages=[{"role": "developer", "content": "Answer in French."}, user("Hello")])
    body = last_body(sim, case.chat_path)
    assert system_text(case.protocol, body) == "Answer in French."
    assert turns(case.protocol, body) == [("user", "Hello")]


def ledger_record(gw, request_id: str):  # type: ignore[no-untyped-def]
    """The usage record of a request; a stream's is written just after its last byte, so wait for it."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = [r for r in gw.app.ledger.records if r.request_id == request_id]
        if found:
            return found[0]
        time.sleep(0.01)
    raise AssertionError(f"no usage record for {request_id}")


@case_param
def test_a_stream_without_include_usage_is_still_accounted(client: openai.OpenAI, conformance_gw, case: Case) -> None:  # type: ignore[no-untyped-def]
    messages = [user("Account for this stream, please")]
    whole = client.chat.completions.with_raw_response.create(model=case.name, messages=messages)
    raw = client.chat.completions.with_raw_response.create(model=case.name, messages=messages, stream=True)
    chunks = list(raw.parse())
    assert all(c.usage is None for c in chunks)  # not asked for: not sent
    rec = ledger_record(conformance_gw, raw.headers["x-request-id"])
    usage = whole.parse().usage
    assert rec.stream and rec.status == 200 and rec.provider == case.type
    assert (rec.input_tokens, rec.output_tokens) == (usage.prompt_tokens, usage.completion_tokens)
    assert rec.cost_usd == pytest.approx(usage.model_extra["estimated_cost"], rel=1e-9)
    assert ledger_record(conformance_gw, whole.headers["x-request-id"]).cost_usd == pytest.approx(rec.cost_usd, rel=1e-9)


@pytest.mark.parametrize("path", ["openai-surface-rewritten", "anthropic-surface"])
def test_o1_series_gets_max_completion_tokens(conformance_gw, client: openai.OpenAI, sim, path: str) -> None:  # type: ignore[no-untyped-def]
    import anthropic

    sim.clear()
    if path == "anthropic-surface":
        anthropic.Anthropic(base_url=conformance_gw.base_url, api_key=KEY, max_retries=0).messages.create(
            model="azure-o1-mini", max_tokens=300, messages=[{"role": "user", "content": "hi"}])
    else:
        uri = "data:application/pdf;base64," + base64.b64encode(PDF).decode()
        client.chat.completions.create(model="azure-o1-mini", max_completion_tokens=300, messages=[{"role": "user", "content": [
            {"type": "text", "text": "Summarize"}, {"type": "file", "file": {"filename": "r.pdf", "file_data": uri}}]}])
    body = last_body(sim, "/openai/deployments/o1-mini/chat/completions")
    assert body.get("max_completion_tokens") == 300 and "max_tokens" not in body


def test_o1_series_fast_path_keeps_max_completion_tokens(client: openai.OpenAI, sim) -> None:  # type: ignore[no-untyped-def]
    """The untouched OpenAI-surface request is forwarded as the client wrote it."""
    sim.clear()
    client.chat.completions.create(model="azure-o1-mini", max_completion_tokens=300, messages=[user("hi")])
    body = last_body(sim, "/openai/deployments/o1-mini/chat/completions")
    assert body.get("max_completion_tokens") == 300 and "max_tokens" not in body


# ---------------------------------------------------------------- finish reasons


@case_param
def test_finish_reason_length(client: openai.OpenAI, case: Case) -> None:
    r = client.chat.completions.create(model=case.name, messages=[user("[[sim: finish=length]] go on")])
    assert r.choices[0].finish_reason == "length"
    chunks = list(client.chat.completions.create(model=case.name, messages=[user("[[sim: finish=length]] go on")], stream=True))
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"]


@case_param
def test_finish_reason_length_from_max_tokens(client: openai.OpenAI, case: Case) -> None:
    r = client.chat.completions.create(model=case.name, max_tokens=3, messages=[user("Tell me a long story about the sea")])
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 3


@case_param
def test_finish_reason_content_filter(client: openai.OpenAI, case: Case) -> None:
    r = client.chat.completions.create(model=case.name, messages=[user("[[sim: finish=content_filter]] something")])
    assert r.choices[0].finish_reason == "content_filter"


# ---------------------------------------------------------------- errors

ERRORS = {  # kind -> (prompt, model suffix, lmgate status, lmgate code)
    "rate_limited": ("[[sim: status=429 retry_after=2]] hi", "-throttled", 429, "upstream_rate_limited"),
    "upstream_500": ("[[sim: status=500]] hi", "", 502, "upstream_error"),
    "upstream_503": ("[[sim: status=503]] hi", "", 503, "upstream_overloaded"),
    "upstream_401": ("hi", "-bad", 502, "upstream_auth_error"),
    "context_length": ("[[sim: status=400 error=context_length_exceeded]] hi", "", 400, "context_length_exceeded"),
    "content_filter": ("[[sim: status=400 error=content_filter]] hi", "", 400, "content_filter"),
}


NO_FILTER_ERROR = {
    "anthropic": "anthropic: a refused prompt is a stop_reason ('refusal' -> content_filter), not an error status; see test_finish_reason_content_filter",
    "bedrock": "bedrock: a guardrail intervention is a stopReason ('guardrail_intervened'/'content_filtered' -> content_filter), not an error status; see test_finish_reason_content_filter",
    "gemini": "gemini: a blocked prompt is a 200 with promptFeedback.blockReason (lmgate maps it to 400 content_filter), and the simulator has no knob that answers one",
}


@case_param
@pytest.mark.parametrize("kind", list(ERRORS))
def test_error_kinds(client: openai.OpenAI, case: Case, kind: str) -> None:
    prompt, suffix, status, code = ERRORS[kind]
    if kind == "content_filter" and not case.content_filter_error:
        pytest.skip(NO_FILTER_ERROR[case.protocol])
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model=case.name + suffix, messages=[user(prompt)])
    err = info.value
    assert err.status_code == status, err.response.text
    assert err.body["code"] == code, err.body  # type: ignore[index]
    assert "sk-upstream-secret" not in err.response.text and "invalid-secret" not in err.response.text
    if kind == "rate_limited" and case.protocol != "bedrock":  # Bedrock's throttling answer carries no Retry-After
        assert err.response.headers["retry-after"] == "2"


@case_param
def test_error_before_the_first_stream_byte_is_an_http_error(client: openai.OpenAI, case: Case) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        list(client.chat.completions.create(model=case.name, messages=[user("[[sim: status=503]] hi")], stream=True))
    assert info.value.status_code == 503


@case_param
def test_upstream_timeout_is_504(client: openai.OpenAI, case: Case) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model=case.name + "-slow", messages=[user("[[sim: delay_ms=1500]] take your time")])
    assert info.value.status_code == 504 and info.value.body["code"] == "upstream_timeout"  # type: ignore[index]


def _stream_break_cases() -> list:  # type: ignore[type-arg]
    out = []
    for c in CASES:
        for knob, label in (("error_after=8", "in-stream-error"), ("cut_after=8", "cut-connection")):
            out.append(pytest.param(c, knob, id=f"{label}-{c.name}"))
    return out


@pytest.mark.parametrize("case,knob", _stream_break_cases())
def test_a_stream_broken_after_its_first_bytes_ends_with_an_error_event(client: openai.OpenAI, case: Case, knob: str) -> None:
    """After the first bytes the status is sent: the break arrives as an error event in the stream,
    which the openai SDK raises as APIError, after the text that came before it."""
    seen: list[str] = []
    with pytest.raises(openai.APIError) as info:
        for chunk in client.chat.completions.create(model=case.name, messages=[user(f"[[sim: {knob} tokens=60]] a long one")], stream=True):
            seen += [c.delta.content or "" for c in chunk.choices]
    assert not isinstance(info.value, openai.APIStatusError)  # not an HTTP status: the 200 was already sent
    assert "".join(seen).startswith("Simulated reply")  # the text before the break reached the client


# ---------------------------------------------------------------- embeddings


@pytest.mark.parametrize("name", list(EMBEDDING_CASES))
def test_embeddings(client: openai.OpenAI, sim, name: str) -> None:  # type: ignore[no-untyped-def]
    ptype, upstream, path = EMBEDDING_CASES[name]
    sim.clear()
    extra = {"input_type": "search_document"} if ptype == "cohere" else None
    r = client.embeddings.create(model=name, input=["first text", "second text"], extra_body=extra)
    assert [d.index for d in r.data] == [0, 1] and len(r.data[0].embedding) > 8
    assert r.data[0].embedding != r.data[1].embedding
    assert r.usage.prompt_tokens > 0
    assert sim.requests(path), [q["path"] for q in sim.requests()]
    info = Catalog.builtin().get(upstream)
    cost = (r.usage.model_extra or {}).get("estimated_cost")
    assert cost is not None
    if info is not None and info.price.input:  # a known price: tokens times the catalog's price
        assert info.price.unit == "1M tokens"
        assert cost == pytest.approx(r.usage.prompt_tokens * info.price.input * 1e-6, rel=1e-9)
