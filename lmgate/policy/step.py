"""The one shape of a policy step (limits, guardrails, cache, ...).

The pipeline walks the steps in order before the call; a step may answer instead of the
upstream (a cache hit), and then only the steps before it see the answer. After the call the
steps that ran see the answer in reverse order, like layers. `finish` runs exactly once for
every step whose `before` ran, whatever happened, so reservations are always settled.
A step overrides only the hooks it needs; the pipeline skips the others.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, AsyncIterator

from lmgate.types import Options, RequestContext, StreamEvent, Usage


@dataclass(slots=True)
class Outcome:
    """How a request ended, for `finish`."""

    status: int
    usage: Usage | None = None
    cost_usd: float = 0.0
    error_code: str | None = None


class Step:
    name = "step"

    async def before(self, ctx: RequestContext, req: Any, route: Any) -> Any | None:
        """Check or change the request; return an answer to skip the upstream (cache hit)."""
        return None

    async def after(self, ctx: RequestContext, req: Any, resp: Any) -> None:
        """See (and possibly change or refuse) a whole answer."""

    def stream(self, ctx: RequestContext, req: Any, events: AsyncIterator[StreamEvent]) -> AsyncIterator[StreamEvent]:
        """Wrap a streamed answer; return `events` itself when there is nothing to do."""
        return events

    async def finish(self, ctx: RequestContext, req: Any, outcome: Outcome) -> None:
        """Settle whatever `before` reserved."""


def overrides(step: Step, hook: str) -> bool:
    return getattr(type(step), hook) is not getattr(Step, hook)


def internal_context(parent: RequestContext, suffix: str, endpoint: str, app_name: str) -> RequestContext:
    """For a call a step makes through the gateway's own pipeline on behalf of `parent` (the
    semantic cache's embedding, the guardrail judge): no key, guardrails off, cache on, and
    ledgered as surface `internal` with `for_request` pointing back at `parent`."""
    return RequestContext(
        request_id=f"{parent.request_id}-{suffix}",
        surface="internal",
        endpoint=endpoint,
        started=time.monotonic(),
        started_wall=time.time(),
        key=None,
        options=Options(cache=True, guard=0, app_name=app_name, metadata={"for_request": parent.request_id}),
    )
