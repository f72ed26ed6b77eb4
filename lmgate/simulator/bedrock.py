"""AWS Bedrock runtime routes: Converse, ConverseStream, InvokeModel(WithResponseStream), SigV4 checked.

Shapes follow the bedrock-runtime service model (botocore's data files are AWS's own
description of the wire): blobs travel as base64 in JSON, errors as `{"message"}` with the
`x-amzn-ErrorType` header, streams in the AWS event-stream framing.
"""

from __future__ import annotations

import base64

import orjson

from aiohttp import web

from lmgate.simulator import bedrock_invoke, eventstream
from lmgate.simulator.answer import make_plan
from lmgate.simulator.common import (
    CONTEXT_TOO_LONG, SimError, apply_knobs, json_response, new_id, read_json, resolve_knobs,
    state_of, stream_frames,
)
from lmgate.simulator.bedrock_converse import converse_events, parse_converse, render_converse
from lmgate.simulator.knobs import Knobs
from lmgate.simulator.sigv4 import AuthFailure, verify

EVENTSTREAM = "application/vnd.amazon.eventstream"
_ERROR_TYPES = {400: "ValidationException", 403: "AccessDeniedException",
                404: "ResourceNotFoundException", 408: "ModelTimeoutException",
                424: "ModelErrorException", 429: "ThrottlingException",
                500: "InternalServerException", 503: "ServiceUnavailableException"}
_MESSAGES: dict[int | str, str] = {
    "ModelNotReadyException": "Model is not ready to serve inference requests.",
    "ModelErrorException": "The model encountered an error while processing the request.",
    403: "You don't have access to the model with the specified model ID.",
    404: "Could not resolve the foundation model from the provided model identifier.",
    408: "Model has timed out in processing the request. Try your request again.",
    429: "Too many requests, please wait before trying again.",
    500: "The system encountered an unexpected error during processing. Try your request again.",
    503: "Bedrock is unable to process your request.",
}
def _bad(message: str) -> SimError:
    return SimError(400, message, etype="ValidationException")


def bedrock_error(err: SimError) -> web.Response:
    if err.etype == CONTEXT_TOO_LONG and not err.message:
        err = SimError(err.status, "Input is too long for requested model.",
                       etype="ValidationException")
    etype = err.etype or _ERROR_TYPES.get(err.status, "InternalServerException")
    message = err.message or _MESSAGES.get(etype) or _MESSAGES.get(err.status, f"Error {err.status}")
    headers = {"x-amzn-ErrorType": f"{etype}:http://internal.amazon.com/coral/com.amazon.bedrock/",
               "x-amzn-RequestId": new_id("", 32)}
    return json_response({"message": message}, status=err.status, headers=headers)


async def authenticate(request: web.Request) -> bytes:
    """Read the body and verify its SigV4 signature; returns the body."""
    body = await request.read()
    try:
        verify(request, body, state_of(request).config)
    except AuthFailure as failure:
        raise SimError(failure.status, failure.message, etype=failure.etype) from None
    return body


def stream_error(knobs: Knobs) -> bytes:
    """An event-stream `exception` message, as Bedrock reports a failure mid-stream."""
    kind = knobs.error or "modelStreamErrorException"
    kind = kind[0].lower() + kind[1:]
    messages = {"throttlingException": _MESSAGES[429],
                "serviceUnavailableException": _MESSAGES[503],
                "internalServerException": _MESSAGES[500]}
    return eventstream.exception(kind, messages.get(kind, "The model stream failed."))


def model_id(request: web.Request) -> str:
    return request.match_info["model_id"]


async def converse(request: web.Request) -> web.StreamResponse:
    """POST /model/{modelId}/converse and /converse-stream"""
    stream = request.path.endswith("/converse-stream")
    try:
        await authenticate(request)
        try:
            body = await read_json(request)
        except ValueError:
            raise _bad("Malformed request body: the body is not valid JSON.") from None
        prompt = parse_converse(body, model_id(request))
        knobs, key, clean = resolve_knobs(request, prompt.last_user_text)
        await apply_knobs(request, knobs, key, stream=stream)
        plan = make_plan(prompt, knobs, clean)
        headers = {"x-amzn-RequestId": new_id("", 32)}
        if not stream:
            return json_response(render_converse(plan), headers=headers)
        frames = [eventstream.event(name, payload) for name, payload in converse_events(plan)]
        return await stream_frames(request, frames, knobs, content_type=EVENTSTREAM,
                                   headers=headers, error_frame=stream_error)
    except SimError as err:
        return bedrock_error(err)


async def invoke(request: web.Request) -> web.StreamResponse:
    """POST /model/{modelId}/invoke and /invoke-with-response-stream"""
    stream = request.path.endswith("/invoke-with-response-stream")
    model = model_id(request)
    try:
        raw = await authenticate(request)
        family = bedrock_invoke.resolve_family(model)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise _bad("Malformed input request: expected a JSON body, please reformat your "
                       "input and try again.") from None
        headers = {"x-amzn-RequestId": new_id("", 32)}
        if family in bedrock_invoke.EMBED_FAMILIES:
            if stream:
                raise _bad("The model is unsupported for streaming.")
            texts = bedrock_invoke.embed_texts(family, body)
            knobs, key, _ = resolve_knobs(request, "\n".join(t for t in texts if "[[sim:" in t))
            await apply_knobs(request, knobs, key, stream=False)
            out, tokens = bedrock_invoke.embed(family, body, texts, model)
            headers["X-Amzn-Bedrock-Input-Token-Count"] = str(tokens)
            return json_response(out, headers=headers)
        prompt = bedrock_invoke.parse_chat_body(family, body, model)
        knobs, key, clean = resolve_knobs(request, prompt.last_user_text)
        if family == "llama":
            knobs.tool = None
        await apply_knobs(request, knobs, key, stream=stream)
        plan = make_plan(prompt, knobs, clean)
        if not stream:
            headers.update({
                "X-Amzn-Bedrock-Input-Token-Count": str(plan.input_tokens),
                "X-Amzn-Bedrock-Output-Token-Count": str(plan.output_tokens),
                "X-Amzn-Bedrock-Invocation-Latency": str(100 + plan.output_tokens),
            })
            return json_response(bedrock_invoke.render_whole(family, plan, model),
                                 headers=headers)
        frames = [
            eventstream.event("chunk", {"bytes": base64.b64encode(orjson.dumps(c)).decode()})
            for c in bedrock_invoke.stream_chunks(family, plan, model)
        ]
        headers["X-Amzn-Bedrock-Content-Type"] = "application/json"
        return await stream_frames(request, frames, knobs, content_type=EVENTSTREAM,
                                   headers=headers, error_frame=stream_error)
    except SimError as err:
        return bedrock_error(err)


ROUTES = [
    ("POST", "/model/{model_id}/converse", converse),
    ("POST", "/model/{model_id}/converse-stream", converse),
    ("POST", "/model/{model_id}/invoke", invoke),
    ("POST", "/model/{model_id}/invoke-with-response-stream", invoke),
]
