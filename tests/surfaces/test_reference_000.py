"""The flows of reference 000 (a notebook against an OpenAI-compatible service) against lmgate,
with only the base URL and key changed: models list, chat, the concurrent batch runner."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor, as_completed

import pytest
import requests

from lmgate.cli import main as lmgate_main
from lmgate.policy.accounting import MemoryLedger
from lmgate.testing import start_gateway

API_KEY = "kvant-style-key-0001"
FORCED_MODEL = "inference-gemma-12b-it"

CONFIG = """
providers:
  kvant: {{type: openai, base_url: "{sim}/v1", api_key: sim}}
models:
  - name: inference-gemma-12b-it
    deployments: [{{provider: kvant, model: infer-gemma-3-12b-it, merge_roles: true}}]
  - name: inference-llama33-70b
    deployments: [{{provider: kvant, model: llama33-70b}}]
  - name: inference-bge-m3
    deployments: [{{provider: kvant, model: bge-m3}}]
keys:
  - {{key: {key}, name: notebook}}
"""


@pytest.fixture(scope="module")
def gw(sim):  # type: ignore[no-untyped-def]
    ledger = MemoryLedger()
    g = start_gateway(CONFIG.format(sim=sim.base_url, key=API_KEY), ledger=ledger)
    g.ledger = ledger  # type: ignore[attr-defined]
    yield g
    g.stop()


def test_models_list(gw):  # type: ignore[no-untyped-def]
    url = gw.base_url + "/v1/models"
    headers = {"Authorization": f"Bearer {API_KEY}"}
    response = requests.get(url, headers=headers)
    assert response.status_code == 200
    data = response.json()
    assert {m["id"] for m in data["data"]} == {"inference-gemma-12b-it", "inference-llama33-70b", "inference-bge-m3"}
    assert all(m["object"] == "model" for m in data["data"])


def test_chat_complete(gw):  # type: ignore[no-untyped-def]
    url = gw.base_url + "/v1/chat/completions"
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"}
    payload = {"model": "inference-gemma-12b-it", "messages": [{"role": "user", "content": "Hello!"}], "temperature": 0.7}
    response = requests.post(url, headers=headers, json=payload, timeout=300)
    assert response.status_code == 200
    data = response.json()
    assert data["object"] == "chat.completion" and data["choices"][0]["finish_reason"] == "stop"
    assert data["usage"]["total_tokens"] == data["usage"]["prompt_tokens"] + data["usage"]["completion_tokens"]
    assert "estimated_cost" in data["usage"]


def _write_requests(folder) -> None:  # type: ignore[no-untyped-def]
    """Request files like 000's sample_requests: consecutive user turns with part lists, image URLs."""
    for i in range(12):
        payload = {
            "max_tokens": 4000,
            "model": "whatever-the-file-says",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": f"You are a helpful assistant #{i}. 표를 분석하세요."}]},
                {"role": "user", "content": [{"type": "text", "text": "Here is an image of a table."}]},
            ],
        }
        (folder / f"req_{i:02}.json").write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")


def test_concurrent_batch_runner_reads_estimated_cost(gw, tmp_path):  # type: ignore[no-untyped-def]
    """000's runner, nearly verbatim: 8 threads, its own role merging, usage.estimated_cost read."""
    _write_requests(tmp_path)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"}

    def send_request(fname: str) -> dict:
        with open(os.path.join(tmp_path, fname), "r", encoding="utf-8") as f:
            payload = json.load(f)
        replacement_messages = []
        for message in payload["messages"]:
            if len(replacement_messages) == 0 or message["role"] != replacement_messages[-1]["role"]:
                replacement_messages.append(message)
            else:
                replacement_messages[-1]["content"].extend(message["content"])
        payload["messages"] = replacement_messages
        payload["model"] = FORCED_MODEL
        resp = requests.post(gw.base_url + "/v1/chat/completions", headers=headers, json=payload, timeout=120)
        resp.raise_for_status()
        data = resp.json()
        usage = data.get("usage", {})
        return {"file": fname, "status": resp.status_code, "total_tokens": usage.get("total_tokens"), "estimated_cost": usage.get("estimated_cost")}

    json_files = [f for f in os.listdir(tmp_path) if f.endswith(".json")]
    records = []
    with ThreadPoolExecutor(max_workers=8) as executor:
        futures = {executor.submit(send_request, fname): fname for fname in json_files}
        for future in as_completed(futures):
            records.append(future.result())
    assert len(records) == 12
    assert all(r["status"] == 200 and r["total_tokens"] > 0 and r["estimated_cost"] is not None for r in records)


def test_gateway_merges_roles_so_clients_need_not(gw, sim, tmp_path):  # type: ignore[no-untyped-def]
    """The same files without the client-side merge: the deployment's merge_roles does it."""
    _write_requests(tmp_path)
    sim.clear()
    payload = json.loads((tmp_path / "req_00.json").read_text(encoding="utf-8"))
    payload["model"] = FORCED_MODEL
    r = requests.post(gw.base_url + "/v1/chat/completions", json=payload, headers={"Authorization": f"Bearer {API_KEY}"})
    assert r.status_code == 200, r.text
    sent = sim.requests("/chat/completions")[-1]["body"]
    assert [m["role"] for m in sent["messages"]] == ["user"]
    assert len(sent["messages"][0]["content"]) == 2


def test_lmgate_batch_command(gw, tmp_path, capsys):  # type: ignore[no-untyped-def]
    _write_requests(tmp_path)
    out = tmp_path / "results.csv"
    code = lmgate_main(
        ["batch", "--dir", str(tmp_path), "--base-url", gw.base_url + "/v1", "--key", API_KEY, "--model", FORCED_MODEL, "--workers", "4", "--format", "csv", "--out", str(out)]
    )
    assert code == 0
    lines = out.read_text().splitlines()
    assert lines[0].startswith("file,status,prompt_tokens")
    assert len(lines) == 13 and all(",200," in line for line in lines[1:])
    code = lmgate_main(["batch", "--dir", str(tmp_path), "--base-url", gw.base_url + "/v1", "--key", "wrong-key-1234"])
    assert code == 1
    assert "0/12 succeeded" in capsys.readouterr().out
