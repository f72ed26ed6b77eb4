"""The benchmark: nginx as the upstream, then each contestant in turn under wrk; see bench/README.md.

Run through bench/run, which installs what is missing first. Exit status 77 means nginx or wrk
could not be found (the smoke test skips on it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import orjson

from contestants import (
    BENCH,
    Session,
    bare_session,
    direct_session,
    free_port,
    litellm_session,
    lmgate_cli_has,
    lmgate_has_provider,
    ledger_rows,
    lmgate_session,
    simulator_server,
)
from facts import machine_facts, versions
from measure import RunResult, measure_session
from procs import Server, ServerFailed
from report import render_results, summarize, summary_table, targets, targets_table
from scenarios import Scenario, scenarios
from spy import profile_session
from upstream import write_nginx_config

SESSIONS = ("direct", "bare", "lmgate", "lmgate-w2", "bare-w2", "litellm")
QUICK_SESSIONS = ("direct", "bare", "lmgate")
MISSING_TOOLS = 77


def log(message: str) -> None:
    """Progress on stderr, flushed, so a long run shows where it is."""
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line of bench/run."""
    p = argparse.ArgumentParser(prog="bench/run", description="Benchmark lmgate against a bare proxy and LiteLLM.")
    p.add_argument("--quick", action="store_true", help="CI smoke: 1 s runs, direct + bare + lmgate only")
    p.add_argument("--duration", type=int, default=None, help="seconds per run (default 10, quick 1)")
    p.add_argument("--warmup", type=int, default=None, help="seconds of unrecorded load per contestant (default 2, quick 0)")
    p.add_argument("--connections", type=int, default=32, help="connections of the loaded runs (default 32)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    p.add_argument("--repeat", type=int, default=1, help="do each run N times and keep the fastest valid one (default 1)")
    p.add_argument("--quiet-wait", type=float, default=0.0, help="before each run, wait up to S seconds for other processes to go idle (shared machines)")
    p.add_argument("--only", default="", help=f"comma-separated sessions among {','.join(SESSIONS)}")
    p.add_argument("--skip", default="", help="comma-separated sessions to leave out")
    p.add_argument("--no-litellm", action="store_true", help="leave LiteLLM out")
    p.add_argument("--no-extras", action="store_true", help="leave out the translating path and policy steps")
    p.add_argument("--results", type=Path, default=None, help="markdown report (default bench/RESULTS.md; quick: bench/.work/RESULTS-quick.md)")
    p.add_argument("--json", type=Path, default=None, help="raw results (default WORK/results.json)")
    p.add_argument("--work", type=Path, default=BENCH / ".work", help="folder for configs, logs, databases, profiles (default bench/.work)")
    p.add_argument("--profile", nargs="?", const="lmgate", choices=("lmgate", "bare"), help="profile instead of benchmarking: py-spy on lmgate (default) or the bare proxy")
    p.add_argument("--profile-kind", default="chat", choices=("chat", "stream", "embed"))
    p.add_argument("--no-profile", action="store_true", help="leave out the py-spy profile of lmgate that a full run appends to the report")
    args = p.parse_args(argv)
    if args.duration is None:
        args.duration = 1 if args.quick else 10
    if args.warmup is None:
        args.warmup = 0 if args.quick else 2
    return args


def chosen_sessions(args: argparse.Namespace) -> list[str]:
    """Which sessions this run measures, in order."""
    names = list(QUICK_SESSIONS if args.quick else SESSIONS)
    if args.only:
        names = [n for n in SESSIONS if n in args.only.split(",")]
    skip = set(filter(None, args.skip.split(",")))
    if args.no_litellm:
        skip.add("litellm")
    return [n for n in names if n not in skip]


def nginx_binary() -> str | None:
    """nginx on PATH or where Debian puts it."""
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None


def start_upstream(work: Path, nginx: str) -> Server:
    """nginx with the fixed answers, on a free port."""
    port = free_port()
    config = write_nginx_config(work, port)
    server = Server("nginx", [nginx, "-c", str(config)], f"http://127.0.0.1:{port}/", work / "logs" / "nginx.log")
    server.start(timeout=30)
    return server


def build_session(name: str, args: argparse.Namespace, work: Path, upstream: str, simulator: Server | None) -> Session:
    """The session of one name."""
    extras = not (args.quick or args.no_extras)
    if name == "direct":
        return direct_session(upstream)
    if name == "bare":
        return bare_session(upstream, work)
    if name == "lmgate":
        return lmgate_session(work, upstream, 1, extras, simulator)
    if name == "bare-w2":
        return bare_session(upstream, work, 2)
    if name == "lmgate-w2":
        return lmgate_session(work, upstream, 2, False, None)
    if name == "litellm":
        return litellm_session(work, upstream)
    raise ValueError(name)


def start_simulator(work: Path) -> tuple[Server | None, str]:
    """`lmgate simulate` for the translating path, or why it is not available."""
    why = lmgate_cli_has("simulate")
    if why:
        return None, why
    sim = simulator_server(work)
    try:
        sim.start(timeout=60)
    except ServerFailed as err:
        sim.stop()
        return None, f"simulator failed to start: {str(err).splitlines()[0]}"
    return sim, ""


def run_benchmark(args: argparse.Namespace, work: Path, nginx: str) -> int:
    """Measure every chosen session and write the report."""
    names = chosen_sessions(args)
    scs = scenarios(args.connections)
    started = time.monotonic()
    facts = machine_facts()
    upstream_server = start_upstream(work, nginx)
    upstream = upstream_server.ready_url.rstrip("/")
    simulator, sim_why = None, ""
    results: list[RunResult] = []
    notes: list[str] = []
    profiles: dict[str, str] = {}
    try:
        if "lmgate" in names and not (args.quick or args.no_extras):
            sim_why = lmgate_has_provider("anthropic")
            if not sim_why:
                simulator, sim_why = start_simulator(work)
        for name in names:
            session = build_session(name, args, work, upstream, simulator)
            session.quiet_wait = args.quiet_wait
            for row in session.rows:
                if row.name == "lmgate-translate" and simulator is None:
                    row.not_run = sim_why
            after = None
            if name == "lmgate" and not (args.quick or args.no_profile):
                after = lambda s: profiles.update(profile_for_report(s, scs, args.duration, work))  # noqa: E731
            measured = measure_session(
                session, scs, args.duration, args.warmup, args.threads, log, [upstream_server.pid], args.repeat, after
            )
            results += measured
            if session.ledger_db is not None and not session.not_run:
                notes.append(
                    f"{session.name}: {ledger_rows(session.ledger_db)} after {session.sent:,} requests "
                    "completed (every run, warm-up and check; wrk's unfinished ones at the end of a run not counted)"
                )
                log(f"[{session.name}] {notes[-1]}")
    finally:
        if simulator is not None:
            simulator.stop()
        upstream_server.stop()
    elapsed = time.monotonic() - started
    facts["load average at end"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    settings = {
        "command": "bench/run " + " ".join(sys.argv[1:]),
        "runs": ", ".join(sc.name for sc in scs)
        + f"; {args.duration} s each"
        + (f", best of {args.repeat}" if args.repeat > 1 else "")
        + (f", up to {args.quiet_wait:.0f} s wait for a quiet machine before each" if args.quiet_wait else "")
        + f", {args.warmup} s warm-up per contestant",
        "load": f"wrk, {args.threads} thread(s), Lua scripts in bench/wrk/",
        "upstream": "nginx, one process, fixed answers (bench/upstream.py)",
        "whole run took": f"{elapsed:.0f} s",
    }
    text = render_results(results, args.connections, facts, versions(nginx), settings, notes, profiles)
    results_path = args.results or (work / "RESULTS-quick.md" if args.quick else BENCH / "RESULTS.md")
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(text)
    json_path = args.json or work / "results.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_bytes(
        orjson.dumps(
            {"facts": facts, "settings": settings, "results": [r.to_dict() for r in results]},
            option=orjson.OPT_INDENT_2,
        )
    )
    summaries = summarize(results, args.connections)
    print(summary_table(summaries, args.connections))
    print()
    print(targets_table(targets(summaries, args.connections, results)))
    print()
    print(f"Nothing pinned, {facts['cores']} cores shared by upstream, server and wrk. Took {elapsed:.0f} s.")
    print(f"Report: {results_path}  raw: {json_path}")
    return 0


def profile_for_report(session: Session, scs: list[Scenario], seconds: int, work: Path) -> dict[str, str]:
    """py-spy summaries of lmgate under chat and streamed load, after its measured runs."""
    out = {}
    for sc in scs:
        if sc.connections == 1 or sc.kind not in ("chat", "stream"):
            continue
        try:
            files = profile_session(session, session.rows[0], sc, min(seconds, 10), work, log)
        except (RuntimeError, OSError, subprocess.SubprocessError) as err:
            log(f"[profile] {sc.name} failed: {err}")
            out[sc.name] = f"profile failed: {err}"
            continue
        out[sc.name] = files[1].read_text()
    return out


def run_profile(args: argparse.Namespace, work: Path, nginx: str) -> int:
    """Start nginx and one contestant, and profile it under one scenario."""
    upstream_server = start_upstream(work, nginx)
    upstream = upstream_server.ready_url.rstrip("/")
    try:
        session = build_session(args.profile, args, work, upstream, None)
        if session.not_run:
            log(f"cannot profile {args.profile}: {session.not_run}")
            return 1
        assert session.server is not None
        session.server.start(timeout=120)
        try:
            sc = next(s for s in scenarios(args.connections) if s.kind == args.profile_kind and s.connections > 1)
            files = profile_session(session, session.rows[0], sc, args.duration, work, log)
        finally:
            session.server.stop()
    finally:
        upstream_server.stop()
    for f in files:
        print(f)
    print((work / files[1].name).read_text()[:4000])
    return 0


def main(argv: list[str]) -> int:
    """Entry point of bench/run."""
    args = parse_args(argv)
    nginx = nginx_binary()
    missing = [n for n, found in (("nginx", nginx), ("wrk", shutil.which("wrk"))) if not found]
    if missing:
        log(f"bench: {' and '.join(missing)} not found (bench/run installs them with apt-get as root)")
        return MISSING_TOOLS
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    if args.profile:
        return run_profile(args, work, nginx)
    return run_benchmark(args, work, nginx)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
