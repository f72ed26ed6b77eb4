"""The admin API: keys and usage reports behind `Authorization: Bearer <master_key>`.

No logic here beyond checking the master key: every route reads its input and calls the
AdminService. Errors use the OpenAI error shape.
"""

from __future__ import annotations

import hmac

import orjson

from lmgate.errors import Forbidden, GatewayError, PayloadTooLarge, Unauthorized
from lmgate.http.asgi import BodyTooLarge, Request, Response, Route, json_response
from lmgate.store.reports import to_csv
from lmgate.store.service import AdminService
from lmgate.surfaces import openai as openai_surface
from lmgate.surfaces.base import bearer

NAME = "admin"

_MAX_BODY = 64 * 1024


def render_error(exc: GatewayError, request_id: str) -> Response:
    return openai_surface.render_error(exc, request_id)


def routes(admin: AdminService, master_key: str | None) -> list[Route]:
    expected = master_key.encode("utf-8") if master_key else None

    def check(request: Request) -> None:
        if expected is None:
            raise Forbidden("the admin API is disabled: no master_key is set in the config", code="admin_disabled")
        token = bearer(request.headers)
        if not token:
            raise Unauthorized("the admin API needs 'Authorization: Bearer <master_key>'", code="missing_master_key")
        if hmac.compare_digest(token.encode("utf-8"), expected):
            return
        if admin.is_api_key(token):
            raise Forbidden("an API key cannot use the admin API; send the master key", code="not_master_key")
        raise Unauthorized("the master key is not valid", code="invalid_master_key")

    def answer(data: object, request: Request) -> Response:
        return json_response(data, headers={"x-request-id": request.request_id})

    async def body(request: Request) -> bytes:
        try:
            return await request.body(_MAX_BODY)
        except BodyTooLarge:
            raise PayloadTooLarge(f"the request body is larger than {_MAX_BODY} bytes") from None

    async def create_key(request: Request) -> Response:
        check(request)
        return answer(await admin.create_key(await body(request)), request)

    async def list_keys(request: Request) -> Response:
        check(request)
        include = request.query.get("include_revoked", "false").lower() in ("1", "true", "yes")
        return answer(await admin.list_keys(include), request)

    async def get_key(request: Request) -> Response:
        check(request)
        return answer(await admin.get_key(request.path_params["id"]), request)

    async def update_key(request: Request) -> Response:
        check(request)
        return answer(await admin.update_key(request.path_params["id"], await body(request)), request)

    async def revoke_key(request: Request) -> Response:
        check(request)
        return answer(await admin.revoke_key(request.path_params["id"]), request)

    async def usage(request: Request) -> Response:
        check(request)
        rows, group_by, fmt = await admin.usage(request.query)
        if fmt == "csv":
            return Response(200, to_csv(rows, group_by).encode("utf-8"), {"x-request-id": request.request_id}, "text/csv; charset=utf-8")
        return Response(200, orjson.dumps({"rows": rows}), {"x-request-id": request.request_id})

    return [
        Route("POST", "/admin/keys", create_key, NAME),
        Route("GET", "/admin/keys", list_keys, NAME),
        Route("GET", "/admin/keys/{id}", get_key, NAME),
        Route("PATCH", "/admin/keys/{id}", update_key, NAME),
        Route("DELETE", "/admin/keys/{id}", revoke_key, NAME),
        Route("GET", "/admin/usage", usage, NAME),
    ]
