"""The provider cases of the conformance suite and the config that deploys each of them against
the simulator: no retries (errors come back at once) and no cooldown (error tests do not bench
a deployment for the tests after them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lmgate.simulator.testing import AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY

KEY = "sk-conformance-client-key"
SECRET = "sk-upstream-secret-0123456789"


@dataclass(frozen=True)
class Case:
    """One provider type as a deployment: its protocol, the upstream model (a catalog name, so
    the price is known), and the path the simulator sees for a whole chat answer."""

    name: str
    type: str
    protocol: str  # openai | anthropic | gemini | bedrock
    upstream: str
    chat_path: str
    stream_path: str
    content_filter_error: bool = False  # the protocol has a "prompt refused by the filter" error


VERTEX_PATH = "/v1/projects/conformance-proj/locations/us-central1/publishers/google/models/gemini-2.5-flash"
CASES = [
    Case("openai", "openai", "openai", "gpt-4o-mini", "/v1/chat/completions", "/v1/chat/completions", True),
    Case("azure", "azure", "openai", "gpt-4o-mini", "/openai/deployments/gpt-4o-mini/chat/completions",
         "/openai/deployments/gpt-4o-mini/chat/completions", True),
    Case("gemini", "gemini", "gemini", "gemini-2.5-flash", "/v1beta/models/gemini-2.5-flash:generateContent",
         "/v1beta/models/gemini-2.5-flash:streamGenerateContent"),
    Case("vertex", "vertex", "gemini", "gemini-2.5-flash", VERTEX_PATH + ":generateContent", VERTEX_PATH + ":streamGenerateContent"),
    Case("bedrock-llama", "bedrock", "bedrock", "meta.llama3-1-8b-instruct-v1:0", "/model/meta.llama3-1-8b-instruct-v1:0/converse",
         "/model/meta.llama3-1-8b-instruct-v1:0/converse-stream"),
    Case("bedrock-nova", "bedrock", "bedrock", "us.amazon.nova-lite-v1:0", "/model/us.amazon.nova-lite-v1:0/converse",
         "/model/us.amazon.nova-lite-v1:0/converse-stream"),
    Case("bedrock-claude", "bedrock", "bedrock", "anthropic.claude-3-haiku-20240307-v1:0",
         "/model/anthropic.claude-3-haiku-20240307-v1:0/converse", "/model/anthropic.claude-3-haiku-20240307-v1:0/converse-stream"),
    Case("anthropic", "anthropic", "anthropic", "claude-3-haiku-20240307", "/v1/messages", "/v1/messages"),
]
CASE_IDS = [c.name for c in CASES]
EMBEDDING_CASES = {  # name -> (provider type, upstream model, simulator path)
    "openai-embed": ("openai", "text-embedding-3-small", "/v1/embeddings"),
    "azure-embed": ("azure", "text-embedding-ada-002", "/openai/deployments/text-embedding-ada-002/embeddings"),
    "gemini-embed": ("gemini", "text-embedding-004", "/v1beta/models/text-embedding-004:batchEmbedContents"),
    "cohere-embed": ("cohere", "cohere_english_v3", "/v2/embed"),
}


def _provider_lines(sim_url: str, account: Path) -> dict[str, str]:
    """provider name -> its YAML flow mapping; `<type>-bad` carries credentials the upstream refuses."""
    aws = f'region: us-east-1, access_key_id: {AWS_ACCESS_KEY_ID}, secret_access_key: {AWS_SECRET_ACCESS_KEY}'
    return {
        "openai": f'{{type: openai, base_url: "{sim_url}/v1", api_key: "{SECRET}"}}',
        "openai-bad": f'{{type: openai, base_url: "{sim_url}/v1", api_key: "sk-invalid-0123456789"}}',
        "azure": f'{{type: azure, base_url: "{sim_url}", api_key: "{SECRET}", api_version: "2024-10-21"}}',
        "azure-bad": f'{{type: azure, base_url: "{sim_url}", api_key: "invalid-azure-key-0000", api_version: "2024-10-21"}}',
        "gemini": f'{{type: gemini, base_url: "{sim_url}", api_key: "AIza-{SECRET}"}}',
        "gemini-bad": f'{{type: gemini, base_url: "{sim_url}", api_key: "AIza-invalid-key"}}',
        "vertex": f'{{type: vertex, base_url: "{sim_url}", credentials_file: "{account}", project: conformance-proj, location: us-central1}}',
        # The simulator's OAuth endpoint signs every well-formed assertion, so the refused
        # credential is simulated at the API itself: a 401 from a path-prefix knob.
        "vertex-bad": f'{{type: vertex, base_url: "{sim_url}/_sim/status=401", credentials_file: "{account}", project: conformance-proj, location: us-central1}}',
        "bedrock": f"{{type: bedrock, base_url: \"{sim_url}\", {aws}}}",
        "bedrock-bad": f'{{type: bedrock, base_url: "{sim_url}", region: us-east-1, access_key_id: AKIDINVALID0000, secret_access_key: invalid-secret}}',
        "anthropic": f'{{type: anthropic, base_url: "{sim_url}", api_key: "{SECRET}"}}',
        "anthropic-bad": f'{{type: anthropic, base_url: "{sim_url}", api_key: "sk-ant-invalid-0123456789"}}',
        "cohere": f'{{type: cohere, base_url: "{sim_url}", api_key: "{SECRET}"}}',
    }


def conformance_config(sim_url: str, account: Path) -> str:
    providers = _provider_lines(sim_url, account)
    lines = ["providers:"] + [f"  {name}: {spec}" for name, spec in providers.items()] + ["models:"]
    for c in CASES:
        # -throttled: its own route, so the Retry-After of the rate-limit test holds back no other test
        for suffix, provider in (("", c.type), ("-bad", c.type + "-bad"), ("-throttled", c.type)):
            lines += [
                f"  - name: {c.name}{suffix}",
                f'    deployments: [{{provider: {provider}, model: "{c.upstream}"}}]',
                "    modalities: [text, image, document]",
            ]
        lines += [  # -slow: a deployment that gives the upstream 0.3 s (the timeout test)
            f"  - name: {c.name}-slow",
            f'    deployments: [{{provider: {c.type}, model: "{c.upstream}", timeout: 0.3}}]',
        ]
    lines += ["  - name: azure-o1-mini", '    deployments: [{provider: azure, model: "o1-mini"}]']  # 004's Azure table
    for name, (ptype, upstream, _) in EMBEDDING_CASES.items():
        lines += [f"  - name: {name}", "    kind: embedding", f'    deployments: [{{provider: {ptype}, model: "{upstream}"}}]']
    lines += [
        "keys:",
        f"  - {{key: {KEY}, name: conformance}}",
        "router: {retries: 0, backoff_s: 0, allowed_fails: 1000, cooldown_s: 0}",
        'media: {allow_hosts: ["127.0.0.1"]}',  # the simulator serves the images of the URL test
    ]
    return "\n".join(lines) + "\n"
