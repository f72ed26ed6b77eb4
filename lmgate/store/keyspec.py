"""What a stored key is: the fields an admin may set (validated the same for the API and the CLI),
the row as read back, and new raw keys."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lmgate.errors import Unprocessable
from lmgate.types import KeyRecord

RAW_KEY_PREFIX = "lmg-"
RAW_KEY_BODY_CHARS = 40
HINT_CHARS = 8  # "lmg-" and 4 characters of the body, shown in lists to recognise a key

MetaValue = Union[str, int, float, bool, None]
Period = Literal["total", "daily", "monthly"]


def new_raw_key() -> str:
    """`lmg-` + 40 url-safe characters (240 bits)."""
    return RAW_KEY_PREFIX + secrets.token_urlsafe(RAW_KEY_BODY_CHARS)[:RAW_KEY_BODY_CHARS]


def new_key_id() -> str:
    return "key_" + secrets.token_hex(8)


def _unix(value: float | datetime | None) -> float | None:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.timestamp()
    return value


class _Fields(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    models: list[str] = Field(default_factory=lambda: ["*"], min_length=1)  # fnmatch patterns
    rpm: int | None = Field(None, gt=0)
    tpm: int | None = Field(None, gt=0)
    budget_usd: float | None = Field(None, ge=0)
    budget_period: Period = "total"
    cache: bool | None = None  # default is_cache for this key
    guard: Literal[0, 1, 2] | None = None  # default use_guard for this key
    metadata: dict[str, MetaValue] = Field(default_factory=dict)  # tenant fields added to every record
    expires_at: float | datetime | None = None  # unix seconds or ISO 8601 (UTC unless it says otherwise)

    @field_validator("models")
    @classmethod
    def _models(cls, v: list[str]) -> list[str]:
        if any(not m.strip() for m in v):
            raise ValueError("model patterns must not be empty")
        return v

    @field_validator("name", check_fields=False)
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and v != v.strip():
            raise ValueError("the name must not start or end with spaces")
        return v

    @field_validator("expires_at")
    @classmethod
    def _expires(cls, v: float | datetime | None) -> float | None:
        return _unix(v)


class KeyCreate(_Fields):
    name: str = Field(min_length=1, max_length=200)


class KeyUpdate(_Fields):
    """Only the fields sent are changed; null clears rpm, tpm, budget_usd, cache, guard, expires_at."""

    name: str | None = Field(None, min_length=1, max_length=200)

    def changes(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in self.model_fields_set}
        for name in ("name", "models", "budget_period", "metadata"):
            if name in out and out[name] is None:
                raise Unprocessable(f"'{name}' cannot be null", param=name)
        return out


def validate(model: type[BaseModel], data: Any, *, from_json: bool = False) -> Any:
    """Validate admin input; a clear 422 naming every bad field."""
    try:
        if from_json:
            return model.model_validate_json(data)
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        param = None
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "body"
            param = param or where
            if err["type"] == "extra_forbidden":
                problems.append(f"unknown field '{where}'")
            elif err["type"] == "json_invalid":
                problems.append(f"the body is not valid JSON ({err['msg']})")
            else:
                problems.append(f"'{where}': {err['msg']}")
        raise Unprocessable("invalid key fields: " + "; ".join(problems), param=param) from None


@dataclass(slots=True)
class KeyRow:
    """One row of api_keys."""

    id: str
    name: str
    key_hash: str
    key_hint: str
    models: list[str]
    rpm: int | None
    tpm: int | None
    budget_usd: float | None
    budget_period: Period
    cache: bool | None
    guard: int | None
    metadata: dict[str, Any]
    expires_at: float | None
    revoked: bool
    revoked_at: float | None
    created_at: float
    updated_at: float
    version: int
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self) -> KeyRecord:
        """The hot path's view of this key."""
        return KeyRecord(
            id=self.id,
            name=self.name,
            key_hash=self.key_hash,
            models=tuple(self.models),
            rpm=self.rpm,
            tpm=self.tpm,
            budget_usd=self.budget_usd,
            budget_period=self.budget_period,
            cache=self.cache,
            guard=self.guard,
            metadata=dict(self.metadata),
            expires_at=self.expires_at,
            revoked=self.revoked,
            source="store",
        )

    def public(self) -> dict[str, Any]:
        """What the admin API and CLI show: everything but the hash."""
        return {
            "id": self.id,
            "name": self.name,
            "key_hint": self.key_hint + "...",
            "models": list(self.models),
            "rpm": self.rpm,
            "tpm": self.tpm,
            "budget_usd": self.budget_usd,
            "budget_period": self.budget_period,
            "cache": self.cache,
            "guard": self.guard,
            "metadata": dict(self.metadata),
            "expires_at": iso(self.expires_at),
            "revoked": self.revoked,
            "revoked_at": iso(self.revoked_at),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            **self.extra,
        }


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
