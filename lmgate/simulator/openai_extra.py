"""OpenAI models list, embeddings, image generation and audio transcription (Azure reuses them)."""

from __future__ import annotations

import base64
import io
import math
import wave
from typing import Any

from aiohttp import web

from lmgate.simulator.answer import (
    count_tokens, digest_of, embedding_vector, floats_to_base64, png_bytes,
)
from lmgate.simulator.common import (
    SimError, apply_knobs, json_response, log_body, now, resolve_knobs,
)
from lmgate.simulator.openai import PROMPT_FILTER, SAFE_FILTER, chat
from lmgate.simulator.openai_errors import check_openai_auth, openai_body, openai_error

MODELS = (
    "gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "o3-mini", "text-embedding-3-small",
    "text-embedding-3-large", "text-embedding-ada-002", "dall-e-2", "dall-e-3", "gpt-image-1",
    "whisper-1", "google/gemma-3-27b-it", "meta-llama/Llama-3.3-70B-Instruct",
)
EMBED_DIMS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072,
              "text-embedding-ada-002": 1536}
AUDIO_FORMATS = ("flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm")
TRANSCRIPT_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
IMAGE_SIZES = {
    "dall-e-2": ("256x256", "512x512", "1024x1024"),
    "dall-e-3": ("1024x1024", "1792x1024", "1024x1792"),
    "gpt-image-1": ("1024x1024", "1536x1024", "1024x1536", "auto"),
}


def _bad(message: str, param: str | None = None, code: str | None = None) -> SimError:
    return SimError(400, message, param=param, code=code, etype="invalid_request_error")


async def models(request: web.Request) -> web.Response:
    """GET /v1/models"""
    try:
        check_openai_auth(request)
    except SimError as err:
        return openai_error(err)
    data = [{"id": m, "object": "model", "created": 1700000000,
             "owned_by": "openai" if "/" not in m else "vllm"} for m in MODELS]
    return json_response({"object": "list", "data": data})


# ------------------------------------------------------------------ embeddings


def _inputs(value: Any) -> list[str | list[int]]:
    if isinstance(value, str):
        items: list[Any] = [value]
    elif isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        items = [value]
    elif isinstance(value, list):
        items = value
    else:
        items = []
    if not items or len(items) > 2048 or any(
        not ((isinstance(v, str) and v) or (isinstance(v, list) and v
                                             and all(isinstance(t, int) for t in v)))
        for v in items
    ):
        raise _bad("'$.input' is invalid. Please check the API reference: "
                   "https://platform.openai.com/docs/api-reference.", None, None)
    return items


async def embeddings_answer(request: web.Request, body: Any, model: str | None) -> web.Response:
    if not isinstance(body, dict):
        raise _bad("We could not parse the JSON body of your request.")
    model = model or body.get("model")
    if not model:
        raise _bad("you must provide a model parameter")
    if "input" not in body:
        raise _bad("Missing required parameter: 'input'.", "input", "missing_required_parameter")
    items = _inputs(body["input"])
    fmt = body.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        raise _bad(f"Invalid value: '{fmt}'. Supported values are: 'float' and 'base64'.",
                   "encoding_format", "invalid_value")
    full = EMBED_DIMS.get(model, 1536 if "embedding" in model else 1024)
    dims = body.get("dimensions")
    if dims is not None:
        if "ada-002" in model:
            raise _bad("This model does not support specifying dimensions.", None, None)
        if isinstance(dims, bool) or not isinstance(dims, int) or not 1 <= dims <= full:
            raise _bad(f"Invalid 'dimensions': expected an integer between 1 and {full}.",
                       "dimensions", "invalid_value")
    texts = [v if isinstance(v, str) else " ".join(map(str, v)) for v in items]
    knobs, key, _ = resolve_knobs(request, "\n".join(t for t in texts if "[[sim:" in t))
    await apply_knobs(request, knobs, key, stream=False)
    tokens = sum(count_tokens(len(v)) if isinstance(v, str) else len(v) for v in items)
    data = []
    for i, text in enumerate(texts):
        vector = embedding_vector(text, dims or full)
        data.append({"object": "embedding", "index": i,
                     "embedding": floats_to_base64(vector) if fmt == "base64" else vector})
    return json_response({"object": "list", "data": data, "model": model,
                          "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


async def embeddings(request: web.Request) -> web.Response:
    """POST /v1/embeddings"""
    try:
        body = await openai_body(request)
        return await embeddings_answer(request, body, None)
    except SimError as err:
        return openai_error(err)


# ------------------------------------------------------------------ images


async def images_answer(request: web.Request, body: Any, model: str | None, azure: bool
                        ) -> web.Response:
    if not isinstance(body, dict):
        raise _bad("We could not parse the JSON body of your request.")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise _bad("Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter")
    model = model or body.get("model") or "dall-e-2"
    family = next((f for f in ("dall-e-3", "gpt-image-1") if f in model or
                   f.replace("-", "") in model.replace("-", "")), "dall-e-2")
    n = body.get("n", 1)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 10:
        raise _bad(f"Invalid 'n': expected an integer between 1 and 10, but got {n}.", "n",
                   "invalid_value")
    if family == "dall-e-3" and n != 1:
        raise _bad("You must provide n=1 for this model.")
    size = body.get("size", "1024x1024")
    if size not in IMAGE_SIZES[family]:
        raise _bad(f"'{size}' is not one of {list(IMAGE_SIZES[family])} - 'size'", "size", None)
    fmt = body.get("response_format", "b64_json" if family == "gpt-image-1" else "url")
    if fmt not in ("url", "b64_json"):
        raise _bad(f"'{fmt}' is not one of ['url', 'b64_json'] - 'response_format'",
                   "response_format", None)
    knobs, key, clean = resolve_knobs(request, prompt)
    await apply_knobs(request, knobs, key, stream=False)
    data = []
    for i in range(n):
        seed = digest_of(model, prompt, str(i))[:16]
        item: dict[str, Any] = {}
        if fmt == "url":
            item["url"] = f"{request.scheme}://{request.host}/_sim/images/{seed}.png"
        else:
            item["b64_json"] = base64.b64encode(png_bytes(seed)).decode()
        if family == "dall-e-3":
            item["revised_prompt"] = f"A detailed rendering of: {clean}"
        if azure:
            item["content_filter_results"] = SAFE_FILTER
            item["prompt_filter_results"] = PROMPT_FILTER[0]["content_filter_results"]
        data.append(item)
    out: dict[str, Any] = {"created": now(), "data": data}
    if family == "gpt-image-1":
        tokens = count_tokens(len(prompt))
        out["usage"] = {"input_tokens": tokens, "output_tokens": 272 * n,
                        "total_tokens": tokens + 272 * n,
                        "input_tokens_details": {"text_tokens": tokens, "image_tokens": 0}}
    return json_response(out)


async def images(request: web.Request) -> web.Response:
    """POST /v1/images/generations"""
    try:
        body = await openai_body(request)
        return await images_answer(request, body, None, azure=False)
    except SimError as err:
        return openai_error(err)


async def image_file(request: web.Request) -> web.Response:
    """GET /_sim/images/{name}.png: the images that generation URLs point at."""
    return web.Response(body=png_bytes(request.match_info["name"]), content_type="image/png")


# ------------------------------------------------------------------ audio transcriptions


def _duration(data: bytes) -> float:
    try:
        with wave.open(io.BytesIO(data)) as w:
            return round(w.getnframes() / float(w.getframerate()), 2)
    except (wave.Error, EOFError, ZeroDivisionError):
        return round(max(1.0, len(data) / 16000), 2)


def _stamp(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


async def _form(request: web.Request) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    if not request.content_type.startswith("multipart/form-data"):
        raise _bad(f"Invalid Content-Type header ({request.content_type}), expected "
                   "multipart/form-data. (HINT: If you're using curl, you can pass -H "
                   "'Content-Type: multipart/form-data')")
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    form = await request.post()
    for name, value in form.items():
        if isinstance(value, web.FileField):
            files[name] = (value.filename, value.file.read())
        else:
            text = str(value)
            fields[name] = text if name not in fields else fields[name] + "," + text
    log_body(request, {"fields": fields, "files": {
        k: {"filename": f, "size": len(d)} for k, (f, d) in files.items()}})
    return fields, files


async def transcription_answer(request: web.Request, model: str | None) -> web.Response:
    fields, files = await _form(request)
    if "file" not in files:
        raise _bad("Missing required parameter: 'file'.", "file", "missing_required_parameter")
    model = model or fields.get("model")
    if not model:
        raise _bad("Missing required parameter: 'model'.", "model", "missing_required_parameter")
    filename, data = files["file"]
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if ext not in AUDIO_FORMATS:
        raise _bad(f"Invalid file format. Supported formats: {list(AUDIO_FORMATS)}", "file",
                   "invalid_value")
    fmt = fields.get("response_format", "json")
    if fmt not in TRANSCRIPT_FORMATS:
        raise _bad(f"Invalid value: '{fmt}'. Supported values are: 'json', 'text', 'srt', "
                   "'verbose_json', and 'vtt'.", "response_format", "invalid_value")
    knobs, key, _ = resolve_knobs(request, fields.get("prompt", ""))
    await apply_knobs(request, knobs, key, stream=False)
    digest = digest_of(model, filename, str(len(data)), digest_of(data.decode("latin-1")))
    text = knobs.reply if knobs.reply is not None else (
        f"Simulated transcription of {filename} [{digest[:8]}].")
    duration = _duration(data)
    if fmt == "text":
        return web.Response(text=text + "\n", content_type="text/plain")
    if fmt == "srt":
        return web.Response(text=f"1\n{_stamp(0, ',')} --> {_stamp(duration, ',')}\n{text}\n\n",
                            content_type="text/plain")
    if fmt == "vtt":
        return web.Response(
            text=f"WEBVTT\n\n{_stamp(0, '.')} --> {_stamp(duration, '.')}\n{text}\n\n",
            content_type="text/plain")
    usage = {"type": "duration", "seconds": int(math.ceil(duration))}
    if fmt == "json":
        return json_response({"text": text, "usage": usage})
    words = text.split()
    step = duration / max(1, len(words))
    out: dict[str, Any] = {
        "task": "transcribe", "language": fields.get("language") or "english",
        "duration": duration, "text": text,
        "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": duration, "text": " " + text,
                      "tokens": [50364 + i for i in range(len(words))], "temperature": 0.0,
                      "avg_logprob": -0.2, "compression_ratio": 1.1, "no_speech_prob": 0.01}],
        "usage": usage,
    }
    if "word" in fields.get("timestamp_granularities[]", ""):
        out["words"] = [{"word": w, "start": round(i * step, 2), "end": round((i + 1) * step, 2)}
                        for i, w in enumerate(words)]
    return json_response(out)


async def transcriptions(request: web.Request) -> web.Response:
    """POST /v1/audio/transcriptions"""
    try:
        check_openai_auth(request)
        return await transcription_answer(request, None)
    except SimError as err:
        return openai_error(err)


ROUTES = [
    ("GET", "/v1/models", models),
    ("POST", "/v1/chat/completions", chat),
    ("POST", "/v1/embeddings", embeddings),
    ("POST", "/v1/images/generations", images),
    ("POST", "/v1/audio/transcriptions", transcriptions),
]
