"""The model catalog: what each model costs, how much it reads, what it takes, and one lookup.

Capabilities and prices are data (models.yaml), extended or overridden by config; nothing here
branches on a model's name. Prices keep the unit their source uses (per 1M tokens, per 1K tokens,
per 1K characters, per image, per minute), so 004's tables can be compared line by line.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from importlib import resources
from typing import Any, Iterable, Iterator, Literal, Mapping, get_args

import yaml

from lmgate.errors import ConfigError
from lmgate.types import Usage

Unit = Literal["1M tokens", "1K tokens", "1K characters", "image", "minute"]
Kind = Literal["chat", "embedding", "image", "audio"]
Status = Literal["active", "deprecated"]
Modality = Literal["text", "image", "document", "audio", "video"]

UNITS: frozenset[str] = frozenset(get_args(Unit))
KINDS: frozenset[str] = frozenset(get_args(Kind))
STATUSES: frozenset[str] = frozenset(get_args(Status))
MODALITIES: frozenset[str] = frozenset(get_args(Modality))

# USD per token for the token units; per character for the character unit.
_PER_UNIT = {"1M tokens": 1e-6, "1K tokens": 1e-3, "1K characters": 1e-3}
CHARS_PER_TOKEN = 4  # used when a per-character price meets a usage that only counted tokens
DEFAULT_CONTEXT = 32768  # a conservative window for models nobody described
_ROUND = 10

# Keys of a config model entry that concern routing, not the catalog: ignored by with_overrides,
# so a whole `models:` entry from the config can be passed as it is.
_ROUTING_KEYS = frozenset(
    {"name", "deployments", "fallbacks", "context_fallbacks", "content_filter_fallbacks", "strategy", "cache"}
)
_FIELD_KEYS = frozenset(
    {
        "kind", "pricing", "context_window", "max_output_tokens", "modalities", "status",
        "family", "protocol", "max_batch", "embedding_dims", "aliases", "base",
    }
)
_PRICE_KEYS = frozenset({"input", "output", "cached_input", "cache_write", "unit", "images"})
# Prefixes a client may put before a model name ("us.anthropic...", cross-region Bedrock ids).
_REGION_PREFIXES = frozenset({"us", "eu", "apac", "us-gov", "global", "jp", "au"})


@dataclass(frozen=True, slots=True)
class Price:
    """A model's list price, in USD per `unit`."""

    input: float = 0.0
    output: float = 0.0
    unit: Unit = "1M tokens"
    cached_input: float | None = None  # prompt-cache reads; None = charged as input
    cache_write: float | None = None  # prompt-cache writes; None = charged as input
    # Per-image prices by (quality, size), for unit "image"; `input` is the price of any other size.
    images: tuple[tuple[str, str, float], ...] = ()

    def image_price(self, size: str | None = None, quality: str | None = None) -> float:
        """One image's price; an unlisted size or quality costs the dearest matching row (never less)."""
        if not self.images:
            return self.input
        q = (quality or "standard").lower()
        s = (size or "1024x1024").lower()
        for row_q, row_s, usd in self.images:
            if row_q == q and row_s == s:
                return usd
        same_q = [usd for row_q, _, usd in self.images if row_q == q]
        return max(same_q or [usd for _, _, usd in self.images])


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """Everything the gateway knows about one model before calling it."""

    name: str
    kind: Kind = "chat"
    context_window: int = DEFAULT_CONTEXT  # most input tokens (prompt) the model accepts
    max_output_tokens: int | None = None  # most tokens in one answer; None = unknown
    modalities: frozenset[str] = frozenset({"text"})
    status: Status = "active"
    price: Price = Price()
    family: str = "openai-compatible"  # who hosts it: azure/openai, gemini/vertex, bedrock, ...
    protocol: str = "openai"  # the wire format it is usually called with
    max_batch: int | None = None  # embeddings: inputs per call; images: images per call
    embedding_dims: int | None = None
    aliases: tuple[str, ...] = ()

    @property
    def deprecated(self) -> bool:
        return self.status == "deprecated"

    def supports(self, modality: str) -> bool:
        return modality in self.modalities


class Catalog:
    """An immutable set of models with one lookup: exact name, alias, then a normalised name."""

    __slots__ = ("_models", "_exact", "_normal")

    def __init__(self, models: Iterable[ModelInfo]) -> None:
        self._models: dict[str, ModelInfo] = {}
        for m in models:
            self._models[m.name] = m  # a later entry with the same name replaces an earlier one
        exact: dict[str, ModelInfo] = dict(self._models)
        for m in self._models.values():
            for a in m.aliases:
                exact.setdefault(a, m)  # a model's own name always wins over another's alias
        normal: dict[str, ModelInfo] = {}
        for key, m in exact.items():
            normal.setdefault(normalise(key), m)
        self._exact = exact
        self._normal = normal

    @classmethod
    def builtin(cls) -> Catalog:
        """The catalog of models.yaml (parsed once per process)."""
        return cls(_builtin_models())

    def get(self, name: str) -> ModelInfo | None:
        """The model called `name` or by that alias; failing that, ignoring provider/region prefixes and case."""
        m = self._exact.get(name)
        if m is None and name:
            m = self._normal.get(normalise(name))
        return m

    def names(self) -> list[str]:
        return list(self._models)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[ModelInfo]:
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)

    def with_overrides(self, entries: Mapping[str, Mapping[str, Any]]) -> Catalog:
        """A new catalog where config entries add models or override fields of existing ones.

        An entry's fields are those of the config contract (`pricing: {input, output, unit, ...}`,
        `context_window`, `max_output_tokens`, `modalities`, `status`, `kind`) plus `family`,
        `protocol`, `max_batch`, `embedding_dims`, `aliases`, and `base`: the catalog model a new
        name starts from (else the model found by `get(name)`, else an empty description).
        None values are ignored, and so are routing keys (deployments, fallbacks, ...).
        """
        models = dict(self._models)
        for name, fields in entries.items():
            fields = _as_mapping(fields, f"models[{name}]")
            base_name = fields.get("base")
            base = self.get(base_name) if base_name else self.get(name)
            if base_name and base is None:
                raise ConfigError(f"models[{name}].base: {base_name!r} is not in the catalog")
            models[name] = _apply(name, base, fields)
        return Catalog(models.values())


def normalise(name: str) -> str:
    """`bedrock/us.anthropic.claude...` -> `anthropic.claude...`: no provider path, no region, lower case."""
    n = name.rsplit("/", 1)[-1]
    head, dot, rest = n.partition(".")
    if dot and rest and head.lower() in _REGION_PREFIXES:
        n = rest
    return n.lower()


# ---------------------------------------------------------------- cost


def cost_usd(info: ModelInfo, usage: Usage) -> float:
    """What a call cost, from the usage the provider reported.

    `usage.input_tokens` is the whole prompt, including `cached_tokens` and `cache_write_tokens`
    (OpenAI's convention, as the OpenAI surface renders it). Per-character prices use
    `usage.input_chars`/`output_chars`; when those are 0 but tokens are known, characters are
    estimated as tokens * 4 (an English average, slightly high since Vertex does not bill
    white space). Image and per-minute prices are charged by `image_cost_usd`/`audio_cost_usd`;
    here they cost 0.
    """
    p = info.price
    if p.unit == "1K characters":
        in_chars = usage.input_chars or usage.input_tokens * CHARS_PER_TOKEN
        out_chars = usage.output_chars or usage.output_tokens * CHARS_PER_TOKEN
        return round((in_chars * p.input + out_chars * p.output) * 1e-3, _ROUND)
    scale = _PER_UNIT.get(p.unit)
    if scale is None:
        return 0.0
    cached = max(0, usage.cached_tokens)
    written = max(0, usage.cache_write_tokens)
    fresh = max(0, usage.input_tokens - cached - written)
    cached_price = p.input if p.cached_input is None else p.cached_input
    write_price = p.input if p.cache_write is None else p.cache_write
    usd = fresh * p.input + cached * cached_price + written * write_price + max(0, usage.output_tokens) * p.output
    return round(usd * scale, _ROUND)


def image_cost_usd(info: ModelInfo, n: int = 1, size: str | None = None, quality: str | None = None) -> float:
    """What `n` generated images cost (an unlisted size or quality is charged at the dearest row)."""
    if info.price.unit != "image":
        return 0.0
    return round(max(0, n) * info.price.image_price(size, quality), _ROUND)


def audio_cost_usd(info: ModelInfo, seconds: float) -> float:
    """What `seconds` of transcribed audio cost at a per-minute price."""
    if info.price.unit != "minute":
        return 0.0
    return round(max(0.0, seconds) / 60.0 * info.price.input, _ROUND)


def reservation_usd(info: ModelInfo, input_tokens_estimate: int, max_output_tokens: int | None = None) -> float:
    """The most a call can cost, to reserve budget before it is made.

    The whole prompt at the full input price (no cache discount) and the largest answer the call
    allows: the request's `max_output_tokens`, else the model's, else what is left of its window.
    Images cost their dearest size; per-minute audio reserves nothing (its length is not known).
    """
    p = info.price
    if p.unit == "image":
        return round(max([usd for _, _, usd in p.images] + [p.input]), _ROUND)
    inp = max(0, input_tokens_estimate)
    out = max_output_tokens if max_output_tokens is not None else info.max_output_tokens
    if out is None:
        out = info.context_window - inp if info.kind == "chat" else 0
    if info.max_output_tokens is not None:
        out = min(out, info.max_output_tokens)
    out = max(0, out)
    return cost_usd(info, Usage(input_tokens=inp, output_tokens=out))


# ---------------------------------------------------------------- loading


@functools.cache
def _builtin_models() -> tuple[ModelInfo, ...]:
    """models.yaml parsed into ModelInfo, once per process."""
    text = resources.files("lmgate.catalog").joinpath("models.yaml").read_text(encoding="utf-8")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    doc = yaml.load(text, Loader=loader) or {}
    entries = _as_mapping(doc.get("models"), "models.yaml: models")
    return tuple(_apply(str(name), None, _as_mapping(fields, f"models.yaml: {name}")) for name, fields in entries.items())


def _apply(name: str, base: ModelInfo | None, fields: Mapping[str, Any]) -> ModelInfo:
    """`base` (or an empty description) with `fields` laid over it, checked."""
    where = f"models[{name}]"
    unknown = set(fields) - _FIELD_KEYS - _ROUTING_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown catalog field(s) {sorted(unknown)}")
    info = base if base is not None else ModelInfo(name=name)
    changes: dict[str, Any] = {"name": name}
    if base is not None and base.name != name:
        changes["aliases"] = ()  # the base's aliases keep pointing at the base
    for key, value in fields.items():
        if value is None or key in _ROUTING_KEYS or key == "base":
            continue
        if key == "pricing":
            changes["price"] = _price(value, info.price, f"{where}.pricing")
        elif key == "modalities":
            changes["modalities"] = _modalities(value, f"{where}.modalities")
        elif key == "aliases":
            if isinstance(value, str) or not all(isinstance(a, str) for a in value):
                raise ConfigError(f"{where}.aliases: a list of names is expected")
            changes["aliases"] = tuple(value)
        elif key in ("context_window", "max_output_tokens", "max_batch", "embedding_dims"):
            changes[key] = _positive_int(value, f"{where}.{key}")
        elif key == "kind":
            changes[key] = _choice(value, KINDS, f"{where}.kind")
        elif key == "status":
            changes[key] = _choice(value, STATUSES, f"{where}.status")
        else:  # family, protocol
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{where}.{key}: a non-empty string is expected")
            changes[key] = value
    return dataclasses.replace(info, **changes)


def _price(value: Any, base: Price, where: str) -> Price:
    """A config pricing mapping over `base`; a different unit starts from a clean price."""
    value = _as_mapping(value, where)
    unknown = set(value) - _PRICE_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}")
    unit = value.get("unit") or base.unit
    if unit not in UNITS:
        raise ConfigError(f"{where}.unit: {unit!r} is not one of {sorted(UNITS)}")
    start = base if unit == base.unit else Price(unit=unit)
    changes: dict[str, Any] = {"unit": unit}
    for key in ("input", "output", "cached_input", "cache_write"):
        if value.get(key) is not None:
            changes[key] = _money(value[key], f"{where}.{key}")
    if value.get("images") is not None:
        rows = []
        for quality, sizes in _as_mapping(value["images"], f"{where}.images").items():
            for size, usd in _as_mapping(sizes, f"{where}.images.{quality}").items():
                rows.append((str(quality).lower(), str(size).lower(), _money(usd, f"{where}.images.{quality}.{size}")))
        changes["images"] = tuple(rows)
    return dataclasses.replace(start, **changes)


def _modalities(value: Any, where: str) -> frozenset[str]:
    if isinstance(value, str):
        value = [value]
    out = set()
    for v in value:
        v = "document" if str(v).lower() in ("docs", "doc", "documents", "file", "pdf") else str(v).lower()
        if v not in MODALITIES:
            raise ConfigError(f"{where}: {v!r} is not one of {sorted(MODALITIES)}")
        out.add(v)
    return frozenset(out)


def _money(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{where}: a price (a number >= 0) is expected, not {value!r}")
    return float(value)


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{where}: a whole number > 0 is expected, not {value!r}")
    return value


def _choice(value: Any, allowed: frozenset[str], where: str) -> str:
    if value not in allowed:
        raise ConfigError(f"{where}: {value!r} is not one of {sorted(allowed)}")
    return value


def _as_mapping(value: Any, where: str) -> Mapping[str, Any]:
    """A mapping from a dict or a pydantic model (config objects are frozen pydantic models)."""
    if isinstance(value, Mapping):
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump()
    raise ConfigError(f"{where}: a mapping is expected, not {type(value).__name__}")
