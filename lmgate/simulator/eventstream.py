"""AWS event-stream binary framing (`application/vnd.amazon.eventstream`), encoder side.

Each message: prelude (total length, headers length, both u32 big-endian) and its CRC32,
headers (name length u8, name, value type u8 = 7 for string, value length u16, value),
payload, and a CRC32 of everything before it.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import orjson

_STRING = 7


def _headers(headers: dict[str, str]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        out += struct.pack(">B", len(raw_name)) + raw_name
        out += struct.pack(">BH", _STRING, len(raw_value)) + raw_value
    return bytes(out)


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One framed message."""
    head = _headers(headers)
    total = 12 + len(head) + len(payload) + 4
    prelude = struct.pack(">II", total, len(head))
    prelude += struct.pack(">I", zlib.crc32(prelude) & 0xFFFFFFFF)
    body = prelude + head + payload
    return body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def event(event_type: str, payload: dict[str, Any]) -> bytes:
    """An `event` message whose payload is JSON."""
    return encode_message(
        {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"},
        orjson.dumps(payload),
    )


def exception(exception_type: str, message: str) -> bytes:
    """An `exception` message, as a stream reports a failure after it started."""
    return encode_message(
        {":exception-type": exception_type, ":content-type": "application/json",
         ":message-type": "exception"},
        orjson.dumps({"message": message}),
    )


def decode_messages(data: bytes) -> list[tuple[dict[str, str], bytes]]:
    """Split a buffer into (headers, payload) pairs, checking both CRCs (used by tests)."""
    out = []
    pos = 0
    while pos < len(data):
        total, head_len = struct.unpack_from(">II", data, pos)
        (prelude_crc,) = struct.unpack_from(">I", data, pos + 8)
        if zlib.crc32(data[pos : pos + 8]) & 0xFFFFFFFF != prelude_crc:
            raise ValueError("prelude CRC mismatch")
        (msg_crc,) = struct.unpack_from(">I", data, pos + total - 4)
        if zlib.crc32(data[pos : pos + total - 4]) & 0xFFFFFFFF != msg_crc:
            raise ValueError("message CRC mismatch")
        headers: dict[str, str] = {}
        h = pos + 12
        end = h + head_len
        while h < end:
            name_len = data[h]
            name = data[h + 1 : h + 1 + name_len].decode()
            h += 1 + name_len
            kind = data[h]
            if kind != _STRING:
                raise ValueError(f"unsupported header type {kind}")
            (value_len,) = struct.unpack_from(">H", data, h + 1)
            headers[name] = data[h + 3 : h + 3 + value_len].decode()
            h += 3 + value_len
        out.append((headers, data[end : pos + total - 4]))
        pos += total
    return out
