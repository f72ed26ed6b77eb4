"""Shared fixtures: one provider simulator per test session, gateways built from YAML."""

from __future__ import annotations

from typing import Iterator

import pytest

from lmgate.simulator.app import start_in_thread
from lmgate.testing import RunningGateway, start_gateway


class Sim:
    """The session's simulator: its URL and its request log."""

    def __init__(self, base_url: str, stop, state) -> None:  # type: ignore[no-untyped-def]
        self.base_url = base_url
        self.stop = stop
        self.state = state

    def requests(self, path_contains: str = "") -> list[dict]:
        return [r for r in list(self.state.log) if path_contains in r["path"]]

    def clear(self) -> None:
        self.state.log.clear()


@pytest.fixture(scope="session")
def sim() -> Iterator[Sim]:
    base_url, stop, state = start_in_thread()
    s = Sim(base_url, stop, state)
    yield s
    stop()


@pytest.fixture
def gateway_factory() -> Iterator:
    """Start gateways from YAML text; all are stopped at the end of the test."""
    started: list[RunningGateway] = []

    def make(yaml_text: str, **kwargs) -> RunningGateway:  # type: ignore[no-untyped-def]
        gw = start_gateway(yaml_text, **kwargs)
        started.append(gw)
        return gw

    yield make
    for gw in started:
        gw.stop()
