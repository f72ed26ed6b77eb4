"""AWS event-stream framing (`application/vnd.amazon.eventstream`): encode and decode, CRCs checked.

A message is a prelude (total length and headers length, u32 big-endian) with its own CRC32,
typed headers, a payload, and a CRC32 of everything before it. Bedrock's ConverseStream and
InvokeModelWithResponseStream answer in it; the Bedrock surface speaks it to boto3.
Framing only: the JSON inside each payload belongs to the Bedrock codec.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from dataclasses import dataclass
from typing import Any, AsyncIterator

import orjson

CONTENT_TYPE = "application/vnd.amazon.eventstream"
_PRELUDE = 12  # total length, headers length, prelude CRC
_MAX_MESSAGE = 16 * 1024 * 1024  # AWS caps a message at 16 MB; anything larger is corruption

# Header value types, as AWS numbers them.
_TRUE, _FALSE, _BYTE, _SHORT, _INT, _LONG, _BYTES, _STRING, _TIMESTAMP, _UUID = range(10)


class EventStreamError(ValueError):
    """The bytes are not a valid event stream (bad length, bad CRC, unknown header type)."""


@dataclass(frozen=True, slots=True)
class Message:
    headers: dict[str, Any]
    payload: bytes

    @property
    def message_type(self) -> str:
        return str(self.headers.get(":message-type", "event"))

    @property
    def event_type(self) -> str | None:
        value = self.headers.get(":event-type")
        return str(value) if value is not None else None


def _crc(data: bytes | memoryview) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


# ---------------------------------------------------------------- encode


def _encode_header(name: str, value: Any) -> bytes:
    raw_name = name.encode()
    head = struct.pack(">B", len(raw_name)) + raw_name
    if isinstance(value, bool):
        return head + struct.pack(">B", _TRUE if value else _FALSE)
    if isinstance(value, int):
        return head + struct.pack(">Bi", _INT, value)
    if isinstance(value, (bytes, bytearray)):
        return head + struct.pack(">BH", _BYTES, len(value)) + bytes(value)
    raw = str(value).encode()
    return head + struct.pack(">BH", _STRING, len(raw)) + raw


def encode_message(headers: dict[str, Any], payload: bytes) -> bytes:
    """One framed message (string, int, bool and bytes header values)."""
    head = b"".join(_encode_header(k, v) for k, v in headers.items())
    total = _PRELUDE + len(head) + len(payload) + 4
    prelude = struct.pack(">II", total, len(head))
    prelude += struct.pack(">I", _crc(prelude))
    body = prelude + head + payload
    return body + struct.pack(">I", _crc(body))


def event(event_type: str, payload: Any) -> bytes:
    """An `event` message with a JSON payload, as Bedrock sends each stream event."""
    data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return encode_message({":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}, data)


def exception(exception_type: str, message: str) -> bytes:
    """An `exception` message: how a stream that already started reports a failure."""
    return encode_message(
        {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"},
        orjson.dumps({"message": message}),
    )


# ---------------------------------------------------------------- decode


def _decode_headers(data: bytes) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    pos, end = 0, len(data)
    try:
        while pos < end:
            name_len = data[pos]
            name = data[pos + 1 : pos + 1 + name_len].decode()
            pos += 1 + name_len
            kind = data[pos]
            pos += 1
            value: Any
            if kind == _TRUE or kind == _FALSE:
                value = kind == _TRUE
            elif kind == _BYTE:
                (value,) = struct.unpack_from(">b", data, pos)
                pos += 1
            elif kind == _SHORT:
                (value,) = struct.unpack_from(">h", data, pos)
                pos += 2
            elif kind == _INT:
                (value,) = struct.unpack_from(">i", data, pos)
                pos += 4
            elif kind == _LONG or kind == _TIMESTAMP:  # timestamps are epoch milliseconds
                (value,) = struct.unpack_from(">q", data, pos)
                pos += 8
            elif kind == _BYTES or kind == _STRING:
                (length,) = struct.unpack_from(">H", data, pos)
                raw = data[pos + 2 : pos + 2 + length]
                if len(raw) != length:
                    raise EventStreamError("a header value runs past the headers")
                value = raw.decode() if kind == _STRING else bytes(raw)
                pos += 2 + length
            elif kind == _UUID:
                value = str(uuid.UUID(bytes=bytes(data[pos : pos + 16])))
                pos += 16
            else:
                raise EventStreamError(f"unknown header value type {kind}")
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, EventStreamError):
            raise
        raise EventStreamError("malformed event-stream headers") from None
    if pos != end:
        raise EventStreamError("malformed event-stream headers")
    return headers


class Decoder:
    """Incremental decoder: feed bytes as they arrive, get the complete messages out."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Message]:
        self._buf += data
        out: list[Message] = []
        while len(self._buf) >= _PRELUDE:
            total, head_len, prelude_crc = struct.unpack_from(">III", self._buf, 0)
            if _crc(memoryview(self._buf)[:8]) != prelude_crc:
                raise EventStreamError("event-stream prelude CRC mismatch")
            if total < _PRELUDE + 4 + head_len or total > _MAX_MESSAGE:
                raise EventStreamError(f"event-stream message length {total} is not valid")
            if len(self._buf) < total:
                break
            frame = bytes(self._buf[:total])
            del self._buf[:total]
            (message_crc,) = struct.unpack_from(">I", frame, total - 4)
            if _crc(frame[: total - 4]) != message_crc:
                raise EventStreamError("event-stream message CRC mismatch")
            headers = _decode_headers(frame[_PRELUDE : _PRELUDE + head_len])
            out.append(Message(headers, frame[_PRELUDE + head_len : total - 4]))
        return out

    @property
    def pending(self) -> int:
        """Bytes of an unfinished message still buffered."""
        return len(self._buf)


def decode_all(data: bytes) -> list[Message]:
    """Every message of a complete buffer; trailing partial bytes are an error."""
    d = Decoder()
    messages = d.feed(data)
    if d.pending:
        raise EventStreamError("the event stream ends inside a message")
    return messages


async def decode_stream(chunks: AsyncIterator[bytes]) -> AsyncIterator[Message]:
    """Messages as their last byte arrives."""
    d = Decoder()
    async for chunk in chunks:
        for message in d.feed(chunk):
            yield message
    if d.pending:
        raise EventStreamError("the event stream ends inside a message")
