"""Checks before any upstream call: modality, context window, deprecation."""

from __future__ import annotations

from lmgate.catalog.catalog import ModelInfo
from lmgate.catalog.tokens import estimate_chat_tokens
from lmgate.errors import BadRequest, ContextLengthExceeded, UnsupportedModality
from lmgate.types import ChatRequest, ImageRequest, MediaPart, RequestContext


def check_chat(ctx: RequestContext, info: ModelInfo, req: ChatRequest, *, context_fallback: bool = False) -> int:
    """Refuse what the model cannot take; return the prompt's token estimate.

    With `context_fallback` (the model has context fallbacks) a prompt too long for the window is
    let through: the router sends it to a larger fallback without calling this model."""
    kinds: set[str] = set()
    for m in req.messages:
        for p in m.content:
            if isinstance(p, MediaPart):
                kinds.add(p.kind)
    for kind in sorted(kinds):
        if kind not in info.modalities:
            raise UnsupportedModality(
                f"the model '{req.model}' does not accept {kind} input (it takes: {', '.join(sorted(info.modalities))})",
                param="messages",
            )
    estimate = estimate_chat_tokens(req)
    window = info.context_window
    if window and estimate > window and not context_fallback:
        raise ContextLengthExceeded(
            f"the prompt is about {estimate} tokens, more than the {window}-token context window of '{req.model}'",
            param="messages",
        )
    if info.status == "deprecated":
        ctx.warnings.append(f"the model '{req.model}' is deprecated")
    return estimate


def check_images(info: ModelInfo, req: ImageRequest) -> None:
    """Refuse more images per call than the model makes (004: dall-e-3 takes only n=1)."""
    if info.kind == "image" and info.max_batch and req.n > info.max_batch:
        raise BadRequest(
            f"the model '{req.model}' generates at most {info.max_batch} image(s) per request; n={req.n} was asked",
            code="invalid_n",
            param="n",
        )
