"""What the admin API does, as async calls: validate, run the store in a thread, and apply key
changes to this instance's KeyIndex at once (other instances pick them up by polling)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Iterable

import orjson

from lmgate.errors import BadRequest, Unauthorized, Unprocessable
from lmgate.policy.auth import KeyIndex
from lmgate.policy.limits import LimitsStep
from lmgate.store.keyspec import KeyCreate, KeyRow, KeyUpdate, validate
from lmgate.store.keysync import KeySync
from lmgate.store.reports import parse_group_by, parse_time, usage_report
from lmgate.store.store import DuplicateKeyName, Store


class AdminService:
    def __init__(
        self,
        store: Store,
        keysync: KeySync,
        keys: KeyIndex,
        limits: LimitsStep | None = None,
        config_key_names: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.keysync = keysync
        self.keys = keys
        self.limits = limits
        self.config_key_names = frozenset(config_key_names)
        self.clock = clock

    def is_api_key(self, token: str) -> bool:
        """Is this a caller's key (live, revoked or expired), as opposed to a wrong master key?"""
        try:
            self.keys.authenticate(token)
        except Unauthorized as exc:
            return exc.code in ("revoked_api_key", "expired_api_key")
        return True

    async def create_key(self, body: bytes) -> dict[str, Any]:
        _json_object(body)
        spec: KeyCreate = validate(KeyCreate, body, from_json=True)
        self._refuse_config_name(spec.name)
        if spec.expires_at is not None and spec.expires_at <= self.clock():
            raise Unprocessable("'expires_at' is in the past", param="expires_at")
        row, raw = await asyncio.to_thread(self.store.create_key, spec)
        self.keysync.apply([row])
        return {"key": raw, **self._public(row)}

    async def list_keys(self, include_revoked: bool) -> dict[str, Any]:
        rows = await asyncio.to_thread(self.store.list_keys, include_revoked)
        return {"object": "list", "data": [self._public(r) for r in rows]}

    async def get_key(self, id_or_name: str) -> dict[str, Any]:
        return self._public(await asyncio.to_thread(self.store.get_key, id_or_name))

    async def update_key(self, id_or_name: str, body: bytes) -> dict[str, Any]:
        _json_object(body)
        update: KeyUpdate = validate(KeyUpdate, body, from_json=True)
        changes = update.changes()
        if "name" in changes:
            self._refuse_config_name(changes["name"])
        row = await asyncio.to_thread(self.store.update_key, id_or_name, changes)
        self.keysync.apply([row])
        return self._public(row)

    async def revoke_key(self, id_or_name: str) -> dict[str, Any]:
        row = await asyncio.to_thread(self.store.revoke_key, id_or_name)
        self.keysync.apply([row])
        return self._public(row)

    async def usage(self, query: dict[str, str]) -> tuple[list[dict[str, Any]], list[str], str]:
        unknown = set(query) - {"group_by", "since", "until", "format", "key"}
        if unknown:
            raise BadRequest(f"unknown query parameter(s): {', '.join(sorted(unknown))}", code="invalid_query")
        fmt = query.get("format", "json")
        if fmt not in ("json", "csv"):
            raise Unprocessable("'format' must be json or csv", param="format")
        group_by = parse_group_by(query.get("group_by"))
        now = self.clock()
        since = parse_time(query.get("since"), "since", now=now)
        until = parse_time(query.get("until"), "until", end=True, now=now)
        rows = await asyncio.to_thread(usage_report, self.store, group_by, since, until, query.get("key") or None)
        return rows, group_by, fmt

    def _public(self, row: KeyRow) -> dict[str, Any]:
        if self.limits is not None and row.budget_usd is not None:
            row.extra["spend_usd"] = round(self.limits.backend.spent(row.id, row.budget_period, self.clock()), 10)
        return row.public()

    def _refuse_config_name(self, name: str) -> None:
        if name in self.config_key_names:
            raise DuplicateKeyName(f"a key named '{name}' is defined in the config file", param="name")


def _json_object(body: bytes) -> None:
    if not body.strip():
        raise BadRequest("the request body is empty; send a JSON object", code="invalid_json")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON ({exc})", code="invalid_json") from None
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object", code="invalid_json")
