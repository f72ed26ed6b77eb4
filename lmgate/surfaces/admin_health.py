"""GET /admin/health: every model's deployments and their live routing state, behind the master key.

States: healthy, cooling (no traffic until `cooldown_remaining_s`), half-open (the next request
probes it), probing (the probe is in flight), throttled (inside an upstream's Retry-After).
"""

from __future__ import annotations

import hmac

import orjson

from lmgate.errors import Unauthorized
from lmgate.http.asgi import Request, Response, Route
from lmgate.routing.router import Router
from lmgate.surfaces.base import bearer

NAME = "openai"  # errors are rendered in the OpenAI shape, as for the rest of the admin API


def check_master_key(request: Request, master_key: str | None) -> None:
    """Refuse unless `Authorization: Bearer <master_key>`; no master key configured means no admin API."""
    given = bearer(request.headers) or ""
    if not master_key or not hmac.compare_digest(given.encode(), master_key.encode()):
        raise Unauthorized("the admin API needs 'Authorization: Bearer <master_key>'", code="invalid_master_key")


def routes(router: Router, master_key: str | None) -> list[Route]:
    async def health(request: Request) -> Response:
        check_master_key(request, master_key)
        return Response(200, orjson.dumps(router.snapshot()), {"x-request-id": request.request_id, "cache-control": "no-store"})

    return [Route("GET", "/admin/health", health, NAME)]
