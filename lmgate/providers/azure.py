"""Azure OpenAI: the OpenAI codec at `/openai/deployments/{deployment}/...?api-version=`, `api-key` auth.

Only paths, auth and Azure's stream annotations differ from the openai provider. The
api-version is the provider's own (config `api_version`), whatever version the client spoke.
Content filtering: a filtered completion ends with finish_reason `content_filter` (passed on as
is); a filtered prompt is a 400 with `code: content_filter` / innererror
`ResponsibleAIPolicyViolation`, mapped to ContentFiltered by the shared OpenAI error parser.
"""

from __future__ import annotations

from urllib.parse import quote

from lmgate.config import ProviderConfig
from lmgate.providers.base import Call
from lmgate.providers.http import HttpPool
from lmgate.providers.openai import _USAGE_MARK, _USAGE_MARK_SPACED, OpenAIProvider

DEFAULT_API_VERSION = "2024-10-21"  # the GA version of Azure OpenAI's data-plane API
# stream_options.include_usage is accepted from 2024-08-01-preview on; older versions refuse it.
_STREAM_USAGE_SINCE = "2024-08-01"
# What marks a choice-less annotation frame (prompt_filter_results, the asynchronous filter's offsets).
_ANNOTATION_MARKS = (b"filter_results", b"filter_offsets", b'"choices":[]', b'"choices": []')


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

    needs_come_last = False  # filter annotation frames may come anywhere
    look_marks = (*OpenAIProvider.look_marks, *_ANNOTATION_MARKS)

    def skip_frame(self, payload: bytes) -> bool:
        """Azure's choice-less annotation frames (prompt_filter_results, the asynchronous filter's
        offsets): clients indexing choices[0] would fail on them, and the first one's empty id
        must not name the answer. No delta and no usage."""
        if _USAGE_MARK in payload or _USAGE_MARK_SPACED in payload or b'"delta"' in payload:
            return False
        return any(m in payload for m in _ANNOTATION_MARKS)
