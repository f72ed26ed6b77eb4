"""The config contract: env expansion, frozen typed data, refusals naming the key and its line."""

from __future__ import annotations

import pytest

from lmgate.config import expand_env, parse_config
from lmgate.errors import ConfigError

GOOD = """
database: sqlite:///x.db
master_key: ${MASTER}
providers:
  kvant: {type: openai, base_url: "${KVANT_URL:-https://maas.example/v1}", api_key: ${KVANT_API_KEY}}
models:
  - name: gpt-4o
    deployments:
      - {provider: kvant, model: gpt-4o, weight: 2, rpm: 600, tpm: 100000}
    fallbacks: [mini]
    pricing: {input: 2.75, output: 11, unit: 1M tokens}
    context_window: 128000
    modalities: [text, image]
  - name: mini
    deployments: [{provider: kvant, model: gpt-4o-mini}]
keys:
  - {key: "${DEMO_KEY:-demo-key-123}", name: demo, models: ["*"], rpm: 60, budget_usd: 10}
router:
  retries: 2
  timeout: 60
  connect_timeout: 5
  allowed_fails: 3
  cooldown_s: 30
"""


def test_the_design_example_parses_with_env():
    cfg = parse_config(GOOD, env={"MASTER": "m-key", "KVANT_API_KEY": "sk-k"})
    assert cfg.master_key == "m-key"
    assert cfg.providers["kvant"].api_key == "sk-k"
    assert cfg.providers["kvant"].base_url == "https://maas.example/v1"
    assert cfg.keys[0].key == "demo-key-123"
    assert cfg.models[0].deployments[0].weight == 2
    assert cfg.models[0].pricing.unit == "1M tokens"
    assert cfg.router.retries == 2


def test_frozen():
    cfg = parse_config(GOOD, env={})
    with pytest.raises(Exception):
        cfg.router.retries = 5  # type: ignore[misc]


def test_unset_env_without_default_is_null_and_reported_where_required():
    assert expand_env("${NOPE}", {}) is None
    assert expand_env("a-${NOPE}-b", {}) == "a--b"
    assert expand_env("${X:-d}", {"X": "set"}) == "set"
    with pytest.raises(ConfigError) as err:
        parse_config("keys:\n  - {key: ${NOPE}, name: k}\n", env={})
    assert "keys[0].key" in str(err.value)


def test_unknown_key_names_path_and_line():
    text = GOOD.replace("    context_window: 128000", "    context_windw: 128000")
    with pytest.raises(ConfigError) as err:
        parse_config(text, source="gw.yaml", env={})
    msg = str(err.value)
    assert "gw.yaml" in msg and "models[0].context_windw" in msg and "unknown key" in msg
    assert f"line {text.splitlines().index('    context_windw: 128000') + 1}" in msg


def test_wrong_type_names_path_and_line():
    text = GOOD.replace("retries: 2", "retries: many")
    with pytest.raises(ConfigError) as err:
        parse_config(text, env={})
    assert "router.retries" in str(err.value) and "line" in str(err.value)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("providers: {p: {type: nosuch}}", "providers.p.type"),
        ("models: [{name: m, deployments: [{provider: ghost, model: x}]}]", "unknown provider"),
        ("providers: {p: {type: openai}}\nmodels: [{name: m, deployments: [{provider: p, model: x}], fallbacks: [zz]}]", "fallback"),
        ("models: [{name: m, deployments: []}]", "deployments"),
        ("router: {retries: -1}", "router.retries"),
        ("- just a list", "mapping"),
        ("a: [unclosed", "YAML"),
    ],
)
def test_refusals(text, fragment):
    with pytest.raises(ConfigError) as err:
        parse_config(text, env={})
    assert fragment in str(err.value)


def test_cli_refuses_bad_config_before_starting(tmp_path, capsys):
    from lmgate.cli import main

    path = tmp_path / "bad.yaml"
    path.write_text("routr: {}\n")
    assert main(["serve", "--config", str(path)]) == 2
    assert "routr" in capsys.readouterr().err
