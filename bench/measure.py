"""Running one session: start its server, check each request once, warm up, run wrk, sample the tree."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

from contestants import Row, Session
from procs import OtherLoad, ServerFailed, TreeSampler, tail, wait_for_quiet
from scenarios import Scenario, check_request
from wrkrun import run_wrk


@dataclass
class RunResult:
    """One cell group of the table: a row measured in one scenario."""

    row: str
    session: str
    scenario: str
    kind: str
    connections: int
    status: str  # ok | invalid | not run | n/a
    reason: str = ""
    requests: int = 0
    rps: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    cpu_ms_per_req: float | None = None
    peak_rss_mb: float | None = None
    hwm_mb: float | None = None
    other_load: float | None = None  # cores busy with processes outside the benchmark during the run
    check: str = ""
    note: str = ""

    def to_dict(self) -> dict[str, object]:
        """Plain data for results.json."""
        return asdict(self)


def not_run(session: Session, scenarios: list[Scenario], why: str) -> list[RunResult]:
    """Rows of a session that could not be measured, with the reason."""
    return [
        RunResult(row.name, session.name, sc.name, sc.kind, sc.connections, "not run", why, note=row.note)
        for row in session.rows
        for sc in scenarios
        if sc.kind in row.routes
    ]


def measure_session(
    session: Session,
    scenarios: list[Scenario],
    seconds: float,
    warmup: float,
    threads: int,
    log: Callable[[str], None],
    upstream_pids: list[int],
    repeat: int = 1,
    after: Callable[[Session], None] | None = None,
) -> list[RunResult]:
    """Measure every row of a session; the server is started before and stopped after.

    With repeat > 1 each run is done that many times and the fastest valid one is kept, which
    filters out bursts of load from other processes on a shared machine.
    """
    if session.not_run:
        log(f"[{session.name}] not run: {session.not_run}")
        return not_run(session, scenarios, session.not_run)
    if session.server is not None:
        log(f"[{session.name}] starting: {' '.join(session.server.argv)}")
        try:
            session.server.start(timeout=180)
        except ServerFailed as err:
            session.server.stop()
            log(f"[{session.name}] failed to start: {err}")
            return not_run(session, scenarios, f"failed to start: {str(err).splitlines()[0]}")
    try:
        results = []
        for row in session.rows:
            if row.not_run:
                log(f"[{row.name}] not run: {row.not_run}")
                results += not_run(Session(session.name, "", None, [row]), scenarios, row.not_run)
                continue
            if warmup > 0:
                warm_up(session, row, warmup, threads, scenarios)
            for sc in scenarios:
                tries = [measure_one(session, row, sc, seconds, threads, log, upstream_pids)]
                while len(tries) < repeat and tries[-1].status in ("ok", "invalid") and not tries[-1].reason.startswith("check"):
                    tries.append(measure_one(session, row, sc, seconds, threads, log, upstream_pids))
                results.append(best(tries))
        if after is not None and session.server is not None:
            after(session)
        return results
    finally:
        if session.server is not None:
            session.server.stop()


def best(tries: list[RunResult]) -> RunResult:
    """The fastest valid run of several (the last one when none is valid)."""
    valid = [t for t in tries if t.status == "ok" and t.rps is not None]
    chosen = max(valid, key=lambda t: t.rps or 0.0) if valid else tries[-1]
    if len(tries) > 1:
        chosen.note = (chosen.note + "; " if chosen.note else "") + f"best of {len(tries)}"
    return chosen


def warm_up(session: Session, row: Row, seconds: float, threads: int, scenarios: list[Scenario]) -> None:
    """Open connections and fill pools with a short unrecorded run of the row's first kind."""
    kind = next((sc for sc in scenarios if sc.kind in row.routes and sc.connections > 1), None)
    if kind is None:
        return
    path, model = row.routes[kind.kind]
    script = row.scripts.get(kind.kind, kind.script)
    result = run_wrk(session.base_url + path, script, kind.connections, seconds, wrk_env(row, model), threads)
    session.sent += result.requests


def wrk_env(row: Row, model: str) -> dict[str, str]:
    """Environment for the Lua scripts: model name and headers (the key among them)."""
    return {
        "BENCH_MODEL": model,
        "BENCH_KEY": "",
        "BENCH_HEADERS": "\n".join(f"{k}: {v}" for k, v in row.headers.items()),
    }


def measure_one(
    session: Session,
    row: Row,
    sc: Scenario,
    seconds: float,
    threads: int,
    log: Callable[[str], None],
    upstream_pids: list[int],
) -> RunResult:
    """Check one request, then run wrk while sampling the server's process tree."""
    base = RunResult(row.name, session.name, sc.name, sc.kind, sc.connections, "n/a", note=row.note)
    if sc.kind not in row.routes:
        return base
    path, model = row.routes[sc.kind]
    url = session.base_url + path
    script = row.scripts.get(sc.kind, sc.script)
    checked = check_request(url, sc.kind, model, row.headers)
    session.sent += 1
    cache = checked.headers.get("x-lmgate-cache")
    base.check = checked.detail + (f", x-lmgate-cache: {cache}" if cache else "")
    if not checked.ok:
        base.status, base.reason = "invalid", f"check failed: {checked.detail}"
        log(f"[{row.name}] {sc.name}: {base.reason}")
        if session.server is not None and session.server.proc and session.server.proc.poll() is not None:
            log(tail(session.server.log))
        return base
    if session.quiet_wait > 0:
        wait_for_quiet(session.quiet_wait)
    if session.server is not None:
        with TreeSampler(session.server.pid) as sampler:
            with OtherLoad(sampler.pids + upstream_pids) as others:
                result = run_wrk(url, script, sc.connections, seconds, wrk_env(row, model), threads)
        base.peak_rss_mb = sampler.peak_rss_kb / 1024.0
        base.hwm_mb = sampler.hwm_kb / 1024.0
        if result.requests:
            base.cpu_ms_per_req = sampler.cpu_ms / result.requests
    else:
        with OtherLoad(list(upstream_pids)) as others:
            result = run_wrk(url, script, sc.connections, seconds, wrk_env(row, model), threads)
    base.other_load = others.cores
    session.sent += result.requests
    base.requests, base.rps, base.p50_ms, base.p99_ms = result.requests, result.rps, result.p50_ms, result.p99_ms
    base.status = "ok" if result.valid else "invalid"
    base.reason = result.problem
    log(
        f"[{row.name}] {sc.name}: {result.rps:,.0f} req/s, p50 {fmt(result.p50_ms)} ms, "
        f"p99 {fmt(result.p99_ms)} ms, cpu {fmt(base.cpu_ms_per_req, 3)} ms/req, "
        f"rss {fmt(base.peak_rss_mb, 0)} MB, others {base.other_load:.2f} cores"
        f"{' INVALID: ' + base.reason if base.reason else ''}"
    )
    return base


def fmt(value: float | None, digits: int = 2) -> str:
    """A number for logs and tables, '-' when missing."""
    return "-" if value is None else f"{value:,.{digits}f}"
