"""Shared by tests/conformance and tests/reference: small valid media files built in the test,
a throw-away Vertex service account, a TLS gateway for boto3, and skips for parts not landed yet."""

from __future__ import annotations

import lmgate.testing as lmgate_testing

import json
import shutil
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from lmgate.simulator.answer import png_bytes

# ---------------------------------------------------------------- what has landed


def need_surface(name: str) -> None:
    """Skip when a surface is not in app.SURFACES yet."""
    from lmgate.app import SURFACES

    if name not in {s.NAME for s in SURFACES}:
        pytest.skip(f"surface {name!r} has not landed in lmgate/app.py SURFACES yet")


# ---------------------------------------------------------------- media files


def sample_png(seed: str = "sample") -> bytes:
    """An 8x8 PNG (the simulator's own generator: valid chunks and CRCs)."""
    return png_bytes(seed)


def sample_pdf(text: str = "A World of Love") -> bytes:
    """A one-page PDF whose text layer says `text` (xref offsets computed, so pypdf reads it)."""
    return lmgate_testing.sample_pdf(text)


def sample_mp3(frames: int = 10) -> bytes:
    """An ID3v2.3 tag and `frames` MPEG-1 Layer III frames (128 kbit/s, 44.1 kHz, no CRC) of
    silence: header FF FB 90 44, then 413 zero bytes (zero side info = empty granules)."""
    id3 = b"ID3\x03\x00\x00" + bytes([0, 0, 0, 0])  # empty tag, syncsafe size 0
    frame = b"\xff\xfb\x90\x44" + b"\x00" * (417 - 4)  # 144 * 128000 / 44100 = 417 bytes
    return id3 + frame * frames


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def sample_mp4() -> bytes:
    """A well-formed ISO BMFF file: ftyp, moov with an mvhd (1 s at 1000 units/s), an empty mdat."""
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2mp41")
    matrix = struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)
    mvhd = _box(
        b"mvhd",
        b"\x00\x00\x00\x00"  # version 0, flags
        + struct.pack(">IIII", 0, 0, 1000, 1000)  # creation, modification, timescale, duration
        + struct.pack(">IH", 0x00010000, 0x0100)  # rate 1.0, volume 1.0
        + b"\x00" * 10  # reserved
        + matrix
        + b"\x00" * 24  # pre_defined
        + struct.pack(">I", 2),  # next_track_ID
    )
    return ftyp + _box(b"moov", mvhd) + _box(b"mdat", b"")


def iso_boxes(data: bytes) -> list[bytes]:
    """Top-level box types of an ISO BMFF file (to check sample_mp4 is well formed)."""
    kinds, i = [], 0
    while i < len(data):
        size = struct.unpack(">I", data[i : i + 4])[0]
        kinds.append(data[i + 4 : i + 8])
        assert size >= 8 and i + size <= len(data)
        i += size
    return kinds


# ---------------------------------------------------------------- Vertex


def service_account_json(token_uri: str) -> str:
    """A fresh service-account key whose token_uri is the simulator's OAuth endpoint."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    return json.dumps({
        "type": "service_account", "project_id": "conformance-proj", "private_key_id": "k1", "private_key": pem,
        "client_email": "lmgate@conformance-proj.iam.gserviceaccount.com", "client_id": "1", "token_uri": token_uri,
    })


# ---------------------------------------------------------------- a TLS gateway (boto3 sends bearer keys over HTTPS only)


@dataclass
class TlsGateway:
    base_url: str
    ca_file: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def start_tls_gateway(config_text: str, folder: Path, **gateway_args) -> TlsGateway:  # type: ignore[no-untyped-def]
    """The gateway of `config_text` behind HTTPS with a self-signed certificate for 127.0.0.1."""
    from lmgate.app import Gateway
    from lmgate.config import parse_config
    from lmgate.testing import self_signed_cert, serve_app

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed for a test certificate")
    cert, key = self_signed_cert(folder)
    running = serve_app(Gateway(parse_config(config_text), **gateway_args), ssl_certfile=cert, ssl_keyfile=key)
    return TlsGateway(running.base_url, cert, running.server, running.thread)
