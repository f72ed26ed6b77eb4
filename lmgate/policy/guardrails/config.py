"""The `guardrails:` section of the config, validated at start (frozen, unknown keys refused).

Every check has an `action` (block: refuse with a 400 guardrail_violation; mask: rewrite the text
and go on; flag: record only; off) and says whether it runs on the input (use_guard >= 1) and on
the output (use_guard 2).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, field_validator

from lmgate.policy.section import Frozen, load_section


def _yaml_off(v: Any) -> Any:
    """YAML 1.1 reads a bare `off` as false: take it as the action `off`."""
    return "off" if v is False else v


Action = Annotated[Literal["block", "mask", "flag", "off"], BeforeValidator(_yaml_off)]
PiiType = Literal["email", "phone", "credit_card", "iban", "us_ssn", "uk_nino", "ipv4"]
SecretType = Literal["openai_key", "aws_access_key", "github_token", "slack_token", "google_api_key", "private_key", "jwt", "bearer_token"]


class PiiConfig(Frozen):
    action: Action = "flag"  # for every type not named in `types`
    types: dict[PiiType, Action] = Field(default_factory=dict)  # per-type override, e.g. {credit_card: block}
    input: bool = True
    output: bool = True


class SecretsConfig(Frozen):
    action: Action = "mask"
    types: dict[SecretType, Action] = Field(default_factory=dict)
    input: bool = True
    output: bool = True


class InjectionConfig(Frozen):
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


class WordsConfig(Frozen):
    action: Action = "block"
    words: list[str] = Field(default_factory=list)  # banned words or phrases, whole-word, case-insensitive
    topics: dict[str, list[str]] = Field(default_factory=dict)  # topic name -> its words/phrases (check `topic.<name>`)
    input: bool = True
    output: bool = True


class SchemaConfig(Frozen):
    """Output only: when response_format asks for JSON, the answer must parse (and fit the schema)."""

    action: Annotated[Literal["block", "flag", "off"], BeforeValidator(_yaml_off)] = "flag"


class JudgeConfig(Frozen):
    """An LLM served by this gateway classifies the text against `policy`; it must answer ALLOW or BLOCK."""

    model: str
    policy: str = Field(min_length=1)
    action: Literal["block", "flag"] = "block"
    input: bool = True
    output: bool = False
    on_error: Literal["allow", "block"] = "allow"  # when the judge fails or answers neither word
    max_chars: int = Field(8000, gt=0)  # text beyond this is not shown to the judge
    max_tokens: int = Field(5, gt=0)


class GuardrailsConfig(Frozen):
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
    return load_section(GuardrailsConfig, "guardrails", data)
