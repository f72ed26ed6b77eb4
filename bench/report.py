"""Turning run results into the tables, ratios and target verdicts of bench/RESULTS.md."""

from __future__ import annotations

from dataclasses import dataclass

from measure import RunResult, fmt

TARGET_RPS_VS_BARE = 0.7
TARGET_RPS_VS_LITELLM = 40.0
TARGET_OVERHEAD_OVER_BARE_MS = 0.3
TARGET_RSS_MB = 100.0
TARGET_WORKERS2 = 1.6
NOISY_CORES = 0.25  # other processes using more than this during a run make it noisy


@dataclass
class Summary:
    """The headline numbers of one contestant (valid runs only)."""

    row: str
    chat_rps: float | None = None
    stream_rps: float | None = None
    embed_rps: float | None = None
    p50_1_ms: float | None = None
    overhead_1_ms: float | None = None
    peak_rss_mb: float | None = None
    cpu_chat_ms: float | None = None
    cpu_stream_ms: float | None = None
    other_load: float | None = None
    status: str = ""


def pick(results: list[RunResult], row: str, scenario: str) -> RunResult | None:
    """The valid result of a row in a scenario, if any."""
    for r in results:
        if r.row == row and r.scenario == scenario and r.status == "ok":
            return r
    return None


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b when both are known and b is not zero."""
    if a is None or b is None or b == 0:
        return None
    return a / b


def row_names(results: list[RunResult]) -> list[str]:
    """Contestants in the order they were measured."""
    names: list[str] = []
    for r in results:
        if r.row not in names:
            names.append(r.row)
    return names


def summarize(results: list[RunResult], conns: int) -> dict[str, Summary]:
    """Per contestant: RPS at N connections, p50 and overhead at 1, peak RSS, CPU per request."""
    direct = pick(results, "direct", "chat@1")
    out = {}
    for name in row_names(results):
        s = Summary(name)
        mine = [r for r in results if r.row == name]
        chat, stream, embed = (pick(results, name, f"{k}@{conns}") for k in ("chat", "stream", "embed"))
        one = pick(results, name, "chat@1")
        s.chat_rps = chat.rps if chat else None
        s.stream_rps = stream.rps if stream else None
        s.embed_rps = embed.rps if embed else None
        s.cpu_chat_ms = chat.cpu_ms_per_req if chat else None
        s.cpu_stream_ms = stream.cpu_ms_per_req if stream else None
        if one is not None and one.p50_ms is not None:
            s.p50_1_ms = one.p50_ms
            if direct is not None and direct.p50_ms is not None:
                s.overhead_1_ms = one.p50_ms - direct.p50_ms
        rss = [r.peak_rss_mb for r in mine if r.status == "ok" and r.peak_rss_mb is not None]
        s.peak_rss_mb = max(rss) if rss else None
        loads = [r.other_load for r in mine if r.other_load is not None]
        s.other_load = max(loads) if loads else None
        statuses = {r.status for r in mine if r.status != "n/a"}
        if statuses == {"ok"}:
            s.status = "ok"
        elif statuses == {"not run"}:
            s.status = "not run: " + next(r.reason for r in mine if r.status == "not run")
        else:
            bad = [f"{r.scenario} {r.status}" + (f" ({r.reason})" if r.reason else "") for r in mine if r.status not in ("ok", "n/a")]
            s.status = "; ".join(bad)
        out[name] = s
    return out


def run_table(results: list[RunResult], conns: int) -> str:
    """Every run: RPS, latency, CPU, memory, and RPS over the bare proxy's and LiteLLM's."""
    lines = [
        "| contestant | run | req/s | p50 ms | p99 ms | CPU ms/req | peak RSS MB | ÷ bare | ÷ LiteLLM | other load | status |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for r in results:
        if r.status == "n/a":
            continue
        bare = pick(results, "bare", r.scenario)
        lite = pick(results, "litellm", r.scenario)
        ok = r.status == "ok"
        rps = r.rps if ok else None
        status = r.status + (f": {r.reason}" if r.reason else "")
        lines.append(
            f"| {r.row} | {r.scenario} | {fmt(r.rps, 0)} | {fmt(r.p50_ms)} | {fmt(r.p99_ms)} | "
            f"{fmt(r.cpu_ms_per_req, 3)} | {fmt(r.peak_rss_mb, 0)} | "
            f"{fmt(ratio(rps, bare.rps if bare else None))} | {fmt(ratio(rps, lite.rps if lite else None), 1)} | "
            f"{noisy(r.other_load)} | {status} |"
        )
    return "\n".join(lines)


def summary_table(summaries: dict[str, Summary], conns: int) -> str:
    """One line per contestant with the headline numbers and ratios."""
    bare, lite = summaries.get("bare"), summaries.get("litellm")
    lines = [
        f"| contestant | chat req/s @{conns} | stream req/s @{conns} | embed req/s @{conns} | "
        "overhead @1 ms | peak RSS MB | CPU ms/chat | CPU ms/stream | chat ÷ bare | stream ÷ bare | "
        "chat ÷ LiteLLM | stream ÷ LiteLLM | max other load |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for s in summaries.values():
        if s.row.startswith("lmgate+"):
            continue  # policy steps have their own table
        if s.status.startswith("not run"):
            lines.append(f"| {s.row} | {s.status} ||||||||||||")
            continue
        lines.append(
            f"| {s.row} | {fmt(s.chat_rps, 0)} | {fmt(s.stream_rps, 0)} | {fmt(s.embed_rps, 0)} | "
            f"{fmt(s.overhead_1_ms)} | {fmt(s.peak_rss_mb, 0)} | {fmt(s.cpu_chat_ms, 3)} | "
            f"{fmt(s.cpu_stream_ms, 3)} | "
            f"{fmt(ratio(s.chat_rps, bare.chat_rps if bare else None))} | "
            f"{fmt(ratio(s.stream_rps, bare.stream_rps if bare else None))} | "
            f"{fmt(ratio(s.chat_rps, lite.chat_rps if lite else None), 1)} | "
            f"{fmt(ratio(s.stream_rps, lite.stream_rps if lite else None), 1)} | {noisy(s.other_load)} |"
        )
    return "\n".join(lines)


def noisy(cores: float | None) -> str:
    """Other processes' load during a run, flagged when it may have skewed the numbers."""
    if cores is None:
        return "-"
    return f"**{cores:.2f} noisy**" if cores > NOISY_CORES else f"{cores:.2f}"


def verdict(value: float | None, ok: bool | None) -> str:
    """met / not met / not measured."""
    if value is None or ok is None:
        return "not measured"
    return "met" if ok else "**not met**"


def session_peak_rss(results: list[RunResult], session: str) -> float | None:
    """The largest RSS sampled in any valid run against one server (all its rows)."""
    rss = [r.peak_rss_mb for r in results if r.session == session and r.status == "ok" and r.peak_rss_mb is not None]
    return max(rss) if rss else None


def targets(
    summaries: dict[str, Summary], conns: int, results: list[RunResult] | None = None
) -> list[tuple[str, str, str]]:
    """The issue's targets for lmgate (one worker), as (target, measured, verdict)."""
    lm = summaries.get("lmgate", Summary("lmgate"))
    w2 = summaries.get("lmgate-w2", Summary("lmgate-w2"))
    bare = summaries.get("bare", Summary("bare"))
    lite = summaries.get("litellm", Summary("litellm"))
    rows = []
    for other, name, target, digits in ((bare, "bare proxy", TARGET_RPS_VS_BARE, 2), (lite, "LiteLLM", TARGET_RPS_VS_LITELLM, 1)):
        for label, mine, theirs in (("chat", lm.chat_rps, other.chat_rps), ("streamed", lm.stream_rps, other.stream_rps)):
            r = ratio(mine, theirs)
            rows.append(
                (
                    f"{label} req/s @{conns} ≥ {target:g} × {name}",
                    f"{fmt(r, digits)} × ({fmt(mine, 0)} vs {fmt(theirs, 0)})",
                    verdict(r, None if r is None else r >= target),
                )
            )
    extra = None
    if lm.overhead_1_ms is not None and bare.overhead_1_ms is not None:
        extra = lm.overhead_1_ms - bare.overhead_1_ms
    rows.append(
        (
            f"overhead @1 ≤ bare proxy's + {TARGET_OVERHEAD_OVER_BARE_MS} ms",
            f"{'-' if extra is None else f'{extra:+.2f}'} ms over bare "
            f"({fmt(lm.overhead_1_ms)} vs {fmt(bare.overhead_1_ms)} ms over direct)",
            verdict(extra, None if extra is None else extra <= TARGET_OVERHEAD_OVER_BARE_MS),
        )
    )
    rss = lm.peak_rss_mb  # the runs of plain lmgate, as users run it (they come first on that server)
    server_rss = session_peak_rss(results or [], "lmgate")
    after = ""
    if server_rss is not None and rss is not None and server_rss > rss:
        after = (
            f"; {fmt(server_rss, 0)} MB on the same server after the translating and policy-step runs "
            "(the cache-miss run fills the memory cache, 64 MiB per worker by default)"
        )
    rows.append(
        (
            f"peak RSS ≤ {TARGET_RSS_MB:.0f} MB (one worker)",
            f"{fmt(rss, 0)} MB (largest sample over the chat, stream and embeddings runs{after})",
            verdict(rss, None if rss is None else rss <= TARGET_RSS_MB),
        )
    )
    r = ratio(w2.chat_rps, lm.chat_rps)
    bare_w2 = summaries.get("bare-w2", Summary("bare-w2"))
    ceiling = ratio(bare_w2.chat_rps, bare.chat_rps)
    cores = server_cores(lm)
    context = ""
    if ceiling is not None:
        context += f"; the bare proxy's own gain from a second worker here: {fmt(ceiling)} ×"
    if cores is not None:
        context += f"; one lmgate worker already keeps {cores:.2f} of the 2 cores busy (ledger thread included)"
    rows.append(
        (
            f"--workers 2 chat req/s ≥ {TARGET_WORKERS2} × one worker's",
            f"{fmt(r)} × ({fmt(w2.chat_rps, 0)} vs {fmt(lm.chat_rps, 0)}){context}",
            verdict(r, None if r is None else r >= TARGET_WORKERS2),
        )
    )
    return rows


def server_cores(s: Summary) -> float | None:
    """CPU the server under test used during its chat@32 run, in cores (CPU per request × req/s)."""
    if s.cpu_chat_ms is None or s.chat_rps is None:
        return None
    return s.cpu_chat_ms * s.chat_rps / 1000.0


def targets_table(rows: list[tuple[str, str, str]]) -> str:
    """The targets as a markdown table."""
    lines = ["| target (lmgate, one worker) | measured | verdict |", "|---|---|---|"]
    lines += [f"| {t} | {m} | {v} |" for t, m, v in rows]
    return "\n".join(lines)


def policy_table(results: list[RunResult], conns: int) -> str:
    """The cost of each policy step: lmgate with one more step on, against plain lmgate."""
    base1 = pick(results, "lmgate", "chat@1")
    baseN = pick(results, "lmgate", f"chat@{conns}")
    names = [n for n in row_names(results) if n.startswith("lmgate+")]
    if not names:
        return ""
    lines = [
        f"| step | p50 @1 ms | added p50 @1 ms | chat req/s @{conns} | ÷ plain lmgate | CPU ms/req | added CPU ms/req | status |",
        "|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    for name in names:
        one = pick(results, name, "chat@1")
        many = pick(results, name, f"chat@{conns}")
        added = None
        if one and base1 and one.p50_ms is not None and base1.p50_ms is not None:
            added = one.p50_ms - base1.p50_ms
        added_cpu = None
        if many and baseN and many.cpu_ms_per_req is not None and baseN.cpu_ms_per_req is not None:
            added_cpu = many.cpu_ms_per_req - baseN.cpu_ms_per_req
        status = "; ".join(
            f"{r.scenario} {r.status}" + (f" ({r.reason})" if r.reason else "")
            for r in results
            if r.row == name and r.status not in ("ok", "n/a")
        ) or "ok"
        note = next((r.note for r in results if r.row == name), "")
        lines.append(
            f"| {name} ({note}) | {fmt(one.p50_ms if one else None)} | {fmt(added)} | "
            f"{fmt(many.rps if many else None, 0)} | "
            f"{fmt(ratio(many.rps if many else None, baseN.rps if baseN else None))} | "
            f"{fmt(many.cpu_ms_per_req if many else None, 3)} | {fmt(added_cpu, 3)} | {status} |"
        )
    return "\n".join(lines)


def profile_excerpt(text: str, own: int = 25, total: int = 25) -> list[str]:
    """The head of both lists of a py-spy summary."""
    lines = text.splitlines()
    if "" not in lines:
        return lines
    try:
        split = lines.index("", 3)
    except ValueError:
        return lines[: own + 3]
    return lines[: 3 + own] + [""] + lines[split + 1 : split + 2 + total]


def render_results(
    results: list[RunResult],
    conns: int,
    facts: dict[str, str],
    versions: dict[str, str],
    settings: dict[str, str],
    notes: list[str] | None = None,
    profiles: dict[str, str] | None = None,
) -> str:
    """The whole of RESULTS.md."""
    summaries = summarize(results, conns)
    parts = [
        "# Benchmark results",
        "",
        f"Written by `bench/run` on {facts.get('date', '?')}. See bench/README.md for how to read it.",
        "",
        "**Nothing is pinned: the machine's cores are shared by the upstream (nginx, one process), "
        "the server under test and wrk. Compare numbers only within one run.**",
        "",
        "## Machine",
        "",
        *[f"- {k}: {v}" for k, v in facts.items()],
        "",
        "## Versions",
        "",
        *[f"- {k}: {v}" for k, v in versions.items()],
        "",
        "## Settings",
        "",
        *[f"- {k}: {v}" for k, v in settings.items()],
        "",
        "## Summary",
        "",
        summary_table(summaries, conns),
        "",
        "Overhead @1 is the p50 latency at one connection minus direct's. Ratios use valid runs only. "
        "Other load is the CPU (in cores) used during a run by processes outside the benchmark; "
        f"above {NOISY_CORES} the run is marked noisy and its numbers are less trustworthy.",
        "",
        "## Targets (issue 6)",
        "",
        targets_table(targets(summaries, conns, results)),
        "",
    ]
    policy = policy_table(results, conns)
    if policy:
        parts += ["## Cost of each policy step", "", policy, ""]
    if notes:
        parts += ["## Checks", "", *[f"- {n}" for n in notes], ""]
    if profiles:
        parts += [
            "## Where lmgate spends its time (py-spy)",
            "",
            "Sampled after the measured runs, under the same load; the speedscope files are in bench/.work/. "
            "Own time of a function includes the system calls it makes (socket writes show up there).",
            "",
        ]
        for name, text in profiles.items():
            parts += [f"### {name}", "", "```", *profile_excerpt(text), "```", ""]
    parts += ["## Every run", "", run_table(results, conns), ""]
    statuses = [s for s in summaries.values() if s.status != "ok"]
    if statuses:
        parts += ["## Not run or invalid", ""]
        parts += [f"- {s.row}: {s.status}" for s in statuses]
        parts.append("")
    return "\n".join(parts)
