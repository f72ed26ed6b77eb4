"""`lmgate keys` and `lmgate usage` on the database file, also while a gateway serves from it:
its changes reach the running gateway within a second; no raw key is ever written to the file."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import requests

from lmgate.app import gateway_with_store
from lmgate.cli import main
from lmgate.config import load_config

from store_kit import MASTER, serve, store_config


def cli(capsys: Any, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def write_config(tmp_path: Path, sim_url: str, extra: str = "") -> tuple[Path, Path]:
    db = tmp_path / "gate.db"
    cfg = tmp_path / "gate.yaml"
    cfg.write_text(store_config(f"sqlite:///{db}", sim_url, extra))
    return cfg, db


def chat(base: str, key: str) -> requests.Response:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    return requests.post(f"{base}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def until_status(base: str, key: str, status: int, timeout: float = 5.0) -> float:
    """Seconds until the gateway answers `key` with `status` (the deadline is generous: shared CPUs)."""
    started = time.monotonic()
    while True:
        if chat(base, key).status_code == status:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, f"still not {status} after {timeout} s"
        time.sleep(0.02)


def test_keys_commands(tmp_path: Path, capsys: Any, sim: Any) -> None:
    cfg, _ = write_config(tmp_path, sim.base_url)
    c = str(cfg)
    code, out, _ = cli(capsys, "keys", "create", "--config", c, "--name", "alice", "--models", "gpt-4o,gpt-4o-mini", "--rpm", "60",
                       "--budget-usd", "5", "--budget-period", "monthly", "--cache", "0", "--guard", "2",
                       "--metadata", '{"team": "search"}', "--expires-at", "+30d", "--json")
    assert code == 0
    created = json.loads(out)
    assert created["key"].startswith("lmg-") and created["models"] == ["gpt-4o", "gpt-4o-mini"]
    assert (created["rpm"], created["budget_usd"], created["budget_period"], created["cache"], created["guard"]) == (60, 5.0, "monthly", False, 2)
    assert created["metadata"] == {"team": "search"} and created["expires_at"] is not None

    code, out, _ = cli(capsys, "keys", "create", "--config", c, "--name", "bob")
    assert code == 0 and out.startswith("key:  lmg-") and "shown once" in out
    code, out, _ = cli(capsys, "keys", "list", "--config", c)
    assert code == 0 and "alice" in out and "bob" in out and created["key"] not in out

    code, out, _ = cli(capsys, "keys", "update", "--config", c, "alice", "--rpm", "none", "--tpm", "1000", "--name", "alice2", "--json")
    assert code == 0 and (json.loads(out)["rpm"], json.loads(out)["tpm"], json.loads(out)["name"]) == (None, 1000, "alice2")
    code, out, _ = cli(capsys, "keys", "show", "--config", c, created["id"], "--json")
    assert json.loads(out)["spend_usd"] == 0.0 and json.loads(out)["name"] == "alice2"

    code, out, _ = cli(capsys, "keys", "revoke", "--config", c, "alice2")
    assert code == 0 and "revoked" in out
    code, out, _ = cli(capsys, "keys", "list", "--config", c, "--json")
    assert [k["name"] for k in json.loads(out)] == ["bob"]
    code, out, _ = cli(capsys, "keys", "list", "--config", c, "--all")
    assert "revoked" in out

    # bad input: the same checks as the admin API
    assert cli(capsys, "keys", "create", "--config", c, "--name", "bob")[2].strip() == "lmgate: a key named 'bob' already exists"
    code, _, err = cli(capsys, "keys", "create", "--config", c, "--name", "x", "--budget-usd", "-2")
    assert code == 1 and "'budget_usd'" in err
    code, _, err = cli(capsys, "keys", "show", "--config", c, "nobody")
    assert code == 1 and "no key" in err
    code, _, err = cli(capsys, "keys", "list")
    assert code == 2 and "--config" in err


def test_usage_command(tmp_path: Path, capsys: Any, sim: Any) -> None:
    cfg, _ = write_config(tmp_path, sim.base_url, "keys:\n  - {key: sk-cli-static-key, name: static}")
    gw = serve(gateway_with_store(load_config(cfg)))
    try:
        for _ in range(3):
            assert chat(gw.base_url, "sk-cli-static-key/{'app_name': 'bot'}").status_code == 200
        gw.app.ledger.flush()
    finally:
        gw.stop()
    code, out, _ = cli(capsys, "usage", "--config", str(cfg), "--group-by", "key,app", "--format", "json")
    rows = json.loads(out)["rows"]
    assert code == 0 and [(r["key"], r["app"], r["requests"]) for r in rows] == [("static", "bot", 3)]
    code, out, _ = cli(capsys, "usage", "--config", str(cfg), "--group-by", "model,day", "--format", "csv", "--since", "1d")
    assert out.splitlines()[0] == "model,day,requests,input_tokens,output_tokens,cost_usd,cache_hits,cache_saved_usd,guardrail_requests"
    assert len(out.splitlines()) == 2
    code, out, _ = cli(capsys, "usage", "--config", str(cfg), "--group-by", "key")
    assert code == 0 and "static" in out and "requests" in out.splitlines()[0]
    code, _, err = cli(capsys, "usage", "--config", str(cfg), "--since", "whenever")
    assert code == 1 and "since" in err


def test_cli_changes_reach_a_running_gateway_within_a_second(tmp_path: Path, capsys: Any, sim: Any) -> None:
    cfg, _ = write_config(tmp_path, sim.base_url)
    gw = serve(gateway_with_store(load_config(cfg)))
    try:
        code, out, _ = cli(capsys, "keys", "create", "--config", str(cfg), "--name", "late", "--json")
        raw = json.loads(out)["key"]
        appeared = until_status(gw.base_url, raw, 200)
        cli(capsys, "keys", "update", "--config", str(cfg), "late", "--models", "nothing-*")
        restricted = until_status(gw.base_url, raw, 403)
        cli(capsys, "keys", "revoke", "--config", str(cfg), "late")
        refused = until_status(gw.base_url, raw, 401)
        print(f"\nCLI change -> running gateway: created {appeared:.3f} s, updated {restricted:.3f} s, revoked {refused:.3f} s")
        assert chat(gw.base_url, raw).json()["error"]["code"] == "revoked_api_key"
    finally:
        gw.stop()


def test_no_raw_key_is_written_to_the_database_file(tmp_path: Path, capsys: Any, sim: Any) -> None:
    static = "sk-static-raw-key-0123456789"
    cfg, db = write_config(tmp_path, sim.base_url, f"keys:\n  - {{key: {static}, name: static}}")
    gw = serve(gateway_with_store(load_config(cfg)))
    raws = [static]
    try:
        r = requests.post(f"{gw.base_url}/admin/keys", json={"name": "api"}, headers={"Authorization": f"Bearer {MASTER}"}, timeout=10)
        raws.append(r.json()["key"])
        code, out, _ = cli(capsys, "keys", "create", "--config", str(cfg), "--name", "cli", "--json")
        raws.append(json.loads(out)["key"])
        until_status(gw.base_url, raws[-1], 200)
        for raw in raws:
            assert chat(gw.base_url, raw + "/{'userid': '7'}").status_code == 200
        gw.app.ledger.flush()
    finally:
        gw.stop()
    files = [p for p in tmp_path.iterdir() if p.name.startswith("gate.db")]
    data = b"".join(p.read_bytes() for p in files)
    assert b"api" in data and b"static" in data  # the file does hold the keys' names and records
    for secret in [*raws, MASTER, "sk-upstream-secret"]:
        assert secret.encode() not in data, secret
        assert secret[8:].encode() not in data  # not even the part after the hint
