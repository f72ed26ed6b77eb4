"""Gateways whose usage records stay in memory, and a wait for one record: shared by the end-to-end tests."""

from __future__ import annotations

import time
from typing import Any

from lmgate.policy.accounting import MemoryLedger
from lmgate.testing import RunningGateway, start_gateway


def start_ledger_gateway(config_text: str, **gateway_args: Any) -> RunningGateway:
    """A gateway writing to a MemoryLedger, reachable as `gw.ledger` so tests can read the records."""
    ledger = MemoryLedger()
    g = start_gateway(config_text, ledger=ledger, **gateway_args)
    g.ledger = ledger  # type: ignore[attr-defined]
    return g


def ledger_record(gw: RunningGateway, request_id: str) -> Any:
    """The usage record of a request; it is written just after the answer, so wait for it."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for r in gw.ledger.records:  # type: ignore[attr-defined]
            if r.request_id == request_id:
                return r
        time.sleep(0.01)
    raise AssertionError(f"no ledger record for {request_id}")
