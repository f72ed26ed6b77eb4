"""The router's cost per request (not a test; run by hand):

    .venv/bin/python tests/routing/bench_router.py            # micro: µs per Router.run, trivial attempt
    .venv/bin/python tests/routing/bench_router.py --http     # + the same-format chat path through a
                                                              #   gateway (nginx upstream, wrk), 1 vs 3 deployments

The micro numbers are the router alone (pick, health and capacity bookkeeping, the Attempt record)
minus a bare `await attempt(dep)`. The HTTP numbers compare one lmgate process serving a model with
one deployment and a model with three (all on the same nginx), runs interleaved, medians reported.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(Path(__file__).parent)]

from routing_helpers import ctx, dep, route  # noqa: E402

from lmgate.config import RouterConfig  # noqa: E402
from lmgate.routing.router import Router  # noqa: E402


async def _micro(n: int) -> dict[str, float]:
    out: dict[str, float] = {}

    async def attempt(d):  # type: ignore[no-untyped-def]
        return d

    def router_for(deps, strategy="weighted"):  # type: ignore[no-untyped-def]
        m = route("m", deps, strategy=strategy)
        return Router(RouterConfig(), {"m": m}), m

    cases = {
        "1 deployment": router_for([dep("a")]),
        "3 deployments, weighted": router_for([dep("a", weight=1), dep("b", weight=2), dep("c", weight=3)]),
        "3 deployments, least-busy": router_for([dep("a"), dep("b"), dep("c")], "least-busy"),
        "3 deployments, rpm/tpm set": router_for([dep("a", rpm=10**9, tpm=10**12), dep("b", rpm=10**9, tpm=10**12), dep("c", rpm=10**9, tpm=10**12)]),
    }
    c = ctx()
    d0 = dep("x")
    for _ in range(5):  # best of 5 rounds
        t0 = time.perf_counter()
        for _ in range(n):
            await attempt(d0)
        base = (time.perf_counter() - t0) / n * 1e6
        out["bare await"] = min(out.get("bare await", 1e9), base)
        for name, (r, m) in cases.items():
            t0 = time.perf_counter()
            for _ in range(n):
                c.attempts.clear()
                await r.run(c, m, attempt, tokens=100)
            us = (time.perf_counter() - t0) / n * 1e6 - base
            out[name] = min(out.get(name, 1e9), us)
    return out


# ---------------------------------------------------------------- through the gateway


CONFIG = """
providers:
  up1: {{type: openai, base_url: "{up}/v1", api_key: x}}
  up2: {{type: openai, base_url: "{up}/v1", api_key: x}}
  up3: {{type: openai, base_url: "{up}/v1", api_key: x}}
models:
  - name: one
    deployments: [{{provider: up1, model: bench-model}}]
    pricing: {{input: 1, output: 2, unit: 1M tokens}}
  - name: three
    deployments:
      - {{provider: up1, model: bench-model, weight: 1}}
      - {{provider: up2, model: bench-model, weight: 2}}
      - {{provider: up3, model: bench-model, weight: 3}}
    pricing: {{input: 1, output: 2, unit: 1M tokens}}
keys:
  - {{key: sk-bench-0000000000000000, name: bench}}
server: {{default_cache: false, default_guard: 0}}  # every request goes through the router
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def _wait(url: str, timeout: float = 20) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except Exception:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def _wrk(url: str, model: str, conns: int, seconds: int) -> tuple[float, float, int]:
    env = dict(os.environ, BENCH_MODEL=model, BENCH_KEY="sk-bench-0000000000000000", BENCH_HEADERS="")
    script = ROOT / "bench" / "wrk" / "chat.lua"
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", str(script), url],
                         capture_output=True, text=True, env=env, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p50 = float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    if "Non-2xx" in out:
        raise RuntimeError("non-2xx answers:\n" + out)
    return rps, p50, total


def _http(rounds: int, seconds: int) -> dict[str, dict[str, float]]:
    sys.path.insert(0, str(ROOT / "bench"))
    from upstream import write_nginx_config  # type: ignore[import-not-found]

    work = Path(tempfile.mkdtemp(prefix="lmgate-routing-bench-"))
    up_port, gw_port = _free_port(), _free_port()
    nginx = subprocess.Popen(["nginx", "-c", str(write_nginx_config(work, up_port)), "-p", str(work)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cfg = work / "gw.yaml"
    cfg.write_text(CONFIG.format(up=f"http://127.0.0.1:{up_port}") + f"database: sqlite:///{work}/bench.db\n")
    server = subprocess.Popen([str(ROOT / ".venv/bin/lmgate"), "serve", "--config", str(cfg), "--port", str(gw_port)],
                              stdout=open(work / "gw.log", "w"), stderr=subprocess.STDOUT)
    results: dict[str, dict[str, list[float]]] = {m: {"p50_ms@1": [], "rps@32": [], "cpu_us_per_req@32": []} for m in ("one", "three")}
    try:
        _wait(f"http://127.0.0.1:{up_port}/")
        _wait(f"http://127.0.0.1:{gw_port}/health")
        url = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
        for model in ("one", "three"):
            _wrk(url, model, 32, 1)  # warm up
        for _ in range(rounds):
            for model in ("one", "three"):
                _, p50, _ = _wrk(url, model, 1, seconds)
                before = _cpu_ms(server.pid)
                rps, _, total = _wrk(url, model, 32, seconds)
                results[model]["p50_ms@1"].append(p50)
                results[model]["rps@32"].append(rps)
                results[model]["cpu_us_per_req@32"].append((_cpu_ms(server.pid) - before) * 1000 / max(total, 1))
    finally:
        server.terminate()
        server.wait(10)
        nginx.terminate()
        nginx.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    return {m: {k: statistics.median(v) for k, v in r.items()} for m, r in results.items()}


async def _asgi_rounds(up: str, rounds: int, n: int, conc: int) -> dict[str, dict[str, float]]:
    """Drive the Gateway's ASGI callable in-process (no server, no load generator): CPU µs of this
    process per request, so other load on the machine disturbs it less than wall-clock numbers."""
    from lmgate.app import Gateway
    from lmgate.config import parse_config

    gw = Gateway(parse_config(CONFIG.format(up=up)))
    await gw.start()
    body = (b'{"model":"%s","messages":[{"role":"system","content":"You are a helpful assistant."},'
            b'{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":64,"temperature":0}')

    async def one(model: bytes) -> None:
        sent = [False]

        async def receive() -> dict:
            if not sent[0]:
                sent[0] = True
                return {"type": "http.request", "body": body % model, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        status = [0]

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]

        scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "query_string": b"",
                 "headers": [(b"authorization", b"Bearer sk-bench-0000000000000000"), (b"content-type", b"application/json")]}
        await gw(scope, receive, send)
        if status[0] != 200:
            raise RuntimeError(f"status {status[0]}")

    async def batch(model: bytes) -> float:
        t0 = time.process_time()
        for _ in range(n // conc):
            await asyncio.gather(*(one(model) for _ in range(conc)))
        return (time.process_time() - t0) / (n // conc * conc) * 1e6

    out: dict[str, list[float]] = {"one": [], "three": []}
    for model in ("one", "three"):
        await batch(model.encode())  # warm up
    for _ in range(rounds):
        for model in ("one", "three"):
            out[model].append(await batch(model.encode()))
    await gw.stop()
    return {m: {"cpu_us_per_req": statistics.median(v), "min": min(v)} for m, v in out.items()}


def _asgi(rounds: int, n: int, conc: int) -> dict[str, dict[str, float]]:
    sys.path.insert(0, str(ROOT / "bench"))
    from upstream import write_nginx_config  # type: ignore[import-not-found]

    work = Path(tempfile.mkdtemp(prefix="lmgate-routing-bench-"))
    port = _free_port()
    nginx = subprocess.Popen(["nginx", "-c", str(write_nginx_config(work, port)), "-p", str(work)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(f"http://127.0.0.1:{port}/")
        return asyncio.run(_asgi_rounds(f"http://127.0.0.1:{port}", rounds, n, conc))
    finally:
        nginx.terminate()
        nginx.wait(10)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="micro: calls per case")
    ap.add_argument("--http", action="store_true", help="also measure through a gateway (needs nginx and wrk)")
    ap.add_argument("--asgi", action="store_true", help="also measure the gateway in-process against nginx (CPU per request)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    args = ap.parse_args()
    print(f"Router.run, trivial attempt, {args.n} calls (µs per call above a bare await):")
    for name, us in asyncio.run(_micro(args.n)).items():
        print(f"  {name:32s} {us:7.2f}")
    if args.asgi:
        print("\nsame-format chat, Gateway called in-process against nginx, 32 concurrent (CPU µs of this process per request):")
        for model, row in _asgi(args.rounds * 2, 4000, 32).items():
            print(f"  {model:6s} " + "  ".join(f"{k} {v:,.1f}" for k, v in row.items()))
    if args.http:
        print(f"\nsame-format chat through the gateway (medians of {args.rounds} interleaved rounds of {args.seconds} s):")
        res = _http(args.rounds, args.seconds)
        for model, row in res.items():
            print(f"  {model:6s} " + "  ".join(f"{k} {v:,.2f}" for k, v in row.items()))


if __name__ == "__main__":
    main()
