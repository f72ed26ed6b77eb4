"""Smoke of the benchmark: `bench/run --quick` runs and reports numbers. Never a timed assertion."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"


def load(name: str) -> ModuleType:
    """Import one of bench/'s modules under a private name (bench/ is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


request_body = load("scenarios").request_body
parse_wrk = load("wrkrun").parse_wrk

MISSING_TOOLS = 77

WRK_SAMPLE = """Running 1s test @ http://127.0.0.1:8081/v1/chat/completions
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.08ms  363.54us   1.20s    74.88%
    Req/Sec    29.32k     5.96k   42.10k    70.00%
  Latency Distribution
     50%  850.00us
     75%    1.27ms
     90%    1.49ms
     99%    1.20s
  87276 requests in 3.00s, 50.11MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:  29070.92
Transfer/sec:     16.69MB
"""


def test_wrk_report_is_parsed() -> None:
    result = parse_wrk(WRK_SAMPLE)
    assert result.requests == 87276
    assert result.seconds == pytest.approx(3.0)
    assert result.rps == pytest.approx(29070.92)
    assert result.p50_ms == pytest.approx(0.85)
    assert result.p99_ms == pytest.approx(1200.0)
    assert result.non_2xx == 5
    assert result.socket_errors == 3
    assert not result.valid


def test_clean_wrk_report_is_valid() -> None:
    clean = "\n".join(
        line for line in WRK_SAMPLE.splitlines() if "Socket errors" not in line and "Non-2xx" not in line
    )
    assert parse_wrk(clean).valid


@pytest.mark.parametrize(
    "kind,script",
    [("chat", "chat.lua"), ("chat", "chat-unique.lua"), ("stream", "stream.lua"), ("embed", "embed.lua")],
)
def test_lua_bodies_match_the_checked_request(kind: str, script: str) -> None:
    """The request checked before each run is the one wrk sends."""
    text = (BENCH / "wrk" / script).read_text()
    call = text[text.index("setup_request(") :]
    body = "".join(re.findall(r"'([^']*)'", call))
    assert body.encode() == request_body(kind, "{MODEL}")


@pytest.mark.timeout(600)  # only long when nginx/wrk must first be installed
def test_quick_benchmark_runs_and_reports(tmp_path: Path) -> None:
    results_md = tmp_path / "RESULTS.md"
    results_json = tmp_path / "results.json"
    proc = subprocess.run(
        [
            str(BENCH / "run"),
            "--quick",
            "--work",
            str(tmp_path / "work"),
            "--results",
            str(results_md),
            "--json",
            str(results_json),
        ],
        capture_output=True,
        text=True,
        timeout=580,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode == MISSING_TOOLS:
        pytest.skip(f"nginx or wrk unavailable: {proc.stderr.strip()[-300:]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(results_json.read_text())
    rows = {(r["row"], r["scenario"]): r for r in data["results"]}
    for row in ("direct", "bare", "lmgate"):
        for scenario in ("chat@1", "chat@32", "stream@32", "embed@32"):
            r = rows[(row, scenario)]
            assert r["status"] == "ok", (row, scenario, r["status"], r["reason"], proc.stderr[-2000:])
            assert r["requests"] > 0 and r["rps"] > 0 and r["p50_ms"] is not None
            if row != "direct":
                assert r["cpu_ms_per_req"] is not None and r["peak_rss_mb"] > 0
    report = results_md.read_text()
    assert "## Targets (issue 6)" in report
    assert "| lmgate |" in report
    assert "chat req/s @32" in proc.stdout
