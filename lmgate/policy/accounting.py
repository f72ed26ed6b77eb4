"""Tokens and money: the usage of an answer (estimated where the upstream gave none), its cost,
and the ledger record. Records are handed to a sink that writes them off the request path."""

from __future__ import annotations

import time
from typing import Protocol

from lmgate.catalog.catalog import ModelInfo
from lmgate.catalog.tokens import billable_chars, count_chars, estimate_chat_tokens, estimate_tokens
from lmgate.types import ChatRequest, ChatResponse, RequestContext, Usage, UsageRecord


class LedgerSink(Protocol):
    def submit(self, record: UsageRecord) -> None:
        """Queue one record; never blocks, never raises."""


class MemoryLedger:
    """Keeps records in a list: for tests and for running without a store."""

    def __init__(self) -> None:
        self.records: list[UsageRecord] = []

    def submit(self, record: UsageRecord) -> None:
        self.records.append(record)


def complete_usage(usage: Usage, req: ChatRequest, output_text: str | None, info: ModelInfo) -> Usage:
    """Fill what the upstream did not report: estimated tokens, and characters for per-character prices."""
    if not usage.input_tokens:
        usage.input_tokens = estimate_chat_tokens(req)
    if not usage.output_tokens and output_text:
        usage.output_tokens = estimate_tokens(output_text)
    if info.price is not None and info.price.unit == "1K characters":
        if not usage.input_chars:
            usage.input_chars = count_chars(req)
        if not usage.output_chars and output_text is not None:
            usage.output_chars = billable_chars(output_text)
    return usage


def response_text(resp: ChatResponse) -> str:
    return "".join(c.message.text() for c in resp.choices)


def record_for(
    ctx: RequestContext,
    status: int,
    usage: Usage | None,
    cost: float,
    error_code: str | None,
    stream: bool = False,
) -> UsageRecord:
    u = usage or Usage()
    key = ctx.key
    opts = ctx.options
    return UsageRecord(
        request_id=ctx.request_id,
        ts=ctx.started_wall,
        key_id=key.id if key else None,
        key_name=key.name if key else None,
        surface=ctx.surface,
        endpoint=ctx.endpoint,
        model=ctx.model,
        served_model=ctx.served_model,
        deployment=ctx.deployment,
        provider=ctx.provider,
        status=status,
        input_tokens=u.input_tokens,
        output_tokens=u.output_tokens,
        cached_tokens=u.cached_tokens,
        reasoning_tokens=u.reasoning_tokens,
        cost_usd=cost,
        latency_ms=round((time.monotonic() - ctx.started) * 1000, 2),
        ttft_ms=ctx.first_token_ms,
        stream=stream,
        cache_hit=ctx.cache_status == "hit",
        cache_saved_usd=ctx.cache_saved_usd,
        error_code=error_code,
        app_name=opts.app_name,
        options={"is_cache": int(opts.cache), "use_guard": opts.guard},
        metadata=dict(opts.metadata),
        attempts=[
            {"deployment": a.deployment, "provider": a.provider, "model": a.model, "status": a.status, "latency_ms": a.latency_ms, "error": a.error}
            for a in ctx.attempts
        ],
        guardrails=list(ctx.guardrails),
    )
