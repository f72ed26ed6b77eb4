"""The request path between a surface and a provider: admit, policy steps, router, accounting.

Surfaces hand in canonical requests with a RequestContext and get canonical answers (or an
already-peeked event stream) back. Every request that reaches here is accounted exactly once,
in a `finally`, whatever happens.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator, Awaitable, Callable

from lmgate.catalog.catalog import ModelInfo, audio_cost_usd, cost_usd, image_cost_usd
from lmgate.catalog.tokens import estimate_tokens
from lmgate.errors import GatewayError, InternalError, UnsupportedModality, UpstreamError, UpstreamTimeout
from lmgate.policy.accounting import LedgerSink, complete_usage, record_for, response_text
from lmgate.policy.auth import check_model_allowed
from lmgate.policy.checks import check_chat, check_images
from lmgate.policy.step import Outcome, Step, overrides
from lmgate.providers.media import MediaService, url_kinds_of
from lmgate.routing.router import Deployment, ModelRoute, Router
from lmgate.types import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    ImageRequest,
    ImageResponse,
    RawChunk,
    RequestContext,
    StreamEvent,
    StreamStart,
    StreamUsage,
    TranscriptionRequest,
    TranscriptionResponse,
    Usage,
)
from lmgate.wire.accumulate import Accumulator

_KIND_OF_ENDPOINT = {"chat": "chat", "embeddings": "embedding", "images": "image", "audio": "audio"}


class Pipeline:
    def __init__(self, router: Router, steps: list[Step], ledger: LedgerSink, media: MediaService | None = None) -> None:
        self.router = router
        self.steps = steps
        self.ledger = ledger
        self.media = media  # URL checks and fetches, PDF text: before the modality check
        self._after = {id(s) for s in steps if overrides(s, "after")}
        self._stream = {id(s) for s in steps if overrides(s, "stream")}
        self._finish = {id(s) for s in steps if overrides(s, "finish")}
        # Which media URLs every deployment of a route (and of its fallbacks) takes itself: fixed
        # at start, so not worked out again on every request.
        self._url_kinds = {name: url_kinds_of(self._providers_of(route)) for name, route in router.routes.items()}

    # ---------------------------------------------------------------- chat, whole

    async def chat(self, ctx: RequestContext, req: ChatRequest) -> ChatResponse:
        ran: list[Step] = []
        outcome = Outcome(500)
        try:
            route = self._admit(ctx, req.model)
            req = await self._prepare_media(req, route)
            tokens = check_chat(ctx, route.info, req, context_fallback=bool(route.context_fallbacks))
            answer = await self._before(ctx, req, route, ran)
            if answer is None:
                answer = await self.router.run(ctx, route, lambda dep: dep.provider.chat(req, dep.call), tokens=tokens)
                info = self._served_info(ctx, route)
                complete_usage(answer.usage, req, response_text(answer), info)
                answer.cost_usd = cost_usd(info, answer.usage)
            for step in reversed(ran):
                if id(step) in self._after:
                    await step.after(ctx, req, answer)
            outcome = Outcome(200, answer.usage, answer.cost_usd)
            return answer
        except GatewayError as exc:
            outcome = Outcome(exc.status, error_code=exc.code)
            raise
        except Exception as exc:
            outcome = Outcome(500, error_code="internal_error")
            raise InternalError("lmgate failed to handle the request") from exc
        finally:
            await self._finish_steps(ctx, req, ran, outcome)
            self.ledger.submit(record_for(ctx, outcome.status, outcome.usage, outcome.cost_usd, outcome.error_code))

    # ---------------------------------------------------------------- chat, streamed

    async def chat_stream(self, ctx: RequestContext, req: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Open the stream and peek its first event, so early failures are retried or raised
        before the client sees a byte; the returned iterator accounts the request when it ends."""
        ran: list[Step] = []
        try:
            route = self._admit(ctx, req.model)
            req = await self._prepare_media(req, route)
            tokens = check_chat(ctx, route.info, req, context_fallback=bool(route.context_fallbacks))
            replay = await self._before(ctx, req, route, ran)
            if replay is not None:
                events: AsyncIterator[StreamEvent] = replay
            else:  # the serving deployment stays held (in flight, capacity) until the stream ends
                events = await self.router.run(ctx, route, lambda dep: self._open_stream(ctx, req, dep), tokens=tokens, hold=True)
            for step in reversed(ran):
                if id(step) in self._stream:
                    events = step.stream(ctx, req, events)
            return self._account_stream(ctx, req, route, events, ran)
        except BaseException as exc:
            if isinstance(exc, GatewayError):
                outcome = Outcome(exc.status, error_code=exc.code)
            else:
                outcome = Outcome(500, error_code="internal_error")
            self.router.release(ctx, None, outcome.status, outcome.error_code)
            await self._finish_steps(ctx, req, ran, outcome)
            self.ledger.submit(record_for(ctx, outcome.status, None, 0.0, outcome.error_code, stream=True))
            if isinstance(exc, GatewayError) or not isinstance(exc, Exception):
                raise
            raise InternalError("lmgate failed to handle the request") from exc

    async def _open_stream(self, ctx: RequestContext, req: ChatRequest, dep: Deployment) -> AsyncIterator[StreamEvent]:
        stream = dep.provider.stream(req, dep.call)
        try:
            async with asyncio.timeout(dep.call.timeout):  # not wait_for: that costs a task per stream
                first = await stream.__anext__()
        except StopAsyncIteration:
            raise UpstreamError(f"provider {dep.provider.name} sent an empty stream") from None
        except asyncio.TimeoutError:
            await _aclose(stream)
            raise UpstreamTimeout(f"provider {dep.provider.name} sent nothing within {dep.call.timeout:g} s") from None
        except BaseException:
            await _aclose(stream)
            raise
        return _Prepended(first, stream)

    async def _account_stream(
        self, ctx: RequestContext, req: ChatRequest, route: ModelRoute, events: AsyncIterator[StreamEvent], ran: list[Step]
    ) -> AsyncIterator[StreamEvent]:
        outcome = Outcome(499, error_code="client_closed")  # until the stream ends one way or another
        usage: Usage | None = None
        cost = 0.0
        raw_chunks: list[RawChunk] = []
        acc: Accumulator | None = None
        try:
            async for ev in events:
                if isinstance(ev, RawChunk):
                    if ctx.first_token_ms is None:
                        ctx.first_token_ms = _ms_since(ctx.started)
                    raw_chunks.append(ev)
                elif isinstance(ev, StreamUsage):
                    usage = ev.usage
                    cost = ev.cost_usd = self._stream_cost(ctx, req, route, usage, raw_chunks, acc)
                elif not isinstance(ev, StreamStart):
                    if ctx.first_token_ms is None:
                        ctx.first_token_ms = _ms_since(ctx.started)
                    if acc is None:
                        acc = Accumulator()
                    acc.add(ev)
                yield ev
            if usage is None:  # the upstream gave no usage: estimate it, and still tell the client
                usage = Usage()
                cost = self._stream_cost(ctx, req, route, usage, raw_chunks, acc)
                yield StreamUsage(usage, cost)
            outcome = Outcome(200, usage, cost)
        except GatewayError as exc:
            outcome = Outcome(exc.status, usage, cost, exc.code)
            raise
        except Exception as exc:
            outcome = Outcome(500, usage, 0.0, "internal_error")
            raise InternalError("lmgate failed while streaming") from exc
        finally:
            await _aclose(events)
            self.router.release(ctx, outcome.usage, outcome.status, outcome.error_code)
            await self._finish_steps(ctx, req, ran, outcome)
            self.ledger.submit(record_for(ctx, outcome.status, outcome.usage, outcome.cost_usd, outcome.error_code, stream=True))

    def _stream_cost(
        self, ctx: RequestContext, req: ChatRequest, route: ModelRoute, usage: Usage, raw: list[RawChunk], acc: Accumulator | None
    ) -> float:
        info = self._served_info(ctx, route)
        text = None
        if not usage.output_tokens or (info.price is not None and info.price.unit == "1K characters"):
            full = Accumulator()
            for chunk in raw:
                full.add(chunk)
            text = response_text(full.response()) + (response_text(acc.response()) if acc else "")
        complete_usage(usage, req, text, info)
        return 0.0 if ctx.cache_status == "hit" else cost_usd(info, usage)

    # ---------------------------------------------------------------- other endpoints

    async def embed(self, ctx: RequestContext, req: EmbeddingRequest) -> EmbeddingResponse:
        async def call(route: ModelRoute, ran: list[Step]) -> EmbeddingResponse:
            answer = await self._before(ctx, req, route, ran)
            if answer is None:
                answer = await self.router.run(ctx, route, lambda dep: dep.provider.embed(req, dep.call))
                if not answer.usage.input_tokens:
                    answer.usage.input_tokens = sum(estimate_tokens(t) for t in req.inputs)
                if not answer.usage.input_chars:
                    answer.usage.input_chars = sum(len(t) for t in req.inputs)
                answer.cost_usd = cost_usd(self._served_info(ctx, route), answer.usage)
            return answer

        return await self._unary(ctx, req, req.model, call, lambda a: (a.usage, a.cost_usd))

    async def images(self, ctx: RequestContext, req: ImageRequest) -> ImageResponse:
        async def call(route: ModelRoute, ran: list[Step]) -> ImageResponse:
            check_images(route.info, req)
            answer = await self._before(ctx, req, route, ran)
            if answer is None:
                answer = await self.router.run(ctx, route, lambda dep: dep.provider.images(req, dep.call))
                answer.cost_usd = image_cost_usd(self._served_info(ctx, route), len(answer.images) or req.n, req.size, req.quality)
            return answer

        return await self._unary(ctx, req, req.model, call, lambda a: (None, a.cost_usd))

    async def transcribe(self, ctx: RequestContext, req: TranscriptionRequest) -> TranscriptionResponse:
        async def call(route: ModelRoute, ran: list[Step]) -> TranscriptionResponse:
            answer = await self._before(ctx, req, route, ran)
            if answer is None:
                answer = await self.router.run(ctx, route, lambda dep: dep.provider.transcribe(req, dep.call))
                answer.cost_usd = audio_cost_usd(self._served_info(ctx, route), answer.duration_s or 0.0)
            return answer

        return await self._unary(ctx, req, req.model, call, lambda a: (None, a.cost_usd))

    async def _unary(
        self,
        ctx: RequestContext,
        req: Any,
        model: str,
        call: Callable[[ModelRoute, list[Step]], Awaitable[Any]],
        usage_of: Callable[[Any], tuple[Usage | None, float]],
    ) -> Any:
        ran: list[Step] = []
        outcome = Outcome(500)
        try:
            route = self._admit(ctx, model)
            answer = await call(route, ran)
            for step in reversed(ran):
                if id(step) in self._after:
                    await step.after(ctx, req, answer)
            usage, cost = usage_of(answer)
            outcome = Outcome(200, usage, cost)
            return answer
        except GatewayError as exc:
            outcome = Outcome(exc.status, error_code=exc.code)
            raise
        except Exception as exc:
            outcome = Outcome(500, error_code="internal_error")
            raise InternalError("lmgate failed to handle the request") from exc
        finally:
            await self._finish_steps(ctx, req, ran, outcome)
            self.ledger.submit(record_for(ctx, outcome.status, outcome.usage, outcome.cost_usd, outcome.error_code))

    # ---------------------------------------------------------------- shared

    async def _prepare_media(self, req: ChatRequest, route: ModelRoute) -> ChatRequest:
        """Check media URLs, fetch those some deployment (or fallback) of the route needs as bytes,
        turn PDFs into text for models without document input."""
        if self.media is None:
            return req
        return await self.media.prepare(req, route.info, self._url_kinds[route.name])

    def _providers_of(self, route: ModelRoute) -> list[Any]:
        names = (*route.fallbacks, *route.context_fallbacks, *route.content_filter_fallbacks)
        routes = [route, *(self.router.routes[n] for n in names if n in self.router.routes)]
        return [d.provider for r in routes for d in r.deployments]

    def _admit(self, ctx: RequestContext, model: str) -> ModelRoute:
        ctx.model = model
        route = self.router.route(model)
        if ctx.key is not None:
            check_model_allowed(ctx.key, model)
        wanted = _KIND_OF_ENDPOINT.get(ctx.endpoint)
        if wanted and route.info.kind != wanted:
            raise UnsupportedModality(f"the model '{model}' is a {route.info.kind} model and cannot serve {ctx.endpoint}", param="model")
        return route

    async def _before(self, ctx: RequestContext, req: Any, route: ModelRoute, ran: list[Step]) -> Any | None:
        for step in self.steps:
            ran.append(step)
            answer = await step.before(ctx, req, route)
            if answer is not None:
                return answer
        return None

    async def _finish_steps(self, ctx: RequestContext, req: Any, ran: list[Step], outcome: Outcome) -> None:
        for step in ran:
            if id(step) in self._finish:
                try:
                    await step.finish(ctx, req, outcome)
                except Exception:  # a settling failure must not lose the ledger record
                    pass

    def _served_info(self, ctx: RequestContext, route: ModelRoute) -> ModelInfo:
        if ctx.served_model and ctx.served_model != route.name:
            served = self.router.routes.get(ctx.served_model)
            if served is not None:
                return served.info
        return route.info


def _ms_since(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 2)


class _Prepended:
    """`first`, then the rest of `stream` (the first event was awaited to choose the deployment).
    A class, not an async generator: after the first event it hands out the inner stream's own
    awaitables, so it adds no layer to every event of the stream."""

    __slots__ = ("_first", "_rest")

    def __init__(self, first: StreamEvent, rest: AsyncIterator[StreamEvent]) -> None:
        self._first: StreamEvent | None = first
        self._rest = rest

    def __aiter__(self) -> _Prepended:
        return self

    def __anext__(self) -> Awaitable[StreamEvent]:
        first = self._first
        if first is None:
            return self._rest.__anext__()
        self._first = None
        return _value(first)

    async def aclose(self) -> None:
        self._first = None
        await _aclose(self._rest)


async def _value(value: StreamEvent) -> StreamEvent:
    return value


async def _aclose(it: Any) -> None:
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:
            pass
