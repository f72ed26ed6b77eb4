"""Every example of reference 003 (docs of an OpenAI-compatible gateway under `/api/v1`), run
against lmgate with only `base_url` and `api_key` changed (issue 5 point 8), plus langchain-openai
(issue 5 "Done when").

Each example runs against two gateways: "native" (every model on an OpenAI-compatible upstream,
as 003's gateway is, and Cohere for the embeddings) and "crossed" (the same names served by other
protocols: llama_4_maverick by Bedrock, gemini-2.5-flash by Anthropic, cohere_english_v3 by Gemini).

The simulator answers text unless told otherwise. So that 003's code runs as printed, the
deployments carry the simulator's knobs in their base URL, never in the example's prompt:
`tool=auto` (call the first offered tool, as the real model did) for gemini-2.5-flash, and the
JSON-answer example goes to a third gateway whose deployment answers `false` (003 asks the model
for bare JSON and parses it; the simulator's URL knobs cannot carry braces, so not an object).
Changing the base URL is all the example sees.

Not gateway calls, left out: `IPython.display.Image` (not installed: a two-line stand-in reads the
file's bytes, which is all 003 uses it for), the Hugging Face `ag_news` download (96 synthetic
headlines of three topics instead), and the UMAP plot.
"""

from __future__ import annotations

import base64
import json
import random
from typing import Iterator

import numpy as np
import pytest
import requests
from conformance_kit import sample_pdf, sample_png

from lmgate.simulator.testing import AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
from lmgate.testing import RunningGateway, start_gateway

API_KEY = "sk-003-reference-key"
SECRET = "sk-upstream-003-secret-0123"
JSON_REPLY = "false"  # bare JSON: the simulator's path-prefix knobs cannot hold braces or commas

CONFIG = """
providers:
  oai: {{type: openai, base_url: "{sim}/v1", api_key: "{secret}"}}
  oai-tools: {{type: openai, base_url: "{sim}/_sim/tool=auto/v1", api_key: "{secret}"}}
  oai-json: {{type: openai, base_url: '{sim}/_sim/reply={reply}/v1', api_key: "{secret}"}}
  co: {{type: cohere, base_url: "{sim}", api_key: "{secret}"}}
  aws: {{type: bedrock, base_url: "{sim}", region: us-east-1, access_key_id: {ak}, secret_access_key: {sk}}}
  anth-tools: {{type: anthropic, base_url: "{sim}/_sim/tool=auto", api_key: "{secret}"}}
  gem: {{type: gemini, base_url: "{sim}", api_key: "{secret}"}}
models:
  - name: llama_4_maverick
    deployments: [{{provider: {llama}}}]
  - name: gemini-2.5-flash
    deployments: [{{provider: {gemini}}}]
  - name: cohere_english_v3
    deployments: [{{provider: {cohere}}}]
keys:
  - {{key: {key}, name: notebook}}
router: {{retries: 0, backoff_s: 0}}
"""
KINDS = {  # gateway kind -> deployments (provider, model: upstream) of the three model names
    "native": {"llama": "oai, model: llama-4-maverick", "gemini": "oai-tools, model: gemini-2.5-flash", "cohere": "co, model: embed-english-v3.0"},
    "crossed": {"llama": "aws, model: meta.llama3-1-8b-instruct-v1:0", "gemini": "anth-tools, model: claude-3-haiku-20240307",
                "cohere": "gem, model: text-embedding-004"},
    "json": {"llama": "oai, model: llama-4-maverick", "gemini": "oai-json, model: gemini-2.5-flash", "cohere": "co, model: embed-english-v3.0"},
}
GEMINI_PATH = {"native": "/_sim/tool=auto/v1/chat/completions", "crossed": "/_sim/tool=auto/v1/messages"}


def _start(sim, kind: str) -> RunningGateway:  # type: ignore[no-untyped-def]
    text = CONFIG.format(sim=sim.base_url, secret=SECRET, reply=JSON_REPLY, ak=AWS_ACCESS_KEY_ID, sk=AWS_SECRET_ACCESS_KEY, key=API_KEY, **KINDS[kind])
    return start_gateway(text, steps=[])  # no cache: each call reaches the simulator, so its log can be checked


@pytest.fixture(scope="module", params=["native", "crossed"])
def gw(request, sim) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    g = _start(sim, request.param)
    g.kind = request.param  # type: ignore[attr-defined]
    yield g
    g.stop()


@pytest.fixture(scope="module")
def json_gw(sim) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    g = _start(sim, "json")
    yield g
    g.stop()


def setup(gw: RunningGateway) -> tuple[str, dict[str, str]]:
    """003's "Authenticating & Headers" cell with base_url and api_key set."""
    api_key = API_KEY
    base_url = gw.base_url
    endpoint = f'{base_url}/api/v1/chat/completions'
    headers = {'accept': 'application/json', 'authorization': f'Bearer {api_key}', 'Content-Type': 'application/json'}
    return endpoint, headers


class Image:
    """Stand-in for IPython.display.Image(filename=...): 003 only reads `.data`."""

    def __init__(self, filename: str) -> None:
        with open(filename, "rb") as f:
            self.data = f.read()


@pytest.fixture
def files(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    (tmp_path / "images").mkdir()
    (tmp_path / "documents").mkdir()
    (tmp_path / "images" / "ous_white.jpg").write_bytes(sample_png("seal"))
    (tmp_path / "images" / "red_stapler.jpg").write_bytes(sample_png("stapler"))
    (tmp_path / "documents" / "AWorldofLovesample.pdf").write_bytes(sample_pdf("A World of Love by Elizabeth Bowen"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ---------------------------------------------------------------- chat


def test_minimal_chat(gw: RunningGateway, sim) -> None:  # type: ignore[no-untyped-def]
    endpoint, headers = setup(gw)
    data = {'model': 'llama_4_maverick', 'messages': [{'role': 'user', 'content': 'Hello'}]}
    resp = requests.post(endpoint, json=data, headers=headers)
    if resp.status_code >= 300:
        print('error', resp.status_code)
    response_object = resp.json()
    assert resp.status_code == 200, resp.text
    assert response_object['object'] == 'chat.completion'
    assert response_object['choices'][0]['message']['role'] == 'assistant'
    assert response_object['choices'][0]['finish_reason'] == 'stop'
    assert 'you said "Hello"' in response_object['choices'][0]['message']['content']
    usage = response_object['usage']
    assert usage['total_tokens'] == usage['prompt_tokens'] + usage['completion_tokens'] > 0


def test_system_prompt(gw: RunningGateway, sim) -> None:  # type: ignore[no-untyped-def]
    endpoint, headers = setup(gw)
    sim.clear()
    data = {
        'model': 'llama_4_maverick',
        'messages': [
            {'role': 'system', 'content': 'You are a pirate and only speak in pirate'},
            {'role': 'user', 'content': 'Hello'},
        ],
    }
    resp = requests.post(endpoint, json=data, headers=headers)
    if resp.status_code >= 300:
        print('error', resp.status_code)
    response_object = resp.json()
    print(response_object['choices'][0]['message']['content'])
    sent = sim.requests()[-1]["body"]
    system = sent["messages"][0]["content"] if gw.kind == "native" else sent["system"][0]["text"]  # type: ignore[attr-defined]
    assert system == 'You are a pirate and only speak in pirate'


def test_image_data_uri_with_part_level_detail(json_gw: RunningGateway, sim, files) -> None:  # type: ignore[no-untyped-def]
    endpoint, headers = setup(json_gw)
    sim.clear()
    seal_image_path = 'images/ous_white.jpg'

    def make_prompt(image_path, description):  # type: ignore[no-untyped-def]
        image = Image(filename=image_path)
        image_bytes = image.data
        s = base64.b64encode(image_bytes).decode('utf-8')
        encoded = 'data:image/png;base64,' + s
        return {
            'model': 'gemini-2.5-flash',
            'messages': [
                {
                    'role': 'system',
                    'content': """
I want to directly parse your response as json. Do not include any other text other than the plain json.
Do not not include the word json, do not include new line characters. Only the exact json text.
""",
                },
                {
                    'role': 'user',
                    'content': [
                        {
                            'type': 'text',
                            'text': f"""I have the following description of this image:
{description}
I would like to know if this description as genally correct. The description does not need to be
specfic or detailed. The general category is still considered correct if it matches
the image. Format your answer as a json object with two pieces of information, a boolean indicating
whether the teh description matches, and a description, which is your identification of the image:
{{"is_correct": boolean indicating if the description is generally correct, "description":your description of the image.}}.
""",
                        },
                        {'type': 'image_url', 'image_url': {'url': encoded}, 'detail': 'auto'},
                    ],
                },
            ],
        }

    prompt = make_prompt(seal_image_path, 'a red stapler')
    resp = requests.post(endpoint, json=prompt, headers=headers)
    response_object = resp.json()
    assert resp.status_code == 200, resp.text
    response_content = response_object['choices'][0]['message']['content']
    assert json.loads(response_content) is False
    part = sim.requests("/chat/completions")[-1]["body"]["messages"][1]["content"][1]
    assert part["type"] == "image_url" and part["image_url"]["url"].startswith("data:image/png;base64,")
    assert "detail" not in part  # a sibling `detail` is not OpenAI's shape; the upstream gets a clean part


def make_document_prompt(model, document_path, prompt):  # type: ignore[no-untyped-def]
    with open(document_path, 'rb') as f:
        pdf_bytes = f.read()
    pdf_base_64 = base64.b64encode(pdf_bytes).decode('utf-8')
    encoded = 'data:application/pdf;base64,' + pdf_base_64
    return {
        'model': model,
        'messages': [
            {
                'role': 'user',
                'content': [
                    {'type': 'text', 'text': prompt},
                    {'type': 'file', 'file': {'file_name': 'Test', 'file_data': encoded}},
                ],
            }
        ],
    }


def test_document_as_file_part(gw: RunningGateway, sim, files) -> None:  # type: ignore[no-untyped-def]
    endpoint, headers = setup(gw)
    sim.clear()
    prompt = make_document_prompt('gemini-2.5-flash', 'documents/AWorldofLovesample.pdf', 'Please summarize this document.')
    resp = requests.post(endpoint, json=prompt, headers=headers)
    print(resp)
    assert resp.status_code == 200, resp.text
    response_object = resp.json()
    assert "I received 1 document." in response_object['choices'][0]['message']['content']
    sent = json.dumps(sim.requests(GEMINI_PATH[gw.kind])[-1]["body"])  # type: ignore[attr-defined]
    assert base64.b64encode((files / "documents" / "AWorldofLovesample.pdf").read_bytes()).decode() in sent


def test_model_differences_document_to_a_model_without_document_input(gw: RunningGateway, sim, files) -> None:  # type: ignore[no-untyped-def]
    """llama_4_maverick reads no documents: lmgate sends the PDF's text layer instead (pypdf)."""
    endpoint, headers = setup(gw)
    sim.clear()
    prompt = make_document_prompt('llama_4_maverick', 'documents/AWorldofLovesample.pdf', 'Please summarize this document.')
    resp = requests.post(endpoint, json=prompt, headers=headers)
    assert resp.status_code == 200, resp.text
    response_object = resp.json()
    assert response_object['choices'][0]['message']['content']
    sent = json.dumps(sim.requests()[-1]["body"])
    assert "A World of Love by Elizabeth Bowen" in sent and "application/pdf" not in sent


# ---------------------------------------------------------------- tool calls, by hand


def test_tool_calls_two_call_round_trip(gw: RunningGateway, sim) -> None:  # type: ignore[no-untyped-def]
    endpoint, headers = setup(gw)
    sim.clear()

    def magic_number(factor):  # type: ignore[no-untyped-def]
        """Generate a magic number that is a multiple of factor"""
        return random.randint(10000, 50000) * factor

    prompt = {
        'model': 'gemini-2.5-flash',
        'messages': [{'role': 'user', 'content': 'Generate a magic number that is a multiple of 100'}],
        'tools': [
            {
                'type': 'function',
                'function': {
                    'name': 'magic_number',
                    'description': 'Generates a magic number that is a mutiple of a given factor',
                    'parameters': {
                        'type': 'object',
                        'properties': {
                            'factor': {
                                'type': 'number',
                                'description': 'The number that will be a factor of the magic number',
                            }
                        },
                        'required': ['factor'],
                    },
                },
            }
        ],
    }
    resp = requests.post(endpoint, json=prompt, headers=headers)
    response_object = resp.json()
    assert resp.status_code == 200, resp.text
    function_call = response_object['choices'][0]['message']['tool_calls'][0]
    tool_id = function_call['id']
    tool_name = function_call['function']['name']
    args = function_call['function']['arguments']
    print('id:', tool_id, 'name:', tool_name, 'args:', args)
    assert tool_name == 'magic_number' and response_object['choices'][0]['finish_reason'] == 'tool_calls'

    args = json.loads(args)
    func_result = {'magic_number': magic_number(args['factor'])}

    # The second call offers no tools, only the history that holds the call and its result.
    prompt = {
        'model': 'gemini-2.5-flash',
        'messages': [
            {'role': 'user', 'content': 'Generate a magic number that is a multiple of 100'},
            {
                'role': 'assistant',
                'tool_calls': [
                    {'id': tool_id, 'type': 'function', 'function': {'name': tool_name, 'arguments': json.dumps(args)}}
                ],
            },
            {'role': 'tool', 'tool_call_id': tool_id, 'content': json.dumps(func_result)},
        ],
    }
    resp = requests.post(endpoint, json=prompt, headers=headers)
    response_object = resp.json()
    assert resp.status_code == 200, resp.text
    message = response_object['choices'][0]['message']
    assert message['role'] == 'assistant'
    assert str(func_result['magic_number']) in message['content'].replace(" ", "")
    sent = sim.requests(GEMINI_PATH[gw.kind])[-1]["body"]  # type: ignore[attr-defined]
    assert tool_id in json.dumps(sent)  # the call id went back upstream with the result


# ---------------------------------------------------------------- pydantic-ai


async def test_pydantic_ai_agent_with_two_tools(gw: RunningGateway, sim) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("pydantic_ai")
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    api_key = API_KEY
    base_url = gw.base_url
    sim.clear()
    calls: list[str] = []

    model = OpenAIChatModel('gemini-2.5-flash', provider=OpenAIProvider(base_url=base_url + '/api/v1', api_key=api_key))
    agent = Agent(model)

    @agent.tool_plain
    def magic_number(factor: int) -> int:
        """Generate a magic number that is a multiple of factor"""
        print('Calling magin number tool with factor: ', factor)
        calls.append("magic_number")
        return random.randint(10000, 50000) * factor

    @agent.tool_plain
    def special_number() -> int:
        """Generate a special number"""
        sn = random.randint(1, 20)
        print('Calling tool to get special number which is:', sn)
        calls.append("special_number")
        return sn

    resp = await agent.run(
        'Please get a special number and then give me a magic number that is a mutiple of the special number',
    )
    print(resp.output)
    assert calls == ["magic_number"]  # the simulated model calls the first offered tool once, then answers
    assert "returned" in resp.output
    bodies = [r["body"] for r in sim.requests(GEMINI_PATH[gw.kind])]  # type: ignore[attr-defined]
    assert len(bodies) == 2
    offered = bodies[0]["tools"]
    names = [t["function"]["name"] for t in offered] if gw.kind == "native" else [t["name"] for t in offered]  # type: ignore[attr-defined]
    assert names == ["magic_number", "special_number"]


# ---------------------------------------------------------------- embeddings


def test_embeddings_with_input_type_and_encoding_format(gw: RunningGateway, sim) -> None:  # type: ignore[no-untyped-def]
    sim.clear()
    base_url, api_key = gw.base_url, API_KEY
    endpoint = f'{base_url}/api/v1/embeddings'
    headers = {'accept': 'application/json', 'authorization': f'Bearer {api_key}', 'Content-Type': 'application/json'}
    request = {
        'model': 'cohere_english_v3',
        'encodingFormat': 'float',
        'input': [
            'Sweet is the breath of morn, her rising sweet, With charm of earliest birds',
            'With Midnight to the North of Her — And Midnight to the South of Her — And Maelstrom — in the Sky',
        ],
        'input_type': 'search_document',
    }
    resp = requests.post(endpoint, json=request, headers=headers)
    result = resp.json()
    assert resp.status_code == 200, resp.text
    first = result['data'][0]['embedding'][0:10]
    assert len(first) == 10 and all(isinstance(v, float) for v in first)
    assert len(result['data']) == 2
    if gw.kind == "native":  # type: ignore[attr-defined]
        assert sim.requests("/v2/embed")[-1]["body"]["input_type"] == "search_document"
        assert len(result['data'][0]['embedding']) == 1024
    else:  # Gemini: the Cohere input type becomes Gemini's task type
        sent = sim.requests("/v1beta/models/text-embedding-004:batchEmbedContents")[-1]["body"]
        assert len(sent["requests"]) == 2


def test_embeddings_96_headlines_for_clustering(gw: RunningGateway, sim) -> None:  # type: ignore[no-untyped-def]
    base_url, api_key = gw.base_url, API_KEY
    endpoint = f'{base_url}/api/v1/embeddings'
    headers = {'accept': 'application/json', 'authorization': f'Bearer {api_key}', 'Content-Type': 'application/json'}
    topics = {'World': 'Leaders meet to discuss the border crisis', 'Sports': 'Team wins the final after extra time',
              'Sci/Tech': 'New chip doubles battery life of phones'}
    texts = [f"{head} ({label} story {i})" for label, head in topics.items() for i in range(32)]
    labels = [label for label in topics for _ in range(32)]
    assert len(texts) == 96 and labels.count('World') == 32
    sim.clear()
    request = {'model': 'cohere_english_v3', 'encodingFormat': 'float', 'input': texts, 'input_type': 'clustering'}
    resp = requests.post(endpoint, json=request, headers=headers)
    result = resp.json()
    assert resp.status_code == 200, resp.text
    raw_embeddings = [data['embedding'] for data in result['data']]
    embeddings = np.array(raw_embeddings)
    print(embeddings.shape)
    assert embeddings.shape[0] == 96 and embeddings.shape[1] >= 256
    if gw.kind == "native":  # type: ignore[attr-defined]
        assert embeddings.shape == (96, 1024)
        calls = sim.requests("/v2/embed")
        assert len(calls) == 1 and calls[0]["body"]["input_type"] == "clustering" and len(calls[0]["body"]["texts"]) == 96


# ---------------------------------------------------------------- langchain-openai ("Done when": real clients)


def test_langchain_openai_invoke_stream_and_tools(gw: RunningGateway) -> None:
    pytest.importorskip("langchain_openai")
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="llama_4_maverick", base_url=gw.base_url + "/api/v1", api_key=API_KEY, max_retries=0)
    answer = llm.invoke("Hello from LangChain")
    assert 'you said "Hello from LangChain"' in answer.content
    assert answer.usage_metadata and answer.usage_metadata["input_tokens"] > 0 and answer.usage_metadata["output_tokens"] > 0

    streamed = "".join(chunk.content for chunk in llm.stream("Hello from LangChain"))
    assert streamed == answer.content
    counted = ChatOpenAI(model="llama_4_maverick", base_url=gw.base_url + "/api/v1", api_key=API_KEY, max_retries=0, stream_usage=True)
    total = None
    for chunk in counted.stream("Hello from LangChain"):
        total = chunk if total is None else total + chunk
    assert total is not None and total.content == answer.content
    counts = ("input_tokens", "output_tokens", "total_tokens")
    assert total.usage_metadata and [total.usage_metadata[k] for k in counts] == [answer.usage_metadata[k] for k in counts]

    @tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return "sunny"

    with_tools = ChatOpenAI(model="gemini-2.5-flash", base_url=gw.base_url + "/api/v1", api_key=API_KEY, max_retries=0).bind_tools([get_weather])
    msg = with_tools.invoke("What is the weather in Paris?")
    assert msg.tool_calls and msg.tool_calls[0]["name"] == "get_weather" and msg.tool_calls[0]["args"] == {"city": "Paris"}
    assert msg.tool_calls[0]["id"]
    from langchain_core.messages import HumanMessage, ToolMessage

    result = get_weather.invoke(msg.tool_calls[0]["args"])
    final = with_tools.invoke([HumanMessage("What is the weather in Paris?"), msg, ToolMessage(result, tool_call_id=msg.tool_calls[0]["id"])])
    assert "returned: sunny" in final.content and not final.tool_calls
