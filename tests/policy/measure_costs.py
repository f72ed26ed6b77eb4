"""Measure (not a test): what the cache and each guardrail check cost per request, in µs.

    .venv/bin/python tests/policy/measure_costs.py

An ordinary ~1 KB prompt (a system prompt and a user question, no PII) and the same with one
e-mail, phone number and API key in it. Best of several runs, per call.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

from lmgate.policy.cache.backends import MemoryBackend
from lmgate.policy.cache.entries import Entry, encode_chat, snapshot_chat
from lmgate.policy.cache.keys import chat_key
from lmgate.policy.guardrails.config import load_guardrails_config
from lmgate.policy.guardrails.scanner import Scanner
from lmgate.policy.guardrails.step import _detectors
from lmgate.types import ChatResponse, Choice, Message, RequestContext, TextPart, Usage
from lmgate.wire import openai as openai_wire

SYSTEM = "You are a helpful assistant for a travel company. Answer briefly and politely, in the user's language. "
USER = (
    "Hello! I am planning a two-week trip through Switzerland next summer with my family (two adults, two "
    "children aged 8 and 11). We would like to see the mountains, take a few scenic train rides and spend some "
    "time near a lake. Could you suggest an itinerary that avoids too many hotel changes, mentions which rail "
    "passes make sense for a family, and gives a rough idea of the daily budget for food and activities? We "
    "prefer quieter places over the big tourist hotspots, and the kids love hiking as long as the walks are not "
    "longer than three or four hours. Also, is it worth renting a car for part of the trip, or is public "
    "transport good enough everywhere? Thank you very much for your help, we are really looking forward to it!"
)
DIRTY = USER + " Reach me at anna.meier@example.ch or +41 44 668 18 00; my key is sk-proj-abcdefghijklmnopqrstuvwx123456."


def best_us(fn: Callable[[], Any], n: int = 2000, runs: int = 5) -> float:
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n)
    return best * 1e6


def body(user: str) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}], "temperature": 0.7, "max_tokens": 512}


def main() -> None:
    print(f"prompt: {len(SYSTEM) + len(USER)} characters")
    req = openai_wire.parse_chat_request(body(USER))
    print(f"cache key (canonical encoding + blake2b): {best_us(lambda: chat_key(req)):.1f} µs")

    backend = MemoryBackend(10_000, 1 << 28)
    key = chat_key(req)
    resp = ChatResponse("id", "gpt-4o", 1, [Choice(0, Message("assistant", [TextPart("x" * 800)]), "stop")], Usage(300, 200))
    data = encode_chat(snapshot_chat(resp), resp.usage, 0.001, "gpt-4o")
    loop = asyncio.new_event_loop()
    loop.run_until_complete(backend.set(key, data, 3600))

    async def lookup_many(n: int) -> None:
        for _ in range(n):
            await backend.get(key)

    def lookup_us() -> float:
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            loop.run_until_complete(lookup_many(2000))
            best = min(best, (time.perf_counter() - t) / 2000)
        return best * 1e6

    print(f"memory lookup (hit): {lookup_us():.2f} µs; decode entry + build answer: {best_us(lambda: Entry.decode(data).chat_response()):.1f} µs")  # type: ignore[union-attr]
    print(f"key + lookup + decode, whole hit path: {best_us(lambda: (chat_key(req), Entry.decode(data).chat_response())):.1f} µs")  # type: ignore[union-attr]

    ctx = RequestContext("r", "openai", "chat", 0.0, 0.0)
    cfg = load_guardrails_config({"words": {"words": ["forbidden", "classified", "pipe bomb"], "topics": {"weapons": ["rifle", "handgun", "ammunition"]}}, "pii": {"action": "mask"}})
    full = Scanner(_detectors(cfg, "input"), "input", "[{label}]")
    families = {
        "pii (7 types)": {"secrets": {"action": "off"}, "injection": {"action": "off"}},
        "secrets (8 types)": {"pii": {"action": "off"}, "injection": {"action": "off"}},
        "injection": {"pii": {"action": "off"}, "secrets": {"action": "off"}},
        "words+topics (6 terms)": {"pii": {"action": "off"}, "secrets": {"action": "off"}, "injection": {"action": "off"}, "words": {"words": ["forbidden", "classified", "pipe bomb"], "topics": {"weapons": ["rifle", "handgun", "ammunition"]}}},
    }
    for label, text in (("clean ~1 KB", USER), ("with e-mail, phone, key", DIRTY)):
        print(f"\nguardrails on the {label} user message:")
        for name, over in families.items():
            sc = Scanner(_detectors(load_guardrails_config(over), "input"), "input", "[{label}]")
            print(f"  {name:<24} {best_us(lambda: sc.scan(text)):7.1f} µs")
        print(f"  {'all of them, one pass':<24} {best_us(lambda: full.scan(text)):7.1f} µs")
        ctx.guardrails.clear()
        print(f"  {'all + apply (mask)':<24} {best_us(lambda: full.guard(ctx, text), n=500):7.1f} µs")
        ctx.guardrails.clear()
    from lmgate.policy.guardrails.schema import check_json
    from lmgate.types import ResponseFormat

    schema = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}, "stops": {"type": "array", "items": {"type": "string"}}}, "required": ["city", "days"], "additionalProperties": False}
    answer = '{"city": "Bern", "days": 14, "stops": ["Interlaken", "Lucerne", "Zermatt", "Lugano"]}'
    print(f"\njson_schema output check on a small answer: {best_us(lambda: check_json(answer, ResponseFormat('json_schema', schema))):.1f} µs")


if __name__ == "__main__":
    main()
