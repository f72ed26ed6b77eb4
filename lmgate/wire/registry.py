"""Which codec decodes a same-format RawChunk, by protocol name (one line per codec).

What `RawChunk.data` holds is the codec's own unit: for openai, one or more whole SSE frames
(`data: {...}\n\n`) as the upstream sent them; for gemini, one frame's JSON payload.
"""

from __future__ import annotations

from typing import Callable

from lmgate.types import RawChunk, StreamEvent


def _openai(data: bytes) -> list[StreamEvent]:
    from lmgate.wire.openai import decode_frames

    return decode_frames(data)


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
