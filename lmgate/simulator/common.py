"""HTTP helpers every protocol module uses: errors, JSON bodies, knobs, streaming with faults."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from aiohttp import web

from lmgate.simulator.knobs import Knobs, failure_status, find_directives, parse_prefix
from lmgate.simulator.state import JSON_KEY, LOG_KEY, STATE_KEY, SimState

PREFIX_KEY = "_simknobs"  # match_info name of the `/_sim/{knobs}/` path prefix
CONTEXT_TOO_LONG = "context_length_exceeded"  # `error=` value every protocol renders its own way
_BATCH = 8  # stream frames per write when no knob asks for frame-by-frame timing


class SimError(Exception):
    """A failure to render in the protocol's own error shape.

    `message` None means the protocol's usual message for `status`.
    """

    def __init__(
        self,
        status: int,
        message: str | None = None,
        *,
        param: str | None = None,
        code: str | None = None,
        etype: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message or str(status))
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.etype = etype
        self.retry_after = retry_after


def state_of(request: web.Request) -> SimState:
    return request.app[STATE_KEY]


def json_response(
    obj: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(obj), status=status, headers=headers, content_type="application/json"
    )


def new_id(prefix: str = "", n: int = 24) -> str:
    return prefix + uuid.uuid4().hex[:n]


def now() -> int:
    return int(time.time())


async def read_json(request: web.Request) -> Any:
    """The parsed JSON body (parsed once, by the logging middleware when it could).

    Raises ValueError when the body is not JSON; each protocol turns that into its own 400.
    """
    if JSON_KEY in request:
        value = request[JSON_KEY]
        if isinstance(value, ValueError):
            raise value
        return value
    raw = await request.read()
    try:
        value = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError as exc:
        value = ValueError(f"invalid JSON: {exc}")
    request[JSON_KEY] = value
    if isinstance(value, ValueError):
        raise value
    return value


def log_body(request: web.Request, body: Any) -> None:
    """Replace the logged body (handlers that parse multipart forms call this)."""
    entry = request.get(LOG_KEY)
    if entry is not None:
        entry["body"] = body


def prefix_knobs(request: web.Request) -> Knobs:
    """Knobs of the `/_sim/{knobs}/` path prefix alone (what a deployment's base_url carries)."""
    prefix = request.match_info.get(PREFIX_KEY)
    return parse_prefix(prefix) if prefix else Knobs()


def resolve_knobs(request: web.Request, prompt_text: str) -> tuple[Knobs, str, str]:
    """Knobs from the path prefix and the prompt; also returns the fail_first key and clean text.

    fail_first state is kept per directive text when the prompt asks for it, else per prefix.
    """
    prefix = request.match_info.get(PREFIX_KEY)
    prefix_knobs = parse_prefix(prefix) if prefix else None
    prompt_knobs, source, clean = find_directives(prompt_text)
    if prompt_knobs is not None and prompt_knobs.fail_first is not None:
        key = "prompt:" + source
    else:
        key = "prefix:" + (prefix or "")
    knobs = (prefix_knobs or Knobs()).merged(prompt_knobs)
    return knobs, key, clean


async def apply_knobs(
    request: web.Request, knobs: Knobs, key: str, *, stream: bool
) -> None:
    """Delay, fail, or (for whole answers) stall or drop, as the knobs ask."""
    state = state_of(request)
    status = failure_status(knobs, key, state.counters)
    if knobs.delay_ms > 0:
        await asyncio.sleep(knobs.delay_ms / 1000)
    if status is not None:
        raise SimError(status, retry_after=knobs.retry_after, etype=knobs.error, code=knobs.error)
    if not stream:
        if knobs.stall_after is not None:
            await state.forever()
        if knobs.cut_after is not None:
            drop_connection(request)


def drop_connection(request: web.Request) -> None:
    """Close the socket without finishing the response."""
    if request.transport is not None:
        request.transport.close()
    raise asyncio.CancelledError


async def stream_frames(
    request: web.Request,
    frames: Iterable[bytes],
    knobs: Knobs,
    *,
    content_type: str,
    headers: dict[str, str] | None = None,
    error_frame: Callable[[Knobs], bytes] | None = None,
) -> web.StreamResponse:
    """Send frames, honouring cut_after, stall_after, error_after and chunk_delay_ms.

    With none of those knobs the first frame goes alone and the rest in writes of a few frames
    each (what a fast upstream looks like on the wire, and much cheaper); with any of them
    every frame is its own write.
    """
    resp = web.StreamResponse(status=200, headers=headers)
    resp.content_type = content_type
    await resp.prepare(request)
    delay = knobs.chunk_delay_ms / 1000 if knobs.chunk_delay_ms > 0 else 0.0
    timed = knobs.cut_after is not None or knobs.stall_after is not None
    if not delay and not timed and (knobs.error_after is None or error_frame is None):
        frames = list(frames)
        if frames:
            await resp.write(frames[0])
        for i in range(1, len(frames), _BATCH):
            await resp.write(b"".join(frames[i : i + _BATCH]))
        await resp.write_eof()
        return resp
    for i, frame in enumerate(frames):
        if error_frame is not None and knobs.error_after is not None and i >= knobs.error_after:
            await resp.write(error_frame(knobs))
            break
        if knobs.cut_after is not None and i >= knobs.cut_after:
            drop_connection(request)
        if knobs.stall_after is not None and i >= knobs.stall_after:
            await state_of(request).forever()
        if delay and i:
            await asyncio.sleep(delay)
        await resp.write(frame)
    await resp.write_eof()
    return resp


def sse(data: Any, event: str | None = None) -> bytes:
    """One server-sent event; `data` is JSON-encoded unless it is already bytes."""
    payload = data if isinstance(data, bytes) else orjson.dumps(data)
    if event:
        return b"event: " + event.encode() + b"\ndata: " + payload + b"\n\n"
    return b"data: " + payload + b"\n\n"


def bearer_token(request: web.Request) -> str | None:
    """The token of an `Authorization: Bearer` header, '' when malformed, None when absent."""
    value = request.headers.get("Authorization")
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip() or " " in token.strip():
        return ""
    return token.strip()


def key_rejected(key: str) -> bool:
    """Keys that contain 'invalid' are treated as wrong keys, so auth errors can be tested."""
    return "invalid" in key.lower()
