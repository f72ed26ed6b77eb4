"""AWS event-stream framing: our encoder read by botocore's parser, botocore-framed bytes read by us,
incremental decoding, and CRC failures."""

from __future__ import annotations

import asyncio
import struct
import uuid
import zlib

import orjson
import pytest
from botocore.eventstream import EventStreamBuffer

from lmgate.wire import eventstream as es


def test_botocore_reads_what_we_encode() -> None:
    data = es.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "héllo"}})
    data += es.exception("throttlingException", "slow down")
    data += es.encode_message({"flag": True, "off": False, "n": 7, "raw": b"\x00\x01"}, b"payload")
    buf = EventStreamBuffer()
    buf.add_data(data)
    messages = list(buf)
    assert [m.headers.get(":event-type") for m in messages[:1]] == ["contentBlockDelta"]
    assert orjson.loads(messages[0].payload) == {"contentBlockIndex": 0, "delta": {"text": "héllo"}}
    assert messages[1].headers[":message-type"] == "exception"
    assert messages[1].headers[":exception-type"] == "throttlingException"
    assert messages[2].headers == {"flag": True, "off": False, "n": 7, "raw": b"\x00\x01"}
    assert messages[2].payload == b"payload"


def _frame(headers: bytes, payload: bytes) -> bytes:
    """A message framed by hand, for header types our encoder never writes."""
    total = 12 + len(headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + headers + payload
    return body + struct.pack(">I", zlib.crc32(body))


def test_every_header_value_type_decodes() -> None:
    u = uuid.UUID("12345678-1234-5678-1234-567812345678")

    def h(name: str, kind: int, value: bytes) -> bytes:
        return bytes([len(name)]) + name.encode() + bytes([kind]) + value

    headers = (
        h("t", 0, b"") + h("f", 1, b"") + h("b", 2, struct.pack(">b", -3)) + h("s", 3, struct.pack(">h", 300))
        + h("i", 4, struct.pack(">i", -70000)) + h("l", 5, struct.pack(">q", 2**40)) + h("y", 6, struct.pack(">H", 2) + b"\xff\x00")
        + h("str", 7, struct.pack(">H", 3) + b"abc") + h("ts", 8, struct.pack(">q", 1700000000000)) + h("u", 9, u.bytes)
    )
    (msg,) = es.decode_all(_frame(headers, b"{}"))
    assert msg.headers == {"t": True, "f": False, "b": -3, "s": 300, "i": -70000, "l": 2**40, "y": b"\xff\x00", "str": "abc", "ts": 1700000000000, "u": str(u)}
    assert msg.payload == b"{}"


def test_incremental_decoding_byte_by_byte() -> None:
    frames = [es.event("messageStart", {"role": "assistant"}), es.event("metadata", {"usage": {"inputTokens": 3}}), es.event("x", b"")]
    data = b"".join(frames)
    decoder = es.Decoder()
    got = []
    for i in range(len(data)):
        got.extend(decoder.feed(data[i : i + 1]))
    assert [m.event_type for m in got] == ["messageStart", "metadata", "x"]
    assert decoder.pending == 0
    assert got[2].payload == b""


def test_prelude_crc_failure() -> None:
    data = bytearray(es.event("messageStart", {"role": "assistant"}))
    data[1] ^= 0x01  # the total length field
    with pytest.raises(es.EventStreamError, match="prelude CRC"):
        es.decode_all(bytes(data))


def test_message_crc_failure() -> None:
    data = bytearray(es.event("messageStart", {"role": "assistant"}))
    data[-6] ^= 0x20  # inside the payload
    with pytest.raises(es.EventStreamError, match="message CRC"):
        es.decode_all(bytes(data))


def test_truncated_stream_is_an_error() -> None:
    data = es.event("messageStart", {"role": "assistant"})

    async def chunks():  # type: ignore[no-untyped-def]
        yield data
        yield data[:10]

    async def run() -> list[es.Message]:
        return [m async for m in es.decode_stream(chunks())]

    with pytest.raises(es.EventStreamError, match="ends inside"):
        asyncio.run(run())


def test_decodes_the_simulator_framing() -> None:
    from lmgate.simulator import eventstream as sim_es

    data = sim_es.event("contentBlockDelta", {"delta": {"text": "hi"}}) + sim_es.exception("validationException", "bad")
    first, second = es.decode_all(data)
    assert first.event_type == "contentBlockDelta" and orjson.loads(first.payload)["delta"]["text"] == "hi"
    assert second.message_type == "exception" and second.headers[":exception-type"] == "validationException"
