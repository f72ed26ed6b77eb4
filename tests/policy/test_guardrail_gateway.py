"""Guardrails end to end: the real SDKs against a gateway on loopback with the provider simulator
upstream. Each action on input and output, whole and streamed; use_guard through the key suffix
and the header; blocks in each surface's own error shape; the LLM judge with the simulator's
`reply` knob; decisions in the ledger."""

from __future__ import annotations

import json
import uuid

import anthropic
import openai
import pytest
import requests

from ledger_helpers import ledger_record, start_ledger_gateway

KEY = "sk-test-guardrails-main"

BASE = """
providers:
  sim: {{type: openai, base_url: "{sim}/v1", api_key: sk-upstream-secret}}
models:
  - {{name: gpt-4o, deployments: [{{provider: sim, model: gpt-4o}}]}}
  - {{name: judge, deployments: [{{provider: sim, model: gpt-4o-mini}}]}}
keys:
  - {{key: {key}, name: main}}
router: {{retries: 0, backoff_s: 0}}
cache: {{enabled: false}}
"""
INPUT = """
guardrails:
  pii: {action: mask, types: {credit_card: block, phone: flag}}
  secrets: {action: block}
  injection: {action: flag}
  words: {action: block, words: [forbidden], topics: {weapons: [pipe bomb]}}
"""
# Output only, so the simulator's `reply=` directive in the prompt is not itself masked on the way in.
OUTPUT = """
guardrails:
  pii: {action: mask, input: false, types: {credit_card: block, phone: flag}}
  secrets: {action: block, input: false}
  injection: {action: off}
  schema: {action: block}
"""
JUDGE = """
guardrails:
  judge: {model: judge, policy: "No questions about lock picking.", input: true}
"""


def _start(sim, extra: str):  # type: ignore[no-untyped-def]
    return start_ledger_gateway(BASE.format(sim=sim.base_url, key=KEY) + extra)


@pytest.fixture(scope="module")
def gw(sim):  # type: ignore[no-untyped-def]
    g = _start(sim, INPUT)
    yield g
    g.stop()


@pytest.fixture(scope="module")
def gw_out(sim):  # type: ignore[no-untyped-def]
    g = _start(sim, OUTPUT)
    yield g
    g.stop()


@pytest.fixture(scope="module")
def gw_judge(sim):  # type: ignore[no-untyped-def]
    g = _start(sim, JUDGE)
    yield g
    g.stop()


def client(gw, guard: int | None = None):  # type: ignore[no-untyped-def]
    headers = {"x-lmgate-guard": str(guard)} if guard is not None else {}
    return openai.OpenAI(base_url=gw.base_url + "/v1", api_key=KEY, max_retries=0, default_headers=headers)


def sent_to_upstream(sim, token: str) -> list[dict]:  # type: ignore[no-untyped-def]
    return [r["body"] for r in sim.requests("/chat/completions") if token in json.dumps(r.get("body")) and r["body"].get("model") == "gpt-4o"]


def tok() -> str:
    return uuid.uuid4().hex[:8]


def test_input_mask_reaches_the_upstream_masked(gw, sim):  # type: ignore[no-untyped-def]
    t = tok()
    raw = client(gw).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": f"{t} mail me at john.doe@example.com or call +41 44 668 18 00"}]
    )
    body = sent_to_upstream(sim, t)[-1]
    assert body["messages"][0]["content"] == f"{t} mail me at [EMAIL] or call +41 44 668 18 00"  # phone: flag only
    rec = ledger_record(gw, raw.headers["x-request-id"])
    assert {(d["check"], d["action"], d["match"]) for d in rec.guardrails} == {("pii.email", "mask", "j***@e***.com"), ("pii.phone", "flag", "***1800")}


def test_input_block_in_the_openai_and_anthropic_error_shapes(gw, sim):  # type: ignore[no-untyped-def]
    t = tok()
    with pytest.raises(openai.BadRequestError) as exc:
        client(gw).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"{t} my key is sk-abcdefghijklmnopqrstuvwx1234"}])
    err = exc.value.body
    assert exc.value.status_code == 400 and err["code"] == "guardrail_violation" and "secrets.openai_key" in err["message"]
    assert "abcdefghij" not in err["message"]
    claude = anthropic.Anthropic(base_url=gw.base_url, api_key=KEY, max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as aexc:
        claude.messages.create(model="gpt-4o", max_tokens=20, messages=[{"role": "user", "content": f"{t} how to build a pipe  bomb"}])
    assert aexc.value.body["type"] == "error" and "topic.weapons" in aexc.value.body["error"]["message"]
    assert sent_to_upstream(sim, t) == []


def test_use_guard_zero_turns_checks_off_through_the_key_suffix(gw, sim):  # type: ignore[no-untyped-def]
    t = tok()
    c = openai.OpenAI(base_url=gw.base_url + "/v1", api_key=KEY + "/{'use_guard': 0}", max_retries=0)
    c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"{t} a forbidden word, a@b.io"}])
    assert sent_to_upstream(sim, t)[-1]["messages"][0]["content"] == f"{t} a forbidden word, a@b.io"


def test_output_checks_need_use_guard_2(gw_out, sim):  # type: ignore[no-untyped-def]
    prompt = "hi [[sim: reply=Sure, write to jane@corp.example.com or call +1 (555) 123-4567.]]"
    plain = client(gw_out).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": prompt}])
    assert "jane@corp.example.com" in plain.choices[0].message.content
    raw = client(gw_out, guard=2).chat.completions.with_raw_response.create(model="gpt-4o", messages=[{"role": "user", "content": prompt}])
    assert raw.parse().choices[0].message.content == "Sure, write to [EMAIL] or call +1 (555) 123-4567."
    rec = ledger_record(gw_out, raw.headers["x-request-id"])
    assert {(d["check"], d["action"], d["where"]) for d in rec.guardrails} == {("pii.email", "mask", "output"), ("pii.phone", "flag", "output")}
    assert rec.options["use_guard"] == 2


def test_output_block_whole(gw_out):  # type: ignore[no-untyped-def]
    with pytest.raises(openai.BadRequestError) as exc:
        client(gw_out, guard=2).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "card? [[sim: reply=Use 4111 1111 1111 1111 please]]"}])
    assert "output was blocked by the guardrail 'pii.credit_card'" in exc.value.body["message"]


def _stream(gw, content: str, guard: int = 2):  # type: ignore[no-untyped-def]
    h = {"authorization": f"Bearer {KEY}", "x-lmgate-guard": str(guard)}
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": content}], "stream": True}
    r = requests.post(gw.base_url + "/v1/chat/completions", json=body, headers=h, stream=True)
    frames = [line[6:] for line in r.iter_lines(decode_unicode=True) if line.startswith("data: ")]
    text, errors = "", []
    for f in frames:
        if f == "[DONE]":
            continue
        obj = json.loads(f)
        if "error" in obj:
            errors.append(obj["error"])
        for c in obj.get("choices") or ():
            text += (c.get("delta") or {}).get("content") or ""
    return text, errors, frames


def test_output_mask_streamed(gw_out):  # type: ignore[no-untyped-def]
    text, errors, frames = _stream(gw_out, "x [[sim: reply=Mail anna.meier@example.ch today, the key is sk-not-really-but-long-enough-1234 ok]]")
    # secrets block on output: the stream ends in an error event, without the key
    assert errors and "secrets.openai_key" in errors[0]["message"] and "sk-not" not in text
    assert "[DONE]" not in frames
    assert text.startswith("Mail [EMAIL] today")
    text, errors, frames = _stream(gw_out, "x [[sim: reply=Mail anna.meier@example.ch today, or bob@example.org, thanks a lot for asking]]")
    assert errors == [] and text == "Mail [EMAIL] today, or [EMAIL], thanks a lot for asking" and frames[-1] == "[DONE]"


def test_streams_pass_untouched_without_output_checks(gw_out):  # type: ignore[no-untyped-def]
    text, errors, _ = _stream(gw_out, "x [[sim: reply=Mail anna.meier@example.ch today]]", guard=1)
    assert text == "Mail anna.meier@example.ch today" and errors == []


def test_json_schema_check_blocks_invalid_output(gw_out):  # type: ignore[no-untyped-def]
    c = client(gw_out, guard=2)
    fmt = {"type": "json_schema", "json_schema": {"name": "city", "schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
    ok = c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": 'city [[sim: reply={"city": "Bern"}]]'}], response_format=fmt)
    assert json.loads(ok.choices[0].message.content) == {"city": "Bern"}
    with pytest.raises(openai.BadRequestError, match="missing required property 'city'"):
        c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": 'city [[sim: reply={"town": "Bern"}]]'}], response_format=fmt)


def test_llm_judge_blocks_and_allows(gw_judge, sim):  # type: ignore[no-untyped-def]
    t = tok()
    with pytest.raises(openai.BadRequestError) as exc:
        client(gw_judge).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"{t} how do I pick a lock? [[sim: reply=BLOCK]]"}])
    assert "judge" in exc.value.body["message"] and sent_to_upstream(sim, t) == []
    judged = [r["body"] for r in sim.requests("/chat/completions") if t in json.dumps(r.get("body")) and r["body"]["model"] == "gpt-4o-mini"]
    assert len(judged) == 1 and "lock picking" in judged[0]["messages"][0]["content"]
    answer = client(gw_judge).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"{t} bake bread? [[sim: reply=ALLOW]]"}])
    assert answer.choices[0].message.content == "ALLOW" and len(sent_to_upstream(sim, t)) == 1
