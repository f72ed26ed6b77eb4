"""Which codec decodes a same-format RawChunk, by protocol name (one line per codec)."""

from __future__ import annotations

from typing import Callable

from lmgate.types import RawChunk, StreamEvent


def _openai(data: bytes) -> list[StreamEvent]:
    from lmgate.wire.openai import decode_chunk

    return decode_chunk(data)


def _gemini(data: bytes) -> list[StreamEvent]:
    from lmgate.wire.gemini_stream import decode_chunk

    return decode_chunk(data)


CHUNK_DECODERS: dict[str, Callable[[bytes], list[StreamEvent]]] = {
    "openai": _openai,
    "gemini": _gemini,
}


def decode_raw(chunk: RawChunk) -> list[StreamEvent]:
    if chunk.events is None:
        chunk.events = CHUNK_DECODERS[chunk.format](chunk.data)
    return chunk.events
