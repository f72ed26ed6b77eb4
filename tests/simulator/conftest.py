"""Fixtures of the simulator's own tests: one simulator per module, started from lmgate.simulator.testing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from lmgate.simulator.testing import RunningSimulator, start_simulator


@pytest.fixture(scope="module")
def simulator() -> Iterator[RunningSimulator]:
    sim = start_simulator()
    yield sim
    sim.stop()


@pytest.fixture
def nonce() -> str:
    """A unique label, so fail_first state and log lookups of one test stay its own."""
    return uuid.uuid4().hex[:10]
