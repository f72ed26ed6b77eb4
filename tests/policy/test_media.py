"""Media URLs: SSRF refusals (literal, resolved, redirected), fetch limits, PDF text for text-only
models, and the same checks through the gateway for upstreams that take URLs themselves."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import openai
import pytest
import pytest_asyncio
from aiohttp import web

from lmgate.catalog.catalog import ModelInfo
from lmgate.errors import BadRequest, ConfigError, GatewayError, PayloadTooLarge
from lmgate.providers.media import MediaPolicy, MediaService, fetch_media, media_policy
from lmgate.providers.netguard import AddressRefused, HostGuard, address_problem, ip_literal
from lmgate.testing import start_gateway
from lmgate.types import ChatRequest, MediaPart, Message, TextPart
from lmgate.testing import sample_pdf as make_pdf

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


# ---------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.1", "2130706433", "0x7f000001", "0x7f.1", "017700000001", "0177.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1",
     "100.64.0.1", "169.254.169.254", "169.254.1.1", "0.0.0.0", "224.0.0.1", "240.0.0.1", "::1", "[::1]", "::", "::ffff:127.0.0.1",
     "[::ffff:7f00:1]", "::ffff:169.254.169.254", "fd00:ec2::254", "fe80::1", "fc00::1", "64:ff9b::7f00:1", "2002:7f00:1::1", "ff02::1", "::127.0.0.1"],
)
def test_non_public_literals_are_refused(host):
    with pytest.raises(AddressRefused):
        HostGuard().check_name(host)


@pytest.mark.parametrize("host", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "example.com"])
def test_public_literals_and_names_pass_the_name_check(host):
    HostGuard().check_name(host)


def test_literal_forms():
    assert ip_literal("2130706433") == ipaddress.ip_address("127.0.0.1")
    assert ip_literal("0x7f.0.0.1") == ipaddress.ip_address("127.0.0.1")
    assert ip_literal("[::ffff:127.0.0.1]") == ipaddress.ip_address("::ffff:127.0.0.1")
    assert ip_literal("cafe.be") is None and ip_literal("example.com") is None
    assert address_problem(ipaddress.ip_address("169.254.169.254")) == "a cloud metadata address"


def test_metadata_names_are_refused_even_when_allowlisted():
    guard = HostGuard(["metadata.google.internal", "169.254.169.254"])
    for host in ("metadata.google.internal", "169.254.169.254", "METADATA.GOOGLE.INTERNAL."):
        with pytest.raises(AddressRefused):
            guard.check_name(host)


def test_allowlist_names_wildcards_and_networks():
    guard = HostGuard(["127.0.0.1", "*.internal.example", "10.1.0.0/16", "localhost"])
    guard.check_name("127.0.0.1")
    guard.check_name("10.1.2.3")
    with pytest.raises(AddressRefused):
        guard.check_name("10.2.0.1")
    guard.check_addresses("img.internal.example", [ipaddress.ip_address("10.9.9.9")])
    guard.check_addresses("localhost", [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")])
    with pytest.raises(AddressRefused):  # one bad address among good ones refuses the host
        HostGuard().check_addresses("mixed.example", [ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("10.0.0.1")])


def test_policy_config_is_validated():
    assert media_policy({"allow_hosts": ["a"], "max_bytes": 10}).max_bytes == 10
    with pytest.raises(ConfigError):
        media_policy({"allow_host": ["typo"]})
    with pytest.raises(ConfigError):
        media_policy({"pdf_fallback": "maybe"})


# ---------------------------------------------------------------- fetching from local servers


@pytest_asyncio.fixture(loop_scope="function")
async def server():
    """An HTTP server on 127.0.0.1 with images, PDFs, redirects and misbehaving answers."""
    port_box: list[int] = []

    async def image(request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    async def octet(request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="application/octet-stream")

    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>login</html>", content_type="text/html")

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"\x89PNG\r\n\x1a\n" + b"\x00" * 5000, content_type="image/png")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(body=PNG, content_type="image/png")

    async def pdf(request: web.Request) -> web.Response:
        return web.Response(body=make_pdf("Fetched PDF text"), content_type="application/pdf")

    async def redirect(request: web.Request) -> web.Response:
        target = request.query["to"].replace("PORT", str(port_box[0]))
        raise web.HTTPFound(target)

    app = web.Application()
    app.router.add_get("/cat.png", image)
    app.router.add_get("/octet", octet)
    app.router.add_get("/page.png", html)
    app.router.add_get("/big.png", big)
    app.router.add_get("/slow.png", slow)
    app.router.add_get("/doc.pdf", pdf)
    app.router.add_get("/redirect", redirect)
    runner = web.AppRunner(app, shutdown_timeout=0.1, handler_cancellation=True)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port_box.append(sock.getsockname()[1])
    await web.SockSite(runner, sock).start()
    yield port_box[0]
    await runner.cleanup()


async def _fetch(url: str, **policy) -> bytes:  # type: ignore[no-untyped-def]
    service = MediaService(MediaPolicy(**policy))
    try:
        return (await service.fetch(url, "image")).data
    finally:
        await service.close()


async def test_loopback_server_is_refused_unless_allowlisted(server):
    for url in (f"http://127.0.0.1:{server}/cat.png", f"http://localhost:{server}/cat.png", f"http://2130706433:{server}/cat.png",
                f"http://[::ffff:127.0.0.1]:{server}/cat.png", f"http://0x7f.1:{server}/cat.png"):
        with pytest.raises(BadRequest) as info:
            await _fetch(url)
        assert info.value.code == "media_url_refused", url
    assert await _fetch(f"http://127.0.0.1:{server}/cat.png", allow_hosts=["127.0.0.1"]) == PNG
    assert await _fetch(f"http://localhost:{server}/cat.png", allow_hosts=["localhost"]) == PNG


async def test_redirects_are_checked_at_every_hop(server):
    allow = {"allow_hosts": ["localhost"]}
    for target in ("http://127.0.0.1:PORT/cat.png", "http://169.254.169.254/latest/meta-data/", "http://[::1]:PORT/cat.png", "http://10.0.0.8/x.png"):
        with pytest.raises(BadRequest) as info:
            await _fetch(f"http://localhost:{server}/redirect?to={target}", **allow)
        assert info.value.code == "media_url_refused", target
    ok = await _fetch(f"http://localhost:{server}/redirect?to=http://localhost:PORT/cat.png", **allow)
    assert ok == PNG
    with pytest.raises(BadRequest) as info:
        await _fetch(f"http://localhost:{server}/redirect?to=http://localhost:PORT/redirect%3Fto%3D/cat.png", max_redirects=0, **allow)
    assert info.value.code == "media_fetch_failed"


async def test_size_time_and_content_type_limits(server):
    allow = ["127.0.0.1"]
    base = f"http://127.0.0.1:{server}"
    with pytest.raises(PayloadTooLarge):
        await _fetch(base + "/big.png", allow_hosts=allow, max_bytes=1000)
    with pytest.raises(BadRequest) as info:
        await _fetch(base + "/slow.png", allow_hosts=allow, timeout_s=0.2)
    assert info.value.code == "media_fetch_timeout"
    with pytest.raises(BadRequest) as info:
        await _fetch(base + "/page.png", allow_hosts=allow)
    assert info.value.code == "unsupported_media_type"
    assert await _fetch(base + "/octet", allow_hosts=allow) == PNG  # sniffed as PNG
    got = await fetch_media(base + "/doc.pdf", "document", MediaPolicy(allow_hosts=allow))
    assert got.media_type == "application/pdf" and got.data.startswith(b"%PDF-")


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/a.png", "http://user:pw@example.com/a.png", "gopher://x/"])
async def test_other_schemes_and_credentials_are_refused(url):
    with pytest.raises(BadRequest):
        await _fetch(url)


async def test_check_url_without_fetching():
    service = MediaService()
    for url in ("http://127.0.0.1/a.png", "http://localhost/a.png", "http://[fd00:ec2::254]/", "https://metadata.google.internal/x", "http://192.168.0.10/a.png"):
        with pytest.raises(BadRequest) as info:
            await service.check_url(url)
        assert info.value.code == "media_url_refused"
    await service.check_url("https://no-such-host.invalid/a.png")  # unresolvable here: the upstream may know it
    await service.check_url("https://93.184.216.34/a.png")


# ---------------------------------------------------------------- preparing requests


def _req(*parts) -> ChatRequest:  # type: ignore[no-untyped-def]
    return ChatRequest(model="m", messages=[Message("user", [TextPart("look"), *parts])], raw={"x": 1}, raw_format="openai", raw_bytes=b"{}")


async def test_prepare_fetches_what_the_upstream_cannot_take_and_extracts_pdfs(server):
    service = MediaService(MediaPolicy(allow_hosts=["127.0.0.1"]))
    base = f"http://127.0.0.1:{server}"
    text_only = ModelInfo("t", modalities=frozenset({"text", "image"}))
    try:
        req = _req(MediaPart("image", url=base + "/cat.png"))
        assert await service.prepare(req, text_only, frozenset({"image"})) is req  # taken as a URL: only checked
        out = await service.prepare(req, text_only, frozenset())
        part = out.messages[0].content[1]
        assert part.data == PNG and part.media_type == "image/png" and part.url is None
        assert out.raw is None and out.raw_bytes is None and req.messages[0].content[1].url  # the original is untouched
        out = await service.prepare(_req(MediaPart("document", url=base + "/doc.pdf")), text_only, frozenset({"image", "document"}))
        text = out.messages[0].content[1]
        assert isinstance(text, TextPart) and "Fetched PDF text" in text.text
        out = await service.prepare(_req(MediaPart("document", media_type="application/pdf", data=make_pdf("inline one"), name="a.pdf")), text_only, frozenset())
        assert "inline one" in out.messages[0].content[1].text and 'name="a.pdf"' in out.messages[0].content[1].text
        refuse = MediaService(MediaPolicy(pdf_fallback="refuse"))
        kept = await refuse.prepare(_req(MediaPart("document", media_type="application/pdf", data=make_pdf())), text_only, frozenset())
        assert isinstance(kept.messages[0].content[1], MediaPart)
        with pytest.raises(BadRequest) as info:
            await service.prepare(_req(MediaPart("document", media_type="application/pdf", data=b"%PDF-1.4 broken")), text_only, frozenset())
        assert info.value.code == "invalid_pdf"
    finally:
        await service.close()


# ---------------------------------------------------------------- through the gateway


def test_gateway_refuses_internal_urls_even_for_upstreams_that_take_urls(sim):  # type: ignore[no-untyped-def]
    config = f"""
providers:
  oa: {{type: openai, base_url: "{sim.base_url}/v1", api_key: "sk-up-123456789"}}
models:
  - name: gpt-4o
    deployments: [{{provider: oa, model: gpt-4o}}]
  - name: text-only
    deployments: [{{provider: oa, model: gpt-4o}}]
    modalities: [text, image]
keys:
  - {{key: sk-test-media-1234, name: main}}
media: {{pdf_fallback: refuse}}
"""
    gw = start_gateway(config, steps=[])
    try:
        client = openai.OpenAI(base_url=gw.base_url + "/v1", api_key="sk-test-media-1234", max_retries=0)
        for url in ("http://127.0.0.1:9/cat.png", "http://169.254.169.254/latest/meta-data/iam", "http://[::ffff:10.0.0.1]/a.png", "http://2130706433/a.png"):
            with pytest.raises(openai.BadRequestError) as info:
                client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": [
                    {"type": "text", "text": "see"}, {"type": "image_url", "image_url": {"url": url}}]}])
            assert info.value.body["code"] == "media_url_refused", url
        sim.clear()
        public = "https://images.example.invalid/cat.png"
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": [
            {"type": "text", "text": "see"}, {"type": "image_url", "image_url": {"url": public}}]}])
        assert sim.requests("/chat/completions")[-1]["body"]["messages"][0]["content"][1]["image_url"]["url"] == public
        import base64

        pdf = base64.b64encode(make_pdf()).decode()
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model="text-only", messages=[{"role": "user", "content": [
                {"type": "file", "file": {"filename": "a.pdf", "file_data": f"data:application/pdf;base64,{pdf}"}}]}])
        assert info.value.body["code"] == "unsupported_modality"
    finally:
        gw.stop()


def test_errors_are_gateway_errors():
    assert issubclass(PayloadTooLarge, GatewayError) and PayloadTooLarge("x", code="media_too_large").status == 413


async def test_urls_an_upstream_reads_itself_are_passed_on():
    from lmgate.providers.gemini import GeminiProvider
    from lmgate.providers.media import url_kinds_of
    from lmgate.providers.openai import OpenAIProvider

    gemini_only = url_kinds_of([GeminiProvider])
    both = url_kinds_of([GeminiProvider, OpenAIProvider])
    files_uri = "https://generativelanguage.googleapis.com/v1beta/files/abc123"
    assert gemini_only.accepts("document", files_uri) and gemini_only.accepts("video", "https://www.youtube.com/watch?v=x")
    assert not gemini_only.accepts("image", "https://img.example/cat.png")
    assert not both.accepts("document", files_uri) and both.accepts("image", "https://img.example/cat.png") is False
    assert url_kinds_of([OpenAIProvider]).accepts("image", "https://img.example/cat.png")
    service = MediaService()
    req = _req(MediaPart("document", media_type="application/pdf", url=files_uri))
    assert await service.prepare(req, ModelInfo("g", modalities=frozenset({"text", "document"})), gemini_only) is req
    await service.close()
