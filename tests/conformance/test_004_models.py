"""Every chat model of 004's three price tables, configured with the provider 004 names for it
(Azure OpenAI, Vertex AI, AWS Bedrock), answers through the OpenAI surface whole and streamed, with
the cost of its own price unit (per 1M tokens, per 1K characters, per 1K tokens)."""

from __future__ import annotations

from typing import Iterator

import openai
import pytest

from lmgate.catalog.catalog import Catalog, cost_usd
from lmgate.catalog.tokens import billable_chars
from lmgate.policy.accounting import MemoryLedger
from lmgate.testing import RunningGateway, start_gateway
from lmgate.types import Usage

KEY = "sk-004-models-key"

AZURE = ["gpt-35-turbo", "gpt-35-turbo-1106", "gpt-4", "gpt-4-0125-preview", "gpt-4o", "gpt4-vision-preview",
         "gpt-4-vision-preview", "gpt-4o-mini", "o1-preview", "o1-mini"]
VERTEX = ["gemini-1.5-flash", "gemini-1.5-pro", "gemini-1.0-pro"]
BEDROCK = ["anthropic.claude-3-haiku-20240307-v1:0", "anthropic.claude-3-sonnet-20240229-v1:0",
           "anthropic.claude-3-5-sonnet-20240620-v1:0", "anthropic.claude-3-opus-20240229-v1:0",
           "meta.llama3-8b-instruct-v1:0", "meta.llama3-70b-instruct-v1:0", "meta.llama3-1-405b-instruct-v1:0",
           "meta.llama3-1-70b-instruct-v1:0", "meta.llama3-1-8b-instruct-v1:0", "us.meta.llama3-2-90b-instruct-v1:0",
           "us.meta.llama3-2-11b-instruct-v1:0", "us.amazon.nova-micro-v1:0", "us.amazon.nova-lite-v1:0", "us.amazon.nova-pro-v1:0"]
UNITS = {**{m: "1M tokens" for m in AZURE}, **{m: "1K characters" for m in VERTEX}, **{m: "1K tokens" for m in BEDROCK}}
PROVIDER = {**{m: "azure" for m in AZURE}, **{m: "vertex" for m in VERTEX}, **{m: "bedrock" for m in BEDROCK}}


@pytest.fixture(scope="module")
def gw(sim, vertex_account) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    models = "\n".join(f'  - name: "{m}"\n    deployments: [{{provider: {PROVIDER[m]}, model: "{m}"}}]' for m in UNITS)
    config = f"""
providers:
  azure: {{type: azure, base_url: "{sim.base_url}", api_key: azure-key-0001, api_version: "2024-10-21"}}
  vertex: {{type: vertex, base_url: "{sim.base_url}", credentials_file: "{vertex_account}", project: p004, location: us-central1}}
  bedrock: {{type: bedrock, base_url: "{sim.base_url}", region: us-east-1, access_key_id: AKIDSIMULATOR, secret_access_key: simulator-secret}}
models:
{models}
keys:
  - {{key: {KEY}, name: k004}}
"""
    ledger = MemoryLedger()
    g = start_gateway(config, ledger=ledger, steps=[])
    g.ledger = ledger  # type: ignore[attr-defined]
    yield g
    g.stop()


def _expected(model: str, usage: openai.types.CompletionUsage, prompt: str, answer: str) -> float:
    info = Catalog.builtin().get(model)
    assert info is not None and info.price.unit == UNITS[model]
    if UNITS[model] == "1K characters":  # Gemini 1.x on Vertex bills characters (white space free), not tokens
        return (billable_chars(prompt) * info.price.input + billable_chars(answer) * info.price.output) / 1000
    return cost_usd(info, Usage(usage.prompt_tokens, usage.completion_tokens))


@pytest.mark.parametrize("model", list(UNITS))
def test_model_answers_whole_and_streamed_with_its_cost(gw: RunningGateway, model: str) -> None:
    client = openai.OpenAI(base_url=gw.base_url + "/v1", api_key=KEY, max_retries=0)
    messages = [{"role": "user", "content": "Hello World"}]
    raw = client.chat.completions.with_raw_response.create(model=model, messages=messages, max_tokens=200)
    whole = raw.parse()
    assert whole.choices[0].message.content and whole.choices[0].finish_reason == "stop"
    cost = whole.usage.model_extra["estimated_cost"]
    assert cost > 0
    assert cost == pytest.approx(_expected(model, whole.usage, "Hello World", whole.choices[0].message.content), rel=1e-6)
    rec = next(r for r in gw.ledger.records if r.request_id == raw.headers["x-request-id"])  # type: ignore[attr-defined]
    assert (rec.input_tokens, rec.output_tokens, rec.cost_usd) == (whole.usage.prompt_tokens, whole.usage.completion_tokens, cost)

    chunks = list(client.chat.completions.create(model=model, messages=messages, max_tokens=200, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    final = chunks[-1]
    assert final.usage.completion_tokens == whole.usage.completion_tokens
    assert final.usage.model_extra["estimated_cost"] == pytest.approx(cost, rel=1e-9)
