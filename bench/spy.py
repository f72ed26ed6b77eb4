"""Profiling a contestant under load with py-spy, to show where the hot path spends its time.

py-spy samples the server's process tree while wrk runs; the result is a speedscope file (open it
at speedscope's web app or any viewer of that format) and a `py-spy top`-like text summary of
own and total time per function.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Callable

import orjson

from contestants import REPO, Row, Session
from measure import wrk_env
from scenarios import Scenario, check_request
from wrkrun import wrk_command


def py_spy_bin() -> str | None:
    """py-spy from the repo's venv (bench/run installs it there) or PATH."""
    candidate = Path(sys.executable).parent / "py-spy"
    if candidate.exists():
        return str(candidate)
    venv = REPO / ".venv" / "bin" / "py-spy"
    return str(venv) if venv.exists() else shutil.which("py-spy")


def top_summary(speedscope: dict, limit: int = 40) -> str:
    """Own and total share of samples per function, like `py-spy top`, from a speedscope profile."""
    frames = speedscope["shared"]["frames"]

    def label(i: int) -> str:
        f = frames[i]
        where = f.get("file", "")
        if "site-packages/" in where:
            where = where.split("site-packages/", 1)[1]
        elif str(REPO) in where:
            where = where.replace(str(REPO) + "/", "")
        return f"{f['name']} ({where})" if where else f["name"]

    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    samples = 0
    for profile in speedscope["profiles"]:
        thread = profile.get("name", "?")
        thread = thread.split('"')[1] if thread.count('"') >= 2 else thread
        threads[thread] += len(profile["samples"])
        for stack in profile["samples"]:
            samples += 1
            names = [label(i) for i in stack]
            if names:
                own[names[-1]] += 1
            for name in set(names):
                total[name] += 1
    if not samples:
        return "no samples (was the server busy?)\n"
    lines = [
        f"{samples} samples (idle time left out); by thread: "
        + ", ".join(f"{name} {100 * n / samples:.0f}%" for name, n in threads.most_common()),
        "",
        "  own%  total%  function, by own time",
    ]
    for name, count in own.most_common(limit):
        lines.append(f"{100 * count / samples:6.1f} {100 * total[name] / samples:7.1f}  {name}")
    lines += ["", "  total%  function, by inclusive time"]
    for name, count in total.most_common(limit):
        lines.append(f"{100 * count / samples:8.1f}  {name}")
    return "\n".join(lines) + "\n"


def profile_session(
    session: Session, row: Row, sc: Scenario, seconds: float, work: Path, log: Callable[[str], None]
) -> list[Path]:
    """Run wrk on one scenario of a started server while py-spy records it; return the files."""
    spy = py_spy_bin()
    if spy is None:
        raise RuntimeError("py-spy not found: `.venv/bin/pip install py-spy`")
    path, model = row.routes[sc.kind]
    url = session.base_url + path
    checked = check_request(url, sc.kind, model, row.headers)
    if not checked.ok:
        raise RuntimeError(f"check failed before profiling: {checked.detail}")
    assert session.server is not None
    stem = work / f"profile-{row.name}-{sc.kind}"
    speedscope = stem.with_suffix(".speedscope.json")
    env = dict(os.environ)
    env.update(wrk_env(row, model))
    wrk = subprocess.Popen(
        wrk_command(url, sc.script, sc.connections, seconds + 2),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        spy_run = subprocess.run(
            [
                spy, "record", "--pid", str(session.server.pid), "--subprocesses",
                "--rate", "200", "--duration", str(max(1, round(seconds))), "--format", "speedscope",
                "--output", str(speedscope),
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 120,
        )
    finally:
        wrk_out, _ = wrk.communicate(timeout=seconds + 120)
    (stem.with_suffix(".wrk.txt")).write_text(wrk_out)
    if spy_run.returncode != 0 or not speedscope.exists():
        raise RuntimeError(f"py-spy failed: {(spy_run.stderr or spy_run.stdout).strip()[-500:]}")
    top = stem.with_suffix(".top.txt")
    top.write_text(top_summary(orjson.loads(speedscope.read_bytes())))
    log(f"[profile] {row.name} {sc.name}: {speedscope}, {top}")
    return [speedscope, top, stem.with_suffix(".wrk.txt")]
