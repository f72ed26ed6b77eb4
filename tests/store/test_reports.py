"""Usage reports on SQLite and PostgreSQL: grouping by columns and metadata fields, time ranges, CSV."""

from __future__ import annotations

import csv
import io

import pytest

from lmgate.errors import Unprocessable
from lmgate.store.reports import parse_group_by, parse_time, to_csv, usage_report
from lmgate.store.store import Store

from test_store import record

DAY1 = 1735732800.0  # 2025-01-01T12:00:00Z
EXTRA = ("cache_hits", "cache_saved_usd", "guardrail_requests")


def core(rows: list[dict]) -> list[dict]:
    """The rows without the cache and guardrail metrics (tested on their own below)."""
    return [{k: v for k, v in r.items() if k not in EXTRA} for r in rows]
DAY2 = DAY1 + 86400


@pytest.fixture
def store(db_url: str) -> Store:
    s = Store(db_url)
    s.migrate()
    s.write_usage(
        [
            record("r1", key_id="k1", key_name="alice", model="gpt-4o", ts=DAY1, cost=1.0, app_name="DSPY", metadata={"Bot_Id": "b1", "userid": 100}),
            record("r2", key_id="k1", key_name="alice", model="gpt-4o-mini", ts=DAY1 + 60, cost=0.25, app_name="DSPY", metadata={"Bot_Id": "b1"}),
            record("r3", key_id="k2", key_name="bob", model="gpt-4o", ts=DAY2, cost=2.0, app_name=None, metadata={"Bot_Id": "b2", "userid": "100"}),
            record("r4", key_id="k2", key_name="bob", model="gpt-4o", ts=DAY2 + 1, cost=0.0, status=502, input_tokens=0, output_tokens=0, app_name=None, metadata={},
                   cache_hit=True, cache_saved_usd=0.75, guardrails=[]),
        ]
    )
    yield s
    s.close()


def test_totals_without_grouping(store: Store) -> None:
    assert core(usage_report(store, [])) == [{"requests": 4, "input_tokens": 30, "output_tokens": 15, "cost_usd": 3.25}]


def test_group_by_key_model_day_app(store: Store) -> None:
    rows = core(usage_report(store, parse_group_by("key,model")))
    assert rows == [
        {"key": "alice", "key_id": "k1", "model": "gpt-4o", "requests": 1, "input_tokens": 10, "output_tokens": 5, "cost_usd": 1.0},
        {"key": "alice", "key_id": "k1", "model": "gpt-4o-mini", "requests": 1, "input_tokens": 10, "output_tokens": 5, "cost_usd": 0.25},
        {"key": "bob", "key_id": "k2", "model": "gpt-4o", "requests": 2, "input_tokens": 10, "output_tokens": 5, "cost_usd": 2.0},
    ]
    assert [(r["day"], r["requests"]) for r in usage_report(store, ["day"])] == [("2025-01-01", 2), ("2025-01-02", 2)]
    apps = {r["app"]: r["requests"] for r in usage_report(store, ["app"])}
    assert apps == {None: 2, "DSPY": 2}


def test_group_by_metadata_fields(store: Store) -> None:
    bots = {r["Bot_Id"]: (r["requests"], r["cost_usd"]) for r in usage_report(store, ["Bot_Id"])}
    assert bots == {None: (1, 0.0), "b1": (2, 1.25), "b2": (1, 2.0)}
    # a number and a string with the same text land in one group, on both databases
    users = {r["userid"]: r["requests"] for r in usage_report(store, ["userid"])}
    assert users == {None: 2, "100": 2}
    both = usage_report(store, ["key", "Bot_Id"])
    assert [(r["key"], r["Bot_Id"], r["requests"]) for r in both] == [("alice", "b1", 2), ("bob", None, 1), ("bob", "b2", 1)]


def test_time_range_and_key_filter(store: Store) -> None:
    assert usage_report(store, [], since=DAY2)[0]["requests"] == 2
    assert usage_report(store, [], until=DAY2)[0]["requests"] == 2
    assert usage_report(store, [], since=parse_time("2025-01-01", "since"), until=parse_time("2025-01-01", "until", end=True))[0]["requests"] == 2
    assert usage_report(store, [], key="bob")[0]["requests"] == 2
    assert core(usage_report(store, ["model"], key="k1", since=DAY1 + 30)) == [
        {"model": "gpt-4o-mini", "requests": 1, "input_tokens": 10, "output_tokens": 5, "cost_usd": 0.25}
    ]


def test_csv(store: Store) -> None:
    text = to_csv(usage_report(store, ["key", "day"]), ["key", "day"])
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["key", "key_id", "day", "requests", "input_tokens", "output_tokens", "cost_usd", *EXTRA]
    assert rows[0] == {
        "key": "alice", "key_id": "k1", "day": "2025-01-01", "requests": "2", "input_tokens": "20", "output_tokens": "10", "cost_usd": "1.25",
        "cache_hits": "0", "cache_saved_usd": "0.0", "guardrail_requests": "2",
    }


def test_cache_hits_savings_and_guardrail_decisions_are_counted(store: Store) -> None:
    by_key = {r["key"]: r for r in usage_report(store, ["key"])}
    assert (by_key["bob"]["cache_hits"], by_key["bob"]["cache_saved_usd"], by_key["bob"]["guardrail_requests"]) == (1, 0.75, 1)
    assert (by_key["alice"]["cache_hits"], by_key["alice"]["guardrail_requests"]) == (0, 2)
    checks = usage_report(store, parse_group_by("guardrail"))
    assert checks == [{"check": "None", "action": "pass", "where": "None", "requests": 3, "matches": 3}]
    assert to_csv(checks, ["guardrail"]).splitlines()[0] == "check,action,where,requests,matches"
    with pytest.raises(Unprocessable):
        parse_group_by("guardrail,key")


def test_parsing_refuses_bad_input() -> None:
    with pytest.raises(Unprocessable):
        parse_group_by("key,'; drop table x")
    with pytest.raises(Unprocessable):
        parse_group_by("key,key")
    with pytest.raises(Unprocessable):
        parse_time("yesterday", "since")
    assert parse_time("2025-01-01T00:00:00Z", "since") == 1735689600.0
    assert parse_time("2025-01-01T01:00:00+01:00", "since") == 1735689600.0
    assert parse_time("1735689600", "since") == 1735689600.0
    assert parse_time("2d", "since", now=1000000.0) == 1000000.0 - 2 * 86400
