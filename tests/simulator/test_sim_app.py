"""Ways to run the simulator: in the test's event loop, and as a process of its own."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import aiohttp
import requests

from lmgate.simulator.app import Simulator


async def test_async_simulator_in_the_running_loop() -> None:
    async with Simulator() as sim:
        async with aiohttp.ClientSession() as session:
            async with session.post(sim.base_url + "/v1/chat/completions",
                                    headers={"Authorization": "Bearer k"},
                                    json={"model": "m", "messages": [
                                        {"role": "user", "content": "async hello"}]}) as resp:
                body = await resp.json()
        assert "async hello" in body["choices"][0]["message"]["content"]
        assert sim.state.log[-1]["body"]["model"] == "m"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_run_as_a_process() -> None:
    """`run()` (what `lmgate simulate` calls) serving from its own process."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "lmgate.simulator", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = requests.get(f"http://127.0.0.1:{port}/_sim/health", timeout=1)
                break
            except requests.ConnectionError:
                if proc.poll() is not None:
                    raise AssertionError(proc.stdout.read().decode()) from None
                assert time.monotonic() < deadline, "the simulator did not start"
                time.sleep(0.1)
        assert health.json()["status"] == "ok"
        answer = requests.post(f"http://127.0.0.1:{port}/v1/messages",
                               headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
                               json={"model": "c", "max_tokens": 20,
                                     "messages": [{"role": "user", "content": "cli"}]})
        assert answer.json()["type"] == "message"
    finally:
        proc.terminate()
        proc.wait(10)
