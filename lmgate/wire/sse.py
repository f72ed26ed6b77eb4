"""Server-sent events: framing only (the payload format belongs to each codec)."""

from __future__ import annotations

from typing import AsyncIterator, NamedTuple


class SSEvent(NamedTuple):
    event: str | None
    data: bytes


async def decode_sse(chunks: AsyncIterator[bytes]) -> AsyncIterator[SSEvent]:
    """Split a byte stream into events at blank lines, as the chunks arrive.

    Handles \\n, \\r\\n and \\r line ends, multi-line `data:` fields and comment lines.
    """
    buf = b""
    async for chunk in chunks:
        if not chunk:
            continue
        buf = buf + chunk if buf else chunk
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        while True:
            end = buf.find(b"\n\n")
            if end < 0:
                break
            block, buf = buf[:end], buf[end + 2 :]
            ev = _parse_block(block)
            if ev is not None:
                yield ev
    if buf.strip():
        ev = _parse_block(buf)
        if ev is not None:
            yield ev


def _parse_block(block: bytes) -> SSEvent | None:
    if block.startswith(b"data: ") and b"\n" not in block:  # the common one-line case
        return SSEvent(None, block[6:])
    event = None
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event = value.decode()
    if not data and event is None:
        return None
    return SSEvent(event, b"\n".join(data))


def encode_sse(data: bytes, event: str | None = None) -> bytes:
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
