"""`lmgate keys ...` and `lmgate usage ...`: talk to the database directly.

The database is the one the config names (`--config FILE`, or $LMGATE_CONFIG), or `--database URL`.
A running gateway sees key changes made here within about half a second (it polls a counter).
Input is validated by the same models as the admin API.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from lmgate.errors import GatewayError, Unprocessable
from lmgate.policy.periods import period_id
from lmgate.store.db import StoreError
from lmgate.store.keyspec import KeyCreate, KeyRow, KeyUpdate, iso, validate
from lmgate.store.reports import columns_of, parse_group_by, parse_time, to_csv, usage_report
from lmgate.store.store import DuplicateKeyName, Store

_NULLS = ("none", "null", "")


def add_parser(sub: Any) -> None:
    keys = sub.add_parser("keys", help="create, list, show, update and revoke API keys (in the database)")
    ks = keys.add_subparsers(dest="keys_command", required=True)

    create = ks.add_parser("create", help="create a key; its raw value is printed once")
    _db_args(create)
    create.add_argument("--name", required=True)
    _field_args(create)
    create.set_defaults(run=cmd_create)

    lst = ks.add_parser("list", help="list keys (active only, unless --all)")
    _db_args(lst)
    lst.add_argument("--all", action="store_true", help="include revoked keys")
    lst.set_defaults(run=cmd_list)

    _key_command(ks, "show", "one key, with its spend in the current budget period", cmd_show)
    update = _key_command(ks, "update", "change a key's fields ('none' clears a limit)", cmd_update)
    update.add_argument("--name", default=argparse.SUPPRESS, help="a new name")
    _field_args(update)
    _key_command(ks, "revoke", "revoke a key (refused by running gateways within a second)", cmd_revoke)

    usage = sub.add_parser("usage", help="usage report from the ledger (requests, tokens, cost)")
    _db_args(usage, with_json=False)
    usage.add_argument("--group-by", default="", help="comma list: key, model, day, month, app, provider, deployment, surface, status, or any metadata field")
    usage.add_argument("--since", help="unix seconds, ISO date/time (UTC), or an age like 24h, 7d")
    usage.add_argument("--until", help="exclusive; a bare date includes that whole day")
    usage.add_argument("--key", help="only this key (id or name)")
    usage.add_argument("--format", choices=("table", "json", "csv"), default="table")
    usage.set_defaults(run=cmd_usage)


def _key_command(ks: Any, name: str, help: str, run: Any) -> argparse.ArgumentParser:
    """A `keys` subcommand about one existing key, named by id or name."""
    p = ks.add_parser(name, help=help)
    _db_args(p)
    p.add_argument("key", help="key id or name")
    p.set_defaults(run=run)
    return p


def _db_args(p: argparse.ArgumentParser, with_json: bool = True) -> None:
    p.add_argument("--config", help="the gateway's YAML config (its `database` is used); default $LMGATE_CONFIG")
    p.add_argument("--database", help="a database URL instead of --config (sqlite:///FILE or postgresql://...)")
    if with_json:
        p.add_argument("--json", action="store_true", help="print JSON")


def _field_args(p: argparse.ArgumentParser) -> None:
    s = argparse.SUPPRESS
    p.add_argument("--models", default=s, help="comma list of allowed models (fnmatch patterns); default *")
    p.add_argument("--rpm", default=s, type=_opt_int, help="requests per minute ('none': no limit)")
    p.add_argument("--tpm", default=s, type=_opt_int, help="tokens per minute ('none': no limit)")
    p.add_argument("--budget-usd", default=s, type=_opt_float, help="budget in USD ('none': no budget)")
    p.add_argument("--budget-period", default=s, choices=("total", "daily", "monthly"))
    p.add_argument("--cache", default=s, type=_opt_flag, help="default is_cache for this key: 1, 0 or none")
    p.add_argument("--guard", default=s, type=_opt_int, help="default use_guard for this key: 0, 1, 2 or none")
    p.add_argument("--metadata", default=s, help='tenant fields added to every request, as JSON: {"team": "search"}')
    p.add_argument("--expires-at", default=s, type=_opt_time, help="unix seconds, ISO date/time (UTC), +30d (from now), or none")


def _opt_int(v: str) -> int | None:
    return None if v.lower() in _NULLS else int(v)


def _opt_float(v: str) -> float | None:
    return None if v.lower() in _NULLS else float(v)


def _opt_flag(v: str) -> bool | None:
    low = v.lower()
    if low in _NULLS:
        return None
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError("use 1, 0 or none")


def _opt_time(v: str) -> float | None:
    """`none`, unix seconds, an ISO date/time (UTC), or `+30d` (from now; s, m, h, d)."""
    if v.lower() in _NULLS:
        return None
    try:
        if v.startswith("+"):
            now = time.time()
            return 2 * now - (parse_time(v[1:], "expires-at", now=now) or now)
        return parse_time(v, "expires-at")
    except GatewayError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("name", "rpm", "tpm", "budget_usd", "budget_period", "cache", "guard", "expires_at"):
        if hasattr(args, name):
            out[name] = getattr(args, name)
    if hasattr(args, "models"):
        out["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
    if hasattr(args, "metadata"):
        try:
            out["metadata"] = json.loads(args.metadata)
        except json.JSONDecodeError as exc:
            raise Unprocessable(f"--metadata is not valid JSON: {exc}") from None
    return out


# ---------------------------------------------------------------- commands


def _open(args: argparse.Namespace) -> tuple[Store, set[str]]:
    url = args.database
    config_names: set[str] = set()
    path = args.config or os.environ.get("LMGATE_CONFIG")
    if url is None:
        if not path:
            raise StoreError("say which database: --config FILE (or $LMGATE_CONFIG) or --database URL")
        from lmgate.config import load_config

        config = load_config(path)
        url = config.database
        config_names = {k.name for k in config.keys}
    store = Store(url)
    store.migrate()
    return store, config_names


def _run(args: argparse.Namespace, body: Any) -> int:
    try:
        store, config_names = _open(args)
    except StoreError as exc:
        print(f"lmgate: {exc}", file=sys.stderr)
        return 2
    try:
        return body(store, config_names)
    except GatewayError as exc:
        print(f"lmgate: {exc.message}", file=sys.stderr)
        return 1
    finally:
        store.close()


def cmd_create(args: argparse.Namespace) -> int:
    def body(store: Store, config_names: set[str]) -> int:
        spec: KeyCreate = validate(KeyCreate, _fields(args))
        if spec.name in config_names:
            raise DuplicateKeyName(f"a key named '{spec.name}' is defined in the config file")
        row, raw = store.create_key(spec)
        if args.json:
            print(json.dumps({"key": raw, **row.public()}, indent=2))
        else:
            print(f"key:  {raw}")
            print("      (shown once: store it now; only its hash is kept)")
            _print_key(row)
        return 0

    return _run(args, body)


def cmd_list(args: argparse.Namespace) -> int:
    def body(store: Store, _: set[str]) -> int:
        rows = store.list_keys(include_revoked=args.all)
        if args.json:
            print(json.dumps([r.public() for r in rows], indent=2))
            return 0
        table = [["id", "name", "key", "models", "rpm", "tpm", "budget", "expires", "state"]]
        for r in rows:
            budget = "-" if r.budget_usd is None else f"${r.budget_usd:g}/{r.budget_period}"
            state = "revoked" if r.revoked else ("expired" if r.expires_at is not None and r.expires_at < time.time() else "active")
            table.append([r.id, r.name, r.key_hint + "...", ",".join(r.models), _dash(r.rpm), _dash(r.tpm), budget, _dash(iso(r.expires_at)), state])
        _print_table(table)
        return 0

    return _run(args, body)


def _show_key(args: argparse.Namespace, row: KeyRow) -> None:
    """A key as JSON (--json) or as the readable block."""
    if args.json:
        print(json.dumps(row.public(), indent=2))
    else:
        _print_key(row)


def cmd_show(args: argparse.Namespace) -> int:
    def body(store: Store, _: set[str]) -> int:
        row = store.get_key(args.key)
        _add_spend(store, row)
        _show_key(args, row)
        return 0

    return _run(args, body)


def cmd_update(args: argparse.Namespace) -> int:
    def body(store: Store, config_names: set[str]) -> int:
        changes = validate(KeyUpdate, _fields(args)).changes()
        if changes.get("name") in config_names:
            raise DuplicateKeyName(f"a key named '{changes['name']}' is defined in the config file")
        row = store.update_key(args.key, changes)
        _show_key(args, row)
        return 0

    return _run(args, body)


def cmd_revoke(args: argparse.Namespace) -> int:
    def body(store: Store, _: set[str]) -> int:
        row = store.revoke_key(args.key)
        if args.json:
            print(json.dumps(row.public(), indent=2))
        else:
            print(f"revoked {row.id} ({row.name}) at {iso(row.revoked_at)}")
        return 0

    return _run(args, body)


def cmd_usage(args: argparse.Namespace) -> int:
    def body(store: Store, _: set[str]) -> int:
        group_by = parse_group_by(args.group_by)
        now = time.time()
        rows = usage_report(store, group_by, parse_time(args.since, "since", now=now), parse_time(args.until, "until", end=True, now=now), args.key)
        if args.format == "json":
            print(json.dumps({"rows": rows}, indent=2))
        elif args.format == "csv":
            sys.stdout.write(to_csv(rows, group_by))
        else:
            cols = columns_of(group_by)
            _print_table([cols] + [[_cell(r.get(c)) for c in cols] for r in rows])
        return 0

    return _run(args, body)


# ---------------------------------------------------------------- output


def _add_spend(store: Store, row: KeyRow) -> None:
    if row.budget_usd is not None:
        row.extra["spend_usd"] = round(store.spend_of(row.id, period_id(row.budget_period, time.time())), 10)


def _print_key(row: KeyRow) -> None:
    for k, v in row.public().items():
        if isinstance(v, (list, dict)):
            v = json.dumps(v)
        print(f"{k + ':':15} {_dash(v)}")


def _print_table(rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


def _dash(v: Any) -> str:
    return "-" if v is None else str(v)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6f}"
    return _dash(v)
