"""Azure OpenAI: the OpenAI codec at `/openai/deployments/{deployment}/...?api-version=`, `api-key` auth.

Only paths, auth and Azure's stream annotations differ from the openai provider. The
api-version is the provider's own (config `api_version`), whatever version the client spoke.
Content filtering: a filtered completion ends with finish_reason `content_filter` (passed on as
is); a filtered prompt is a 400 with `code: content_filter` / innererror
`ResponsibleAIPolicyViolation`, mapped to ContentFiltered by the shared OpenAI error parser.
"""

from __future__ import annotations

import time
from typing import Any, AsyncIterator
from urllib.parse import quote

import orjson

from lmgate.config import ProviderConfig
from lmgate.providers.base import Call
from lmgate.providers.http import HttpPool
from lmgate.providers.openai import OpenAIProvider
from lmgate.types import ChatRequest, RawChunk, StreamEvent, StreamStart

DEFAULT_API_VERSION = "2024-10-21"  # the GA version of Azure OpenAI's data-plane API
# stream_options.include_usage is accepted from 2024-08-01-preview on; older versions refuse it.
_STREAM_USAGE_SINCE = "2024-08-01"


class AzureProvider(OpenAIProvider):
    type = "azure"
    default_base_url = ""

    def __init__(self, name: str, config: ProviderConfig, http: HttpPool) -> None:
        super().__init__(name, config, http)
        self.require("base_url")
        self.api_version = config.api_version or DEFAULT_API_VERSION
        self.stream_usage = self.api_version[:10] >= _STREAM_USAGE_SINCE
        self._base = config.base_url.rstrip("/") if config.base_url else ""
        if self._base.endswith("/openai"):
            self._base = self._base[: -len("/openai")]
        self._query = "?api-version=" + quote(self.api_version, safe="")

    def url(self, call: Call, endpoint: str) -> str:
        return f"{self._base}/openai/deployments/{quote(call.model, safe='')}/{endpoint}{self._query}"

    def auth_headers(self) -> dict[str, str]:
        return {"api-key": self.config.api_key} if self.config.api_key else {}

    def body_model(self, call: Call) -> str | None:
        return None  # the deployment in the path decides

    async def stream(self, req: ChatRequest, call: Call) -> AsyncIterator[StreamEvent]:
        """The OpenAI stream without Azure's choice-less annotation frames (prompt_filter_results):
        clients indexing choices[0] would fail on them, and their empty id must not name the answer."""
        held: StreamStart | None = None
        async for ev in super().stream(req, call):
            if isinstance(ev, StreamStart) and not ev.id:
                held = ev
                continue
            if isinstance(ev, RawChunk) and _annotation_only(ev.data):
                continue
            if held is not None:
                yield _start_from(ev, held)
                held = None
            yield ev


def _annotation_only(data: bytes) -> bool:
    """A frame that carries only Azure's filter annotations (the prompt's, before the answer, or
    the asynchronous filter's offsets): no delta and no usage."""
    if b'"usage":{' in data or b'"usage": {' in data or b'"delta"' in data:
        return False
    return b"filter_results" in data or b"filter_offsets" in data or b'"choices":[]' in data or b'"choices": []' in data


def _start_from(ev: StreamEvent, held: StreamStart) -> StreamStart:
    """The stream's id and model from its first real chunk (Azure's first frame has none)."""
    if isinstance(ev, RawChunk):
        try:
            chunk: Any = orjson.loads(ev.data)
        except orjson.JSONDecodeError:
            chunk = {}
        if isinstance(chunk, dict):
            return StreamStart(str(chunk.get("id") or ""), str(chunk.get("model") or ""), int(chunk.get("created") or time.time()))
    return held
