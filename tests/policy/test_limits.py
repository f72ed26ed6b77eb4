"""Per-key limits: the sliding rpm/tpm windows on a fake clock, budgets that reserve and settle,
and the step in a served gateway (429s with their headers, a parallel burst against a budget)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from lmgate.catalog.tokens import estimate_chat_tokens
from lmgate.policy.accounting import MemoryLedger
from lmgate.policy.limits import LimitsStep, MemoryLimits
from lmgate.policy.periods import seconds_to_next
from lmgate.policy.step import Outcome
from lmgate.types import ChatRequest, KeyRecord, Message, RequestContext, TextPart, Usage

T0 = 1_750_000_000.0  # a multiple of 5 s: slot boundaries are easy to reason about


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Route:
    def __init__(self, name: str = "m", price: float = 1000, fallbacks: tuple[str, ...] = ()) -> None:
        from lmgate.catalog.catalog import ModelInfo, Price

        self.name = name
        self.info = ModelInfo(name=name, price=Price(input=price, output=price), max_output_tokens=100)
        self.fallbacks, self.context_fallbacks, self.content_filter_fallbacks = list(fallbacks), [], []


def ctx_for(key: KeyRecord, now: float = T0) -> RequestContext:
    return RequestContext("req", "openai", "chat", 0.0, now, key=key)


def request(text: str = "hello", max_tokens: int | None = 10) -> ChatRequest:
    return ChatRequest(model="m", messages=[Message("user", [TextPart(text)])], max_tokens=max_tokens)


# ---------------------------------------------------------------- windows


async def test_rpm_counts_a_sliding_minute() -> None:
    lim, clock = MemoryLimits(), Clock()
    for i in range(3):
        state = await lim.take("k", clock(), 3, None, 0)
        assert state.allowed and state.headers()["x-ratelimit-remaining-requests"] == str(2 - i)
        clock.t += 10
    refused = await lim.take("k", clock(), 3, None, 0)
    assert not refused.allowed and refused.retry_after_s == pytest.approx(30.0)  # the first request leaves at T0+60
    assert refused.headers()["x-ratelimit-remaining-requests"] == "0"
    clock.t = T0 + 60
    assert (await lim.take("k", clock(), 3, None, 0)).allowed
    assert not (await lim.take("k", clock(), 3, None, 0)).allowed
    assert (await lim.take("other", clock(), 3, None, 0)).allowed  # per key


async def test_tpm_counts_estimates_then_real_tokens() -> None:
    lim = MemoryLimits()
    assert (await lim.take("k", T0, None, 100, 60)).allowed
    refused = await lim.take("k", T0 + 1, None, 100, 60)
    assert not refused.allowed and refused.headers()["x-ratelimit-remaining-tokens"] == "40"
    await lim.adjust_tokens("k", T0, -50)  # the call used 10 tokens, not 60
    state = await lim.take("k", T0 + 1, None, 100, 60)
    assert state.allowed and state.tokens_used == 70
    big = await lim.take("j", T0, None, 100, 500)
    assert not big.allowed and "alone" in big.reason


async def test_budget_reserves_then_settles_per_period() -> None:
    lim = MemoryLimits()
    assert await lim.reserve("k", "daily", 1.0, 0.6, T0) == 0.0
    assert await lim.reserve("k", "daily", 1.0, 0.6, T0) == 0.0  # 0.6 reserved < 1.0: one more may go
    assert await lim.reserve("k", "daily", 1.0, 0.6, T0) is None  # 1.2 reserved: refused
    await lim.settle("k", 0.6, 0.5, T0)
    await lim.settle("k", 0.6, 0.4, T0)
    assert lim.spent("k", "daily", T0) == pytest.approx(0.9) and lim.reserved("k") == 0.0
    assert await lim.reserve("k", "daily", 1.0, 0.6, T0) == pytest.approx(0.9)
    await lim.settle("k", 0.6, 0.2, T0)
    assert await lim.reserve("k", "daily", 1.0, 0.1, T0) is None
    assert await lim.reserve("k", "total", 5.0, 0.1, T0) is not None
    tomorrow = T0 + seconds_to_next("daily", T0) + 1  # type: ignore[operator]
    assert lim.spent("k", "daily", tomorrow) == 0.0 and lim.spent("k", "monthly", T0) == pytest.approx(1.1)
    lim.load_spend({"x": {"total": 2.0, "d2025-06-15": 0.5}})
    assert lim.spent("x", "total", T0) == 2.0 and lim.spent("x", "daily", T0) == 0.5  # T0 is 2025-06-15


async def test_the_step_reserves_before_and_settles_in_finish() -> None:
    clock = Clock()
    step = LimitsStep(clock=clock)
    key = KeyRecord("k", "alice", "h", rpm=5, tpm=1000, budget_usd=1.0)
    ctx = ctx_for(key)
    await step.before(ctx, request(), Route())
    assert ctx.response_headers["x-ratelimit-limit-requests"] == "5"
    prompt = estimate_chat_tokens(request())
    assert ctx.response_headers["x-ratelimit-remaining-tokens"] == str(1000 - prompt)
    backend: MemoryLimits = step.backend  # type: ignore[assignment]
    assert backend.reserved("k") == pytest.approx((prompt + 10) * 0.001)  # prompt estimate + max_tokens at $1000/1M
    await step.finish(ctx, request(), Outcome(200, Usage(input_tokens=3, output_tokens=4), 0.007))
    assert backend.reserved("k") == 0.0 and backend.spent("k", "total", T0) == pytest.approx(0.007)
    assert (await backend.take("k", T0, None, None, 0)).tokens_used == 7  # real tokens replaced the estimate
    # a key without limits is not touched
    free = ctx_for(KeyRecord("f", "free", "h2"))
    assert await step.before(free, request(), Route()) is None and free.reservation is None and not free.response_headers


async def test_the_reservation_covers_the_dearest_fallback() -> None:
    routes = {"cheap": Route("cheap", 1, ("dear",)), "dear": Route("dear", 5000)}
    step = LimitsStep(routes=routes)
    ctx = ctx_for(KeyRecord("k", "alice", "h", budget_usd=100.0))
    await step.before(ctx, request(), routes["cheap"])
    backend: MemoryLimits = step.backend  # type: ignore[assignment]
    assert backend.reserved("k") == pytest.approx((estimate_chat_tokens(request()) + 10) * 0.005)


async def test_refusals_carry_headers_and_release_what_they_reserved() -> None:
    from lmgate.errors import BudgetExceeded, RateLimited

    step = LimitsStep(clock=Clock())
    key = KeyRecord("k", "alice", "h", rpm=1, budget_usd=1.0)
    first = ctx_for(key)
    await step.before(first, request(), Route())
    with pytest.raises(RateLimited) as exc:
        await step.before(ctx_for(key), request(), Route())
    assert exc.value.status == 429 and exc.value.code == "rate_limit_exceeded"
    assert exc.value.headers["retry-after"] == "60" and exc.value.headers["x-ratelimit-remaining-requests"] == "0"
    assert {"x-ratelimit-limit-requests", "x-ratelimit-reset-requests"} <= set(exc.value.headers)
    backend: MemoryLimits = step.backend  # type: ignore[assignment]
    assert backend.reserved("k") == pytest.approx((estimate_chat_tokens(request()) + 10) * 0.001)  # only the admitted one

    broke = KeyRecord("b", "bob", "h", budget_usd=0.01, budget_period="daily")
    backend.load_spend({"b": {"total": 0.01}})
    await step.before(ctx_for(broke), request(), Route())  # nothing spent today yet
    with pytest.raises(BudgetExceeded) as exc2:
        await step.before(ctx_for(broke), request(), Route())
    assert exc2.value.code == "insufficient_quota" and "daily budget" in exc2.value.message
    assert int(exc2.value.headers["retry-after"]) == pytest.approx(seconds_to_next("daily", T0), abs=1)


# ---------------------------------------------------------------- in a served gateway

CONFIG = """
providers:
  sim: {{type: openai, base_url: "{sim}/v1", api_key: sk-up}}
models:
  - name: priced
    deployments: [{{provider: sim, model: gpt-4o-mini}}]
    pricing: {{input: 1000, output: 1000, unit: 1M tokens}}
keys:
  - {{key: sk-rpm-limited-key, name: rpm2, rpm: 2}}
  - {{key: sk-tpm-limited-key, name: tpm, tpm: 60}}
  - {{key: sk-small-budget-key, name: budget, budget_usd: 0.1}}
"""


def post(base: str, key: str, text: str = "hello", max_tokens: int = 20) -> requests.Response:
    body = {"model": "priced", "max_tokens": max_tokens, "messages": [{"role": "user", "content": text}]}
    return requests.post(f"{base}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_rpm_and_tpm_answers_over_http(gateway_factory: Any, sim: Any) -> None:
    base = gateway_factory(CONFIG.format(sim=sim.base_url)).base_url
    ok = post(base, "sk-rpm-limited-key")
    assert ok.status_code == 200
    assert ok.headers["x-ratelimit-limit-requests"] == "2" and ok.headers["x-ratelimit-remaining-requests"] == "1"
    assert "x-ratelimit-reset-requests" in ok.headers
    assert post(base, "sk-rpm-limited-key").status_code == 200
    refused = post(base, "sk-rpm-limited-key")
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(refused.headers["retry-after"]) >= 1 and refused.headers["x-ratelimit-remaining-requests"] == "0"

    ok = post(base, "sk-tpm-limited-key", "word " * 30)
    assert ok.status_code == 200 and ok.headers["x-ratelimit-limit-tokens"] == "60"
    refused = post(base, "sk-tpm-limited-key", "word " * 30)
    assert refused.status_code == 429 and "tokens per minute" in refused.json()["error"]["message"]
    assert "x-ratelimit-remaining-tokens" in refused.headers


def test_a_parallel_burst_never_spends_more_than_budget_plus_one_reservation(gateway_factory: Any, sim: Any) -> None:
    class Recording(MemoryLimits):
        def __init__(self) -> None:
            super().__init__()
            self.amounts: list[float] = []

        async def reserve(self, key_id: str, period: str, budget: float, amount: float, now: float) -> float | None:
            self.amounts.append(amount)
            return await super().reserve(key_id, period, budget, amount, now)

    backend = Recording()
    ledger = MemoryLedger()
    gw = gateway_factory(CONFIG.format(sim=sim.base_url), ledger=ledger, steps=[LimitsStep(backend)])
    prompt = "[[sim: delay_ms=150]] tell me a story"
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: post(gw.base_url, "sk-small-budget-key", prompt, 30), range(40)))
    codes = [a.status_code for a in answers]
    assert codes.count(200) >= 1 and set(codes) == {200, 429}
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 429} == {"insufficient_quota"}
    spent = sum(r.cost_usd for r in ledger.records if r.status == 200)
    assert spent == pytest.approx(backend.spent("cfg-budget", "total", 0.0))
    assert spent <= 0.1 + max(backend.amounts) + 1e-12
    assert backend.reserved("cfg-budget") == pytest.approx(0.0, abs=1e-12)  # every reservation settled
    assert post(gw.base_url, "sk-small-budget-key").status_code == (200 if spent < 0.1 else 429)


def test_costs_never_exceed_their_reservation(gateway_factory: Any, sim: Any) -> None:
    """The bound above rests on this: a served request costs at most what was reserved for it."""

    class Checking(MemoryLimits):
        pairs: list[tuple[float, float]] = []

        async def settle(self, key_id: str, reserved: float, cost: float, at: float) -> None:
            self.pairs.append((reserved, cost))
            await super().settle(key_id, reserved, cost, at)

    backend = Checking()
    gw = gateway_factory(CONFIG.format(sim=sim.base_url).replace("budget_usd: 0.1", "budget_usd: 100"), steps=[LimitsStep(backend)])
    for text, max_tokens in (("hi", 5), ("a longer prompt " * 20, 50), ("[[sim: tokens=40]] x", 40)):
        assert post(gw.base_url, "sk-small-budget-key", text, max_tokens).status_code == 200
    assert len(backend.pairs) == 3 and all(0 < cost <= reserved for reserved, cost in backend.pairs)


def test_refused_requests_still_reach_the_ledger(gateway_factory: Any, sim: Any) -> None:
    ledger = MemoryLedger()
    gw = gateway_factory(CONFIG.format(sim=sim.base_url), ledger=ledger)
    for _ in range(3):
        post(gw.base_url, "sk-rpm-limited-key")
    assert [r.status for r in ledger.records] == [200, 200, 429]
    assert ledger.records[-1].error_code == "rate_limit_exceeded" and ledger.records[-1].cost_usd == 0


def test_limits_step_is_built_by_default() -> None:
    from lmgate.app import Gateway
    from lmgate.config import parse_config

    gw = Gateway(parse_config("{}"))
    assert any(isinstance(s, LimitsStep) for s in gw.steps)
    asyncio.run(gw.http.close())
