"""Who is measured: each session is one server (or none, for direct) and the rows measured on it."""

from __future__ import annotations

import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from procs import Server

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
LMGATE_KEY = "sk-bench-0000000000000000"
# policy steps: (row suffix, key, chat script, what the row shows)
LMGATE_POLICY_ROWS = (
    ("defaults", "sk-bench-defaults-0000000", "chat-unique.lua", "server defaults: cache on and missing, input guardrails"),
    ("guard-in", "sk-bench-guard-in-0000000", "chat.lua", "input guardrails (use_guard 1)"),
    ("guard-out", "sk-bench-guard-out-000000", "chat.lua", "input and output guardrails (use_guard 2)"),
    ("cache-miss", "sk-bench-cache-000000000", "chat-unique.lua", "cache on, every request new: lookup and store"),
    ("cache-hit", "sk-bench-cache-000000000", "chat.lua", "cache on, the same request: answered from the cache"),
    ("limits", "sk-bench-limits-000000000", "chat.lua", "key with rpm and tpm limits"),
    ("budget", "sk-bench-budget-000000000", "chat.lua", "key with a budget"),
)


@dataclass
class Row:
    """One contestant as it appears in the table: where its requests go and how."""

    name: str
    routes: dict[str, tuple[str, str]]  # kind -> (path, model); kinds left out are not applicable
    headers: dict[str, str] = field(default_factory=dict)
    note: str = ""
    not_run: str = ""  # why this row cannot be measured, if it cannot
    scripts: dict[str, str] = field(default_factory=dict)  # kind -> Lua script, to override the scenario's


@dataclass
class Session:
    """One server started once, with the rows measured against it."""

    name: str
    base_url: str
    server: Server | None
    rows: list[Row]
    not_run: str = ""  # why this session is skipped, if it is
    ledger_db: Path | None = None  # lmgate's SQLite file, to count the usage records it wrote
    sent: int = 0  # requests completed against this server in every run, warm-up and check
    quiet_wait: float = 0.0  # seconds to wait at most, before each run, for other processes to go idle


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def render(template: Path, values: dict[str, str]) -> str:
    """Replace ${VAR} and ${VAR:-default} in a template (values first, then the environment)."""

    def one(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(3)
        return values.get(name, os.environ.get(name, default or ""))

    return re.sub(r"\$\{(\w+)(:-([^}]*))?\}", one, template.read_text())


SAME_FORMAT_ROUTES = {
    "chat": ("/v1/chat/completions", "bench-model"),
    "stream": ("/v1/chat/completions", "bench-stream"),
    "embed": ("/v1/embeddings", "bench-embed"),
}
UPSTREAM_ROUTES = {
    "chat": ("/v1/chat/completions", "bench-model"),
    "stream": ("/stream/v1/chat/completions", "bench-model"),
    "embed": ("/v1/embeddings", "bench-embed"),
}


def direct_session(upstream: str) -> Session:
    """The floor: wrk straight at nginx."""
    return Session("direct", upstream, None, [Row("direct", dict(UPSTREAM_ROUTES))])


def bare_session(upstream: str, work: Path, workers: int = 1) -> Session:
    """The Python floor: bench/bare_proxy.py in front of nginx (`bare-w2`: with two workers, the
    most a second worker can add on this machine)."""
    name = "bare" if workers == 1 else f"bare-w{workers}"
    port = free_port()
    server = Server(
        name,
        [sys.executable, str(BENCH / "bare_proxy.py"), "--upstream", upstream, "--port", str(port), "--workers", str(workers)],
        f"http://127.0.0.1:{port}/",
        work / "logs" / f"{name}.log",
    )
    return Session(name, f"http://127.0.0.1:{port}", server, [Row(name, dict(UPSTREAM_ROUTES))])


def lmgate_bin() -> str | None:
    """The lmgate command of the repo's venv (or PATH), if installed."""
    candidate = REPO / ".venv" / "bin" / "lmgate"
    if candidate.exists():
        return str(candidate)
    return shutil.which("lmgate")


def lmgate_cli_has(command: str) -> str:
    """'' if `lmgate <command> --help` works, else why not (the core may still be in progress)."""
    binary = lmgate_bin()
    if binary is None:
        return "lmgate is not installed (.venv/bin/lmgate missing)"
    try:
        proc = subprocess.run(
            [binary, command, "--help"], capture_output=True, text=True, timeout=60, cwd=REPO
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"`lmgate {command} --help` failed: {err}"
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return f"`lmgate {command}` not available yet: {last[0][:200]}"
    return ""


def lmgate_has_provider(kind: str) -> str:
    """'' if lmgate's provider registry has this provider type, else why not."""
    probe = f"from lmgate.providers.registry import PROVIDERS; raise SystemExit({kind!r} not in PROVIDERS)"
    try:
        proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=60, cwd=REPO)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"cannot inspect lmgate's providers: {err}"
    return "" if proc.returncode == 0 else f"lmgate has no {kind!r} provider yet"


def lmgate_config(work: Path, upstream: str, simulator: str | None, name: str) -> Path:
    """Render bench/lmgate.yaml into the work folder, adding the simulator path when it runs."""
    db = work / f"{name}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    text = render(BENCH / "lmgate.yaml", {"BENCH_UPSTREAM": upstream, "BENCH_DATABASE": f"sqlite:///{db}"})
    config = yaml.safe_load(text)
    if simulator:
        config["providers"]["sim"] = {"type": "anthropic", "base_url": simulator, "api_key": "x"}
        config["models"].append(
            {
                "name": "bench-anthropic",
                "deployments": [{"provider": "sim", "model": "claude-3-5-haiku-20241022"}],
                "pricing": {"input": 0.8, "output": 4, "unit": "1M tokens"},
            }
        )
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def ledger_rows(db: Path) -> str:
    """How many usage records lmgate wrote to its SQLite ledger (checks accounting was on)."""
    if not db.exists():
        return "no database file was written"
    try:
        with sqlite3.connect(db) as conn:
            return f"{conn.execute('SELECT count(*) FROM usage_ledger').fetchone()[0]:,} usage records in the ledger"
    except sqlite3.Error as err:
        return f"ledger not readable: {err}"


def simulator_server(work: Path) -> Server:
    """`lmgate simulate`: the Anthropic-protocol upstream of the translating path."""
    port = free_port()
    return Server(
        "simulator",
        [lmgate_bin() or "lmgate", "simulate", "--port", str(port)],
        f"http://127.0.0.1:{port}/",
        work / "logs" / "simulator.log",
        cwd=REPO,
    )


def lmgate_session(
    work: Path, upstream: str, workers: int, with_extras: bool, simulator: Server | None
) -> Session:
    """lmgate as users run it; with_extras adds the translating path and the policy steps."""
    name = "lmgate" if workers == 1 else f"lmgate-w{workers}"
    why = lmgate_cli_has("serve")
    sim_url = simulator.ready_url.rstrip("/") if simulator else None
    port = free_port()
    config = lmgate_config(work, upstream, sim_url, name) if not why else work / f"{name}.yaml"
    server = Server(
        name,
        [
            lmgate_bin() or "lmgate",
            "serve",
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        f"http://127.0.0.1:{port}/health/ready",
        work / "logs" / f"{name}.log",
        cwd=REPO,
    )
    auth = {"Authorization": f"Bearer {LMGATE_KEY}"}
    rows = [Row(name, dict(SAME_FORMAT_ROUTES), dict(auth))]
    if with_extras:
        rows.append(
            Row(
                "lmgate-translate",
                {
                    "chat": ("/v1/chat/completions", "bench-anthropic"),
                    "stream": ("/v1/chat/completions", "bench-anthropic"),
                },
                dict(auth),
                note="OpenAI request, Anthropic upstream (simulator)",
            )
        )
        for step, key, script, note in LMGATE_POLICY_ROWS:
            rows.append(
                Row(
                    f"lmgate+{step}",
                    {"chat": SAME_FORMAT_ROUTES["chat"]},
                    {"Authorization": f"Bearer {key}"},
                    note=note,
                    scripts={"chat": script},
                )
            )
    session = Session(name, f"http://127.0.0.1:{port}", server, rows, not_run=why, ledger_db=work / f"{name}.db")
    return session


def litellm_bin() -> Path:
    """The litellm command in its own venv, bench/.venv-litellm."""
    return BENCH / ".venv-litellm" / "bin" / "litellm"


def litellm_session(work: Path, upstream: str) -> Session:
    """The LiteLLM proxy: 1 worker, no database, no master key, pointed at the same nginx."""
    binary = litellm_bin()
    port = free_port()
    config = work / "litellm.yaml"
    config.write_text(render(BENCH / "litellm.yaml", {"BENCH_UPSTREAM": upstream}))
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}  # no network here: use the bundled price map
    server = Server(
        "litellm",
        [str(binary), "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"],
        f"http://127.0.0.1:{port}/health/liveliness",
        work / "logs" / "litellm.log",
        env=env,
        cwd=work,
    )
    why = "" if binary.exists() else "LiteLLM not installed in bench/.venv-litellm"
    return Session("litellm", f"http://127.0.0.1:{port}", server, [Row("litellm", dict(SAME_FORMAT_ROUTES))], not_run=why)
