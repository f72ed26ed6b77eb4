"""Media behind URLs, for every provider: checked, fetched where the upstream needs bytes, PDFs
turned into text for models that cannot read documents.

The stable API (also for the Bedrock and Anthropic providers):

    policy = media_policy(config.media)            # MediaPolicy; the `media:` config section
    media = MediaService(policy)                    # one per gateway; `await media.close()` at shutdown
    await media.check_url(url)                      # refuse what lmgate would not fetch (400), no fetch
    got = await media.fetch(url, kind="image")      # Fetched(data, media_type, url): bytes after checks
    req = await media.prepare(req, info, url_kinds_of(providers))  # the pipeline, before the modality check
    got = await fetch_media(url, kind, policy)      # one-off fetch with a throw-away session

The pipeline calls `prepare` for every chat request with media, so a provider normally receives
http(s) URLs only for the kinds it lists in `Provider.media_urls` (OpenAI: images; Anthropic:
images and documents); every other URL arrives as bytes. Fetches go through `netguard`: every
resolved address is checked, connections go only to checked addresses, redirects are followed
by hand and each hop is checked again; size, time and content type are limited.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import Awaitable, Iterable, Literal

import aiohttp
import yarl
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lmgate.errors import BadRequest, ConfigError, PayloadTooLarge
from lmgate.providers.netguard import AddressRefused, GuardedResolver, HostGuard
from lmgate.types import ChatRequest, MediaPart, Part, TextPart

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_DOC_TYPES = frozenset(
    {
        "application/pdf", "application/json", "application/xml", "application/msword", "application/rtf",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.ms-excel", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    }
)
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"ID3", "audio/mpeg"),
    (b"OggS", "audio/ogg"),
    (b"fLaC", "audio/flac"),
)


class MediaPolicy(BaseModel):
    """The `media:` config section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allow_hosts: list[str] = Field(default_factory=list)  # names, *.wildcards, IPs or CIDRs exempt from address checks
    max_bytes: int = Field(20 * 1024 * 1024, gt=0)  # largest fetched body
    timeout_s: float = Field(10.0, gt=0)  # a whole fetch, redirects included
    max_redirects: int = Field(5, ge=0)
    pdf_fallback: Literal["extract", "refuse"] = "extract"  # PDFs for models without document input


def media_policy(section: dict | None) -> MediaPolicy:
    """Validate the free-form `media:` section at start."""
    try:
        return MediaPolicy.model_validate(section or {})
    except ValidationError as exc:
        problems = "; ".join(f"media.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid media config: {problems}") from None


@dataclass(frozen=True, slots=True)
class Fetched:
    data: bytes
    media_type: str
    url: str  # where the bytes came from, after redirects


@dataclass(frozen=True, slots=True)
class UrlAcceptance:
    """Which http(s) URLs every candidate upstream takes as they are; the others are fetched."""

    kinds: frozenset[str] = frozenset()  # media kinds taken as URLs (OpenAI: images)
    hosts: frozenset[str] = frozenset()  # hosts taken for any kind (Gemini: its Files API, YouTube)

    def accepts(self, kind: str, url: str) -> bool:
        if kind in self.kinds:
            return True
        if not self.hosts:
            return False
        try:
            host = (yarl.URL(url).host or "").lower()
        except (ValueError, TypeError):
            return False
        return host in self.hosts


def url_kinds_of(providers: Iterable[object]) -> UrlAcceptance:
    """The URLs every given provider takes itself (`Provider.media_urls`, `media_url_hosts`)."""
    kinds: frozenset[str] | None = None
    hosts: frozenset[str] | None = None
    for p in providers:
        k = frozenset(getattr(p, "media_urls", frozenset()))
        h = frozenset(getattr(p, "media_url_hosts", frozenset()))
        kinds = k if kinds is None else kinds & k
        hosts = h if hosts is None else hosts & h
    return UrlAcceptance(kinds or frozenset(), hosts or frozenset())


class MediaService:
    """The policy, its host guard and a pooled session (created in the running loop)."""

    def __init__(self, policy: MediaPolicy | None = None) -> None:
        self.policy = policy or MediaPolicy()
        self.guard = HostGuard(self.policy.allow_hosts)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(resolver=GuardedResolver(self.guard), use_dns_cache=False, limit=64)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=True)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ---------------------------------------------------------------- URLs

    def _parse(self, url: str, what: str) -> yarl.URL:
        try:
            u = yarl.URL(url)
        except (ValueError, TypeError):
            raise BadRequest(f"the {what} URL is not a valid URL", code="invalid_url") from None
        if u.scheme not in ("http", "https") or not u.host:
            raise BadRequest(f"the {what} URL must be an http(s) URL", code="invalid_url")
        if u.user or u.password:
            raise BadRequest(f"the {what} URL must not carry credentials", code="media_url_refused")
        return u

    async def check_url(self, url: str, what: str = "media") -> None:
        """Refuse a URL lmgate would not fetch, without fetching it (for upstreams that take URLs).

        A host that does not resolve from here is let through: the upstream fetches it from its own network.
        """
        u = self._parse(url, what)
        try:
            async with asyncio.timeout(self.policy.timeout_s):
                await self.guard.resolve(u.host or "", u.port or 0)
        except AddressRefused as exc:
            raise _refused(what, exc) from None
        except (OSError, TimeoutError):
            return

    async def fetch(self, url: str, kind: str = "image") -> Fetched:
        """The bytes behind an http(s) URL, after every check of the policy."""
        try:
            async with asyncio.timeout(self.policy.timeout_s):
                return await self._fetch(url, kind)
        except TimeoutError:
            raise BadRequest(
                f"fetching the {kind} URL took longer than {self.policy.timeout_s:g} s", code="media_fetch_timeout"
            ) from None

    async def _fetch(self, url: str, kind: str) -> Fetched:
        current = url
        session = self._client()
        for _ in range(self.policy.max_redirects + 1):
            u = self._parse(current, kind)
            try:
                self.guard.check_name(u.host or "")  # literal addresses never reach the resolver
                async with session.get(u, allow_redirects=False, headers={"Accept": _accept(kind)}) as resp:
                    if resp.status in _REDIRECTS:
                        location = resp.headers.get("Location")
                        if not location:
                            raise BadRequest(f"the {kind} URL redirected without a Location", code="media_fetch_failed")
                        current = str(u.join(yarl.URL(location)))
                        continue
                    if resp.status != 200:
                        raise BadRequest(f"the {kind} URL answered with HTTP status {resp.status}", code="media_fetch_failed")
                    data = await self._read(resp, kind)
                    media_type = _media_type(resp.headers.get("Content-Type"), data, kind)
                    return Fetched(data, media_type, current)
            except AddressRefused as exc:
                raise _refused(kind, exc) from None
            except aiohttp.ClientConnectorError as exc:
                if isinstance(exc.os_error, AddressRefused):
                    raise _refused(kind, exc.os_error) from None
                raise BadRequest(f"the {kind} URL could not be reached", code="media_fetch_failed") from None
            except aiohttp.ClientError:
                raise BadRequest(f"fetching the {kind} URL failed", code="media_fetch_failed") from None
        raise BadRequest(f"the {kind} URL redirected more than {self.policy.max_redirects} times", code="media_fetch_failed")

    async def _read(self, resp: aiohttp.ClientResponse, kind: str) -> bytes:
        limit = self.policy.max_bytes
        if resp.content_length is not None and resp.content_length > limit:
            raise PayloadTooLarge(f"the {kind} at the URL is larger than {limit} bytes", code="media_too_large")
        buf = bytearray()
        async for chunk in resp.content.iter_chunked(65536):
            buf += chunk
            if len(buf) > limit:
                raise PayloadTooLarge(f"the {kind} at the URL is larger than {limit} bytes", code="media_too_large")
        return bytes(buf)

    # ---------------------------------------------------------------- requests

    async def prepare(self, req: ChatRequest, info: object, url_kinds: UrlAcceptance | frozenset[str]) -> ChatRequest:
        """Check every URL, fetch those the upstream cannot take, and extract PDFs for models
        without document input (unless the policy refuses). Returns `req` itself when nothing
        changed, else a copy without the same-format fast path."""
        modalities = getattr(info, "modalities", frozenset({"text", "image", "document", "audio", "video"}))
        where: list[tuple[int, int]] = []
        jobs: list[Awaitable[Part]] = []
        for i, m in enumerate(req.messages):
            for j, p in enumerate(m.content):
                if isinstance(p, MediaPart):
                    where.append((i, j))
                    jobs.append(self._part(p, modalities, url_kinds))
        if not jobs:
            return req
        results = await asyncio.gather(*jobs)
        messages = list(req.messages)
        for (i, j), new in zip(where, results):
            if new is not req.messages[i].content[j]:
                if messages[i] is req.messages[i]:
                    messages[i] = dataclasses.replace(req.messages[i], content=list(req.messages[i].content))
                messages[i].content[j] = new
        if all(a is b for a, b in zip(messages, req.messages)):
            return req
        return dataclasses.replace(req, messages=messages, raw=None, raw_bytes=None)

    async def _part(self, p: MediaPart, modalities: frozenset[str], url_kinds: UrlAcceptance | frozenset[str]) -> Part:
        to_text = p.kind == "document" and "document" not in modalities and self.policy.pdf_fallback == "extract"
        if p.url is not None and p.data is None and p.url.startswith(("http://", "https://")):
            taken = url_kinds.accepts(p.kind, p.url) if isinstance(url_kinds, UrlAcceptance) else p.kind in url_kinds
            if not to_text and taken:
                await self.check_url(p.url, p.kind)
                return p
            got = await self.fetch(p.url, p.kind)
            kind = "document" if got.media_type == "application/pdf" else p.kind
            p = MediaPart(kind=kind, media_type=got.media_type, data=got.data, name=p.name or _name_of(got.url), detail=p.detail)  # type: ignore[arg-type]
            to_text = p.kind == "document" and "document" not in modalities and self.policy.pdf_fallback == "extract"
        if to_text and p.data is not None:
            return TextPart(await document_text(p))
        return p


async def fetch_media(url: str, kind: str = "image", policy: MediaPolicy | None = None) -> Fetched:
    """A one-off fetch under `policy` (default limits), with its own short-lived session."""
    service = MediaService(policy)
    try:
        return await service.fetch(url, kind)
    finally:
        await service.close()


async def document_text(part: MediaPart) -> str:
    """A document as text for a model that reads only text: PDFs through pypdf (in a thread)."""
    data = part.data or b""
    mt = (part.media_type or "").lower()
    name = part.name or "document"
    if mt.startswith("text/") or mt in ("application/json", "application/xml"):
        body = data.decode("utf-8", "replace")
    elif mt in ("application/pdf", "") or data.startswith(b"%PDF-"):
        body = await asyncio.to_thread(pdf_text, data)
    else:
        raise BadRequest(f"the document '{name}' ({mt}) cannot be turned into text for this model", code="unsupported_media")
    return f"<document name=\"{name}\">\n{body.strip()}\n</document>"


def pdf_text(data: bytes) -> str:
    """The text of every page of a PDF; an unreadable or encrypted PDF is the client's 400."""
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise BadRequest("the PDF is encrypted; its text cannot be extracted", code="invalid_pdf")
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except BadRequest:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise BadRequest(f"the PDF could not be read ({type(exc).__name__})", code="invalid_pdf") from None
    return "\n\n".join(p for p in pages if p)


def _refused(what: str, exc: BaseException) -> BadRequest:
    return BadRequest(f"the {what} URL is not allowed: {exc}", code="media_url_refused", param="messages")


def _accept(kind: str) -> str:
    return {"image": "image/*", "document": "application/pdf, text/*;q=0.9, */*;q=0.5", "audio": "audio/*", "video": "video/*"}.get(kind, "*/*")


def _sniff(data: bytes) -> str | None:
    for magic, mt in _MAGIC:
        if data.startswith(magic):
            return mt
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "audio/wav"
    if data[4:8] == b"ftyp":
        return "video/mp4"
    return None


def _media_type(header: str | None, data: bytes, kind: str) -> str:
    """The fetched body's type, checked against what was asked for (an HTML page is no image)."""
    declared = (header or "").split(";", 1)[0].strip().lower()
    if not declared or declared in ("application/octet-stream", "binary/octet-stream"):
        declared = _sniff(data) or ""
    ok = (
        (kind == "image" and (declared.startswith("image/") or declared == "application/pdf"))
        or (kind == "document" and (declared in _DOC_TYPES or declared.startswith("text/")))
        or (kind == "audio" and declared.startswith("audio/"))
        or (kind == "video" and declared.startswith("video/"))
    )
    if not ok:
        raise BadRequest(f"the {kind} URL returned content of type '{declared or 'unknown'}'", code="unsupported_media_type")
    return declared


def _name_of(url: str) -> str | None:
    tail = yarl.URL(url).path.rsplit("/", 1)[-1]
    return tail or None
