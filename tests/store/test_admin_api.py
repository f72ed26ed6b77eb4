"""The admin API of a gateway served with its store (SQLite file; PostgreSQL once), the simulator
upstream: master-key auth, key CRUD taking effect at once, bad input, ledger records, usage."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

import pytest
import requests

from store_kit import MASTER

ADMIN = {"Authorization": f"Bearer {MASTER}"}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}
STATIC_KEY = "sk-static-config-key-1"
STATIC = f"keys:\n  - {{key: {STATIC_KEY}, name: static}}\nrouter: {{retries: 2, backoff_s: 0}}"


def chat(base: str, key: str, body: dict[str, Any] | None = None, **headers: str) -> requests.Response:
    return requests.post(f"{base}/v1/chat/completions", json=body or CHAT, headers={"Authorization": f"Bearer {key}", **headers}, timeout=30)


def usage(base: str, **params: str) -> requests.Response:
    return requests.get(f"{base}/admin/usage", params=params, headers=ADMIN, timeout=30)


def wait_rows(base: str, requests_expected: int, **params: str) -> list[dict[str, Any]]:
    """The ledger is written off the request path: wait until the report counts what was sent."""
    deadline = time.monotonic() + 10
    while True:
        rows = usage(base, **params).json()["rows"]
        if sum(r["requests"] for r in rows) >= requests_expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def test_master_key_guards_the_admin_api(store_gateway: Any, tmp_path: Any) -> None:
    gw = store_gateway(f"sqlite:///{tmp_path}/a.db", STATIC)
    base = gw.base_url
    assert requests.get(f"{base}/admin/keys", timeout=10).status_code == 401
    assert requests.get(f"{base}/admin/keys", headers={"Authorization": "Bearer wrong"}, timeout=10).json()["error"]["code"] == "invalid_master_key"
    r = requests.get(f"{base}/admin/keys", headers={"Authorization": f"Bearer {STATIC_KEY}"}, timeout=10)
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_master_key"
    assert requests.get(f"{base}/admin/usage", headers={"Authorization": f"Bearer {STATIC_KEY}"}, timeout=10).status_code == 403
    assert requests.get(f"{base}/admin/keys", headers=ADMIN, timeout=10).status_code == 200

    off = store_gateway(f"sqlite:///{tmp_path}/b.db", master_key=None)
    r = requests.get(f"{off.base_url}/admin/keys", headers=ADMIN, timeout=10)
    assert r.status_code == 403 and "no master_key" in r.json()["error"]["message"]


def test_keys_are_managed_and_changes_apply_at_once(store_gateway: Any, tmp_path: Any) -> None:
    base = store_gateway(f"sqlite:///{tmp_path}/k.db", STATIC).base_url
    r = requests.post(f"{base}/admin/keys", json={"name": "alice", "models": ["gpt-4o*"], "rpm": 100, "metadata": {"team": "search"}}, headers=ADMIN, timeout=10)
    assert r.status_code == 200, r.text
    created = r.json()
    raw = created["key"]
    assert raw.startswith("lmg-") and len(raw) == 44 and created["key_hint"] == raw[:8] + "..."
    assert chat(base, raw).status_code == 200  # usable at once

    listed = requests.get(f"{base}/admin/keys", headers=ADMIN, timeout=10).json()["data"]
    assert [k["name"] for k in listed] == ["alice"]
    assert raw not in str(listed) and "key_hash" not in listed[0]
    one = requests.get(f"{base}/admin/keys/alice", headers=ADMIN, timeout=10).json()
    assert one == requests.get(f"{base}/admin/keys/{created['id']}", headers=ADMIN, timeout=10).json()
    assert one["metadata"] == {"team": "search"} and "key" not in one

    r = requests.patch(f"{base}/admin/keys/{created['id']}", json={"models": ["other-*"], "rpm": None}, headers=ADMIN, timeout=10)
    assert r.status_code == 200 and r.json()["models"] == ["other-*"] and r.json()["rpm"] is None
    assert chat(base, raw).status_code == 403  # the next request already sees the new allowlist
    requests.patch(f"{base}/admin/keys/alice", json={"models": ["*"]}, headers=ADMIN, timeout=10)
    assert chat(base, raw).status_code == 200

    r = requests.delete(f"{base}/admin/keys/alice", headers=ADMIN, timeout=10)
    assert r.status_code == 200 and r.json()["revoked"] is True
    refused = chat(base, raw)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "revoked_api_key"  # at once, no wait
    assert requests.get(f"{base}/admin/keys", headers=ADMIN, timeout=10).json()["data"] == []
    assert len(requests.get(f"{base}/admin/keys?include_revoked=true", headers=ADMIN, timeout=10).json()["data"]) == 1
    assert requests.get(f"{base}/admin/keys/nobody", headers=ADMIN, timeout=10).status_code == 404


@pytest.mark.parametrize(
    "body, status, words",
    [
        ({"name": "x", "colour": "red"}, 422, "unknown field 'colour'"),
        ({"name": "x", "rpm": "5"}, 422, "'rpm'"),
        ({"name": "x", "rpm": 0}, 422, "'rpm'"),
        ({"name": "x", "budget_usd": -1}, 422, "'budget_usd'"),
        ({"name": "x", "budget_period": "weekly"}, 422, "'budget_period'"),
        ({"name": "x", "guard": 3}, 422, "'guard'"),
        ({"name": "x", "cache": 1}, 422, "'cache'"),
        ({"name": "x", "metadata": {"a": [1]}}, 422, "'metadata.a"),
        ({"name": "x", "expires_at": 1.0}, 422, "in the past"),
        ({"rpm": 5}, 422, "'name'"),
        ({"name": "taken"}, 400, "already exists"),
        ({"name": "static"}, 400, "config file"),
        (b"{not json", 400, "not valid JSON"),
        (b"", 400, "empty"),
        (b"[1, 2]", 400, "JSON object"),
    ],
)
def test_bad_key_input_is_refused_clearly(store_gateway: Any, tmp_path: Any, body: Any, status: int, words: str) -> None:
    base = store_gateway(f"sqlite:///{tmp_path}/v.db", STATIC).base_url
    requests.post(f"{base}/admin/keys", json={"name": "taken"}, headers=ADMIN, timeout=10)
    if isinstance(body, bytes):
        r = requests.post(f"{base}/admin/keys", data=body, headers={**ADMIN, "content-type": "application/json"}, timeout=10)
    else:
        r = requests.post(f"{base}/admin/keys", json=body, headers=ADMIN, timeout=10)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]["message"]


def test_bad_update_and_usage_queries(store_gateway: Any, tmp_path: Any) -> None:
    base = store_gateway(f"sqlite:///{tmp_path}/u.db", STATIC).base_url
    requests.post(f"{base}/admin/keys", json={"name": "a"}, headers=ADMIN, timeout=10)
    requests.post(f"{base}/admin/keys", json={"name": "b"}, headers=ADMIN, timeout=10)
    assert requests.patch(f"{base}/admin/keys/a", json={"name": "b"}, headers=ADMIN, timeout=10).status_code == 400
    assert requests.patch(f"{base}/admin/keys/a", json={"name": None}, headers=ADMIN, timeout=10).status_code == 422
    assert requests.patch(f"{base}/admin/keys/a", json={"tpm": -3}, headers=ADMIN, timeout=10).status_code == 422
    assert requests.patch(f"{base}/admin/keys/zzz", json={"tpm": 3}, headers=ADMIN, timeout=10).status_code == 404
    requests.delete(f"{base}/admin/keys/a", headers=ADMIN, timeout=10)
    assert requests.patch(f"{base}/admin/keys/a", json={"tpm": 3}, headers=ADMIN, timeout=10).status_code == 400
    assert usage(base, group_by="key,drop table").status_code == 422
    assert usage(base, format="xml").status_code == 422
    assert usage(base, since="last tuesday").status_code == 422
    assert usage(base, colour="red").status_code == 400


def test_every_request_gets_one_record_with_tenant_fields(store_gateway: Any, tmp_path: Any, sim: Any) -> None:
    gw = store_gateway(f"sqlite:///{tmp_path}/l.db", STATIC)
    base = gw.base_url
    suffix = "/{'Bot_Id': 'b1', 'Query_Id': 'q9', 'userid': '100', 'app_name': 'DSPY', 'is_system': 0, 'word_count': 42}"
    ok = chat(base, STATIC_KEY + suffix, **{"x-lmgate-metadata": '{"tenant": "acme"}'})
    assert ok.status_code == 200
    missing = chat(base, STATIC_KEY, {"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]})
    assert missing.status_code == 404
    stream = requests.post(
        f"{base}/v1/chat/completions", json={**CHAT, "stream": True}, headers={"Authorization": f"Bearer {STATIC_KEY}"}, timeout=30
    )
    assert stream.status_code == 200 and "[DONE]" in stream.text
    gw.app.ledger.flush()

    store = gw.app.ledger.store
    by_id = {r["request_id"]: r for r in store.usage_records()}
    assert len(by_id) == 3
    rec = by_id[ok.headers["x-request-id"]]
    assert rec["metadata"] == {"Bot_Id": "b1", "Query_Id": "q9", "userid": "100", "is_system": 0, "word_count": 42, "tenant": "acme"}
    assert rec["app_name"] == "DSPY" and rec["key_name"] == "static" and rec["status"] == 200
    assert rec["options"] == {"is_cache": 1, "use_guard": 1}
    assert rec["input_tokens"] > 0 and rec["output_tokens"] > 0 and rec["cost_usd"] > 0
    assert rec["provider"] == "sim" and rec["deployment"] == "sim/gpt-4o-mini" and len(rec["attempts"]) == 1
    err = by_id[missing.headers["x-request-id"]]
    assert (err["status"], err["error_code"]) == (404, "model_not_found")
    streamed = by_id[stream.headers["x-request-id"]]
    assert streamed["stream"] and streamed["ttft_ms"] is not None and streamed["status"] == 200


def test_a_retried_request_is_recorded_once(sim: Any, tmp_path: Any) -> None:
    from lmgate.app import gateway_with_store
    from lmgate.config import parse_config

    from store_kit import serve

    cfg = parse_config(
        f"""
database: sqlite:///{tmp_path}/r.db
providers:
  bad: {{type: openai, base_url: "{sim.base_url}/_sim/status=500/v1", api_key: sk-x}}
  good: {{type: openai, base_url: "{sim.base_url}/v1", api_key: sk-x}}
models:
  - name: flaky
    deployments: [{{provider: bad, model: gpt-4o-mini}}]
    fallbacks: [gpt-4o-mini]
  - name: gpt-4o-mini
    deployments: [{{provider: good, model: gpt-4o-mini}}]
keys:
  - {{key: {STATIC_KEY}, name: static}}
router: {{retries: 3, backoff_s: 0}}
ledger: {{flush_interval_s: 0.05}}
"""
    )
    gw = serve(gateway_with_store(cfg))
    try:
        r = chat(gw.base_url, STATIC_KEY, {"model": "flaky", "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 200
        gw.app.ledger.flush()
        rows = gw.app.ledger.store.usage_records()
        assert len(rows) == 1 and rows[0]["request_id"] == r.headers["x-request-id"]
        assert len(rows[0]["attempts"]) >= 2 and rows[0]["served_model"] == "gpt-4o-mini"
    finally:
        gw.stop()


def test_usage_report_over_http(store_gateway: Any, db_url: str) -> None:
    base = store_gateway(db_url, STATIC).base_url
    key = requests.post(f"{base}/admin/keys", json={"name": "alice", "metadata": {"team": "search"}}, headers=ADMIN, timeout=10).json()["key"]
    for userid in ("1", "1", "2"):
        assert chat(base, key + "/{'app_name': 'bot', 'userid': '%s'}" % userid).status_code == 200
    assert chat(base, STATIC_KEY).status_code == 200
    rows = wait_rows(base, 4, group_by="key")
    assert {r["key"]: r["requests"] for r in rows} == {"alice": 3, "static": 1}
    rows = usage(base, group_by="key,model,day,app,userid,team").json()["rows"]
    alice = [r for r in rows if r["key"] == "alice"]
    assert [(r["userid"], r["team"], r["app"], r["requests"]) for r in alice] == [("1", "search", "bot", 2), ("2", "search", "bot", 1)]
    assert all(r["day"] == time.strftime("%Y-%m-%d", time.gmtime()) and r["model"] == "gpt-4o-mini" for r in rows)
    assert all(set(r) >= {"requests", "input_tokens", "output_tokens", "cost_usd"} for r in rows)
    assert usage(base, group_by="key", since="2099-01-01").json()["rows"] == []
    r = usage(base, group_by="key", format="csv")
    assert r.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert {row["key"]: row["requests"] for row in table} == {"alice": "3", "static": "1"}


def test_two_instances_on_one_postgres_database_share_keys_and_ledger(store_gateway: Any, pg_url: str) -> None:
    a = store_gateway(pg_url).base_url
    b = store_gateway(pg_url).base_url
    raw = requests.post(f"{a}/admin/keys", json={"name": "shared"}, headers=ADMIN, timeout=10).json()["key"]
    deadline = time.monotonic() + 5
    while chat(b, raw).status_code != 200:  # B learns of the key by polling, within about half a second
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert chat(a, raw).status_code == 200
    requests.delete(f"{a}/admin/keys/shared", headers=ADMIN, timeout=10)
    assert chat(a, raw).status_code == 401
    started = time.monotonic()
    while chat(b, raw).status_code != 401:
        assert time.monotonic() - started < 5
        time.sleep(0.02)
    rows = wait_rows(a, 2, group_by="key")
    assert rows[0]["key"] == "shared" and rows[0]["requests"] >= 2  # both instances' records in one ledger
