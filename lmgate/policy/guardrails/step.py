"""Guardrails as a policy step: input checks before the call (use_guard >= 1), output checks on
the answer (use_guard 2), whole or streamed, and the opt-in LLM judge on either side.

It runs before the cache, so the cache key is taken on the masked request and output checks
apply to cached answers as to fresh ones.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, get_args

from lmgate.policy.guardrails import injection, pii, secrets, words
from lmgate.policy.guardrails.base import Detector
from lmgate.policy.guardrails.config import GuardrailsConfig, PiiType, SecretType, load_guardrails_config
from lmgate.policy.guardrails.judge import Judge, judge_from_gateway
from lmgate.policy.guardrails.scanner import Scanner, record, violation
from lmgate.policy.guardrails.schema import check_json
from lmgate.policy.guardrails.streaming import FinalCheck, StreamGuard
from lmgate.policy.step import Step
from lmgate.types import ChatRequest, ChatResponse, EmbeddingRequest, ImageRequest, RequestContext, StreamEvent, TextPart


class GuardrailStep(Step):
    name = "guardrails"

    def __init__(self, config: GuardrailsConfig, judge: Judge | None = None) -> None:
        self.config = config
        self.judge = judge
        self.roles = frozenset(config.roles)
        self.input = Scanner(_detectors(config, "input"), "input", config.mask_template)
        self.output = Scanner(_detectors(config, "output"), "output", config.mask_template)
        self.schema_action = config.schema_check.action
        jc = config.judge
        self.judge_input = judge is not None and jc is not None and jc.input
        self.judge_output = judge is not None and jc is not None and jc.output

    @classmethod
    def from_gateway(cls, gw: Any) -> "GuardrailStep":
        config = load_guardrails_config(gw.config.guardrails)
        return cls(config, judge_from_gateway(config.judge, gw) if config.enabled else None)

    # ---------------------------------------------------------------- input

    async def before(self, ctx: RequestContext, req: Any, route: Any) -> None:
        if not self.config.enabled or ctx.options.guard < 1:
            return None
        kind = type(req)
        if kind is ChatRequest:
            if self.input:
                self._chat_input(ctx, req)
            if self.judge_input:
                text = "\n\n".join(m.text() for m in req.messages if m.role in self.roles)
                await self._judge(ctx, text, "input")
        elif kind is EmbeddingRequest:
            if self.input:
                guarded = [self.input.guard(ctx, t) for t in req.inputs]
                if guarded != req.inputs:
                    req.inputs, req.raw = guarded, None
        elif kind is ImageRequest:
            if self.input:
                req.prompt = self.input.guard(ctx, req.prompt)
            if self.judge_input:
                await self._judge(ctx, req.prompt, "input")
        return None

    def _chat_input(self, ctx: RequestContext, req: ChatRequest) -> None:
        changed = False
        for m in req.messages:
            if m.role not in self.roles:
                continue
            for p in m.content:
                if type(p) is TextPart and p.text:
                    guarded = self.input.guard(ctx, p.text)
                    if guarded is not p.text:
                        p.text = guarded
                        changed = True
        if changed:  # the client's body no longer says what will be sent
            req.raw = None
            req.raw_bytes = None

    # ---------------------------------------------------------------- output, whole

    async def after(self, ctx: RequestContext, req: Any, resp: Any) -> None:
        if ctx.options.guard < 2 or not self.config.enabled or not isinstance(resp, ChatResponse):
            return
        changed = False
        fmt = getattr(req, "response_format", None)
        for choice in resp.choices:
            msg = choice.message
            text = msg.text()
            if self.output and text:
                guarded = self.output.guard(ctx, text)
                if guarded is not text:
                    msg.content = [TextPart(guarded)]
                    text, changed = guarded, True
            if self.output:
                for call in msg.tool_calls:
                    guarded = self.output.guard(ctx, call.arguments)
                    if guarded is not call.arguments:
                        call.arguments, changed = guarded, True
            if self.schema_action != "off" and fmt is not None and fmt.type != "text" and not msg.tool_calls:
                self._schema(ctx, text, fmt)
        if self.judge_output:
            await self._judge(ctx, "\n\n".join(c.message.text() for c in resp.choices), "output")
        if changed:
            resp.raw = None  # the surface must render the masked choices, not the upstream body

    # ---------------------------------------------------------------- output, streamed

    def stream(self, ctx: RequestContext, req: Any, events: AsyncIterator[StreamEvent]) -> AsyncIterator[StreamEvent]:
        if ctx.options.guard < 2 or not self.config.enabled:
            return events
        fmt = getattr(req, "response_format", None)
        final: list[FinalCheck] = []
        wants_json = self.schema_action != "off" and fmt is not None and fmt.type != "text"
        if wants_json:

            async def schema(c: RequestContext, text: str) -> None:
                if text:
                    self._schema(c, text, fmt)

            final.append(schema)
        if self.judge_output:

            async def judge(c: RequestContext, text: str) -> None:
                await self._judge(c, text, "output")

            final.append(judge)
        if not self.output and not final:
            return events
        hold_all = self.judge_output or (wants_json and self.schema_action == "block")
        return StreamGuard(ctx, self.output, hold_all=hold_all, final_checks=final).wrap(events)

    # ---------------------------------------------------------------- shared

    def _schema(self, ctx: RequestContext, text: str, fmt: Any) -> None:
        problem = check_json(text, fmt)
        if problem is None:
            return
        record(ctx, "schema", self.schema_action, "output", problem[:120])
        if self.schema_action == "block":
            raise violation("schema", "output", problem)

    async def _judge(self, ctx: RequestContext, text: str, where: str) -> None:
        assert self.judge is not None and self.config.judge is not None
        if not text.strip():
            return
        jc = self.config.judge
        verdict, detail = await self.judge.verdict(text[-jc.max_chars :], where, ctx)
        if verdict is None:
            action = "block" if jc.on_error == "block" else "flag"
            record(ctx, "judge", action, where, detail)
            if action == "block":
                raise violation("judge", where, detail)
        elif verdict:
            record(ctx, "judge", jc.action, where, detail)
            if jc.action == "block":
                raise violation("judge", where, f"the policy judge ({jc.model}) answered BLOCK")


def _detectors(config: GuardrailsConfig, where: str) -> list[Detector]:
    """The text checks that run on `where`, secrets first (most specific), then PII, words, injection."""
    out: list[Detector] = []
    sc = config.secrets
    if getattr(sc, where):
        out.extend(secrets.detectors(_actions(sc.action, sc.types, secrets_types())))
    pc = config.pii
    if getattr(pc, where):
        out.extend(pii.detectors(_actions(pc.action, pc.types, pii_types())))
    wc = config.words
    if getattr(wc, where):
        d = words.detector(wc.action, wc.words, wc.topics)
        if d is not None:
            out.append(d)
    ic = config.injection
    if getattr(ic, where):
        out.extend(injection.detectors(ic.action, ic.patterns, ic.builtin))
    return out


def _actions(default: str, overrides: dict[str, str], names: tuple[str, ...]) -> dict[str, str]:
    return {n: overrides.get(n, default) for n in names}


def pii_types() -> tuple[str, ...]:
    return get_args(PiiType)


def secrets_types() -> tuple[str, ...]:
    return get_args(SecretType)
