"""The router's loop with scripted deployments, a fake clock and seeded randomness (no network)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest

from lmgate.config import RouterConfig
from lmgate.errors import (
    BadRequest,
    ContentFiltered,
    ContextLengthExceeded,
    UpstreamAuthError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    Unprocessable,
)
from lmgate.routing import strategies
from lmgate.types import Usage

from routing_helpers import Script, ctx, dep, make_router, route


def fail500() -> UpstreamError:
    return UpstreamError("boom")


def test_500_then_another_deployment_without_waiting() -> None:
    a, b = dep("a"), dep("b")
    r, clock = make_router([route("m", [a, b])], seed=1)
    c = ctx()
    n = {"calls": 0}

    def first_fails() -> object:
        n["calls"] += 1
        return fail500() if n["calls"] == 1 else "ok"

    script = Script(a=first_fails, b=first_fails)
    assert asyncio.run(r.run(c, r.routes["m"], script)) == "ok"
    assert len(set(script.calls)) == 2  # the retry went to the OTHER deployment
    assert clock.sleeps == []  # no backoff when switching to a fresh deployment
    assert [x.status for x in c.attempts] == [502, 200]
    assert c.deployment == script.calls[-1] and c.served_model == "m"


def test_client_errors_are_not_retried_and_not_counted() -> None:
    a, b = dep("a"), dep("b")
    r, _ = make_router([route("m", [a, b])])
    for exc in (BadRequest("bad"), Unprocessable("wrong type")):
        script = Script(a=exc, b=exc)
        with pytest.raises(type(exc)):
            asyncio.run(r.run(ctx(), r.routes["m"], script))
        assert len(script.calls) == 1
    assert a.health.failures == b.health.failures == 0


def test_upstream_auth_error_is_a_deployment_fault() -> None:
    a, b = dep("a"), dep("b")
    r, _ = make_router([route("m", [a, b])])
    script = Script(a=lambda: UpstreamAuthError("bad creds"), b=lambda: UpstreamAuthError("bad creds"))
    with pytest.raises(UpstreamAuthError):
        asyncio.run(r.run(ctx(), r.routes["m"], script))
    assert a.health.failures + b.health.failures == 3  # 1 + retries(2)


def test_retries_bound_the_attempts_and_back_off_on_the_same_deployment() -> None:
    a = dep("a")
    r, clock = make_router([route("m", [a])], RouterConfig(retries=2, backoff_s=0.1, max_backoff_s=1.0, allowed_fails=10))
    script = Script(a=fail500)
    with pytest.raises(UpstreamError):
        asyncio.run(r.run(ctx(), r.routes["m"], script))
    assert script.calls == ["a", "a", "a"]
    assert len(clock.sleeps) == 2
    assert 0.05 <= clock.sleeps[0] <= 0.1 and 0.1 <= clock.sleeps[1] <= 0.2  # exponential, with jitter


def test_retry_after_is_honoured_and_other_deployment_used() -> None:
    a, b = dep("a"), dep("b")
    r, clock = make_router([route("m", [a, b])], RouterConfig(retries=3, allowed_fails=10))
    script = Script(a=lambda: UpstreamRateLimited("slow down", retry_after=5), b=fail500)
    with pytest.raises(UpstreamError):
        asyncio.run(r.run(ctx(), r.routes["m"], script))
    assert script.calls.count("a") == 1 and script.calls.count("b") == 3  # a is not called again before 5 s
    assert sum(clock.sleeps) < 5
    # another request within the 5 s never calls a
    script2 = Script(a="never", b="ok")
    assert asyncio.run(r.run(ctx(), r.routes["m"], script2)) == "ok"
    assert script2.calls == ["b"]
    assert a.health.state(clock.now) == "throttled"


def test_short_retry_after_is_waited_for() -> None:
    a = dep("a")
    r, clock = make_router([route("m", [a])], RouterConfig(max_backoff_s=2.0, allowed_fails=10))
    n = {"calls": 0}

    def first_429() -> object:
        n["calls"] += 1
        return UpstreamRateLimited("wait", retry_after=0.5) if n["calls"] == 1 else "ok"

    assert asyncio.run(r.run(ctx(), r.routes["m"], Script(a=first_429))) == "ok"
    assert sum(clock.sleeps) >= 0.5  # never called again before its Retry-After


def test_only_long_retry_after_left_fails_fast_with_retry_after() -> None:
    a = dep("a")
    r, clock = make_router([route("m", [a])], RouterConfig(max_backoff_s=2.0, allowed_fails=10))
    with pytest.raises(UpstreamRateLimited) as err:
        asyncio.run(r.run(ctx(), r.routes["m"], Script(a=lambda: UpstreamRateLimited("wait", retry_after=30))))
    assert err.value.headers["retry-after"] == "30" and clock.sleeps == []
    # the next request does not even call it
    script = Script()
    with pytest.raises(UpstreamRateLimited) as err2:
        asyncio.run(r.run(ctx(), r.routes["m"], script))
    assert script.calls == [] and int(err2.value.headers["retry-after"]) == 30


def test_cooldown_half_open_probe_and_recovery() -> None:
    rc = RouterConfig(allowed_fails=2, cooldown_s=10, retries=1)
    a, b = dep("a", rc=rc), dep("b", rc=rc)
    r, clock = make_router([route("m", [a, b])], rc)
    m = r.routes["m"]
    script = Script(a=fail500, b="ok")
    for _ in range(6):
        asyncio.run(r.run(ctx(), m, script))
    assert a.health.state(clock.now) == "cooling"
    calls_to_a = script.calls.count("a")
    assert calls_to_a == 2  # cooled down after allowed_fails; no traffic since
    for _ in range(20):
        asyncio.run(r.run(ctx(), m, script))
    assert script.calls.count("a") == 2
    clock.advance(10.1)
    assert a.health.state(clock.now) == "half-open"
    # one probe: it fails, a is cooled down again at once
    for _ in range(10):
        asyncio.run(r.run(ctx(), m, script))
    assert script.calls.count("a") == 3 and a.health.state(clock.now) == "cooling"
    clock.advance(10.1)
    script.set("a", "ok")
    for _ in range(40):
        asyncio.run(r.run(ctx(), m, script))
    assert a.health.state(clock.now) == "healthy"
    assert script.calls.count("a") > 3 + 5  # back in rotation


def test_only_one_probe_at_a_time() -> None:
    rc = RouterConfig(allowed_fails=1, cooldown_s=5)
    a, b = dep("a", rc=rc), dep("b", rc=rc)
    r, clock = make_router([route("m", [a, b])], rc)
    a.health.failed(clock.now, "upstream_error")
    clock.advance(5.1)

    async def scenario() -> list[str]:
        gate = asyncio.Event()

        async def slow_ok() -> str:
            await gate.wait()
            return "ok"

        picked: list[str] = []

        async def attempt(d):  # type: ignore[no-untyped-def]
            picked.append(d.name)
            return await slow_ok()

        tasks = [asyncio.create_task(r.run(ctx(), r.routes["m"], attempt)) for _ in range(20)]
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(*tasks)
        return picked

    picked = asyncio.run(scenario())
    assert picked.count("a") == 1  # half-open: exactly one probe while it runs
    assert a.health.state(clock.now) == "healthy"


def test_a_call_from_before_the_cooldown_does_not_end_it() -> None:
    rc = RouterConfig(allowed_fails=1, cooldown_s=10)
    a = dep("a", rc=rc)
    r, clock = make_router([route("m", [a])], rc)
    old = a.health.start()  # started while healthy
    a.health.failed(clock.now, "upstream_error")  # another call fails: cooled down
    a.health.in_flight -= 1
    a.health.succeeded(clock.now + 1, 50.0, old)
    assert a.health.state(clock.now + 1) == "cooling"


def test_single_deployment_with_fallback_is_cooled_down_too() -> None:
    rc = RouterConfig(allowed_fails=2, cooldown_s=30, retries=2)
    p = dep("p", "primary", rc=rc)
    f = dep("f", "backup", rc=rc)
    r, _ = make_router([route("primary", [p], fallbacks=["backup"]), route("backup", [f])], rc)
    script = Script(p=fail500, f="ok")
    c = ctx()
    assert asyncio.run(r.run(c, r.routes["primary"], script)) == "ok"
    assert c.served_model == "backup"
    for _ in range(10):
        asyncio.run(r.run(ctx(), r.routes["primary"], script))
    assert script.calls.count("p") == 2  # straight to the fallback while the primary cools down


def test_everything_cooling_tries_least_recently_failed_once_with_a_warning() -> None:
    rc = RouterConfig(allowed_fails=1, cooldown_s=30, retries=3)
    a, b = dep("a", rc=rc), dep("b", rc=rc)
    r, clock = make_router([route("m", [a, b])], rc)
    a.health.failed(clock.now, "upstream_error")
    clock.advance(1)
    b.health.failed(clock.now, "upstream_error")
    c = ctx()
    script = Script(a="ok")
    assert asyncio.run(r.run(c, r.routes["m"], script)) == "ok"
    assert script.calls == ["a"] and "cooling down" in c.warnings[0]
    assert a.health.state(clock.now) == "healthy"
    # if the last resort fails, there is no second one
    a.health.failed(clock.now, "upstream_error")
    script = Script(a=fail500, b=fail500)
    with pytest.raises(UpstreamError):
        asyncio.run(r.run(ctx(), r.routes["m"], script))
    assert len(script.calls) == 1


def test_fallbacks_in_order() -> None:
    rc = RouterConfig(retries=5, allowed_fails=10)
    r, _ = make_router(
        [
            route("m", [dep("m1", "m", rc=rc), dep("m2", "m", rc=rc)], fallbacks=["f1", "f2", "f3"]),
            route("f1", [dep("f1", "f1", rc=rc)]),
            route("f2", [dep("f2", "f2", rc=rc)]),
            route("f3", [dep("f3", "f3", rc=rc)]),
        ],
        rc,
    )
    script = Script(m1=fail500, m2=fail500, f1=fail500, f2="from f2", f3="never")
    c = ctx()
    assert asyncio.run(r.run(c, r.routes["m"], script)) == "from f2"
    assert sorted(script.calls[:2]) == ["m1", "m2"] and script.calls[2:] == ["f1", "f2"]
    assert c.served_model == "f2" and c.deployment == "f2"
    assert [a.deployment for a in c.attempts][2:] == ["f1", "f2"]


def test_context_fallback_before_the_call_skips_the_small_model() -> None:
    small, big = dep("small", "small"), dep("big", "big")
    r, _ = make_router(
        [route("small", [small], window=1000, context_fallbacks=["big"], fallbacks=["other"]),
         route("big", [big], window=100_000), route("other", [dep("other", "other")], window=2000)]
    )
    script = Script()
    c = ctx()
    assert asyncio.run(r.run(c, r.routes["small"], script, tokens=5000)) == "ok"
    assert script.calls == ["big"] and c.served_model == "big"


def test_too_long_for_every_model_is_a_context_error_without_any_call() -> None:
    r, _ = make_router([route("small", [dep("s", "small")], window=1000, context_fallbacks=["mid"]),
                        route("mid", [dep("mid", "mid")], window=2000)])
    script = Script()
    with pytest.raises(ContextLengthExceeded):
        asyncio.run(r.run(ctx(), r.routes["small"], script, tokens=5000))
    assert script.calls == []


def test_context_error_from_upstream_goes_to_context_fallback() -> None:
    r, _ = make_router([route("small", [dep("s", "small")], context_fallbacks=["big"], fallbacks=["never"]),
                        route("big", [dep("b", "big")]), route("never", [dep("n", "never")])])
    script = Script(s=lambda: ContextLengthExceeded("too long"), b="big answer")
    c = ctx()
    assert asyncio.run(r.run(c, r.routes["small"], script)) == "big answer"
    assert script.calls == ["s", "b"] and c.served_model == "big"
    assert r.routes["small"].deployments[0].health.failures == 0
    # without a context fallback, the client error is raised at once
    r2, _ = make_router([route("small", [dep("s", "small"), dep("s2", "small")])])
    script2 = Script(s=lambda: ContextLengthExceeded("too long"), s2=lambda: ContextLengthExceeded("too long"))
    with pytest.raises(ContextLengthExceeded):
        asyncio.run(r2.run(ctx(), r2.routes["small"], script2))
    assert len(script2.calls) == 1


def test_content_filter_fallback() -> None:
    r, _ = make_router([route("strict", [dep("s", "strict")], content_filter_fallbacks=["lenient"]),
                        route("lenient", [dep("l", "lenient")])])
    script = Script(s=lambda: ContentFiltered("filtered"), l="answer")
    c = ctx()
    assert asyncio.run(r.run(c, r.routes["strict"], script)) == "answer"
    assert c.served_model == "lenient" and c.deployment == "l"


def test_weights_respected_chi_square() -> None:
    """The choice function over many draws: chi-square with 2 degrees of freedom, p < 1e-6 bound."""
    deps = [dep("a", weight=1), dep("b", weight=2), dep("c", weight=7)]
    rng = random.Random(12345)
    n = 30_000
    counts = Counter(strategies.weighted(deps, rng).name for _ in range(n))
    total_w = 10
    chi2 = sum((counts[d.name] - n * d.weight / total_w) ** 2 / (n * d.weight / total_w) for d in deps)
    assert chi2 < 27.6, counts  # the 1 - 1e-6 quantile of chi-square(2)


def test_router_picks_by_weight_among_healthy_only() -> None:
    rc = RouterConfig(allowed_fails=1, cooldown_s=60)
    a, b, c3 = dep("a", weight=1, rc=rc), dep("b", weight=3, rc=rc), dep("c", weight=6, rc=rc)
    r, clock = make_router([route("m", [a, b, c3])], rc, seed=99)
    c3.health.failed(clock.now, "upstream_error")  # cooling: out of the draw
    picks = Counter(r.next_deployment(r.routes["m"]).name for _ in range(8000))  # type: ignore[union-attr]
    assert picks["c"] == 0
    # a : b = 1 : 3 -> expected a = 2000, sd ~ 39; a generous 6-sd bound
    assert abs(picks["a"] - 2000) < 6 * 39, picks


def test_least_busy_lowest_latency_lowest_cost() -> None:
    a, b = dep("a", cost=5.0), dep("b", cost=1.0)
    rng = random.Random(0)
    a.health.in_flight, b.health.in_flight = 0, 3
    assert strategies.least_busy([a, b], rng) is a
    a.health.latency_ms, b.health.latency_ms = 300.0, 120.0
    assert strategies.lowest_latency([a, b], rng) is b
    b.health.latency_ms = None  # never measured: measured first
    assert strategies.lowest_latency([a, b], rng) is b
    assert strategies.lowest_cost([a, b], rng) is b
    unknown = dep("u")
    assert strategies.lowest_cost([unknown, a], rng) is a


def test_lowest_latency_follows_measurements() -> None:
    a, b = dep("a"), dep("b")
    r, clock = make_router([route("m", [a, b], strategy="lowest-latency")])

    async def attempt(d):  # type: ignore[no-untyped-def]
        clock.advance(0.5 if d.name == "a" else 0.1)
        return d.name

    got = [asyncio.run(r.run(ctx(), r.routes["m"], attempt)) for _ in range(10)]
    assert got[2:] == ["b"] * 8


def test_rpm_never_exceeded_under_a_burst() -> None:
    a, b = dep("a", rpm=3), dep("b", rpm=2)
    r, clock = make_router([route("m", [a, b])])

    async def burst() -> list[object]:
        gate = asyncio.Event()
        live = Counter()
        peak = Counter()

        async def attempt(d):  # type: ignore[no-untyped-def]
            live[d.name] += 1
            peak[d.name] = max(peak[d.name], live[d.name])
            await gate.wait()
            return d.name

        tasks = [asyncio.create_task(r.run(ctx(), r.routes["m"], attempt)) for _ in range(12)]
        await asyncio.sleep(0)
        gate.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(burst())
    served = Counter(x for x in results if isinstance(x, str))
    refused = [x for x in results if isinstance(x, UpstreamRateLimited)]
    assert served == {"a": 3, "b": 2} and len(refused) == 7
    assert refused[0].code == "capacity_exhausted" and "retry-after" in refused[0].headers
    # the window slides: a minute later there is room again
    clock.advance(60.5)
    assert asyncio.run(r.run(ctx(), r.routes["m"], Script())) == "ok"


def test_rpm_counts_in_flight_calls_older_than_the_window() -> None:
    a = dep("a", rpm=1)
    r, clock = make_router([route("m", [a])])
    entry = a.capacity.take(clock.now, 0)  # type: ignore[union-attr]
    clock.advance(120)
    assert not a.capacity.headroom(clock.now, 0)  # type: ignore[union-attr]
    a.capacity.settle(entry, None)  # type: ignore[union-attr]
    assert a.capacity.headroom(clock.now, 0)  # type: ignore[union-attr]


def test_tpm_estimate_then_settled() -> None:
    a, b = dep("a", tpm=1000), dep("b")
    r, _ = make_router([route("m", [a], fallbacks=["n"]), route("n", [b])])
    result = type("R", (), {"usage": Usage(input_tokens=100, output_tokens=50)})()
    c = ctx()
    assert asyncio.run(r.run(c, r.routes["m"], Script(a=result), tokens=800)) is result
    assert a.capacity.used(r._clock())[1] == 150  # type: ignore[union-attr]  # settled to the real usage
    c2 = ctx()
    asyncio.run(r.run(c2, r.routes["m"], Script(), tokens=900))  # 150 + 900 > 1000: to the fallback
    assert c2.deployment == "b"


def test_held_stream_stays_in_flight_until_released() -> None:
    a = dep("a", rpm=10)
    r, clock = make_router([route("m", [a])])
    c = ctx()
    asyncio.run(r.run(c, r.routes["m"], Script(), tokens=10, hold=True))
    assert a.health.in_flight == 1 and c.lease is not None
    r.release(c, Usage(input_tokens=10, output_tokens=30), 502, "upstream_error")  # broke mid-stream
    assert a.health.in_flight == 0 and a.health.failures == 1
    assert c.attempts[-1].status == 502 and c.attempts[-1].error == "upstream_error"
    c2 = ctx()
    asyncio.run(r.run(c2, r.routes["m"], Script(), hold=True))
    r.release(c2, None, 499, "client_closed")
    assert a.health.failures == 1 and c2.attempts[-1].status == 499
    r.release(c2)  # a second release is a no-op
    assert a.health.in_flight == 0


def test_cancelled_attempt_is_recorded_and_not_counted() -> None:
    a = dep("a")
    r, _ = make_router([route("m", [a])])
    c = ctx()

    async def scenario() -> None:
        async def hang(d):  # type: ignore[no-untyped-def]
            await asyncio.sleep(3600)

        t = asyncio.create_task(r.run(c, r.routes["m"], hang))
        await asyncio.sleep(0.01)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t

    asyncio.run(scenario())
    assert c.attempts[-1].status == 499 and a.health.failures == 0 and a.health.in_flight == 0


def test_whole_request_stays_within_its_time_budget() -> None:
    """Retries never push a request past its budget: the last attempt is cut to what is left."""
    rc = RouterConfig(retries=5, backoff_s=0, allowed_fails=10)
    a, b = dep("a", timeout=0.2, rc=rc), dep("b", timeout=0.2, rc=rc)
    m = route("m", [a, b])
    m.budget_s = 0.3
    r = make_router([m], rc)[0]
    r._clock = __import__("time").monotonic  # real time for this one
    r._sleep = asyncio.sleep

    async def hang(d):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.25)
        raise UpstreamTimeout("no answer")

    c = ctx()
    t0 = __import__("time").monotonic()
    with pytest.raises(UpstreamTimeout):
        asyncio.run(r.run(c, m, hang))
    assert __import__("time").monotonic() - t0 < 2.0  # generous upper bound
    assert c.attempts[-1].error == "request_timeout" and len(c.attempts) == 2
