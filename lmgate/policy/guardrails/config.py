"""The `guardrails:` section of the config, validated at start (frozen, unknown keys refused).

Every check has an `action` (block: refuse with a 400 guardrail_violation; mask: rewrite the text
and go on; flag: record only; off) and says whether it runs on the input (use_guard >= 1) and on
the output (use_guard 2).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from lmgate.errors import ConfigError


def _yaml_off(v: Any) -> Any:
    """YAML 1.1 reads a bare `off` as false: take it as the action `off`."""
    return "off" if v is False else v


Action = Annotated[Literal["block", "mask", "flag", "off"], BeforeValidator(_yaml_off)]
PiiType = Literal["email", "phone", "credit_card", "iban", "us_ssn", "uk_nino", "ipv4"]
SecretType = Literal["openai_key", "aws_access_key", "github_token", "slack_token", "google_api_key", "private_key", "jwt", "bearer_token"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PiiConfig(_Frozen):
    action: Action = "flag"  # for every type not named in `types`
    types: dict[PiiType, Action] = Field(default_factory=dict)  # per-type override, e.g. {credit_card: block}
    input: bool = True
    output: bool = True


class SecretsConfig(_Frozen):
    action: Action = "mask"
    types: dict[SecretType, Action] = Field(default_factory=dict)
    input: bool = True
    output: bool = True


class InjectionConfig(_Frozen):
    action: Action = "flag"
    builtin: bool = True  # the curated phrasing set (ignore previous instructions, DAN, prompt exfiltration, ...)
    patterns: list[str] = Field(default_factory=list)  # more regexes, matched case-insensitively
    input: bool = True
    output: bool = False

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for p in patterns:
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"pattern {p!r} is not a valid regex: {exc}") from None
        return patterns


class WordsConfig(_Frozen):
    action: Action = "block"
    words: list[str] = Field(default_factory=list)  # banned words or phrases, whole-word, case-insensitive
    topics: dict[str, list[str]] = Field(default_factory=dict)  # topic name -> its words/phrases (check `topic.<name>`)
    input: bool = True
    output: bool = True


class SchemaConfig(_Frozen):
    """Output only: when response_format asks for JSON, the answer must parse (and fit the schema)."""

    action: Annotated[Literal["block", "flag", "off"], BeforeValidator(_yaml_off)] = "flag"


class JudgeConfig(_Frozen):
    """An LLM served by this gateway classifies the text against `policy`; it must answer ALLOW or BLOCK."""

    model: str
    policy: str = Field(min_length=1)
    action: Literal["block", "flag"] = "block"
    input: bool = True
    output: bool = False
    on_error: Literal["allow", "block"] = "allow"  # when the judge fails or answers neither word
    max_chars: int = Field(8000, gt=0)  # text beyond this is not shown to the judge
    max_tokens: int = Field(5, gt=0)


class GuardrailsConfig(_Frozen):
    enabled: bool = True  # master switch; use_guard picks input/output per request below it
    roles: list[Literal["system", "user", "assistant", "tool"]] = Field(default_factory=lambda: ["user", "tool"])  # input messages checked
    mask_template: str = "[{label}]"  # replacement for masked text; {label} is e.g. EMAIL
    pii: PiiConfig = Field(default_factory=PiiConfig)
    secrets: SecretsConfig = Field(default_factory=SecretsConfig)
    injection: InjectionConfig = Field(default_factory=InjectionConfig)
    words: WordsConfig = Field(default_factory=WordsConfig)
    schema_check: SchemaConfig = Field(default_factory=SchemaConfig, alias="schema")
    judge: JudgeConfig | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def load_guardrails_config(data: dict[str, Any]) -> GuardrailsConfig:
    try:
        return GuardrailsConfig.model_validate(data or {})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(["guardrails", *(str(p) for p in err["loc"])])
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            lines.append(f"  {where}: {msg}")
        raise ConfigError("invalid config:\n" + "\n".join(lines)) from None
