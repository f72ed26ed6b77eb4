"""`lmgate batch`: the concurrent batch runner of 000, as a command.

Sends every JSON request file of a folder to an OpenAI-compatible /chat/completions endpoint
(lmgate or any other), a few at a time, and reports tokens, `usage.estimated_cost` and latency.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

COLUMNS = ["file", "status", "prompt_tokens", "completion_tokens", "total_tokens", "estimated_cost", "latency_sec", "response_preview"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("batch", help="send a folder of JSON chat requests concurrently and report usage and cost")
    p.add_argument("--dir", required=True, help="folder of *.json request bodies")
    p.add_argument("--base-url", default=os.environ.get("LMGATE_BASE_URL", "http://127.0.0.1:8100/v1"), help="ends before /chat/completions")
    p.add_argument("--key", default=os.environ.get("LMGATE_API_KEY"), help="API key (or $LMGATE_API_KEY)")
    p.add_argument("--model", help="force this model on every request (000's FORCED_MODEL)")
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--merge-roles", action="store_true", help="merge consecutive same-role messages before sending")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument("--out", help="write the results here instead of standard output")
    p.set_defaults(run=run)


def merge_roles(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """000's restructuring: consecutive messages of one role become one, their content joined."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if out and out[-1].get("role") == m.get("role"):
            prev = out[-1]
            a, b = prev.get("content"), m.get("content")
            if isinstance(a, str) and isinstance(b, str):
                prev["content"] = a + "\n" + b
            else:
                prev["content"] = _as_parts(a) + _as_parts(b)
        else:
            out.append(dict(m))
    return out


def _as_parts(content: Any) -> list[Any]:
    if isinstance(content, list):
        return list(content)
    return [] if content is None else [{"type": "text", "text": str(content)}]


def send_one(path: str, args: argparse.Namespace) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        payload = json.load(fh)
    if args.merge_roles and isinstance(payload.get("messages"), list):
        payload["messages"] = merge_roles(payload["messages"])
    if args.model:
        payload["model"] = args.model
    payload.pop("stream", None)
    request = urllib.request.Request(
        args.base_url.rstrip("/") + "/chat/completions",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {args.key}"},
        method="POST",
    )
    row: dict[str, Any] = {c: None for c in COLUMNS}
    row["file"] = os.path.basename(path)
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as resp:
            data = json.loads(resp.read())
            row["status"] = resp.status
    except urllib.error.HTTPError as exc:
        row["status"] = exc.code
        try:
            row["response_preview"] = json.loads(exc.read()).get("error", {}).get("message", "")[:200]
        except (ValueError, AttributeError):
            row["response_preview"] = str(exc)[:200]
        row["latency_sec"] = round(time.perf_counter() - start, 3)
        return row
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        row["status"] = "error"
        row["response_preview"] = str(exc)[:200]
        return row
    row["latency_sec"] = round(time.perf_counter() - start, 3)
    usage = data.get("usage") or {}
    for k in ("prompt_tokens", "completion_tokens", "total_tokens", "estimated_cost"):
        row[k] = usage.get(k)
    choices = data.get("choices") or [{}]
    row["response_preview"] = ((choices[0].get("message") or {}).get("content") or "")[:200]
    return row


def run(args: argparse.Namespace) -> int:
    if not args.key:
        print("lmgate batch: no key (--key or $LMGATE_API_KEY)", file=sys.stderr)
        return 2
    files = sorted(os.path.join(args.dir, f) for f in os.listdir(args.dir) if f.endswith(".json"))
    rows: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=max(1, args.workers)) as pool:
        futures = [pool.submit(send_one, f, args) for f in files]
        for fut in as_completed(futures):
            rows.append(fut.result())
    rows.sort(key=lambda r: r["file"])
    out = open(args.out, "w", newline="", encoding="utf-8") if args.out else sys.stdout
    try:
        write(rows, args.format, out)
    finally:
        if args.out:
            out.close()
    failed = sum(1 for r in rows if r["status"] != 200)
    return 1 if failed else 0


def write(rows: list[dict[str, Any]], fmt: str, out: Any) -> None:
    if fmt == "json":
        json.dump(rows, out, indent=2)
        out.write("\n")
        return
    if fmt == "csv":
        w = csv.DictWriter(out, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
        return
    out.write(f"{'file':32} {'status':>6} {'prompt':>8} {'compl':>7} {'total':>8} {'cost_usd':>12} {'sec':>7}  preview\n")
    for r in rows:
        cost = r["estimated_cost"]
        out.write(
            f"{r['file'][:32]:32} {str(r['status']):>6} {str(r['prompt_tokens'] or '-'):>8} {str(r['completion_tokens'] or '-'):>7} "
            f"{str(r['total_tokens'] or '-'):>8} {(f'{cost:.6f}' if isinstance(cost, (int, float)) else '-'):>12} "
            f"{str(r['latency_sec'] or '-'):>7}  {(r['response_preview'] or '').replace(chr(10), ' ')[:60]}\n"
        )
    total_cost = sum(r["estimated_cost"] or 0 for r in rows if isinstance(r["estimated_cost"], (int, float)))
    total_tokens = sum(r["total_tokens"] or 0 for r in rows)
    ok = sum(1 for r in rows if r["status"] == 200)
    out.write(f"\n{ok}/{len(rows)} succeeded, {total_tokens} tokens, ${total_cost:.6f} estimated\n")
