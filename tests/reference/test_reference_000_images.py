"""Reference 000 (a notebook against an OpenAI-compatible model service), the examples that
tests/surfaces/test_reference_000.py does not already run: the sourdough chat (In [4]), the image
URL payloads of In [35] (three commented out, one sent), and the batch runner of In [45] over
request files shaped like In [35]'s payload (a system turn, user turns split in two, image URLs).

The In [35] payload is kept verbatim in data/000_in35_payload.json (taken from the document).

Two gateways: "native" serves the notebook's models from an OpenAI-compatible upstream, which
takes image URLs itself: lmgate only checks them (no loopback, private or metadata address) and
passes them on, so the document's own https URLs are sent as written. "crossed" serves them from a
Gemini deployment, which needs bytes: lmgate fetches each image. Those fetches go to a local image
server (127.0.0.1, allowlisted in `media: {allow_hosts}`), so in the crossed runs the URLs' scheme
and host are swapped for the local server's; their paths are kept.
"""

from __future__ import annotations

import copy
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
from conformance_kit import sample_png

from lmgate.testing import RunningGateway, start_gateway

API_KEY_VALUE = "kvant-style-key-000-images"
PAYLOAD = json.loads((Path(__file__).parent / "data" / "000_in35_payload.json").read_text(encoding="utf-8"))
DOC_HOSTS = ("https://upload.eyelevel.ai", "https://hips.hearstapps.com")
DOG = "https://hips.hearstapps.com/hmg-prod/images/dog-puppy-on-garden-royalty-free-image-1586966191.jpg?crop=1xw:0.74975xh;0,0.190xh"
TABLE = "https://upload.eyelevel.ai/layout/raw/prod/984de5a7-3db6-409d-b35a-199240d2442e/419d0b7a-b1c1-45e8-bbc3-a14e8263d0a0/table-3-{n}.jpg"

CONFIG = """
providers:
  kvant: {{type: openai, base_url: "{sim}/v1", api_key: sim-upstream-key}}
  gem: {{type: gemini, base_url: "{sim}", api_key: sim-upstream-key}}
models:
  - name: inference-gemma-12b-it
    deployments: [{{provider: {provider}, model: {model}}}]
keys:
  - {{key: {key}, name: notebook}}
router: {{retries: 0, backoff_s: 0}}
media: {{allow_hosts: ["127.0.0.1"]}}
"""
DEPLOYMENT = {"native": ("kvant", "infer-gemma-3-12b-it"), "crossed": ("gem", "gemini-2.5-flash")}


class _Images(BaseHTTPRequestHandler):
    """Any path answers a small PNG (the stand-in for the document's image hosts)."""

    def do_GET(self) -> None:  # noqa: N802
        body = sample_png(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def image_host() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Images)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module", params=["native", "crossed"])
def gw(request, sim) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    provider, model = DEPLOYMENT[request.param]
    g = start_gateway(CONFIG.format(sim=sim.base_url, provider=provider, model=model, key=API_KEY_VALUE), steps=[])
    g.kind = request.param  # type: ignore[attr-defined]
    yield g
    g.stop()


@pytest.fixture
def env(monkeypatch):  # type: ignore[no-untyped-def]
    """`load_dotenv()` put KVANT_API_KEY in the environment (python-dotenv is not installed here)."""
    monkeypatch.setenv("KVANT_API_KEY", API_KEY_VALUE)


def localize(payload: Any, gw: RunningGateway, image_host: str) -> Any:
    """For the crossed gateway, the document's image hosts become the local image server."""
    if gw.kind == "native":  # type: ignore[attr-defined]
        return payload
    text = json.dumps(payload, ensure_ascii=False)
    for host in DOC_HOSTS:
        text = text.replace(host, image_host)
    return json.loads(text)


def upstream_images(sim, gw: RunningGateway) -> list[str]:  # type: ignore[no-untyped-def]
    """What the upstream got for each image: the URL (OpenAI protocol) or the MIME type of the bytes (Gemini)."""
    if gw.kind == "native":  # type: ignore[attr-defined]
        body = sim.requests("/v1/chat/completions")[-1]["body"]
        return [p["image_url"]["url"] for m in body["messages"] if isinstance(m["content"], list) for p in m["content"] if p["type"] == "image_url"]
    body = sim.requests("/v1beta/models/gemini-2.5-flash:generateContent")[-1]["body"]
    return [p["inlineData"]["mimeType"] for c in body["contents"] for p in c["parts"] if "inlineData" in p]


def post(gw: RunningGateway, payload: dict[str, Any]) -> requests.Response:
    """The notebook's cell body with its URL's host swapped for the gateway."""
    API_KEY = os.getenv("KVANT_API_KEY")
    if not API_KEY:
        raise ValueError("KVANT_API_KEY not found in .env")
    url = gw.base_url + "/v1/chat/completions"
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {API_KEY}",
    }
    response = requests.post(url, headers=headers, json=payload, timeout=300)
    print("Status Code:", response.status_code)
    try:
        data = response.json()
        print(json.dumps(data, indent=2))
    except ValueError:
        print(response.text)
    return response


def test_in4_sourdough_chat(gw: RunningGateway, env) -> None:  # type: ignore[no-untyped-def]
    payload = {
        "model": "inference-gemma-12b-it",
        "messages": [
            {"role": "user", "content": "How do I make sourdough bread?"}
        ],
        "temperature": 0.7,
    }
    response = post(gw, payload)
    assert response.status_code == 200
    data = response.json()
    assert data["object"] == "chat.completion" and data["choices"][0]["finish_reason"] == "stop"
    assert 'you said "How do I make sourdough bread?"' in data["choices"][0]["message"]["content"]
    assert "estimated_cost" in data["usage"]


def test_in35_commented_payload_url_in_the_text(gw: RunningGateway, sim, env) -> None:  # type: ignore[no-untyped-def]
    """The first commented-out payload: the image URL inside the prompt text (no image part)."""
    payload = {
        "model": "inference-gemma-12b-it",
        "messages": [
            {
                "role": "user",
                "content": "Can you describe this image please? This image is shared here. " + TABLE.format(n=0),
            }
        ],
        "temperature": 0.7,
    }
    sim.clear()
    response = post(gw, payload)
    assert response.status_code == 200, response.text
    assert upstream_images(sim, gw) == []  # text stays text: nothing is fetched
    assert TABLE.format(n=0) in json.dumps(sim.requests()[-1]["body"])


@pytest.mark.parametrize("text,image", [
    ("Describe this image " + DOG, TABLE.format(n=1)),  # the second commented-out payload
    ("Describe this image, " + DOG, DOG),  # the third: the dog URL with its query (crop=...;...)
], ids=["table-3-1", "dog-with-query"])
def test_in35_commented_payloads_text_and_image_url(gw: RunningGateway, sim, env, image_host, text: str, image: str) -> None:  # type: ignore[no-untyped-def]
    payload = localize({
        "model": "inference-gemma-12b-it",
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": text,
                    },
                    {
                        "type": "image_url",
                        "image_url": {
                            "url": image,
                        },
                    },
                ],
            }
        ],
        "temperature": 0.7,
    }, gw, image_host)
    sim.clear()
    response = post(gw, payload)
    assert response.status_code == 200, response.text
    assert "I received 1 image." in response.json()["choices"][0]["message"]["content"]
    sent = upstream_images(sim, gw)
    assert sent == ([image] if gw.kind == "native" else ["image/png"])  # type: ignore[attr-defined]


def test_in35_sent_payload_system_text_and_two_image_urls(gw: RunningGateway, sim, env, image_host) -> None:  # type: ignore[no-untyped-def]
    payload = localize(copy.deepcopy(PAYLOAD), gw, image_host)
    sim.clear()
    response = post(gw, payload)
    assert response.status_code == 200, response.text
    data = response.json()
    assert "I received 2 images." in data["choices"][0]["message"]["content"]
    assert data["usage"]["prompt_tokens"] > 1000  # the long Korean page text and instructions all count
    sent = upstream_images(sim, gw)
    urls = [p["image_url"]["url"] for p in PAYLOAD["messages"][1]["content"] if p["type"] == "image_url"]
    assert sent == (urls if gw.kind == "native" else ["image/png", "image/png"])  # type: ignore[attr-defined]


def _write_request_files(folder: Path, n: int = 10) -> None:
    """sample_requests/*.json as In [45] reads them: In [35]'s turns with the user turn split in two
    consecutive user turns (which the runner merges), and max_tokens 4000 as its printout shows."""
    folder.mkdir()
    for i in range(n):
        system, user = copy.deepcopy(PAYLOAD["messages"])
        parts = user["content"]
        payload = {
            "max_tokens": 4000,
            "messages": [system, {"content": parts[:2], "role": "user"}, {"content": parts[2:], "role": "user"}],
            "model": "the-file's-own-model",
            "temperature": 0.7,
        }
        payload["messages"][1]["content"][0]["text"] += f" (page {i})"
        (folder / f"request_{i:03}.json").write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")


def test_in45_concurrent_batch_runner_with_image_urls(gw: RunningGateway, sim, env, image_host, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _write_request_files(tmp_path / "sample_requests")
    if gw.kind == "crossed":  # type: ignore[attr-defined]
        for f in (tmp_path / "sample_requests").iterdir():
            f.write_text(json.dumps(localize(json.loads(f.read_text(encoding="utf-8")), gw, image_host), ensure_ascii=False), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    sim.clear()

    API_KEY = os.getenv("KVANT_API_KEY")
    REQUESTS_DIR = "sample_requests"
    FORCED_MODEL = "inference-gemma-12b-it"
    MAX_WORKERS = 8
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {API_KEY}",
    }

    def send_request(fname: str):  # type: ignore[no-untyped-def]
        """Send a single request and return usage/cost info."""
        path = os.path.join(REQUESTS_DIR, fname)
        with open(path, "r", encoding="utf-8") as f:
            payload = json.load(f)
        replacement_messages = []
        for message in payload['messages']:
            if len(replacement_messages) == 0 or message['role'] != replacement_messages[-1]['role']:
                replacement_messages.append(message)
            else:
                replacement_messages[-1]['content'].extend(message['content'])
        payload['messages'] = replacement_messages
        payload["model"] = FORCED_MODEL
        start = time.perf_counter()
        resp = requests.post(gw.base_url + "/v1/chat/completions", headers=headers, json=payload, timeout=120)
        latency = time.perf_counter() - start
        resp.raise_for_status()
        data = resp.json()
        usage = data.get("usage", {})
        content = ""
        if "choices" in data and data["choices"]:
            content = data["choices"][0]["message"].get("content", "")[:200]
        return {
            "file": fname,
            "status": resp.status_code,
            "prompt_tokens": usage.get("prompt_tokens"),
            "completion_tokens": usage.get("completion_tokens"),
            "total_tokens": usage.get("total_tokens"),
            "estimated_cost": usage.get("estimated_cost"),
            "latency_sec": round(latency, 3),
            "response_preview": content,
        }

    json_files = [f for f in os.listdir(REQUESTS_DIR) if f.endswith(".json")]
    records = []
    with ThreadPoolExecutor(max_workers=MAX_WORKERS) as executor:
        futures = {executor.submit(send_request, fname): fname for fname in json_files}
        for future in as_completed(futures):
            result = future.result()
            records.append(result)
            print(f"Finished {result['file']} -> {result['status']} ({result['latency_sec']}s)")
    assert len(records) == 10
    assert all(r["status"] == 200 and r["prompt_tokens"] > 1000 and r["completion_tokens"] > 0 for r in records)
    assert all(r["estimated_cost"] is not None for r in records)  # 000 reads it; 0.0 for a model priced at 0
    assert all("I received 2 images." in r["response_preview"] for r in records)
    sent = sim.requests("/v1/chat/completions" if gw.kind == "native" else ":generateContent")  # type: ignore[attr-defined]
    assert len(sent) == 10
