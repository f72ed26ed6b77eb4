"""Every example of reference 004 ("LLM Gateway API v1.0.7"), run against lmgate with only the
base URL and the key changed (issue 5 point 8).

Each example runs twice: against the deployments its document implies (Azure OpenAI for the Azure
examples, Vertex for Gemini, Bedrock for the Bedrock ones: the "native" gateway) and against a
gateway serving the same model names from providers of another protocol (the "crossed" gateway:
Gemini served by OpenAI, Nova by Anthropic and Gemini, Azure chat by Anthropic, ...).

Where 004's code cannot run as printed, the test says so and runs what the code evidently means:
- Whisper: `api_key=LM_PROXY_KEY` names a variable the snippet never defines (it means `lm_key`).
- Gemini image: `"data": content` names an undefined variable (the snippet encodes `base64_image`).
- Kadal tenant: the dict starts with a doubled `userdata = {` line and a doubled closing brace
  (a copy artefact); the dict between them is used.
- Bedrock Nova video: `headers = ({"api-key": lm_key},)` is a one-element tuple. requests calls
  `.items()` on it and raises AttributeError before anything is sent (tested); the dict is then used.
"""

from __future__ import annotations

import base64
import json
import subprocess
from typing import Any, Iterator

import pytest
import requests
from conformance_kit import iso_boxes, need_surface
from openai import AzureOpenAI

from lmgate.policy.accounting import MemoryLedger
from lmgate.simulator.testing import AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
from lmgate.testing import RunningGateway, start_gateway

LM_KEY = "lm-key-004-reference"
LIMITED_KEY = "lm-key-004-only-4o-mini"
UPSTREAM_SECRET = "sk-upstream-004-secret-0123"

PROVIDERS = """
providers:
  azure-eu: {{type: azure, base_url: "{sim}", api_key: "{secret}", api_version: "2024-10-21"}}
  vertex: {{type: vertex, base_url: "{sim}", credentials_file: "{account}", project: kadal-proj, location: europe-west4}}
  bedrock: {{type: bedrock, base_url: "{sim}", region: us-east-1, access_key_id: {ak}, secret_access_key: {sk}}}
  oai: {{type: openai, base_url: "{sim}/v1", api_key: "{secret}"}}
  anth: {{type: anthropic, base_url: "{sim}", api_key: "{secret}"}}
  gem: {{type: gemini, base_url: "{sim}", api_key: "{secret}"}}
"""
# model -> (native deployment, crossed deployment): provider and upstream model
DEPLOYMENTS = {
    "gpt-4o-mini": (("azure-eu", "gpt-4o-mini"), ("anth", "claude-3-haiku-20240307")),
    "gpt-4": (("azure-eu", "gpt-4"), ("bedrock", "meta.llama3-1-8b-instruct-v1:0")),
    "gpt-4o": (("azure-eu", "gpt-4o"), ("gem", "gemini-2.5-flash")),
    "text-embedding-ada-002": (("azure-eu", "text-embedding-ada-002"), ("gem", "text-embedding-004")),
    "dall-e-3": (("azure-eu", "dall-e-3"), ("oai", "dall-e-3")),  # images: OpenAI-protocol providers only
    "whisper": (("azure-eu", "whisper"), ("oai", "whisper-1")),  # audio: OpenAI-protocol providers only
    "gemini-1.5-pro": (("vertex", "gemini-1.5-pro"), ("oai", "gpt-4o")),
    "anthropic.claude-3-haiku-20240307-v1:0": (("bedrock", "anthropic.claude-3-haiku-20240307-v1:0"), ("oai", "gpt-4o-mini")),
    "meta.llama3-1-8b-instruct-v1:0": (("bedrock", "meta.llama3-1-8b-instruct-v1:0"), ("gem", "gemini-2.5-flash")),
    "us.amazon.nova-lite-v1:0": (("bedrock", "us.amazon.nova-lite-v1:0"), ("anth", "claude-3-haiku-20240307")),
    "us.amazon.nova-pro-v1:0": (("bedrock", "us.amazon.nova-pro-v1:0"), ("gem", "gemini-2.5-flash")),
}
VERTEX = "/v1/projects/kadal-proj/locations/europe-west4/publishers/google/models/"
PATHS = {  # (provider, upstream model) -> the path the simulator sees for a chat answer
    "azure-eu": "/openai/deployments/{m}/chat/completions",
    "vertex": VERTEX + "{m}:generateContent",
    "bedrock": "/model/{m}/converse",
    "oai": "/v1/chat/completions",
    "anth": "/v1/messages",
    "gem": "/v1beta/models/{m}:generateContent",
}


def config(sim_url: str, account: str, kind: str) -> str:
    lines = [PROVIDERS.format(sim=sim_url, secret=UPSTREAM_SECRET, account=account, ak=AWS_ACCESS_KEY_ID, sk=AWS_SECRET_ACCESS_KEY), "models:"]
    for name, pair in DEPLOYMENTS.items():
        provider, upstream = pair[0] if kind == "native" else pair[1]
        lines += [f'  - name: "{name}"', f'    deployments: [{{provider: {provider}, model: "{upstream}"}}]']
    lines += ["keys:", f"  - {{key: {LM_KEY}, name: kadal}}", f"  - {{key: {LIMITED_KEY}, name: limited, models: [gpt-4o-mini]}}",
              "router: {retries: 0, backoff_s: 0}", ""]
    return "\n".join(lines)


@pytest.fixture(scope="module", params=["native", "crossed"])
def gw(request, sim, ref_vertex_account) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    """The gateway as deployed (default policy steps: limits, guardrails, cache), with a MemoryLedger."""
    ledger = MemoryLedger()
    g = start_gateway(config(sim.base_url, str(ref_vertex_account), request.param), ledger=ledger)
    g.ledger = ledger  # type: ignore[attr-defined]
    g.kind = request.param  # type: ignore[attr-defined]
    yield g
    g.stop()


def served_path(gw: RunningGateway, model: str) -> str:
    provider, upstream = DEPLOYMENTS[model][0 if gw.kind == "native" else 1]  # type: ignore[attr-defined]
    return PATHS[provider].format(m=upstream)


def sent_to(sim, gw: RunningGateway, model: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    path = served_path(gw, model)
    got = [r for r in sim.requests() if r["path"] == path]
    assert got, f"nothing reached {path}: {[r['path'] for r in sim.requests()]}"
    return got[-1]


def record(gw: RunningGateway, request_id: str):  # type: ignore[no-untyped-def]
    found = [r for r in gw.ledger.records if r.request_id == request_id]  # type: ignore[attr-defined]
    assert len(found) == 1, f"no single usage record for {request_id}"
    return found[0]


def base(gw: RunningGateway) -> str:
    """https://api.kadal.ai becomes the test gateway; everything after it is 004's."""
    return gw.base_url


# ---------------------------------------------------------------- Azure OpenAI


def test_azure_openai_sdk_chat(gw: RunningGateway, sim) -> None:  # type: ignore[no-untyped-def]
    need_surface("azure")
    sim.clear()
    azure_endpoint = base(gw) + '/proxy/api/v1/azure'
    lm_key = LM_KEY
    api_version = "2024-02-15-preview"
    client = AzureOpenAI(azure_endpoint=azure_endpoint,
                         api_version=api_version,
                         api_key=lm_key)
    response = client.chat.completions.create(
        model="gpt-4o-mini",
        temperature=0.7,
        messages=[
            {"role": "user", "content": """Hello World"""}
        ])
    print(response)
    assert response.object == "chat.completion" and response.choices[0].finish_reason == "stop"
    assert 'you said "Hello World"' in response.choices[0].message.content
    assert response.usage.total_tokens > 0 and response.usage.model_extra["estimated_cost"] > 0
    sent = sent_to(sim, gw, "gpt-4o-mini")["body"]
    assert sent["temperature"] == 0.7


def test_azure_python_requests(gw: RunningGateway, sim) -> None:  # type: ignore[no-untyped-def]
    need_surface("azure")
    sim.clear()
    # Azure OpenAI Configuration
    azure_endpoint = base(gw) + '/proxy/api/v1/azure'
    lm_key = LM_KEY
    headers = {
        'Content-Type': 'application/json',
        'api-key': lm_key
    }
    # Request Body
    body = {
        'messages': [
            {'role': 'system', 'content': 'You are a helpful assistant.'},
            {'role': 'user', 'content': 'Hello! How can I improve my productivity?'}
        ],
        'model': 'gpt-4',
        'temperature': 0.7
    }
    response = requests.post(
        f'{azure_endpoint}/openai/deployments/gpt-4/chat/completions?api-version=2024-02-15-preview',
        headers=headers,
        json=body
    )
    assert response.status_code == 200, f"Error: {response.status_code} - {response.text}"
    print(json.dumps(response.json(), indent=4))
    data = response.json()
    assert 'you said "Hello! How can I improve my productivity?"' in data["choices"][0]["message"]["content"]
    sent = sent_to(sim, gw, "gpt-4")["body"]
    system = sent["messages"][0]["content"] if "messages" in sent and sent["messages"][0]["role"] == "system" else sent.get("system")
    assert "You are a helpful assistant." in json.dumps(system)


def test_azure_curl(gw: RunningGateway, sim) -> None:  # type: ignore[no-untyped-def]
    need_surface("azure")
    sim.clear()
    line = """curl --location 'https://api.kadal.ai/proxy/api/v1/azure/openai/deployments/gpt-4o/chat/completions?api-version=2024-02-15-preview' \\
--header 'Content-Type: application/json' \\
--header 'api-key: <YOUR_LM_KEY>' \\
--data '{"model":"gpt-4o",
"temperature":0.7,
"messages":[
{"role": "user", "content": "Hello World"}
]}'"""
    line = line.replace("https://api.kadal.ai", base(gw)).replace("<YOUR_LM_KEY>", LM_KEY)
    # Run as pasted into a shell (line continuations and quoting included), with curl's output headers shown.
    out = subprocess.run(["sh", "-c", line + " --silent --show-error --include"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    head, _, body = out.stdout.replace("\r\n", "\n").partition("\n\n")
    assert head.startswith("HTTP/1.1 200"), out.stdout
    data = json.loads(body)
    assert 'you said "Hello World"' in data["choices"][0]["message"]["content"]
    assert data["model"] == DEPLOYMENTS["gpt-4o"][0 if gw.kind == "native" else 1][1]  # type: ignore[attr-defined]  # the model that answered
    assert sent_to(sim, gw, "gpt-4o")


def test_azure_multimodal_image(gw: RunningGateway, sim, in_samples) -> None:  # type: ignore[no-untyped-def]
    need_surface("azure")
    sim.clear()

    def encode_image(image_path):  # type: ignore[no-untyped-def]
        with open(image_path, "rb") as image_file:
            return base64.b64encode(image_file.read()).decode('utf-8')

    base64_image = encode_image("sample.png")
    azure_endpoint = base(gw) + '/proxy/api/v1/azure'
    lm_key = LM_KEY
    api_version = "2024-02-15-preview"
    client = AzureOpenAI(
        azure_endpoint=azure_endpoint,
        api_version=api_version,
        api_key=lm_key
    )
    response = client.chat.completions.create(
        model="gpt-4o",
        temperature=0.7,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What's in this image?"},
                    {
                        "type": "image_url",
                        "image_url": {
                            "url": f"data:image/jpeg;base64,{base64_image}",  # 004 labels the PNG as JPEG
                        },
                    },
                ],
            }
        ]
    )
    print(response)
    assert "I received 1 image." in response.choices[0].message.content
    assert base64_image in json.dumps(sent_to(sim, gw, "gpt-4o")["body"])  # the bytes reached the upstream unchanged


def test_azure_embeddings(gw: RunningGateway, sim) -> None:  # type: ignore[no-untyped-def]
    need_surface("azure")
    sim.clear()
    azure_endpoint = base(gw) + '/proxy/api/v1/azure'
    lm_key = LM_KEY
    api_version = "2024-02-15-preview"
    client = AzureOpenAI(
        azure_endpoint=azure_endpoint,
        api_version=api_version,
        api_key=lm_key
    )
    response = client.embeddings.create(
        input="Your text string",
        model="text-embedding-ada-002"
    )
    print(response.data[0].embedding)
    vector = response.data[0].embedding
    assert len(vector) > 8 and all(isinstance(v, float) for v in vector)
    expected = "/openai/deployments/text-embedding-ada-002/embeddings" if gw.kind == "native" else "/v1beta/models/text-embedding-004:"  # type: ignore[attr-defined]
    assert any(expected in r["path"] for r in sim.requests())


def test_azure_dalle3(gw: RunningGateway, sim) -> None:  # type: ignore[no-untyped-def]
    need_surface("azure")
    sim.clear()
    azure_endpoint = base(gw) + '/proxy/api/v1/azure'
    lm_key = LM_KEY
    api_version = "2024-02-15-preview"
    client = AzureOpenAI(
        azure_endpoint=azure_endpoint,
        api_version=api_version,
        api_key=lm_key
    )
    response = client.images.generate(
        model="dall-e-3",
        prompt="generate a cat",
        size="1024x1024",
        quality="standard",
        n=1,
    )
    image_url = response.data[0].url
    print(image_url)
    assert image_url and image_url.startswith("http")
    sent = [r for r in sim.requests() if r["path"].endswith("/images/generations")][-1]["body"]
    assert (sent["prompt"], sent["size"], sent["quality"], sent["n"]) == ("generate a cat", "1024x1024", "standard", 1)


def test_azure_dalle3_only_n_1(gw: RunningGateway) -> None:
    """004's note: "For dall-e-3, only n=1 is supported." """
    need_surface("azure")
    import openai

    client = AzureOpenAI(azure_endpoint=base(gw) + '/proxy/api/v1/azure', api_version="2024-02-15-preview", api_key=LM_KEY, max_retries=0)
    with pytest.raises(openai.BadRequestError):
        client.images.generate(model="dall-e-3", prompt="generate a cat", size="1024x1024", quality="standard", n=2)


def test_azure_whisper_verbose_json(gw: RunningGateway, sim, in_samples) -> None:  # type: ignore[no-untyped-def]
    need_surface("azure")
    sim.clear()
    azure_endpoint = base(gw) + '/proxy/api/v1/azure'
    lm_key = LM_KEY
    LM_PROXY_KEY = lm_key  # 004 passes api_key=LM_PROXY_KEY without defining it
    api_version = "2024-02-15-preview"
    client = AzureOpenAI(
        azure_endpoint=azure_endpoint,
        api_version=api_version,
        api_key=LM_PROXY_KEY
    )
    audio_file = open("sample.mp3", "rb")
    transcription = client.audio.transcriptions.create(
        model="whisper",
        temperature=0,
        response_format="verbose_json",
        file=audio_file
    )
    audio_file.close()
    print(transcription.text)
    assert "Simulated transcription of sample.mp3" in transcription.text
    assert transcription.duration is not None and float(transcription.duration) > 0
    assert any(r["path"].endswith("/audio/transcriptions") for r in sim.requests())


# ---------------------------------------------------------------- Gemini


def test_gemini_generate_content_requests(gw: RunningGateway, sim) -> None:  # type: ignore[no-untyped-def]
    need_surface("gemini")
    sim.clear()
    lm_key = LM_KEY
    LLM_Gateway_SERVER_URL = base(gw) + '/proxy/api/v1/'
    model_name = 'gemini-1.5-pro'
    # 004 doubles the prefix and the slash: .../proxy/api/v1//proxy/api/v1/gemini/... (kept as written)
    url = f"{LLM_Gateway_SERVER_URL}/proxy/api/v1/gemini/models/{model_name}:generateContent"
    assert "/proxy/api/v1//proxy/api/v1/gemini/" in url
    headers = {
        "Content-Type": "application/json",
        "api-key": f"{lm_key}",
    }
    data = {
        "contents": [
            {
                "role": "user",
                "parts": [{"text": "Hello World"}]
            }
        ]
    }
    response = requests.post(url, headers=headers, json=data)
    print(response.json())
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["candidates"][0]["content"]["role"] == "model"
    assert 'you said "Hello World"' in out["candidates"][0]["content"]["parts"][0]["text"]
    assert out["candidates"][0]["finishReason"] == "STOP" and out["usageMetadata"]["totalTokenCount"] > 0
    assert sent_to(sim, gw, "gemini-1.5-pro")
    assert float(response.headers["x-lmgate-cost"]) > 0


def test_gemini_image_requests(gw: RunningGateway, sim, in_samples) -> None:  # type: ignore[no-untyped-def]
    need_surface("gemini")
    sim.clear()

    def encode_image(image_path):  # type: ignore[no-untyped-def]
        with open(image_path, "rb") as image_file:
            return base64.b64encode(image_file.read()).decode('utf-8')

    base64_image = encode_image("sample.png")
    lm_key = LM_KEY
    LLM_Gateway_SERVER_URL = base(gw) + '/proxy/api/v1/'
    model_name = 'gemini-1.5-pro'
    url = f"{LLM_Gateway_SERVER_URL}/proxy/api/v1/gemini/models/{model_name}:generateContent"
    headers = {
        "Content-Type": "application/json",
        "api-key": f"{lm_key}",
    }
    content = base64_image  # 004 writes `"data": content` without defining it
    data = {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {
                        "inlineData": {
                            "mimeType": "image/jpg",  # as written in 004 (not a registered type; image/jpeg is)
                            "data": content
                        }
                    },
                    {
                        "text": "What's in this image?"
                    }
                ]
            }
        ]}
    response = requests.post(url, headers=headers, json=data)
    print(response.json())
    assert response.status_code == 200, response.text
    assert "I received 1 image." in response.json()["candidates"][0]["content"]["parts"][0]["text"]
    assert base64_image in json.dumps(sent_to(sim, gw, "gemini-1.5-pro")["body"])


# ---------------------------------------------------------------- Bedrock


def test_bedrock_anthropic_requests(gw: RunningGateway, sim) -> None:  # type: ignore[no-untyped-def]
    need_surface("bedrock")
    sim.clear()
    LLM_Gateway_SERVER_URL = base(gw) + '/proxy/api/v1/'
    lm_key = LM_KEY
    modelId = "anthropic.claude-3-haiku-20240307-v1:0"
    headers = {
        "api-key": f"{lm_key}",
    }
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 512,
        "messages": [
            {
                "role": "user",
                "content": "say my name bot."
            }
        ]
    }
    response = requests.post(
        f"{LLM_Gateway_SERVER_URL}/bedrock/v1/messages/anthropic?modelId={modelId}",
        headers=headers,
        json=body
    )
    assert response.status_code == 200, f"Error: API call failed with status code {response.status_code}, {response.text}"
    data = response.json()
    print(data)
    assert data["type"] == "message" and data["role"] == "assistant" and data["stop_reason"] == "end_turn"
    assert 'you said "say my name bot."' in data["content"][0]["text"]
    assert data["usage"]["input_tokens"] > 0 and data["usage"]["output_tokens"] > 0
    if gw.kind == "native":  # an Anthropic body to an Anthropic model on Bedrock: InvokeModel, body as sent
        assert sim.requests("/model/anthropic.claude-3-haiku-20240307-v1:0/invoke")[-1]["body"] == body  # type: ignore[attr-defined]
    else:
        sent = sent_to(sim, gw, modelId)["body"]
        assert sent["max_tokens"] == 512 and sent["messages"][-1]["content"] == "say my name bot."


def test_bedrock_llama_requests(gw: RunningGateway, sim) -> None:  # type: ignore[no-untyped-def]
    need_surface("bedrock")
    sim.clear()
    LLM_Gateway_SERVER_URL = base(gw) + '/proxy/api/v1/'
    lm_key = LM_KEY
    modelId = "meta.llama3-1-8b-instruct-v1:0"
    headers = {
        "api-key": f"{lm_key}",
    }
    body = {
        'messages': [{'role': 'user', 'content': [{'text': 'Hello World'}]}],
        'inferenceConfig': {'maxTokens': 512, 'temperature': 0.5, 'topP': 0.9},
        'system': [{'text': 'This is a valid system text'}],
    }
    response = requests.post(
        f"{LLM_Gateway_SERVER_URL}/bedrock/v1/messages/llama?modelId={modelId}",
        headers=headers,
        json=body
    )
    assert response.status_code == 200, f"Error: API call failed with status code {response.status_code} , {response.text}"
    data = response.json()
    print(data)
    assert 'you said "Hello World"' in data["output"]["message"]["content"][0]["text"]
    assert data["stopReason"] == "end_turn" and data["usage"]["totalTokens"] > 0
    sent = sent_to(sim, gw, modelId)["body"]
    if gw.kind == "native":
        assert sent == body
    else:  # Gemini: systemInstruction and generationConfig
        assert sent["systemInstruction"]["parts"][0]["text"] == "This is a valid system text"
        assert sent["generationConfig"]["maxOutputTokens"] == 512 and sent["generationConfig"]["topP"] == 0.9


def _nova(gw: RunningGateway, modelId: str, content: list[dict[str, Any]], headers: Any = None):  # type: ignore[no-untyped-def]
    """004's Nova snippets share everything but the content list (and the Video one's headers)."""
    LLM_Gateway_SERVER_URL = base(gw) + '/proxy/api/v1/'
    lm_key = LM_KEY
    body = json.dumps(
        {
            "messages": [
                {
                    "role": "user",
                    "content": content,
                }
            ],
            "inferenceConfig": {"maxTokens": 512, "temperature": 0.5, "topP": 0.9},
            "system": [{"text": "This is a valid system text "}],
        }
    )
    headers = {"api-key": lm_key} if headers is None else headers
    return requests.post(
        f"{LLM_Gateway_SERVER_URL}/bedrock/v1/messages/nova?modelId={modelId}",
        headers=headers,
        json=json.loads(body),
    )


def test_bedrock_nova_text(gw: RunningGateway, sim) -> None:  # type: ignore[no-untyped-def]
    need_surface("bedrock")
    sim.clear()
    response = _nova(gw, "us.amazon.nova-lite-v1:0", [{"text": "Hello World"}])
    assert response.status_code == 200, response.text
    data = response.json()
    print(data)
    assert 'you said "Hello World"' in data["output"]["message"]["content"][0]["text"]
    assert sent_to(sim, gw, "us.amazon.nova-lite-v1:0")


def test_bedrock_nova_multimodal_image(gw: RunningGateway, sim, in_samples) -> None:  # type: ignore[no-untyped-def]
    need_surface("bedrock")
    sim.clear()
    IMAGE_NAME = "sample.png"
    with open(IMAGE_NAME, "rb") as f:
        image = f.read()
    encoded_image = base64.b64encode(image).decode("utf-8")
    user_message = "what in this image describe the image also."
    response = _nova(gw, "us.amazon.nova-lite-v1:0", [
        {"text": user_message},
        {"image": {"format": "png", "source": {"bytes": encoded_image}}},
    ])
    assert response.status_code == 200, response.text
    print(response.json())
    assert "I received 1 image." in response.json()["output"]["message"]["content"][0]["text"]
    assert encoded_image in json.dumps(sent_to(sim, gw, "us.amazon.nova-lite-v1:0")["body"])


def test_bedrock_nova_document_pdf(gw: RunningGateway, sim, in_samples) -> None:  # type: ignore[no-untyped-def]
    need_surface("bedrock")
    sim.clear()
    Docs_NAME = "sample.pdf"
    with open(Docs_NAME, "rb") as file:
        doc_bytes = file.read()
    encoded_docs = base64.b64encode(doc_bytes).decode("utf-8")
    user_message = "tell me the title of the document"
    response = _nova(gw, "us.amazon.nova-pro-v1:0", [
        {
            "document": {
                "format": "pdf",
                "name": "DocumentPDFmessages",
                "source": {"bytes": encoded_docs},
            }
        },
        {"text": user_message},
    ])
    assert response.status_code == 200, response.text
    print(response.json())
    assert "I received 1 document." in response.json()["output"]["message"]["content"][0]["text"]
    assert encoded_docs in json.dumps(sent_to(sim, gw, "us.amazon.nova-pro-v1:0")["body"])


def test_bedrock_nova_video_tuple_headers_fail_in_requests(gw: RunningGateway, in_samples) -> None:
    """004's Video snippet passes `headers = ({"api-key": lm_key},)`: requests refuses the tuple
    (it calls `.items()` on it) before opening a connection, so the snippet cannot run as printed."""
    need_surface("bedrock")
    headers = ({"api-key": LM_KEY},)
    assert isinstance(headers, tuple)
    with pytest.raises(AttributeError, match="items"):
        _nova(gw, "us.amazon.nova-pro-v1:0", [{"text": "what in this video."}], headers=headers)


def test_bedrock_nova_video(gw: RunningGateway, sim, in_samples) -> None:  # type: ignore[no-untyped-def]
    """The Video snippet with the header dict it means."""
    need_surface("bedrock")
    sim.clear()
    Video_Name = "sample.mp4"
    with open(Video_Name, "rb") as video:
        video_bytes = video.read()
    assert iso_boxes(video_bytes) == [b"ftyp", b"moov", b"mdat"]
    encoded_video = base64.b64encode(video_bytes).decode("utf-8")
    user_message = "what in this video."
    response = _nova(gw, "us.amazon.nova-pro-v1:0", [
        {"text": user_message},
        {"video": {"format": "mp4", "source": {"bytes": encoded_video}}},
    ])
    assert response.status_code == 200, response.text
    print(response.json())
    assert "I received 1 video." in response.json()["output"]["message"]["content"][0]["text"]
    assert encoded_video in json.dumps(sent_to(sim, gw, "us.amazon.nova-pro-v1:0")["body"])


# ---------------------------------------------------------------- KEY/{userdata}: per-request options and tenant fields


def plain_userdata_key() -> str:
    lm_key = LM_KEY
    userdata = {
        "is_cache": 0,
        "use_guard": 2,
        "app_name": "DSPY",
    }
    User_LM_Key = f"{lm_key}/{userdata}"
    assert User_LM_Key == LM_KEY + "/{'is_cache': 0, 'use_guard': 2, 'app_name': 'DSPY'}"
    return User_LM_Key


TENANT_FIELDS = {
    "Bot_Id": "cf72e8b-ef5b-4c7f-9792-685e7100a94f", "Query_Id": "24", "word_count_sent": 50, "word_count_received": 100,
    "toxicity": "Toxic", "sentiment": "Positive", "userid": "100", "is_system": False,
}


def tenant_userdata_key() -> str:
    lm_key = LM_KEY
    userdata = {
        "is_cache": 0,
        "use_guard": 0,
        "Bot_Id": "cf72e8b-ef5b-4c7f-9792-685e7100a94f",
        "Query_Id": "24",
        "word_count_sent": 50,
        "word_count_received": 100,
        "toxicity": "Toxic",
        "sentiment": "Positive",
        "app_name": "DSPY",  # use only when the app is DSPY
        "userid": "100",
        "is_system": False
    }
    Tenent_LM_Key = f"{lm_key}/{userdata}"
    assert "'is_system': False}" in Tenent_LM_Key  # Python's rendering, not JSON
    return Tenent_LM_Key


def test_user_key_options_reach_the_usage_record_through_the_azure_sdk(gw: RunningGateway) -> None:
    need_surface("azure")
    client = AzureOpenAI(azure_endpoint=base(gw) + '/proxy/api/v1/azure', api_version="2024-02-15-preview", api_key=plain_userdata_key())
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", temperature=0.7, messages=[{"role": "user", "content": "Hello World"}])
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-lmgate-cache"] == "off"  # is_cache 0
    rec = record(gw, raw.headers["x-request-id"])
    assert rec.key_name == "kadal" and rec.status == 200 and rec.surface == "azure"
    assert rec.app_name == "DSPY" and rec.options == {"is_cache": 0, "use_guard": 2}
    assert rec.metadata == {}


def test_tenant_key_fields_reach_the_usage_record_through_the_azure_sdk(gw: RunningGateway) -> None:
    need_surface("azure")
    client = AzureOpenAI(azure_endpoint=base(gw) + '/proxy/api/v1/azure', api_version="2024-02-15-preview", api_key=tenant_userdata_key())
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", temperature=0.7, messages=[{"role": "user", "content": "Hello World"}])
    rec = record(gw, raw.headers["x-request-id"])
    assert rec.app_name == "DSPY" and rec.options == {"is_cache": 0, "use_guard": 0}
    assert rec.metadata == TENANT_FIELDS
    assert rec.input_tokens > 0 and rec.cost_usd > 0


def test_tenant_key_on_the_gemini_and_bedrock_snippets(gw: RunningGateway) -> None:
    need_surface("gemini")
    need_surface("bedrock")
    key = tenant_userdata_key()
    LLM_Gateway_SERVER_URL = base(gw) + '/proxy/api/v1/'
    r = requests.post(f"{LLM_Gateway_SERVER_URL}/proxy/api/v1/gemini/models/gemini-1.5-pro:generateContent",
                      headers={"Content-Type": "application/json", "api-key": f"{key}"},
                      json={"contents": [{"role": "user", "parts": [{"text": "Hello World"}]}]})
    assert r.status_code == 200, r.text
    rec = record(gw, r.headers["x-request-id"])
    assert rec.surface == "gemini" and rec.metadata == TENANT_FIELDS and rec.app_name == "DSPY"
    r = requests.post(f"{LLM_Gateway_SERVER_URL}/bedrock/v1/messages/nova?modelId=us.amazon.nova-lite-v1:0", headers={"api-key": key},
                      json={"messages": [{"role": "user", "content": [{"text": "Hello World"}]}], "inferenceConfig": {"maxTokens": 512}})
    assert r.status_code == 200, r.text
    rec = record(gw, r.headers["x-request-id"])
    assert rec.surface == "bedrock" and rec.metadata == TENANT_FIELDS and rec.options == {"is_cache": 0, "use_guard": 0}


def test_user_key_on_the_curl_line(gw: RunningGateway) -> None:
    need_surface("azure")
    url = base(gw) + "/proxy/api/v1/azure/openai/deployments/gpt-4o/chat/completions?api-version=2024-02-15-preview"
    out = subprocess.run(
        ["curl", "--location", url, "--header", "Content-Type: application/json", "--header", f"api-key: {plain_userdata_key()}",
         "--data", '{"model":"gpt-4o",\n"temperature":0.7,\n"messages":[\n{"role": "user", "content": "Hello World"}\n]}',
         "--silent", "--show-error", "--dump-header", "-", "--output", "/dev/null"],
        capture_output=True, text=True, timeout=30,
    )
    assert out.returncode == 0, out.stderr
    headers = dict(line.split(": ", 1) for line in out.stdout.replace("\r\n", "\n").splitlines()[1:] if ": " in line)
    headers = {k.lower(): v for k, v in headers.items()}
    assert out.stdout.startswith("HTTP/1.1 200")
    rec = record(gw, headers["x-request-id"])
    assert rec.app_name == "DSPY" and rec.options == {"is_cache": 0, "use_guard": 2}


# ---------------------------------------------------------------- 004's "Responses" table


@pytest.mark.parametrize("case,status", [
    ("ok", 200), ("bad-body", 400), ("no-key", 401), ("wrong-key", 401), ("model-not-allowed", 403),
    ("unknown-deployment", 404), ("wrong-type", 422),
], ids=lambda v: str(v))
def test_responses_table_status_codes(gw: RunningGateway, case: str, status: int) -> None:
    """The Azure `requests` snippet, varied to meet each row of 004's status table; every answer is JSON."""
    need_surface("azure")
    azure_endpoint = base(gw) + '/proxy/api/v1/azure'
    deployment, key = "gpt-4", LM_KEY
    body: Any = {'messages': [{'role': 'user', 'content': 'Hello! How can I improve my productivity?'}], 'model': 'gpt-4', 'temperature': 0.7}
    headers = {'Content-Type': 'application/json', 'api-key': key}
    if case == "bad-body":
        body = "{not json"
    elif case == "no-key":
        del headers['api-key']
    elif case == "wrong-key":
        headers['api-key'] = "lm-key-that-does-not-exist"
    elif case == "model-not-allowed":
        headers['api-key'] = LIMITED_KEY
    elif case == "unknown-deployment":
        deployment = "gpt-9-does-not-exist"
    elif case == "wrong-type":
        body['temperature'] = "warm"
    url = f'{azure_endpoint}/openai/deployments/{deployment}/chat/completions?api-version=2024-02-15-preview'
    if isinstance(body, str):
        response = requests.post(url, headers=headers, data=body)
    else:
        response = requests.post(url, headers=headers, json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    if status != 200:
        assert set(response.json()) == {"error"} and response.json()["error"]["message"]
