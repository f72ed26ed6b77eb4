"""The free config sections a policy owns (`cache:`, `guardrails:`): one base model and one
loader, so both refuse unknown keys and name bad ones the same way at start."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from lmgate.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def load_section(model: type[M], section: str, data: dict[str, Any] | None) -> M:
    """Validate the free `section:` dict of the main config; errors name the key path."""
    try:
        return model.model_validate(data or {})
    except ValidationError as exc:
        raise ConfigError("invalid config:\n" + format_errors(section, exc)) from None


def format_errors(section: str, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join([section, *(str(p) for p in err["loc"])])
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"  {where}: {msg}")
    return "\n".join(lines)
