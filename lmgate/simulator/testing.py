"""A simulator for other test suites: `sim = start_simulator()`, then `sim.base_url`, `sim.requests()`.

    sim = start_simulator()
    client = openai.OpenAI(base_url=sim.base_url + "/v1", api_key="sk-test")
    ...
    assert sim.requests("/v1/chat/completions")[-1]["body"]["model"] == "gpt-4o"
    sim.stop()

Knobs can ride on the URL: `sim.url("status=500,fail_first=1")` is a base URL whose first
request fails with a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lmgate.simulator.app import start_in_thread
from lmgate.simulator.state import (  # noqa: F401 - re-exported for tests signing SigV4
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, SimState, SimulatorConfig,
)


@dataclass
class RunningSimulator:
    """A simulator serving on a loopback port from its own thread."""

    base_url: str
    state: SimState
    _stop: Callable[[], None] = field(repr=False)

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    @property
    def config(self) -> SimulatorConfig:
        return self.state.config

    def url(self, knobs: str = "") -> str:
        """The base URL, optionally with a `/_sim/{knobs}` prefix such as `status=503`."""
        return f"{self.base_url}/_sim/{knobs}" if knobs else self.base_url

    def requests(self, path_contains: str | None = None) -> list[dict[str, Any]]:
        """Requests received so far, oldest first (each: method, path, query, headers, body)."""
        entries = list(self.state.log)
        if path_contains is not None:
            entries = [e for e in entries if path_contains in e["path"]]
        return entries

    def last_request(self, path_contains: str | None = None) -> dict[str, Any]:
        entries = self.requests(path_contains)
        if not entries:
            raise AssertionError(f"the simulator received no request matching {path_contains!r}")
        return entries[-1]

    def clear_requests(self) -> None:
        self.state.log.clear()

    def reset(self) -> None:
        """Forget fail_first counters (as `POST /_sim/reset` does)."""
        self.state.counters.clear()

    def stop(self) -> None:
        self._stop()

    def __enter__(self) -> "RunningSimulator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_simulator(port: int = 0, host: str = "127.0.0.1",
                    config: SimulatorConfig | None = None) -> RunningSimulator:
    """Start a simulator on a free loopback port (or `port`) and return its handle."""
    base_url, stop, state = start_in_thread(port=port, host=host, config=config)
    return RunningSimulator(base_url=base_url, state=state, _stop=stop)
