"""What is measured: the four runs, the request bodies, and one checked request before each run.

The bodies mirror bench/wrk/*.lua (tests/bench checks that they stay the same), so the request
checked here is the one wrk then sends thousands of times.
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson


@dataclass(frozen=True)
class Scenario:
    """One wrk run: a kind of request at a number of connections."""

    name: str
    kind: str  # chat | stream | embed
    script: str
    connections: int


def scenarios(connections: int = 32) -> list[Scenario]:
    """Chat at 1 connection and at N, streamed chat at N, embeddings at N."""
    return [
        Scenario("chat@1", "chat", "chat.lua", 1),
        Scenario(f"chat@{connections}", "chat", "chat.lua", connections),
        Scenario(f"stream@{connections}", "stream", "stream.lua", connections),
        Scenario(f"embed@{connections}", "embed", "embed.lua", connections),
    ]


MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Say hello in one short sentence."},
]


def request_body(kind: str, model: str) -> bytes:
    """The JSON body the Lua script of this kind sends, for one model name."""
    if kind == "chat":
        return orjson.dumps({"model": model, "messages": MESSAGES, "max_tokens": 64, "temperature": 0})
    if kind == "stream":
        return orjson.dumps(
            {
                "model": model,
                "messages": MESSAGES,
                "max_tokens": 64,
                "temperature": 0,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        )
    if kind == "embed":
        return orjson.dumps({"model": model, "input": "The quick brown fox jumps over the lazy dog."})
    raise ValueError(kind)


DEFAULT_MODELS = {"chat": "bench-model", "stream": "bench-stream", "embed": "bench-embed"}


@dataclass
class Checked:
    """The outcome of the request checked before a run."""

    ok: bool
    detail: str
    headers: dict[str, str]


def check_request(url: str, kind: str, model: str, headers: dict[str, str]) -> Checked:
    """Send one request like wrk's and check it is a 200 with the expected shape."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.request(
            "POST",
            parts.path,
            body=request_body(kind, model),
            headers={"Content-Type": "application/json", **headers},
        )
        resp = conn.getresponse()
        body = resp.read()
        got = {k.lower(): v for k, v in resp.getheaders()}
    except OSError as err:
        return Checked(False, f"request failed: {err}", {})
    finally:
        conn.close()
    if resp.status != 200:
        return Checked(False, f"HTTP {resp.status}: {body[:300]!r}", got)
    try:
        detail = SHAPE_CHECKS[kind](body)
    except (ValueError, KeyError, IndexError, TypeError) as err:
        return Checked(False, f"unexpected body ({err}): {body[:300]!r}", got)
    return Checked(True, detail, got)


def check_chat(body: bytes) -> str:
    """A chat completion with a non-empty answer."""
    data = orjson.loads(body)
    content = data["choices"][0]["message"]["content"]
    if not content:
        raise ValueError("empty content")
    return f"{len(body)} bytes"


def check_stream(body: bytes) -> str:
    """An SSE stream of chunks ending in [DONE], with a usage chunk."""
    events = [line[5:].strip() for line in body.split(b"\n") if line.startswith(b"data:")]
    if not events or events[-1] != b"[DONE]":
        raise ValueError("no data: [DONE] at the end")
    chunks = [orjson.loads(e) for e in events[:-1]]
    if not any(c.get("usage") for c in chunks):
        raise ValueError("no usage chunk")
    return f"{len(chunks)} chunks"


def check_embed(body: bytes) -> str:
    """An embeddings list with one vector."""
    data = orjson.loads(body)
    vector = data["data"][0]["embedding"]
    if not vector:
        raise ValueError("empty embedding")
    return f"{len(vector)} dims"


SHAPE_CHECKS = {"chat": check_chat, "stream": check_stream, "embed": check_embed}
