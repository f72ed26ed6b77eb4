"""Machine facts and software versions recorded with every result."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

from contestants import BENCH, REPO, lmgate_bin


def first_line(argv: list[str]) -> str:
    """First line a command prints (stdout or stderr), or why it could not run."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"unavailable ({err.__class__.__name__})"
    text = (proc.stdout + proc.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def machine_facts() -> dict[str, str]:
    """Date, CPU, cores, memory, kernel and OS."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    osname = platform.platform()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                osname = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": mem,
        "kernel": platform.release(),
        "os": osname,
        "load average at start": load,
    }


def package_version(name: str) -> str:
    """Version of a package in the running interpreter."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def lmgate_version() -> str:
    """lmgate's package version and the repo's commit."""
    commit = first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "lmgate"], capture_output=True, text=True
    ).stdout.strip()
    suffix = " with uncommitted changes in lmgate/" if dirty else ""
    installed = "installed" if lmgate_bin() else "not installed"
    return f"{package_version('lmgate')} ({installed}), commit {commit}{suffix}"


def versions(nginx: str) -> dict[str, str]:
    """Versions of everything measured or used to measure."""
    litellm_python = BENCH / ".venv-litellm" / "bin" / "python"
    litellm = "not installed"
    if litellm_python.exists():
        litellm = first_line(
            [str(litellm_python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"]
        )
    return {
        "python": platform.python_version(),
        "nginx": first_line([nginx, "-v"]),
        "wrk": first_line(["wrk", "-v"]),
        "uvicorn / uvloop / httptools": " / ".join(
            package_version(p) for p in ("uvicorn", "uvloop", "httptools")
        ),
        "aiohttp / orjson": f"{package_version('aiohttp')} / {package_version('orjson')}",
        "lmgate": lmgate_version(),
        "litellm": litellm,
    }
