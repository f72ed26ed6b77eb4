"""The fake upstream: nginx serving fixed OpenAI-shaped answers, so the floor is as fast as it gets.

nginx cannot branch on a POST body cheaply, so the streamed answer has its own location
(/stream/v1/chat/completions); gateways get a second provider pointed at /stream/v1.
"""

from __future__ import annotations

from pathlib import Path

import orjson

MODEL = "bench-model"
CREATED = 1700000000
STREAM_CONTENT_CHUNKS = 50
EMBEDDING_DIMS = 1536


def chat_body() -> bytes:
    """A non-streamed chat completion as OpenAI's API answers it."""
    return orjson.dumps(
        {
            "id": "chatcmpl-bench0001",
            "object": "chat.completion",
            "created": CREATED,
            "model": MODEL,
            "system_fingerprint": "fp_bench",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "Hello! This is a fixed answer from the benchmark upstream.",
                        "refusal": None,
                    },
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 21, "completion_tokens": 12, "total_tokens": 33},
        }
    )


def stream_body() -> bytes:
    """A 51-chunk SSE stream: 50 content chunks, one usage chunk with no choices, then [DONE]."""
    events: list[bytes] = []
    for i in range(STREAM_CONTENT_CHUNKS):
        delta: dict[str, str] = {"content": f"word{i} "}
        if i == 0:
            delta = {"role": "assistant", "content": "word0 "}
        last = i == STREAM_CONTENT_CHUNKS - 1
        chunk = {
            "id": "chatcmpl-bench0002",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": MODEL,
            "system_fingerprint": "fp_bench",
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": "stop" if last else None}
            ],
            "usage": None,
        }
        events.append(b"data: " + orjson.dumps(chunk) + b"\n\n")
    usage = {
        "id": "chatcmpl-bench0002",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "system_fingerprint": "fp_bench",
        "choices": [],
        "usage": {
            "prompt_tokens": 21,
            "completion_tokens": STREAM_CONTENT_CHUNKS,
            "total_tokens": 21 + STREAM_CONTENT_CHUNKS,
        },
    }
    events.append(b"data: " + orjson.dumps(usage) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return b"".join(events)


def embeddings_body() -> bytes:
    """One embedding of the size of OpenAI's small embedding model, deterministic values."""
    vector = [round(((i * 7919) % 2000 - 1000) / 31622.7766, 8) for i in range(EMBEDDING_DIMS)]
    return orjson.dumps(
        {
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": vector}],
            "model": "bench-embed",
            "usage": {"prompt_tokens": 10, "total_tokens": 10},
        }
    )


ANSWERS = {
    "v1/chat/completions": ("application/json", chat_body),
    "stream/v1/chat/completions": ("text/event-stream", stream_body),
    "v1/embeddings": ("application/json", embeddings_body),
    "stream/v1/embeddings": ("application/json", embeddings_body),
}
NGINX_PIECE = 3000  # nginx refuses a config token over 4 KB, so longer bodies are set in pieces


def nginx_quote(text: str) -> str:
    """Quote text for an nginx config string (escapes for backslash, quote and newline)."""
    if "$" in text:
        raise ValueError("nginx would expand '$' in a fixed body")
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def nginx_location(path: str, content_type: str, body: bytes) -> str:
    """A location answering any method with a fixed body via `return 200`, pieced through `set`."""
    text = body.decode("utf-8")
    pieces = [text[i : i + NGINX_PIECE] for i in range(0, len(text), NGINX_PIECE)]
    if len(pieces) == 1:
        return (
            f"        location = /{path} {{\n            default_type {content_type};\n"
            f"            return 200 {nginx_quote(text)};\n        }}\n"
        )
    sets = "".join(f"            set $p{i} {nginx_quote(piece)};\n" for i, piece in enumerate(pieces))
    joined = "".join(f"${{p{i}}}" for i in range(len(pieces)))
    return (
        f"        location = /{path} {{\n            default_type {content_type};\n{sets}"
        f'            return 200 "{joined}";\n        }}\n'
    )


def nginx_config(workdir: Path, port: int) -> str:
    """The whole nginx.conf: one process, no logs, endless keep-alive, fixed answers."""
    tmp = workdir / "nginx-tmp"
    locations = "".join(
        nginx_location(path, ctype, make()) for path, (ctype, make) in ANSWERS.items()
    )
    return f"""daemon off;
master_process off;
worker_processes 1;
pid {workdir / 'nginx.pid'};
error_log {workdir / 'nginx-error.log'} warn;
events {{ worker_connections 4096; multi_accept on; }}
http {{
    access_log off;
    tcp_nodelay on;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
{locations}        location = / {{
            default_type text/plain;
            return 200 'ok';
        }}
    }}
}}
"""


def write_nginx_config(workdir: Path, port: int) -> Path:
    """Write nginx.conf and its temp folders into the work folder and return its path."""
    (workdir / "nginx-tmp").mkdir(parents=True, exist_ok=True)
    path = workdir / "nginx.conf"
    path.write_text(nginx_config(workdir, port))
    return path
