"""The OpenAI provider's stream reader: runs of plain frames forwarded whole, usage, errors and the
end found wherever the upstream's reads cut the stream."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

import orjson
import pytest

from lmgate.config import ProviderConfig
from lmgate.errors import UpstreamError
from lmgate.providers import http
from lmgate.providers.http import HttpPool
from lmgate.providers.openai import OpenAIProvider
from lmgate.types import RawChunk, StreamStart, StreamUsage


def frame(obj: Any, spaced: bool = False) -> bytes:
    text = orjson.dumps(obj)
    if spaced:
        text = text.replace(b'":', b'": ').replace(b',"', b', "')  # the style of json.dumps
    return b"data: " + text + b"\n\n"


def chunk(i: int, content: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
        "usage": None,
    }


USAGE = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
         "usage": {"prompt_tokens": 7, "completion_tokens": 20, "total_tokens": 27}}


def collect(reads: list[bytes], monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    provider = OpenAIProvider("up", ProviderConfig(type="openai", base_url="http://127.0.0.1:9/v1", api_key="k"), HttpPool())

    async def post(*args: Any, **kwargs: Any) -> None:
        return None

    class Reads:
        def __init__(self) -> None:
            self.left = list(reads)

        def __aiter__(self) -> "Reads":
            return self

        async def __anext__(self) -> bytes:
            if not self.left:
                raise StopAsyncIteration
            return self.left.pop(0)

    monkeypatch.setattr(provider, "_post", post)
    monkeypatch.setattr(provider, "chat_body", lambda req, call: b"")
    monkeypatch.setattr(http, "iter_body", lambda resp, name: Reads())

    async def run() -> list[Any]:
        events: AsyncIterator[Any] = provider.stream(None, None)  # type: ignore[arg-type]
        return [ev async for ev in events]

    return asyncio.run(run())


def forwarded(events: list[Any]) -> bytes:
    return b"".join(ev.data for ev in events if isinstance(ev, RawChunk))


def cuts(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


PLAIN = [frame(chunk(i, f"word{i} ")) for i in range(30)]
STREAM = b"".join(PLAIN) + frame(USAGE) + b"data: [DONE]\n\n"


@pytest.mark.parametrize("size", [len(STREAM), 4096, 333, 64, 7, 1])
def test_frames_pass_unchanged_and_usage_is_found_however_the_reads_cut(size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    events = collect(cuts(STREAM, size), monkeypatch)
    assert isinstance(events[0], StreamStart) and events[0].id == "chatcmpl-1"
    assert forwarded(events) == b"".join(PLAIN)
    usage = [ev for ev in events if isinstance(ev, StreamUsage)]
    assert len(usage) == 1 and (usage[0].usage.input_tokens, usage[0].usage.output_tokens) == (7, 20)


def test_one_read_is_forwarded_in_few_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    events = collect([STREAM], monkeypatch)
    assert len([ev for ev in events if isinstance(ev, RawChunk)]) <= 2  # the first frame, then the run


def test_spaced_json_usage_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = b"".join(frame(chunk(i, "x"), spaced=True) for i in range(3)) + frame(USAGE, spaced=True) + b"data: [DONE]\n\n"
    events = collect([stream], monkeypatch)
    usage = [ev for ev in events if isinstance(ev, StreamUsage)]
    assert len(usage) == 1 and usage[0].usage.output_tokens == 20
    assert b"prompt_tokens" not in forwarded(events)  # the usage frame is the surface's to render, with the cost


def test_marks_inside_the_text_are_forwarded_as_text(monkeypatch: pytest.MonkeyPatch) -> None:
    tricky = [frame(chunk(0, "a")), frame(chunk(1, 'say [DONE] or "error" or max_tokens" please'))]
    events = collect([b"".join(tricky) + frame(USAGE) + b"data: [DONE]\n\n"], monkeypatch)
    assert forwarded(events) == b"".join(tricky)


def test_an_error_frame_after_a_run_fails_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = b"".join(PLAIN[:5]) + frame({"error": {"message": "overloaded", "type": "server_error"}})
    with pytest.raises(UpstreamError, match="overloaded"):
        collect([stream], monkeypatch)


def running_usage_stream() -> tuple[list[bytes], bytes]:
    frames = []
    for i in range(4):
        c = chunk(i, "x")
        c["usage"] = {"prompt_tokens": 7, "completion_tokens": i + 1, "total_tokens": 8 + i}
        frames.append(frame(c))
    return frames, b"".join(frames) + b"data: [DONE]\n\n"


def test_usage_repeated_in_every_chunk_ends_at_the_running_total(monkeypatch: pytest.MonkeyPatch) -> None:
    """vLLM's continuous usage: the frames in the middle of a read go out untouched, usage and all;
    the last one, read as usage, is the whole."""
    frames, stream = running_usage_stream()
    events = collect([stream], monkeypatch)
    usage = [ev.usage.output_tokens for ev in events if isinstance(ev, StreamUsage)]
    assert usage[-1] == 4
    assert b"".join(frames[1:3]) in forwarded(events)


@pytest.mark.parametrize("size", [10_000, 50, 1])
def test_frames_are_looked_at_everywhere_when_needs_may_come_anywhere(size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(OpenAIProvider, "needs_come_last", False)  # as Azure, whose annotation frames come anywhere
    _, stream = running_usage_stream()
    events = collect(cuts(stream, size), monkeypatch)
    assert [ev.usage.output_tokens for ev in events if isinstance(ev, StreamUsage)] == [1, 2, 3, 4]
    assert b"prompt_tokens" not in forwarded(events)


@pytest.mark.parametrize("last", [True, False])
@pytest.mark.parametrize("size", [len(STREAM), 333, 1])
def test_both_ways_of_looking_agree_on_a_plain_stream(last: bool, size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(OpenAIProvider, "needs_come_last", last)
    events = collect(cuts(STREAM, size), monkeypatch)
    assert forwarded(events) == b"".join(PLAIN)
    assert [ev.usage.output_tokens for ev in events if isinstance(ev, StreamUsage)] == [20]


def test_a_stream_cut_before_done_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UpstreamError, match="ended the stream early"):
        collect([b"".join(PLAIN)], monkeypatch)
