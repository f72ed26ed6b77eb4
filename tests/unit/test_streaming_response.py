"""StreamingResponse: pieces ready together go out in one write; nothing is held across a wait."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

import pytest

from lmgate.http import asgi
from lmgate.http.asgi import ClientDisconnected, StreamingResponse


class Recorder:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    def bodies(self) -> list[tuple[bytes, bool]]:
        return [(m["body"], m["more_body"]) for m in self.messages if m["type"] == "http.response.body"]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_pieces_ready_together_are_one_write_and_the_last_carries_the_end() -> None:
    async def pieces() -> AsyncIterator[bytes]:
        yield b"a"
        yield b"b"
        yield b""
        yield b"c"

    rec = Recorder()
    run(StreamingResponse(pieces()).send(rec))
    assert rec.messages[0]["type"] == "http.response.start"
    assert rec.bodies() == [(b"abc", False)]


def test_a_piece_is_written_before_the_stream_waits() -> None:
    async def scenario() -> None:
        gate = asyncio.Event()
        rec = Recorder()

        async def pieces() -> AsyncIterator[bytes]:
            yield b"first"
            yield b"second"
            await gate.wait()
            yield b"third"

        task = asyncio.create_task(StreamingResponse(pieces()).send(rec))
        for _ in range(5):
            await asyncio.sleep(0)
        assert rec.bodies() == [(b"firstsecond", True)]  # out while the producer waits
        gate.set()
        await task
        assert rec.bodies() == [(b"firstsecond", True), (b"third", False)]

    run(scenario())


def test_results_of_awaits_reach_the_producer() -> None:
    async def pieces() -> AsyncIterator[bytes]:
        for i in range(3):
            value = await asyncio.sleep(0.001, result=str(i).encode())
            yield value

    rec = Recorder()
    run(StreamingResponse(pieces()).send(rec))
    assert b"".join(body for body, _ in rec.bodies()) == b"012"
    assert rec.bodies()[-1][1] is False


def test_held_bytes_are_written_past_the_coalescing_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(asgi, "COALESCE_BYTES", 10)

    async def pieces() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"123456"

    rec = Recorder()
    run(StreamingResponse(pieces()).send(rec))
    assert rec.bodies() == [(b"123456123456", True), (b"123456123456", True), (b"123456", False)]


def test_an_empty_stream_still_starts_and_ends_the_response() -> None:
    async def pieces() -> AsyncIterator[bytes]:
        return
        yield b""

    rec = Recorder()
    run(StreamingResponse(pieces()).send(rec))
    assert [m["type"] for m in rec.messages] == ["http.response.start", "http.response.body"]
    assert rec.bodies() == [(b"", False)]


def test_cancelling_while_the_producer_waits_reaches_the_producer() -> None:
    async def scenario() -> list[str]:
        seen: list[str] = []

        async def pieces() -> AsyncIterator[bytes]:
            try:
                yield b"x"
                await asyncio.sleep(30)
                yield b"never"
            except asyncio.CancelledError:
                seen.append("cancelled")
                raise
            finally:
                seen.append("closed")

        task = asyncio.create_task(StreamingResponse(pieces()).send(Recorder()))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return seen

    assert run(scenario()) == ["cancelled", "closed"]


def test_a_client_disconnect_cancels_the_producer_and_is_reported() -> None:
    async def scenario() -> list[str]:
        seen: list[str] = []
        gone = asyncio.Event()

        async def receive() -> dict[str, Any]:
            await gone.wait()
            return {"type": "http.disconnect"}

        async def pieces() -> AsyncIterator[bytes]:
            try:
                yield b"x"
                gone.set()
                await asyncio.sleep(30)
                yield b"never"
            finally:
                seen.append("closed")

        with pytest.raises(ClientDisconnected):
            await StreamingResponse(pieces()).send(Recorder(), receive)
        return seen

    assert run(scenario()) == ["closed"]


def test_an_error_in_the_producer_propagates_after_what_was_written() -> None:
    async def pieces() -> AsyncIterator[bytes]:
        yield b"x"
        await asyncio.sleep(0)
        raise ValueError("broken")

    rec = Recorder()
    with pytest.raises(ValueError, match="broken"):
        run(StreamingResponse(pieces()).send(rec))
    assert rec.bodies() == [(b"x", True)]


@pytest.mark.parametrize("failure", [asyncio.CancelledError, ConnectionResetError])
def test_a_write_failing_while_the_producer_waits_unwinds_the_producer(failure: type[BaseException]) -> None:
    """The held piece is written after the producer began to wait: a failure there must still reach
    the producer (its cleanup runs, closing it afterwards does not find it "already running")."""

    async def scenario() -> list[str]:
        seen: list[str] = []

        async def pieces() -> AsyncIterator[bytes]:
            try:
                yield b"x"
                await asyncio.sleep(30)
                yield b"never"
            finally:
                seen.append("closed")

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                raise failure()

        with pytest.raises((asyncio.CancelledError, ClientDisconnected)):
            await StreamingResponse(pieces()).send(send)
        return seen

    assert run(scenario()) == ["closed"]
