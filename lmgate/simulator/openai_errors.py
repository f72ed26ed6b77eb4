"""OpenAI's and Azure OpenAI's error bodies, headers and auth checks."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from lmgate.simulator.common import (
    CONTEXT_TOO_LONG, SimError, bearer_token, json_response, key_rejected, new_id, read_json,
)

# status -> (type, code, message); {model} is filled in when known
_OPENAI_DEFAULTS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("request_forbidden", "unsupported_country_region_territory",
          "Country, region, or territory not supported"),
    404: ("invalid_request_error", "model_not_found",
          "The model `{model}` does not exist or you do not have access to it."),
    408: ("server_error", None, "Request timed out."),
    409: ("invalid_request_error", None, "Conflict."),
    413: ("invalid_request_error", None, "Request too large."),
    422: ("invalid_request_error", None, "Unprocessable request."),
    429: ("requests", "rate_limit_exceeded",
          "Rate limit reached for {model} in organization org-simulator on requests per min "
          "(RPM): Limit 3, Used 3, Requested 1. Please try again in 20s."),
    500: ("server_error", None,
          "The server had an error while processing your request. Sorry about that!"),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The server is overloaded or not ready yet."),
    504: ("server_error", None, "Gateway timeout."),
}

_AZURE_CODES = {
    401: "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
    "provide a valid key for an active subscription and use a correct regional API endpoint "
    "for your resource.",
    404: "Resource not found",
    429: "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
    "{api_version} have exceeded token rate limit of your current OpenAI S0 pricing tier. "
    "Please retry after {retry} seconds. Please go here: https://aka.ms/oai/quotaincrease if "
    "you would like to further increase the default rate limit.",
    500: "The service is temporarily unable to process your request. Please try again later.",
    503: "The service is temporarily unavailable. Please try again later.",
}


def _retry_headers(err: SimError, azure: bool) -> dict[str, str]:
    headers = {"x-request-id": new_id("req_", 32)}
    if err.retry_after is not None:
        seconds = err.retry_after
        headers["Retry-After"] = str(int(seconds) if float(seconds).is_integer() else seconds)
        if azure:
            headers["retry-after-ms"] = str(int(seconds * 1000))
    return headers


def openai_error(err: SimError, model: str = "") -> web.Response:
    """`{"error": {"message", "type", "param", "code"}}` with OpenAI's status semantics."""
    if err.code == CONTEXT_TOO_LONG and not err.message:
        err = SimError(err.status, "This model's maximum context length is 128000 tokens. However, "
                       "your messages resulted in 131072 tokens. Please reduce the length of the "
                       "messages.", param="messages", code=CONTEXT_TOO_LONG,
                       etype="invalid_request_error", retry_after=err.retry_after)
    etype, code, message = _OPENAI_DEFAULTS.get(
        err.status, ("server_error" if err.status >= 500 else "invalid_request_error", None,
                     f"Error {err.status}.")
    )
    body = {
        "error": {
            "message": err.message or message.format(model=model or "the model"),
            "type": err.etype or etype,
            "param": err.param,
            "code": err.code if err.code is not None or err.message else code,
        }
    }
    return json_response(body, status=err.status, headers=_retry_headers(err, azure=False))


def azure_error(err: SimError, model: str = "", api_version: str = "") -> web.Response:
    """Azure's front door answers `{"error": {"code": "<status>", "message"}}`; the model
    behind it answers in OpenAI's shape (400s of the request body)."""
    if err.code == "content_filter":
        filtered = {"hate": {"filtered": True, "severity": "high"},
                    "self_harm": {"filtered": False, "severity": "safe"},
                    "sexual": {"filtered": False, "severity": "safe"},
                    "violence": {"filtered": False, "severity": "safe"},
                    "jailbreak": {"filtered": False, "detected": False}}
        return json_response({"error": {
            "message": "The response was filtered due to the prompt triggering Azure OpenAI's "
                       "content management policy. Please modify your prompt and retry. To learn "
                       "more about our content filtering policies please read our documentation: "
                       "https://go.microsoft.com/fwlink/?linkid=2198766",
            "type": None, "param": "prompt", "code": "content_filter", "status": 400,
            "innererror": {"code": "ResponsibleAIPolicyViolation",
                           "content_filter_result": filtered}}}, status=400)
    if err.status == 400 or (err.message and err.status not in _AZURE_CODES):
        return openai_error(err, model)
    retry = int(err.retry_after) if err.retry_after is not None else 1
    message = err.message or _AZURE_CODES.get(err.status, f"Error {err.status}.").format(
        api_version=api_version or "2024-10-21", retry=retry
    )
    body = {"error": {"code": err.code or str(err.status), "message": message}}
    if err.status == 500 and not err.message and not err.code:
        body = {"error": {"code": "InternalServerError", "message": message}}
    return json_response(body, status=err.status, headers=_retry_headers(err, azure=True))


_VLLM_TYPES = {400: "BadRequestError", 404: "NotFoundError", 429: "TooManyRequestsError",
               500: "InternalServerError", 501: "NotImplementedError",
               503: "ServiceUnavailableError"}


def vllm_error(err: SimError, model: str = "") -> web.Response:
    """vLLM's OpenAI-compatible server: `{"object": "error", "message", "type", "param", "code"}`."""
    if err.status == 401:
        return json_response({"error": "Unauthorized"}, status=401)
    _, _, default = _OPENAI_DEFAULTS.get(err.status, ("", None, f"Error {err.status}."))
    if err.status == 404 and not err.message:
        default = "The model `{model}` does not exist."
    asked = err.etype if err.etype and err.etype == err.code else None  # the `error=` knob
    body = {"object": "error", "message": err.message or default.format(model=model or "model"),
            "type": asked or _VLLM_TYPES.get(err.status, "InternalServerError"),
            "param": err.param, "code": err.status}
    return json_response(body, status=err.status, headers=_retry_headers(err, azure=False))


def check_openai_auth(request: web.Request) -> None:
    """Bearer key required; OpenAI answers 401 in its own shape."""
    token = bearer_token(request)
    if token is None or token == "":
        raise SimError(
            401,
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or "
            "as the password field (with blank username) if you're accessing the API from "
            "your browser and are prompted for a username and password. You can obtain an API "
            "key from https://platform.openai.com/account/api-keys.",
            etype="invalid_request_error",
        )
    if key_rejected(token):
        masked = token[:3] + "*" * 4 + token[-4:] if len(token) > 8 else "****"
        raise SimError(
            401,
            f"Incorrect API key provided: {masked}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            etype="invalid_request_error",
            code="invalid_api_key",
        )


async def openai_body(request: web.Request) -> Any:
    """Key checked, then the JSON body; None when it is not JSON (each endpoint says why)."""
    check_openai_auth(request)
    try:
        return await read_json(request)
    except ValueError:
        return None


def check_azure_auth(request: web.Request) -> None:
    """`api-key` header (or an Entra ID bearer token); Azure answers 401 in its own shape."""
    key = request.headers.get("api-key")
    if key is None:
        token = bearer_token(request)
        if token:
            key = token
    if not key or not key.strip() or key_rejected(key):
        raise SimError(401, _AZURE_CODES[401])
