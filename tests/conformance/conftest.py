"""The conformance gateway: one deployment of every provider type, each against the session's
simulator (see conformance_cases.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # conformance_kit, conformance_cases, upstream_view

from conformance_cases import conformance_config  # noqa: E402
from conformance_kit import service_account_json  # noqa: E402

from lmgate.testing import RunningGateway, start_gateway  # noqa: E402


@pytest.fixture(scope="session")
def vertex_account(sim, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("vertex") / "service-account.json"
    path.write_text(service_account_json(sim.base_url + "/token"))
    return path


@pytest.fixture(scope="module")
def conformance_gw(sim, vertex_account) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    g = start_gateway(conformance_config(sim.base_url, vertex_account), steps=[])  # no cache: every call reaches the simulator
    yield g
    g.stop()
