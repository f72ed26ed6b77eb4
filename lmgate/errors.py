"""lmgate's own error vocabulary.

Each class carries the HTTP status and a stable code. Providers translate foreign errors into
these at their boundary; only surfaces render them, each in its own protocol's error shape.
This module imports nothing from lmgate.
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    status: int = 500
    code: str = "internal_error"
    type: str = "server_error"  # OpenAI's error.type vocabulary
    retryable: bool = False  # may another attempt (same or other deployment) cure it?

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.param = param
        self.retry_after = retry_after
        self.headers = dict(headers or {})
        if retry_after is not None:
            self.headers.setdefault("retry-after", str(max(0, int(round(retry_after + 0.499)))))

    def to_dict(self) -> dict[str, Any]:
        return {"message": self.message, "type": self.type, "code": self.code, "param": self.param}


# ---------------------------------------------------------------- the client's fault


class BadRequest(GatewayError):
    status, code, type = 400, "bad_request", "invalid_request_error"


class ContextLengthExceeded(BadRequest):
    code = "context_length_exceeded"


class UnsupportedModality(BadRequest):
    code = "unsupported_modality"


class GuardrailViolation(BadRequest):
    code = "guardrail_violation"


class ContentFiltered(BadRequest):
    """The upstream's own content filter refused the prompt."""

    code = "content_filter"


class Unauthorized(GatewayError):
    status, code, type = 401, "invalid_api_key", "authentication_error"


class Forbidden(GatewayError):
    status, code, type = 403, "model_not_allowed", "permission_error"


class NotFound(GatewayError):
    status, code, type = 404, "not_found", "invalid_request_error"


class ModelNotFound(NotFound):
    code = "model_not_found"


class MethodNotAllowed(GatewayError):
    status, code, type = 405, "method_not_allowed", "invalid_request_error"


class PayloadTooLarge(GatewayError):
    status, code, type = 413, "request_too_large", "invalid_request_error"


class Unprocessable(GatewayError):
    """A field of the wrong type or value."""

    status, code, type = 422, "invalid_value", "invalid_request_error"


class RateLimited(GatewayError):
    """The caller's own rpm/tpm limit."""

    status, code, type = 429, "rate_limit_exceeded", "rate_limit_error"


class BudgetExceeded(GatewayError):
    status, code, type = 429, "insufficient_quota", "insufficient_quota"


# ---------------------------------------------------------------- lmgate's own fault


class InternalError(GatewayError):
    status, code, type = 500, "internal_error", "server_error"


class ConfigError(Exception):
    """The config file is wrong; raised at start, never on a request."""


# ---------------------------------------------------------------- the upstream's fault


class UpstreamError(GatewayError):
    """An upstream failed in a way retries and fallbacks may cure."""

    status, code, type = 502, "upstream_error", "api_error"
    retryable = True


class UpstreamRateLimited(UpstreamError):
    status, code, type = 429, "upstream_rate_limited", "rate_limit_error"


class UpstreamOverloaded(UpstreamError):
    status, code = 503, "upstream_overloaded"


class UpstreamUnavailable(UpstreamError):
    """No deployment could be reached or all are cooling down."""

    status, code = 503, "upstream_unavailable"


class UpstreamTimeout(UpstreamError):
    status, code = 504, "upstream_timeout"


class UpstreamAuthError(UpstreamError):
    """The provider refused lmgate's credentials: an operator problem, never the client's key."""

    status, code = 502, "upstream_auth_error"


class UpstreamBadResponse(UpstreamError):
    status, code = 502, "upstream_bad_response"


class StreamInterrupted(UpstreamError):
    """The upstream stream broke after bytes reached the client; cannot be retried."""

    status, code = 502, "stream_interrupted"
    retryable = False


def client_error_from_upstream(status: int, message: str, code: str | None = None) -> GatewayError:
    """Map an upstream 4xx that is the request's own fault to the matching client error."""
    if status == 404:
        return ModelNotFound(message, code=code or "model_not_found")
    if status == 413:
        return PayloadTooLarge(message)
    if status == 422:
        return Unprocessable(message, code=code or "invalid_value")
    return BadRequest(message, code=code or "bad_request")
