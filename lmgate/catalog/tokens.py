"""Fast prompt-size estimates, run before every call to refuse prompts longer than the window.

tiktoken's cl100k_base is used when its BPE file is already in tiktoken's cache (it is never
downloaded here: no network wait on the hot path). Otherwise a heuristic counts byte classes of
the UTF-8 text in five C-speed passes (one `bytes.translate`, four `bytes.count`; no Python loop
over characters, no regex): ~8 us for 2 KB. Its weights were fitted against cl100k_base counts
of English prose, Python code, markdown, JSON, Korean (000's prompts), Chinese, Japanese,
Russian, German, emoji, numbers, hex and base64, then raised by 12%: on that corpus the estimate
lies between 0.88x (hex) and 1.39x (long numbers) of cl100k, mean 1.12x.
Newer tokenizers (o200k, Gemma, Llama 3) spend fewer tokens on Korean/CJK, so for them it is
higher still; it is meant for refusing, never for billing.

Also the billable character count for Vertex's per-character prices of Gemini 1.x.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import tempfile
from typing import Any

import orjson

from lmgate.types import ChatRequest, EmbeddingRequest, MediaPart, TextPart

# ---------------------------------------------------------------- tiktoken, only when cached

_CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
_CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"  # tiktoken_ext.openai_public
TIKTOKEN_MAX_CHARS = 8192  # longer texts use the heuristic: tiktoken takes ~60 us per 1 KB, the heuristic ~4


def _tiktoken_cache_file() -> str | None:
    """Where tiktoken keeps cl100k_base, as tiktoken.load.read_file_cached names it; None if caching is off."""
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR")
    if cache_dir is None:
        cache_dir = os.environ.get("DATA_GYM_CACHE_DIR")
    if cache_dir is None:
        cache_dir = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if not cache_dir:
        return None
    return os.path.join(cache_dir, hashlib.sha1(_CL100K_URL.encode()).hexdigest())


@functools.cache
def _encoder() -> Any | None:
    """cl100k_base if its file is already in tiktoken's cache and intact, else None.

    Checked once per process, without any network: a missing file is never downloaded, and a
    corrupt one (which tiktoken would delete and fetch again) is not handed to tiktoken.
    Loading takes ~0.2 s once; call preload() at start-up. LMGATE_TOKENIZER=heuristic turns it off.
    """
    if os.environ.get("LMGATE_TOKENIZER", "").lower() == "heuristic":
        return None
    path = _tiktoken_cache_file()
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if hashlib.sha256(data).hexdigest() != _CL100K_SHA256:
        return None
    try:
        import tiktoken

        return tiktoken.get_encoding("cl100k_base")
    except Exception:  # anything at all: the heuristic serves
        return None


def preload() -> str:
    """Load the tokenizer now (at start-up, not on the first request); answers which one serves."""
    return tokenizer_name()


def tokenizer_name() -> str:
    return "cl100k_base" if _encoder() is not None else "heuristic"


# ---------------------------------------------------------------- the heuristic


def _class_table() -> bytes:
    """Each UTF-8 byte -> a class letter: l lower-case, u upper-case, d digit, s space, p ASCII
    punctuation and white space other than a space (the same weight), g a lead byte of U+A000..U+DFFF (Hangul syllables),
    e a lead byte of a four-byte character (emoji), c any other non-ASCII byte."""
    t = bytearray(256)
    for i in range(256):
        ch = chr(i)
        if i < 128:
            if ch.islower():
                k = "l"
            elif ch.isupper():
                k = "u"
            elif ch.isdigit():
                k = "d"
            elif ch == " ":
                k = "s"
            else:
                k = "p"
        else:
            k = "g" if 0xEA <= i <= 0xED else "e" if i >= 0xF0 else "c"
        t[i] = ord(k)
    return bytes(t)


_CLASSES = _class_table()
_MARGIN = 1.12


def _heuristic(text: str) -> int:
    """Weights per byte class, fitted to cl100k_base counts (see the module docstring).

    Non-ASCII text is weighed by its extra UTF-8 bytes, known without a pass: 0.55 per extra byte
    gives ~0.55 tokens per Cyrillic/Greek/accented letter, ~1.1 per CJK or kana character and
    (with the Hangul and four-byte lead-byte counts) ~1.5 per Hangul syllable, ~2.5 per emoji.
    """
    try:
        b = text.encode()
    except UnicodeEncodeError:  # lone surrogates
        b = text.encode("utf-8", "surrogatepass")
    t = b.translate(_CLASSES)
    c = t.count
    est = 0.21 * c(b"l") + 1.0 * c(b"u") + 0.58 * c(b"d") + 0.42 * c(b"p")
    extra = len(b) - len(text)
    if extra:
        est += 0.55 * extra + 0.38 * c(b"g") + 0.9 * c(b"e")
    return math.ceil(est * _MARGIN)


def estimate_tokens(text: str) -> int:
    """Tokens in `text`: cl100k_base when available, else the heuristic (~12% high on average)."""
    if not text:
        return 0
    enc = _encoder()
    if enc is not None and len(text) <= TIKTOKEN_MAX_CHARS:
        return len(enc.encode_ordinary(text))
    return _heuristic(text)


# ---------------------------------------------------------------- whole requests

MESSAGE_OVERHEAD = 4  # role and separators per message (OpenAI's chat format)
REPLY_PRIMING = 3  # the assistant turn every answer starts with
TOOL_OVERHEAD = 8  # per tool definition, beside its name, description and schema
TOOL_CALL_OVERHEAD = 3
IMAGE_TOKENS = {"low": 85, "auto": 765, "high": 1105}  # OpenAI: low = 85; a 1024px image at high = 765; 1105 = its maximum
PDF_PAGE_TOKENS = 1500  # Anthropic: 1,500-3,000 a page (text plus page image); Gemini: 258
PDF_BYTES_PER_PAGE = 60_000  # for PDFs whose page objects are compressed out of sight
URL_DOCUMENT_TOKENS = 1500  # a document only known by URL: one page
MEDIA_BYTES_PER_TOKEN = 500  # audio/video: ~32 tokens a second of 128 kbit/s audio (Gemini)
URL_AUDIO_TOKENS = 2000  # ~1 minute
URL_VIDEO_TOKENS = 16000  # ~1 minute at Gemini's 263 tokens a second


def media_tokens(part: MediaPart) -> int:
    """A fixed estimate for an image, document, audio or video input."""
    if part.kind == "image":
        return IMAGE_TOKENS.get((part.detail or "auto").lower(), IMAGE_TOKENS["auto"])
    data = part.data
    if part.kind == "document":
        if data is None:
            return URL_DOCUMENT_TOKENS
        mt = (part.media_type or "").lower()
        if mt.startswith("text/") or mt in ("application/json", "application/xml", "text/csv"):
            return estimate_tokens(data.decode("utf-8", "replace"))
        return _pdf_pages(data) * PDF_PAGE_TOKENS
    if data is None:
        return URL_VIDEO_TOKENS if part.kind == "video" else URL_AUDIO_TOKENS
    return max(32, len(data) // MEDIA_BYTES_PER_TOKEN)


def _pdf_pages(data: bytes) -> int:
    """Page objects in a PDF, without parsing it; falls back to its size."""
    pages = data.count(b"/Type/Page") + data.count(b"/Type /Page") - data.count(b"/Type/Pages") - data.count(b"/Type /Pages")
    if pages <= 0:
        pages = len(data) // PDF_BYTES_PER_PAGE + 1
    return pages


def _request_texts(request: ChatRequest) -> tuple[list[str], int]:
    """All text the model reads (messages, tool calls, tool schemas) and the fixed tokens beside it."""
    texts: list[str] = []
    fixed = REPLY_PRIMING
    for m in request.messages:
        fixed += MESSAGE_OVERHEAD
        for p in m.content:
            if type(p) is TextPart:
                texts.append(p.text)
            elif isinstance(p, MediaPart):
                fixed += media_tokens(p)
            else:  # a subclass of TextPart
                texts.append(getattr(p, "text", ""))
        for tc in m.tool_calls:
            fixed += TOOL_CALL_OVERHEAD
            texts.append(tc.name)
            texts.append(tc.arguments)
        if m.name:
            texts.append(m.name)
    for tool in request.tools or ():
        fixed += TOOL_OVERHEAD
        texts.append(tool.name)
        if tool.description:
            texts.append(tool.description)
        if tool.parameters:
            texts.append(orjson.dumps(tool.parameters).decode())
    rf = request.response_format
    if rf is not None and rf.schema:
        texts.append(orjson.dumps(rf.schema).decode())
    return texts, fixed


def estimate_chat_tokens(request: ChatRequest) -> int:
    """Prompt tokens of a chat request: its text, per-message overhead, tools and media."""
    texts, fixed = _request_texts(request)
    return fixed + estimate_tokens(" ".join(texts))


def estimate_embedding_tokens(request: EmbeddingRequest) -> int:
    return estimate_tokens(" ".join(request.inputs))


def billable_chars(text: str) -> int:
    """Characters Vertex bills: Unicode code points, white space excluded."""
    return len(text) - text.count(" ") - text.count("\n") - text.count("\t") - text.count("\r")


def count_chars(request: ChatRequest) -> int:
    """Billable characters of all the text a chat request sends (for per-1K-character prices)."""
    texts, _ = _request_texts(request)
    return sum(billable_chars(t) for t in texts)
