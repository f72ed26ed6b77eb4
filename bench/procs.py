"""Servers under test: start, wait until ready, stop, and measure their process tree from /proc.

RSS is the sum of VmRSS over the tree, sampled during a run (peak kept), and VmHWM (each
process's own high-water mark) summed at the end; CPU is utime+stime of the tree, in ms.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def children_map() -> dict[int, list[int]]:
    """Parent pid -> child pids for every process visible in /proc."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def process_tree(root: int) -> list[int]:
    """The root pid and all its descendants."""
    kids = children_map()
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(kids.get(pid, []))
    return tree


def cpu_ms(pids: list[int]) -> float:
    """utime+stime of the given processes, in milliseconds (processes gone count as 0)."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total * 1000.0 / CLOCK_TICKS


def memory_kb(pids: list[int]) -> tuple[int, int]:
    """(sum of VmRSS, sum of VmHWM) over the given processes, in kB."""
    rss = hwm = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm += int(line.split()[1])
    return rss, hwm


def system_busy_ms() -> float:
    """CPU time all cores spent busy since boot, in ms (from /proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) * 1000.0 / CLOCK_TICKS


def own_and_children_ms() -> float:
    """CPU time of this process and of its reaped children (wrk runs), in ms."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime) * 1000.0


def wait_for_quiet(max_seconds: float, cores: float = 0.25, window: float = 0.5) -> float:
    """Wait (up to max_seconds) until the machine's busy time over a short window is below `cores`.

    Called between runs, when the benchmark's own processes are idle, so whatever is busy belongs
    to someone else. Returns the load seen last, in cores.
    """
    deadline = time.monotonic() + max_seconds
    load = 0.0
    while True:
        busy0, t0 = system_busy_ms(), time.monotonic()
        time.sleep(window)
        load = (system_busy_ms() - busy0) / ((time.monotonic() - t0) * 1000.0)
        if load < cores or time.monotonic() >= deadline:
            return load


@dataclass
class OtherLoad:
    """How much CPU the rest of the machine used during a run, beyond the benchmark's own processes.

    busy(all cores) - server tree - upstream - wrk - this harness, in cores; on a shared machine this
    tells a clean run from a noisy one.
    """

    known_pids: list[int]
    cores: float = 0.0
    _start: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    def __enter__(self) -> "OtherLoad":
        self._start = (time.monotonic(), system_busy_ms(), cpu_ms(self.known_pids), own_and_children_ms())
        return self

    def __exit__(self, *exc: object) -> None:
        wall0, busy0, known0, own0 = self._start
        wall = (time.monotonic() - wall0) * 1000.0
        others = (system_busy_ms() - busy0) - (cpu_ms(self.known_pids) - known0) - (own_and_children_ms() - own0)
        self.cores = max(0.0, others / wall) if wall > 0 else 0.0


@dataclass
class TreeSampler:
    """Samples a process tree's RSS in a thread during one run, and its CPU time before and after."""

    root: int
    interval: float = 0.1
    pids: list[int] = field(default_factory=list)
    peak_rss_kb: int = 0
    hwm_kb: int = 0
    cpu_ms: float = 0.0
    _cpu_start: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> "TreeSampler":
        self.pids = process_tree(self.root)
        self._cpu_start = cpu_ms(self.pids)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_rss_kb = max(self.peak_rss_kb, memory_kb(self.pids)[0])

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.cpu_ms = cpu_ms(self.pids) - self._cpu_start
        rss, self.hwm_kb = memory_kb(self.pids)
        self.peak_rss_kb = max(self.peak_rss_kb, rss)


@dataclass
class Server:
    """One server process started for a contestant, with its log file."""

    name: str
    argv: list[str]
    ready_url: str
    log: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        """Start the process in its own session and wait until ready_url answers."""
        env = dict(os.environ)
        env.update(self.env or {})
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.cwd,
                start_new_session=True,
            )
        wait_ready(self.ready_url, timeout, self.proc, self.log)

    @property
    def pid(self) -> int:
        """The root pid of the server's process tree."""
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        """Terminate the server's process group, then kill what is left."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=5)


class ServerFailed(RuntimeError):
    """A server exited or never became ready."""


def wait_ready(url: str, timeout: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Poll url with GET until it answers anything below 500, or fail with the log's tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerFailed(f"exited with {proc.returncode}: {tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status < 500:
                    return
        except urllib.error.HTTPError as err:
            if err.code < 500:
                return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise ServerFailed(f"not ready after {timeout:.0f}s: {tail(log)}")


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
