"""The YAML config, turned into frozen typed data at start.

Names follow the contract in DESIGN.md. Unknown keys and wrong types are refused with the key's
path and its line in the file, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lmgate.errors import ConfigError

ProviderType = Literal["openai", "azure", "gemini", "vertex", "bedrock", "anthropic", "cohere"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProviderConfig(_Frozen):
    """One upstream account: where it is and how lmgate authenticates to it."""

    type: ProviderType
    base_url: str | None = None
    api_key: str | None = None
    api_version: str | None = None  # azure; anthropic's anthropic-version header
    region: str | None = None  # bedrock, vertex location
    access_key_id: str | None = None  # bedrock
    secret_access_key: str | None = None
    session_token: str | None = None
    project: str | None = None  # vertex
    location: str | None = None  # vertex
    credentials_file: str | None = None  # vertex service-account JSON file
    credentials_json: str | None = None  # vertex service-account JSON, inline
    timeout: float | None = None  # seconds for a whole upstream call; overrides router.timeout
    connect_timeout: float | None = None
    headers: dict[str, str] = Field(default_factory=dict)  # extra headers on every upstream call
    max_connections: int = 256


class DeploymentConfig(_Frozen):
    """One place a model is served: a provider account and the upstream's model name."""

    provider: str
    model: str
    weight: float = Field(1.0, gt=0)
    rpm: int | None = Field(None, gt=0)  # the upstream's capacity: never exceeded
    tpm: int | None = Field(None, gt=0)
    timeout: float | None = Field(None, gt=0)
    connect_timeout: float | None = Field(None, gt=0)
    merge_roles: bool = False  # merge consecutive same-role messages (Gemma on vLLM, 000)
    name: str | None = None  # defaults to provider/model


class PricingConfig(_Frozen):
    input: float = Field(0.0, ge=0)
    output: float = Field(0.0, ge=0)
    cached_input: float | None = Field(None, ge=0)
    cache_write: float | None = Field(None, ge=0)
    unit: Literal["1M tokens", "1K tokens", "1K characters", "image", "minute"] = "1M tokens"


class ModelConfig(_Frozen):
    name: str  # the name clients send
    deployments: list[DeploymentConfig] = Field(min_length=1)
    fallbacks: list[str] = Field(default_factory=list)
    context_fallbacks: list[str] = Field(default_factory=list)  # on context_length_exceeded
    content_filter_fallbacks: list[str] = Field(default_factory=list)
    strategy: Literal["weighted", "least-busy", "lowest-latency", "lowest-cost"] = "weighted"
    # optional, overriding the built-in catalog:
    kind: Literal["chat", "embedding", "image", "audio"] | None = None
    pricing: PricingConfig | None = None
    context_window: int | None = Field(None, gt=0)
    max_output_tokens: int | None = Field(None, gt=0)
    modalities: list[Literal["text", "image", "document", "audio", "video"]] | None = None
    status: Literal["active", "deprecated"] | None = None
    cache: bool | None = None  # per-model default for is_cache


class KeyConfig(_Frozen):
    key: str = Field(min_length=8)
    name: str
    models: list[str] = Field(default_factory=lambda: ["*"])
    rpm: int | None = Field(None, gt=0)
    tpm: int | None = Field(None, gt=0)
    budget_usd: float | None = Field(None, ge=0)
    budget_period: Literal["total", "daily", "monthly"] = "total"
    cache: bool | None = None
    guard: Literal[0, 1, 2] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    expires_at: float | None = None


class RouterConfig(_Frozen):
    retries: int = Field(2, ge=0, le=10)  # further attempts after a failed one
    timeout: float = Field(60.0, gt=0)  # seconds for a whole upstream call
    connect_timeout: float = Field(5.0, gt=0)
    stream_idle_timeout: float = Field(30.0, gt=0)  # a stream silent this long is ended
    allowed_fails: int = Field(3, ge=1)
    cooldown_s: float = Field(30.0, ge=0)
    backoff_s: float = Field(0.05, ge=0)  # first retry delay; doubles, with jitter
    max_backoff_s: float = Field(2.0, ge=0)


class ServerConfig(_Frozen):
    max_body_bytes: int = Field(20 * 1024 * 1024, gt=0)  # larger bodies get a 413
    max_key_options_bytes: int = Field(4096, gt=0)  # the KEY/{...} suffix
    default_cache: bool = True  # is_cache when neither key nor request says (004: on)
    default_guard: Literal[0, 1, 2] = 1  # use_guard default (004: input checks)
    log_level: str = "warning"
    # HTTPS: boto3 sends a Bedrock bearer token only over https, and keys deserve it anyway.
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None


class SimulatorConfig(_Frozen):
    """Start the built-in provider simulator beside the gateway (the demo setup)."""

    port: int = 8101
    host: str = "127.0.0.1"


class LedgerConfig(_Frozen):
    batch_size: int = Field(500, gt=0)
    flush_interval_s: float = Field(0.5, gt=0)


class Config(_Frozen):
    database: str = "sqlite:///lmgate.db"
    redis: str | None = None
    master_key: str | None = None
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    models: list[ModelConfig] = Field(default_factory=list)
    keys: list[KeyConfig] = Field(default_factory=list)
    router: RouterConfig = Field(default_factory=RouterConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    simulator: SimulatorConfig | None = None
    # Sections owned by later policy steps; each validates its own block at start.
    cache: dict[str, Any] = Field(default_factory=dict)
    guardrails: dict[str, Any] = Field(default_factory=dict)
    media: dict[str, Any] = Field(default_factory=dict)

    @field_validator("models")
    @classmethod
    def _unique_models(cls, models: list[ModelConfig]) -> list[ModelConfig]:
        seen: set[str] = set()
        for m in models:
            if m.name in seen:
                raise ValueError(f"model {m.name!r} is defined twice")
            seen.add(m.name)
        return models

    @model_validator(mode="after")
    def _references(self) -> "Config":
        names = {m.name for m in self.models}
        for m in self.models:
            for d in m.deployments:
                if d.provider not in self.providers:
                    raise ValueError(f"model {m.name!r}: deployment names unknown provider {d.provider!r}")
            for fb in (*m.fallbacks, *m.context_fallbacks, *m.content_filter_fallbacks):
                if fb not in names:
                    raise ValueError(f"model {m.name!r}: fallback {fb!r} is not a configured model")
        key_names = [k.name for k in self.keys]
        if len(set(key_names)) != len(key_names):
            raise ValueError("two keys share a name")
        return self


# ---------------------------------------------------------------- loading

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any, env: dict[str, str] | None = None) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string of a parsed YAML tree.

    A string that is exactly one unset ${VAR} without default becomes null, so optional fields
    stay unset and required ones are reported as missing rather than as an empty string.
    """
    env = os.environ if env is None else env
    if isinstance(value, str):
        whole = _ENV_REF.fullmatch(value)
        if whole and whole.group(1) not in env and whole.group(2) is None:
            return None
        return _ENV_REF.sub(lambda m: env.get(m.group(1), m.group(2) or ""), value)
    if isinstance(value, dict):
        return {k: expand_env(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, env) for v in value]
    return value


def load_config(path: str | Path, env: dict[str, str] | None = None) -> Config:
    text = Path(path).read_text(encoding="utf-8")
    return parse_config(text, source=str(path), env=env)


def parse_config(text: str, source: str = "<config>", env: dict[str, str] | None = None) -> Config:
    # ${VAR} references are held out of the YAML text while it is parsed: the contract writes
    # them unquoted inside flow mappings (`{api_key: ${KEY}}`), where YAML would read the `}` of
    # the reference as the end of the mapping. Values then never meet YAML syntax either.
    refs: list[str] = []

    def hold(m: re.Match[str]) -> str:
        refs.append(m.group(0))
        return f"__lmgate_env_{len(refs) - 1}__"

    held = _ENV_REF.sub(hold, text)
    try:
        node = yaml.compose(held, Loader=yaml.SafeLoader)
        data = yaml.safe_load(held)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    try:
        return Config.model_validate(expand_env(_restore(data, refs), env))
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            where = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc).replace(".[", "[")
            line = _line_of(node, loc)
            at = f" (line {line})" if line else ""
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            lines.append(f"  {where or '<top>'}{at}: {msg}")
        raise ConfigError(f"{source}: invalid config:\n" + "\n".join(lines)) from None


_HELD = re.compile(r"__lmgate_env_(\d+)__")


def _restore(value: Any, refs: list[str]) -> Any:
    """Put the held ${VAR} references back into the parsed tree's strings."""
    if isinstance(value, str):
        return _HELD.sub(lambda m: refs[int(m.group(1))], value) if "__lmgate_env_" in value else value
    if isinstance(value, dict):
        return {_restore(k, refs): _restore(v, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v, refs) for v in value]
    return value


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the deepest YAML node that `loc` reaches."""
    line = None
    for part in loc:
        if node is None:
            break
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for k, v in node.value:
                if k.value == str(part):
                    line = k.start_mark.line + 1
                    nxt = v
                    break
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line
