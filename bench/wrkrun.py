"""Load generation with wrk and a Lua script for the POST body, and parsing of wrk's report."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

WRK_DIR = Path(__file__).resolve().parent / "wrk"
UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


@dataclass
class WrkResult:
    """What one wrk run reported."""

    requests: int = 0
    seconds: float = 0.0
    rps: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    non_2xx: int = 0
    socket_errors: int = 0
    raw: str = ""

    @property
    def valid(self) -> bool:
        """A run counts only if it served requests and every one of them was a success."""
        return self.requests > 0 and self.non_2xx == 0 and self.socket_errors == 0

    @property
    def problem(self) -> str:
        """Why the run is invalid, in a few words ('' when valid)."""
        if self.requests == 0:
            return "no requests completed"
        parts = []
        if self.non_2xx:
            parts.append(f"{self.non_2xx} non-2xx")
        if self.socket_errors:
            parts.append(f"{self.socket_errors} socket errors")
        return ", ".join(parts)


def to_ms(value: str, unit: str) -> float:
    """Convert one of wrk's durations ('1.23', 'ms') to milliseconds."""
    return float(value) * UNITS_MS[unit]


def parse_wrk(text: str) -> WrkResult:
    """Parse wrk's text output (run with --latency)."""
    result = WrkResult(raw=text)
    match = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)", text)
    if match:
        result.requests = int(match.group(1))
        result.seconds = to_ms(match.group(2), match.group(3)) / 1000.0
    match = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if match:
        result.rps = float(match.group(1))
    for pct, attr in (("50", "p50_ms"), ("99", "p99_ms")):
        match = re.search(rf"^\s*{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M)
        if match:
            setattr(result, attr, to_ms(match.group(1), match.group(2)))
    match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if match:
        result.non_2xx = int(match.group(1))
    match = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    if match:
        result.socket_errors = sum(int(g) for g in match.groups())
    return result


def wrk_command(
    url: str, script: str, connections: int, seconds: float, threads: int = 1
) -> list[str]:
    """The wrk command line for one run (timeout generous so slow contestants are measured, not cut)."""
    duration = f"{max(1, round(seconds))}s"  # wrk takes whole seconds only
    return [
        "wrk",
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{duration}",
        "--timeout",
        "30s",
        "--latency",
        "-s",
        str(WRK_DIR / script),
        url,
    ]


def run_wrk(
    url: str,
    script: str,
    connections: int,
    seconds: float,
    env: dict[str, str],
    threads: int = 1,
) -> WrkResult:
    """Run wrk once and parse its report; stderr is kept in raw for diagnosis."""
    full_env = dict(os.environ)
    full_env.update(env)
    proc = subprocess.run(
        wrk_command(url, script, connections, seconds, threads),
        capture_output=True,
        text=True,
        env=full_env,
        timeout=seconds + 120,
    )
    result = parse_wrk(proc.stdout)
    result.raw = proc.stdout + proc.stderr
    return result
