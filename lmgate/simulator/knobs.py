"""Fault and behaviour knobs: `[[sim: ...]]` directives in prompts and `/_sim/k=v,.../` path prefixes.

Tests of the gateway ask the simulator for errors, delays, tool calls and cut streams through
the gateway itself, so the knobs travel inside what a client can send: the prompt text, or the
base_url of a deployment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any

import orjson

KNOB_NAMES = (
    "status",
    "retry_after",
    "delay_ms",
    "chunk_delay_ms",
    "tool",
    "args",
    "cut_after",
    "stall_after",
    "finish",
    "reply",
    "tokens",
    "cached",
    "cache_write",
    "fail_first",
    "id",
    "error",
    "flavor",
    "error_after",
)
_INT_KNOBS = frozenset(
    {"status", "delay_ms", "chunk_delay_ms", "cut_after", "stall_after", "tokens", "cached",
     "cache_write", "fail_first", "error_after"}
)
FINISHES = frozenset({"stop", "length", "content_filter", "tool_calls"})

DIRECTIVE_RE = re.compile(r"\[\[sim:(.*?)\]\]", re.S)
_SPLIT_RE = re.compile(r"\s+(?=(?:" + "|".join(KNOB_NAMES) + r")=)")


@dataclass(slots=True)
class Knobs:
    """What a request asked the simulator to do besides answering normally."""

    status: int | None = None  # answer with this HTTP error status (provider's own error body)
    retry_after: float | None = None  # seconds, sent as the provider sends it
    delay_ms: int = 0  # wait before the first byte
    chunk_delay_ms: int = 0  # wait between stream frames
    tool: str | None = None  # tool name to call, or "auto" (first offered tool)
    args: dict[str, Any] | None = None  # tool arguments
    cut_after: int | None = None  # stream: send N frames then drop the connection
    stall_after: int | None = None  # stream: send N frames then go silent
    finish: str | None = None  # stop|length|content_filter|tool_calls
    reply: str | None = None  # exact answer text
    tokens: int | None = None  # answer length in output tokens
    cached: int = 0  # cached (cache read) input tokens to report
    cache_write: int = 0  # cache creation input tokens to report (where the protocol has them)
    fail_first: int | None = None  # fail only the first N requests with this directive/prefix
    id: str | None = None  # free label, makes a directive unique for fail_first state
    error: str | None = None  # provider error type/code to fail with, e.g. ModelNotReadyException
    flavor: str | None = None  # "vllm": an OpenAI-compatible vLLM server (prefix knob)
    error_after: int | None = None  # stream: send N frames, then the provider's in-stream error

    def merged(self, other: "Knobs | None") -> "Knobs":
        """Return self overridden by every field `other` sets."""
        if other is None:
            return self
        out = Knobs()
        defaults = Knobs()
        for f in fields(Knobs):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            setattr(out, f.name, theirs if theirs != getattr(defaults, f.name) else mine)
        return out


def _set(knobs: Knobs, key: str, raw: str) -> None:
    value = raw.strip()
    if key in _INT_KNOBS:
        try:
            setattr(knobs, key, int(float(value)))
        except ValueError:
            return
    elif key == "retry_after":
        try:
            knobs.retry_after = float(value)
        except ValueError:
            return
    elif key == "args":
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            parsed = {}
        knobs.args = parsed if isinstance(parsed, dict) else {"value": parsed}
    elif key == "finish":
        if value in FINISHES:
            knobs.finish = value
    elif key == "reply":
        knobs.reply = raw.strip(" ")
    else:
        setattr(knobs, key, value)


def parse_directive_body(body: str) -> Knobs:
    """Parse `status=429 retry_after=2 tool=f args={...}` (values may hold spaces)."""
    knobs = Knobs()
    for piece in _SPLIT_RE.split(body.strip()):
        key, sep, value = piece.partition("=")
        key = key.strip()
        if sep and key in KNOB_NAMES:
            _set(knobs, key, value)
    return knobs


def find_directives(text: str) -> tuple[Knobs | None, str, str]:
    """Return (knobs or None, the directive source text, the text with directives removed)."""
    if "[[sim:" not in text:
        return None, "", text
    knobs = Knobs()
    sources = []
    for match in DIRECTIVE_RE.finditer(text):
        sources.append(match.group(1).strip())
        knobs = knobs.merged(parse_directive_body(match.group(1)))
    stripped = DIRECTIVE_RE.sub("", text).strip()
    return knobs, " ".join(sources), stripped


def parse_prefix(prefix: str) -> Knobs:
    """Parse the `status=500,fail_first=2` segment of a `/_sim/.../` path prefix."""
    knobs = Knobs()
    for piece in re.split(r"[,;&]", prefix):
        key, sep, value = piece.partition("=")
        key = key.strip()
        if sep and key in KNOB_NAMES:
            _set(knobs, key, value)
    return knobs


def failure_status(knobs: Knobs, key: str, counters: dict[str, int]) -> int | None:
    """The error status this request must fail with, or None; counts fail_first per key."""
    if knobs.fail_first is not None:
        seen = counters.get(key, 0)
        counters[key] = seen + 1
        if seen >= knobs.fail_first:
            return None
        return knobs.status or 500
    if knobs.status is not None and knobs.status >= 400:
        return knobs.status
    return None
