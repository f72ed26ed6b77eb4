"""Per-deployment health: recent failures, cooldowns with a half-open probe, Retry-After, latency.

A deployment that fails `allowed_fails` times within `cooldown_s` is cooled down for `cooldown_s`
(no traffic), then half-open: exactly one request at a time probes it; a success makes it healthy,
a failure cools it down again at once. An upstream's Retry-After is a separate, shorter block: the
deployment is not called again before it, whatever its health. Only upstream faults count; client
errors and cancelled requests never do. All times are `time.monotonic()` seconds passed in.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

LATENCY_ALPHA = 0.3  # weight of the newest sample in the latency EWMA

HEALTHY, COOLING, HALF_OPEN, PROBING, THROTTLED = "healthy", "cooling", "half-open", "probing", "throttled"


@dataclass(slots=True)
class Health:
    allowed_fails: int
    cooldown_s: float
    fails: deque[float] = field(default_factory=deque)  # failure times within the last cooldown_s
    cooldown_until: float = 0.0
    half_open: bool = False  # cooled down once and not yet proven healthy again
    probing: bool = False  # the one half-open probe is in flight
    not_before: float = 0.0  # the upstream's Retry-After: no call before this
    in_flight: int = 0
    latency_ms: float | None = None  # EWMA of time to answer (streams: to the first event)
    successes: int = 0
    failures: int = 0
    last_failure: float = 0.0
    last_error: str | None = None

    def state(self, now: float) -> str:
        if now < self.cooldown_until:
            return COOLING
        if self.half_open:
            return PROBING if self.probing else HALF_OPEN
        if now < self.not_before:
            return THROTTLED
        return HEALTHY

    def available(self, now: float) -> bool:
        """May a request be sent now (not cooling, not throttled, no other probe running)?"""
        return now >= self.cooldown_until and now >= self.not_before and not (self.half_open and self.probing)

    def cooling(self, now: float) -> bool:
        """Kept away only by its health (a last-resort call is allowed), not by Retry-After."""
        return (now < self.cooldown_until or (self.half_open and self.probing)) and now >= self.not_before

    def start(self) -> bool:
        """An attempt begins; returns True when it is the half-open probe."""
        self.in_flight += 1
        if self.half_open and not self.probing:
            self.probing = True
            return True
        return False

    def succeeded(self, now: float, latency_ms: float, probe: bool = False) -> None:
        """A call answered; a probe (or any call once the cooldown is over) makes it healthy again.
        A call that started before the cooldown and ends within it does not cut it short."""
        self.successes += 1
        self.observe_latency(latency_ms)
        if probe or now >= self.cooldown_until:
            self.fails.clear()
            self.half_open = self.probing = False
            self.cooldown_until = 0.0

    def failed(self, now: float, error: str | None, retry_after: float | None = None, probe: bool = False) -> bool:
        """Count an upstream fault; returns True when it cooled the deployment down."""
        self.failures += 1
        self.last_failure = now
        self.last_error = error
        if retry_after:
            self.not_before = max(self.not_before, now + retry_after)
        if probe:
            self.probing = False
        if self.cooldown_s <= 0:
            return False
        fails = self.fails
        fails.append(now)
        horizon = now - self.cooldown_s
        while fails and fails[0] < horizon:
            fails.popleft()
        if probe or (self.half_open and now >= self.cooldown_until) or len(fails) >= self.allowed_fails:
            self.cooldown_until = now + self.cooldown_s
            self.half_open = True
            self.probing = False
            fails.clear()
            return True
        return False

    def neutral(self, probe: bool) -> None:
        """An attempt ended in a way that says nothing about the deployment (client error, cancel)."""
        if probe:
            self.probing = False

    def observe_latency(self, latency_ms: float) -> None:
        prev = self.latency_ms
        self.latency_ms = latency_ms if prev is None else prev + LATENCY_ALPHA * (latency_ms - prev)
