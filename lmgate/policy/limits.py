"""Per-key limits as a policy step: rpm and tpm over a sliding 60 s window, and budgets.

Budgets reserve before the call and settle after it: `before` refuses once spent + reserved
reaches the budget, else reserves the request's most possible cost (catalog.reservation_usd);
`finish` releases the reservation and adds the real cost. So N parallel requests can overshoot
the budget by at most the one reservation admitted last, never N of them.

Counters live behind `LimitBackend` (in memory per instance here); a Redis backend with the
same methods makes them shared across instances. Tokens for tpm are the prompt's estimate,
counted when the request is admitted and corrected to the real total when it finishes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol

from lmgate.catalog.catalog import ModelInfo, reservation_usd
from lmgate.catalog.tokens import estimate_chat_tokens, estimate_embedding_tokens
from lmgate.errors import BudgetExceeded, RateLimited
from lmgate.policy.periods import TOTAL, period_id, period_ids, seconds_to_next
from lmgate.policy.step import Outcome, Step
from lmgate.types import ChatRequest, EmbeddingRequest, ImageRequest, KeyRecord, RequestContext

WINDOW_S = 60.0
SLOT_S = 5.0  # the window slides in 12 slots of 5 s
SLOTS = int(WINDOW_S / SLOT_S)


# ---------------------------------------------------------------- rate windows


@dataclass(slots=True)
class RateState:
    """What one admission check saw; `allowed` False means nothing was counted."""

    allowed: bool
    rpm: int | None
    tpm: int | None
    requests_used: int
    tokens_used: int
    requests_reset_s: float  # until the oldest counted request leaves the window
    tokens_reset_s: float
    retry_after_s: float = 0.0
    reason: str = ""

    def headers(self) -> dict[str, str]:
        h: dict[str, str] = {}
        if self.rpm is not None:
            h["x-ratelimit-limit-requests"] = str(self.rpm)
            h["x-ratelimit-remaining-requests"] = str(max(0, self.rpm - self.requests_used))
            h["x-ratelimit-reset-requests"] = _duration(self.requests_reset_s)
        if self.tpm is not None:
            h["x-ratelimit-limit-tokens"] = str(self.tpm)
            h["x-ratelimit-remaining-tokens"] = str(max(0, self.tpm - self.tokens_used))
            h["x-ratelimit-reset-tokens"] = _duration(self.tokens_reset_s)
        return h


class _Window:
    """Requests and tokens in the last 60 s, in 12 slots of 5 s (O(1) memory per key)."""

    __slots__ = ("stamp", "requests", "tokens")

    def __init__(self) -> None:
        self.stamp = [-1] * SLOTS  # which 5 s slot (time // 5) each cell holds
        self.requests = [0] * SLOTS
        self.tokens = [0] * SLOTS

    def _cell(self, slot: int) -> int:
        i = slot % SLOTS
        if self.stamp[i] != slot:
            self.stamp[i], self.requests[i], self.tokens[i] = slot, 0, 0
        return i

    def totals(self, now: float) -> tuple[int, int, float, float]:
        """Requests and tokens in the window, and seconds until the oldest of each leaves it."""
        oldest = int(now // SLOT_S) - SLOTS
        r = t = 0
        first_r = first_t = oldest + SLOTS + 1
        stamp, requests, tokens = self.stamp, self.requests, self.tokens
        for i in range(SLOTS):
            st = stamp[i]
            if st > oldest:
                if requests[i]:
                    r += requests[i]
                    first_r = min(first_r, st)
                if tokens[i]:
                    t += tokens[i]
                    first_t = min(first_t, st)
        return r, t, (first_r + SLOTS) * SLOT_S - now, (first_t + SLOTS) * SLOT_S - now

    def free_after(self, now: float, counts: list[int], need: int) -> float:
        """Seconds until at least `need` of `counts` have left the window (0 if need <= 0)."""
        slot = int(now // SLOT_S)
        live = sorted((self.stamp[i], counts[i]) for i in range(SLOTS) if self.stamp[i] > slot - SLOTS and counts[i])
        if need <= 0 or not live:
            return 0.0
        freed = 0
        for stamp, n in live:
            freed += n
            if freed >= need:
                return max(0.0, (stamp + SLOTS) * SLOT_S - now)
        return WINDOW_S

    def add(self, at: float, requests: int, tokens: int) -> None:
        i = self._cell(int(at // SLOT_S))
        self.requests[i] += requests
        self.tokens[i] = max(0, self.tokens[i] + tokens)


class LimitBackend(Protocol):
    """Counters for rpm/tpm and budgets; in memory here, Redis when instances share them."""

    async def take(self, key_id: str, now: float, rpm: int | None, tpm: int | None, tokens: int) -> RateState: ...

    async def adjust_tokens(self, key_id: str, at: float, delta: int) -> None: ...

    async def reserve(self, key_id: str, period: str, budget: float, amount: float, now: float) -> float | None:
        """Reserve `amount` unless spent + reserved already reaches `budget`; returns the spend
        seen (None: refused)."""
        ...

    async def settle(self, key_id: str, reserved: float, cost: float, at: float) -> None: ...

    def load_spend(self, spend: dict[str, dict[str, float]]) -> None: ...

    def spent(self, key_id: str, period: str, now: float) -> float: ...


@dataclass(slots=True)
class _Spend:
    total: float = 0.0
    day: tuple[str, float] = ("", 0.0)
    month: tuple[str, float] = ("", 0.0)
    reserved: float = 0.0

    def add(self, pid: str, usd: float) -> None:
        """Count `usd` toward one period id; a new day or month starts from 0."""
        if pid == TOTAL:
            self.total += usd
        elif pid.startswith("d"):
            self.day = (pid, (self.day[1] if self.day[0] == pid else 0.0) + usd)
        elif pid.startswith("m"):
            self.month = (pid, (self.month[1] if self.month[0] == pid else 0.0) + usd)

    def of(self, pid: str) -> float:
        """Spend in one period id: 0 for a day or month other than the one held."""
        if pid == TOTAL:
            return self.total
        held = self.day if pid.startswith("d") else self.month
        return held[1] if held[0] == pid else 0.0


class MemoryLimits:
    """LimitBackend for one instance. Every method runs on the event loop without awaiting,
    so each check-and-count is atomic."""

    def __init__(self) -> None:
        self._windows: dict[str, _Window] = {}
        self._spend: dict[str, _Spend] = {}

    async def take(self, key_id: str, now: float, rpm: int | None, tpm: int | None, tokens: int) -> RateState:
        w = self._windows.get(key_id)
        if w is None:
            w = self._windows[key_id] = _Window()
        used_r, used_t, reset_r, reset_t = w.totals(now)
        reset_r, reset_t = min(reset_r, WINDOW_S), min(reset_t, WINDOW_S)
        if rpm is not None and used_r >= rpm:
            wait = w.free_after(now, w.requests, used_r - rpm + 1)
            return RateState(False, rpm, tpm, used_r, used_t, reset_r, reset_t, wait, f"{rpm} requests per minute")
        if tpm is not None and used_t + tokens > tpm and (used_t > 0 or tokens > tpm):
            if tokens > tpm:
                return RateState(False, rpm, tpm, used_r, used_t, reset_r, reset_t, WINDOW_S, f"{tpm} tokens per minute (this request alone is about {tokens} tokens)")
            wait = w.free_after(now, w.tokens, used_t + tokens - tpm)
            return RateState(False, rpm, tpm, used_r, used_t, reset_r, reset_t, wait, f"{tpm} tokens per minute")
        w.add(now, 1, tokens)
        return RateState(True, rpm, tpm, used_r + 1, used_t + tokens, reset_r, reset_t)

    async def adjust_tokens(self, key_id: str, at: float, delta: int) -> None:
        w = self._windows.get(key_id)
        if w is not None and delta:
            w.add(at, 0, delta)

    async def reserve(self, key_id: str, period: str, budget: float, amount: float, now: float) -> float | None:
        s = self._spend_of(key_id)
        seen = s.of(period_id(period, now))
        if seen + s.reserved >= budget:
            return None
        s.reserved += amount
        return seen

    async def settle(self, key_id: str, reserved: float, cost: float, at: float) -> None:
        s = self._spend_of(key_id)
        s.reserved = max(0.0, s.reserved - reserved)
        if cost:
            for pid in period_ids(at):
                s.add(pid, cost)

    def load_spend(self, spend: dict[str, dict[str, float]]) -> None:
        """Spend per key and period id as the store keeps it (added to what is counted already)."""
        for key_id, periods in spend.items():
            s = self._spend_of(key_id)
            for pid, usd in periods.items():
                s.add(pid, usd)

    def spent(self, key_id: str, period: str, now: float) -> float:
        s = self._spend.get(key_id)
        return 0.0 if s is None else s.of(period_id(period, now))

    def reserved(self, key_id: str) -> float:
        s = self._spend.get(key_id)
        return 0.0 if s is None else s.reserved

    def _spend_of(self, key_id: str) -> _Spend:
        s = self._spend.get(key_id)
        if s is None:
            s = self._spend[key_id] = _Spend()
        return s


# ---------------------------------------------------------------- the step


@dataclass(slots=True)
class _Ticket:
    """What `before` counted, for `finish` to settle."""

    key_id: str
    at: float
    tokens: int = 0  # counted toward tpm
    reserved: float | None = None  # USD reserved against the budget


class LimitsStep(Step):
    name = "limits"

    def __init__(
        self, backend: LimitBackend | None = None, clock: Callable[[], float] = time.time, routes: Mapping[str, Any] | None = None
    ) -> None:
        self.backend: LimitBackend = backend if backend is not None else MemoryLimits()
        self.clock = clock
        self.routes = routes  # the router's routes, to reserve for the dearest model a fallback may reach
        self._reach: dict[str, tuple[ModelInfo, ...]] = {}

    async def before(self, ctx: RequestContext, req: Any, route: Any) -> Any | None:
        key = ctx.key
        if key is None or (key.rpm is None and key.tpm is None and key.budget_usd is None):
            return None
        now = self.clock()
        prompt = _prompt_tokens(req) if key.tpm is not None or key.budget_usd is not None else 0
        tokens = prompt if key.tpm is not None else 0
        ticket = _Ticket(key.id, now)
        if key.budget_usd is not None:
            amount = max(_reservation(info, req, prompt) for info in self._infos(route))
            seen = await self.backend.reserve(key.id, key.budget_period, key.budget_usd, amount, now)
            if seen is None:
                raise _over_budget(key, self.backend.spent(key.id, key.budget_period, now), now)
            ticket.reserved = amount
        if key.rpm is not None or key.tpm is not None:
            state = await self.backend.take(key.id, now, key.rpm, key.tpm, tokens)
            headers = state.headers()
            if not state.allowed:
                if ticket.reserved is not None:
                    await self.backend.settle(key.id, ticket.reserved, 0.0, now)
                raise RateLimited(
                    f"the key '{key.name}' reached its limit of {state.reason}; retry in {math.ceil(state.retry_after_s)} s",
                    retry_after=max(1.0, state.retry_after_s),
                    headers=headers,
                )
            ctx.response_headers.update(headers)
            ticket.tokens = tokens
        ctx.reservation = ticket
        return None

    async def finish(self, ctx: RequestContext, req: Any, outcome: Outcome) -> None:
        ticket = ctx.reservation
        if not isinstance(ticket, _Ticket):
            return
        ctx.reservation = None
        if ticket.tokens or (outcome.usage is not None and ctx.key is not None and ctx.key.tpm is not None):
            real = outcome.usage.total_tokens if outcome.usage is not None else 0
            await self.backend.adjust_tokens(ticket.key_id, ticket.at, real - ticket.tokens)
        if ticket.reserved is not None:
            await self.backend.settle(ticket.key_id, ticket.reserved, outcome.cost_usd, ctx.started_wall)

    def _infos(self, route: Any) -> tuple[ModelInfo, ...]:
        """The model asked for and every fallback it may be served by (fallbacks, context and
        content-filter fallbacks), so the reservation covers the dearest of them."""
        found = self._reach.get(route.name)
        if found is None:
            infos = [route.info]
            if self.routes is not None:
                for name in (*route.fallbacks, *route.context_fallbacks, *route.content_filter_fallbacks):
                    other = self.routes.get(name)
                    if other is not None and other.info not in infos:
                        infos.append(other.info)
            found = self._reach[route.name] = tuple(infos)
        return found


def _prompt_tokens(req: Any) -> int:
    if isinstance(req, ChatRequest):
        return estimate_chat_tokens(req)
    if isinstance(req, EmbeddingRequest):
        return estimate_embedding_tokens(req)
    return 0


def _reservation(info: ModelInfo, req: Any, prompt_tokens: int) -> float:
    if isinstance(req, ChatRequest):
        return reservation_usd(info, prompt_tokens, req.max_tokens)
    if isinstance(req, EmbeddingRequest):
        return reservation_usd(info, prompt_tokens, 0)
    if isinstance(req, ImageRequest):
        return reservation_usd(info, 0) * max(1, req.n)
    return reservation_usd(info, 0, 0)


def _over_budget(key: KeyRecord, spent: float, now: float) -> BudgetExceeded:
    period = {"total": "", "daily": "daily ", "monthly": "monthly "}[key.budget_period]
    wait = seconds_to_next(key.budget_period, now)
    return BudgetExceeded(
        f"the key '{key.name}' has used its {period}budget: ${spent:.6f} spent of ${key.budget_usd:g}"
        + ("" if wait is None else f"; it resets at the start of the next {'day' if key.budget_period == 'daily' else 'month'} (UTC)"),
        retry_after=wait,
    )


def _duration(seconds: float) -> str:
    """OpenAI's style for x-ratelimit-reset-*: 20ms, 1.5s, 1m0s."""
    if seconds < 1:
        return f"{int(seconds * 1000)}ms"
    if seconds < 60:
        return f"{seconds:.3g}s"
    return f"{int(seconds // 60)}m{int(seconds % 60)}s"
