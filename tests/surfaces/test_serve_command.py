"""`lmgate serve` as users run it: a real process, its config, HTTPS, the simulator started beside it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import boto3
import pytest
import requests
from botocore.config import Config as BotoConfig

from lmgate.testing import free_port, self_signed_cert


def _serve(tmp_path, config: str) -> tuple[subprocess.Popen, int]:  # type: ignore[type-arg]
    path = tmp_path / "gw.yaml"
    path.write_text(config)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lmgate", "serve", "--config", str(path), "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    return proc, port


def _wait(url: str, proc: subprocess.Popen, **kw) -> None:  # type: ignore[type-arg,no-untyped-def]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read().decode())  # type: ignore[union-attr]
        try:
            if requests.get(url, timeout=1, **kw).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError("the gateway did not become ready")


def _stop(proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl makes the test certificate")
def test_https_serve_lets_boto3_use_a_bearer_key(tmp_path, monkeypatch):
    """botocore sends a Bedrock bearer token only over https: `server.ssl_*` makes that possible."""
    cert, key = self_signed_cert(tmp_path)
    sim_port = free_port()
    proc, port = _serve(
        tmp_path,
        f"""
database: sqlite:///{tmp_path}/gw.db
simulator: {{port: {sim_port}}}
server: {{ssl_certfile: "{cert}", ssl_keyfile: "{key}"}}
providers:
  sim: {{type: anthropic, base_url: "http://127.0.0.1:{sim_port}", api_key: sim-key}}
models:
  - name: claude-3-haiku
    deployments: [{{provider: sim, model: claude-3-haiku-20240307}}]
keys:
  - {{key: tls-test-key-123, name: t}}
""",
    )
    try:
        _wait(f"https://127.0.0.1:{port}/health/ready", proc, verify=False)
        monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "tls-test-key-123")
        client = boto3.client(
            "bedrock-runtime",
            endpoint_url=f"https://127.0.0.1:{port}",
            region_name="us-east-1",
            verify=False,
            config=BotoConfig(retries={"max_attempts": 1}),
        )
        answer = client.converse(modelId="claude-3-haiku", messages=[{"role": "user", "content": [{"text": "Hello"}]}])
        assert answer["output"]["message"]["content"][0]["text"]
        assert answer["usage"]["outputTokens"] > 0
    finally:
        _stop(proc)


def test_serve_refuses_a_bad_config_with_its_line(tmp_path):
    proc, _ = _serve(tmp_path, "providers:\n  p: {type: openai}\nmodels:\n  - name: m\n    deployments: [{provider: p, model: x}]\n    colour: blue\n")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert b"models[0].colour (line 6): unknown key" in out


def test_the_simulator_started_with_serve_ends_with_it(tmp_path):
    """uvicorn re-raises SIGTERM after its shutdown; the simulator child must not outlive it."""
    sim_port = free_port()
    proc, port = _serve(
        tmp_path,
        f"""
database: sqlite:///{tmp_path}/gw.db
simulator: {{port: {sim_port}}}
providers:
  sim: {{type: openai, base_url: "http://127.0.0.1:{sim_port}/v1", api_key: sim-key}}
models:
  - name: m
    deployments: [{{provider: sim, model: gpt-4o}}]
""",
    )
    _wait(f"http://127.0.0.1:{port}/health/ready", proc)
    assert requests.get(f"http://127.0.0.1:{sim_port}/_sim/health", timeout=2).status_code == 200
    _stop(proc)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{sim_port}/_sim/health", timeout=0.5)
        except requests.ConnectionError:
            return
        time.sleep(0.2)
    raise AssertionError("the simulator outlived the gateway")
