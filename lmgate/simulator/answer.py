"""Deterministic answers: what the simulated model says, and how many tokens it cost.

Same input, same output: the answer echoes a hash of the request and the first words of the
last user message, so tests can check that a prompt really reached the upstream, which model
answered it, and that whole and streamed answers carry the same text.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from lmgate.simulator.knobs import Knobs

MEDIA_TOKENS = 258  # tokens charged per image/document/audio/video part
_FILLER = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
    "november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu"
).split()
_PIECE_RE = re.compile(r"\s*\S{1,8}")


@dataclass(slots=True)
class Prompt:
    """What the simulator understood of a chat request, whatever its protocol."""

    model: str
    last_user_text: str = ""  # text of the last user message (directives included)
    tool_result: str | None = None  # content of the tool result when the last turn is one
    tool_result_name: str | None = None  # tool name or call id the result answers
    input_chars: int = 0  # characters of every text in the request
    media: dict[str, int] = field(default_factory=dict)  # kind -> number of parts
    tools: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (name, JSON schema)
    max_tokens: int | None = None
    json_schema: dict[str, Any] | None = None  # structured output requested with a schema
    json_mode: bool = False  # structured output requested without a schema

    def end_turn(self, role: str, texts: list[str], results: list[str]) -> None:
        """Count a message's texts; a user turn sets the question and tool result to answer."""
        self.input_chars += sum(len(t) for t in texts)
        if role == "user":
            if texts or not results:  # a turn of tool results alone keeps the question before it
                self.last_user_text = "\n".join(texts)
            self.tool_result = "\n".join(results) if results else None


@dataclass(slots=True)
class Plan:
    """The answer to render: text or one tool call, a finish reason, and usage."""

    kind: str  # "text" | "tool"
    text: str
    pieces: list[str]  # text split into output tokens; "".join(pieces) == text
    finish: str  # stop | length | tool_calls | content_filter
    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    tool_name: str = ""
    tool_args: dict[str, Any] = field(default_factory=dict)
    tool_args_json: str = ""
    digest: str = ""  # hex digest of the request, for deterministic ids

    def chunks(self, target: int = 40) -> list[str]:
        """Stream deltas: one piece each, grouped so there are at most ~`target` of them."""
        source = split_pieces(self.tool_args_json) if self.kind == "tool" else self.pieces
        if not source:
            return []
        size = max(1, math.ceil(len(source) / target))
        return ["".join(source[i : i + size]) for i in range(0, len(source), size)]

    def short_id(self, n: int = 24) -> str:
        """A deterministic alphanumeric id derived from the request."""
        return self.digest[:n]


def count_tokens(chars: int) -> int:
    """About four characters a token, at least one."""
    return max(1, math.ceil(chars / 4))


def split_pieces(text: str) -> list[str]:
    """Split text into token-sized pieces whose concatenation is the text."""
    pieces = _PIECE_RE.findall(text)
    joined = "".join(pieces)
    if joined != text:
        rest = text[len(joined) :]
        if pieces:
            pieces[-1] += rest
        else:
            pieces = [rest]
    return pieces


def digest_of(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


def _excerpt(text: str, words: int = 12) -> str:
    tokens = text.split()
    out = " ".join(tokens[:words])
    return out + (" ..." if len(tokens) > words else "")


def _media_note(media: dict[str, int]) -> str:
    if not media:
        return ""
    parts = [f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in sorted(media.items())]
    return " I received " + " and ".join(parts) + "."


def default_text(prompt: Prompt, clean_text: str, digest: str) -> str:
    """The answer when nothing else was asked: who answered, a hash, and an echo."""
    head = f"Simulated reply from {prompt.model} [{digest[:8]}]:"
    if prompt.tool_result is not None:
        result = prompt.tool_result.strip()
        if len(result) > 200:
            result = result[:200] + " ..."
        name = prompt.tool_result_name or "tool"
        return f"{head} the tool {name} returned: {result}"
    if clean_text.strip():
        return f'{head} you said "{_excerpt(clean_text)}".{_media_note(prompt.media)}'
    return f"{head} you sent no text.{_media_note(prompt.media)}"


def example_for_schema(schema: Any, name: str = "value", depth: int = 0) -> Any:
    """Build a value that satisfies a JSON schema, deterministic and plain."""
    if not isinstance(schema, dict) or depth > 6:
        return f"sample_{name}"
    if "default" in schema:
        return schema["default"]
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            usable = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
            return example_for_schema((usable or options)[0], name, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if isinstance(kind, str):
        kind = kind.lower()  # Gemini writes OBJECT, STRING, ...
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties") or {}
        required = schema.get("required")
        keys = list(props) if not required else [k for k in props if k in required]
        return {k: example_for_schema(props[k], k, depth + 1) for k in keys}
    if kind == "array":
        return [example_for_schema(schema.get("items") or {}, name, depth + 1)]
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1.5))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if schema.get("format") == "date":
        return "2024-01-01"
    return "Paris" if name.lower() in ("city", "location", "place") else f"sample_{name}"


def _finish_text(pieces: list[str], prompt: Prompt, knobs: Knobs) -> tuple[list[str], str]:
    finish = "stop"
    if prompt.max_tokens is not None and 0 < prompt.max_tokens < len(pieces):
        pieces = pieces[: prompt.max_tokens]
        finish = "length"
    if knobs.finish == "length":
        finish = "length"
    elif knobs.finish == "content_filter":
        pieces = pieces[: max(1, len(pieces) // 2)]
        finish = "content_filter"
    return pieces, finish


def make_plan(prompt: Prompt, knobs: Knobs, clean_text: str) -> Plan:
    """Decide the answer for a chat request from its prompt and knobs."""
    digest = digest_of(prompt.model, prompt.last_user_text, prompt.tool_result or "")
    input_tokens = count_tokens(prompt.input_chars) + MEDIA_TOKENS * sum(prompt.media.values())
    cached = min(max(knobs.cached, 0), input_tokens)
    cache_write = min(max(knobs.cache_write, 0), input_tokens - cached)
    usage = dict(input_tokens=input_tokens, cached_tokens=cached, cache_write_tokens=cache_write)

    tool_name, tool_args = "", None
    if prompt.tool_result is None and knobs.tool:
        if knobs.tool == "auto":
            if prompt.tools:
                tool_name = prompt.tools[0][0]
                tool_args = knobs.args if knobs.args is not None else example_for_schema(
                    prompt.tools[0][1], tool_name
                )
        else:
            tool_name = knobs.tool
            schema = next((s for n, s in prompt.tools if n == tool_name), None)
            tool_args = knobs.args if knobs.args is not None else (
                example_for_schema(schema, tool_name) if schema else {}
            )
    if tool_name:
        if not isinstance(tool_args, dict):
            tool_args = {"value": tool_args}
        args_json = orjson.dumps(tool_args).decode()
        return Plan(
            kind="tool", text="", pieces=[], finish="tool_calls",
            output_tokens=count_tokens(len(tool_name) + len(args_json)) + 8,
            tool_name=tool_name, tool_args=tool_args, tool_args_json=args_json, digest=digest,
            **usage,
        )

    if knobs.reply is not None:
        text = knobs.reply
    elif prompt.json_schema is not None or prompt.json_mode:
        value = example_for_schema(prompt.json_schema) if prompt.json_schema else None
        if not isinstance(value, (dict, list)):
            value = {"answer": default_text(prompt, clean_text, digest)}
        text = orjson.dumps(value).decode()
    else:
        text = default_text(prompt, clean_text, digest)
    pieces = split_pieces(text)
    if knobs.tokens is not None and knobs.reply is None:
        want = max(0, knobs.tokens)
        if want <= len(pieces):
            pieces = pieces[:want]
        else:
            start = int(digest[:4], 16)
            pieces = pieces + [" " + _FILLER[(start + i) % len(_FILLER)] for i in range(want - len(pieces))]
    pieces, finish = _finish_text(pieces, prompt, knobs)
    text = "".join(pieces)
    return Plan(
        kind="text", text=text, pieces=pieces, finish=finish, output_tokens=len(pieces),
        digest=digest, **usage,
    )


# ------------------------------------------------------------------ embeddings and images


def embedding_vector(text: str, dims: int) -> list[float]:
    """A unit vector derived from the text; a shorter one is the renormalised prefix."""
    dims = max(1, dims)
    raw = hashlib.shake_256(text.encode("utf-8", "surrogatepass")).digest(dims * 2)
    values = [(v / 32767.5) - 1.0 for v in struct.unpack(f"<{dims}H", raw)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 7) for v in values]


def floats_to_base64(values: list[float]) -> str:
    """Little-endian float32 bytes in base64, as OpenAI's encoding_format=base64 sends them."""
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


def png_bytes(seed: str, size: int = 8) -> bytes:
    """A small valid PNG whose colour comes from the seed."""
    colour = hashlib.sha256(seed.encode()).digest()[:3]
    rows = b"".join(b"\x00" + colour * size for _ in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
