"""Shutdown and restart: `lmgate serve` in a subprocess gets SIGTERM under load and drains its
ledger; spend and keys come back from the database after a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

from lmgate.app import gateway_with_store
from lmgate.config import load_config
from lmgate.store.store import Store
from lmgate.testing import free_port

from store_kit import MASTER, serve, store_config

KEY = "sk-sigterm-load-key"


def start_server(cfg: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lmgate", "serve", "--config", str(cfg), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else "exited"
        try:
            if requests.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200:
                return proc
        except requests.RequestException:
            pass
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("lmgate serve did not become ready")


def test_sigterm_under_load_then_restart_keeps_exactly_one_record_per_answer(tmp_path: Path, sim: Any) -> None:
    db = tmp_path / "load.db"
    cfg = tmp_path / "load.yaml"
    # a large batch and a long interval: only the shutdown drain can write most records
    cfg.write_text(store_config(f"sqlite:///{db}", sim.base_url, f"keys:\n  - {{key: {KEY}, name: load}}").replace(
        "ledger: {flush_interval_s: 0.05}", "ledger: {flush_interval_s: 30, batch_size: 5000}"
    ))
    port = free_port()
    proc = start_server(cfg, port)
    base = f"http://127.0.0.1:{port}"
    answered: list[str] = []
    other: list[int] = []
    stop = threading.Event()

    def client() -> None:
        session = requests.Session()
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "[[sim: delay_ms=40]] hello"}]}
        while not stop.is_set():
            try:
                r = session.post(f"{base}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}", "x-lmgate-cache": "0"}, timeout=30)
            except requests.RequestException:
                if proc.poll() is not None:
                    return
                continue
            if r.status_code == 200:
                answered.append(r.headers["x-request-id"])
            else:
                other.append(r.status_code)

    threads = [threading.Thread(target=client) for _ in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(answered) < 40 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)  # requests are in flight now
    try:
        code = proc.wait(60)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    log = proc.stdout.read().decode() if proc.stdout else ""
    # uvicorn shuts down gracefully (lifespan shutdown included), then re-raises the signal it caught
    assert code in (0, -signal.SIGTERM), log
    assert "Traceback" not in log, log
    assert len(answered) >= 40 and len(set(answered)) == len(answered)

    store = Store(f"sqlite:///{db}")
    rows = store.usage_records()
    ids = [r["request_id"] for r in rows]
    assert len(ids) == len(set(ids))
    assert set(answered) <= set(ids), f"{len(set(answered) - set(ids))} answered requests have no ledger record"
    assert all(r["status"] == 200 for r in rows if r["request_id"] in set(answered))
    assert store.spend_of("cfg-load") == sum(r["cost_usd"] for r in rows)  # spend table kept with the ledger
    store.close()

    # restart on the same file: it serves, and the next SIGTERM drains again
    proc = start_server(cfg, port)
    r = requests.post(f"{base}/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "again"}]},
                      headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    assert r.status_code == 200
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) in (0, -signal.SIGTERM)
    store = Store(f"sqlite:///{db}")
    assert len(store.usage_records([r.headers["x-request-id"]])) == 1
    assert len(store.usage_records()) == len(ids) + 1
    store.close()


def test_spend_and_keys_survive_a_restart(tmp_path: Path, sim: Any) -> None:
    cfg = tmp_path / "spend.yaml"
    cfg.write_text(store_config(f"sqlite:///{tmp_path}/spend.db", sim.base_url))
    admin = {"Authorization": f"Bearer {MASTER}"}
    body = {"model": "priced", "max_tokens": 10, "messages": [{"role": "user", "content": "hello"}]}

    gw = serve(gateway_with_store(load_config(cfg)))
    try:
        created = requests.post(f"{gw.base_url}/admin/keys", json={"name": "thrifty", "budget_usd": 0.03, "budget_period": "daily"}, headers=admin, timeout=10).json()
        headers = {"Authorization": f"Bearer {created['key']}"}
        codes = []
        while 429 not in codes and len(codes) < 100:
            one = {**body, "messages": [{"role": "user", "content": f"hello {len(codes)}"}]}  # no cache hits
            codes.append(requests.post(f"{gw.base_url}/v1/chat/completions", json=one, headers=headers, timeout=30).status_code)
        assert codes[0] == 200 and codes[-1] == 429
        spent = requests.get(f"{gw.base_url}/admin/keys/thrifty", headers=admin, timeout=10).json()["spend_usd"]
        assert spent >= 0.03
    finally:
        gw.stop()  # lifespan shutdown: the ledger (and its spend rows) drained

    again = serve(gateway_with_store(load_config(cfg)))
    try:
        r = requests.post(f"{again.base_url}/v1/chat/completions", json=body, headers=headers, timeout=30)
        assert r.status_code == 429 and r.json()["error"]["code"] == "insufficient_quota"
        assert "daily budget" in r.json()["error"]["message"] and int(r.headers["retry-after"]) > 0
        shown = requests.get(f"{again.base_url}/admin/keys/thrifty", headers=admin, timeout=10).json()
        assert shown["spend_usd"] == spent
    finally:
        again.stop()
