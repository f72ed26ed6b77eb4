"""What the store tests share besides fixtures (importable by name, unlike conftest, whose module
name other test folders' conftests shadow)."""

from __future__ import annotations

from lmgate.testing import serve_app as serve  # noqa: F401  (re-exported for the tests)

MASTER = "mk-test-master-key"


def store_config(database: str, sim_url: str, extra: str = "", master_key: str | None = MASTER) -> str:
    return f"""
database: "{database}"
{f'master_key: {master_key}' if master_key else ''}
providers:
  sim: {{type: openai, base_url: "{sim_url}/v1", api_key: sk-upstream-secret}}
models:
  - name: gpt-4o-mini
    deployments: [{{provider: sim, model: gpt-4o-mini}}]
  - name: priced
    deployments: [{{provider: sim, model: gpt-4o-mini}}]
    pricing: {{input: 1000, output: 1000, unit: 1M tokens}}
    max_output_tokens: 50
ledger: {{flush_interval_s: 0.05}}
{extra}
"""
