"""The `lmgate` command: serve, simulate, models, batch (keys and usage live beside the store)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import Callable

from lmgate.errors import ConfigError

# Modules that add their own subcommands (each has `add_parser(subparsers)`). One line per module.
EXTRA_COMMANDS: list[str] = ["lmgate.batch", "lmgate.store.cli"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lmgate", description="An LLM gateway: one endpoint and one key in front of many providers.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", required=True, help="YAML config file")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8100)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(run=cmd_serve)

    sim = sub.add_parser("simulate", help="run the provider simulator (every protocol lmgate speaks)")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8101)
    sim.set_defaults(run=cmd_simulate)

    models = sub.add_parser("models", help="list the built-in catalog (or a config's models)")
    models.add_argument("--config", help="list the models this config serves instead")
    models.set_defaults(run=cmd_models)

    for module_name in EXTRA_COMMANDS:
        __import__(module_name, fromlist=["add_parser"]).add_parser(sub)

    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except ConfigError as exc:
        print(f"lmgate: {exc}", file=sys.stderr)
        return 2


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from lmgate.config import load_config

    config = load_config(args.config)  # refuse a bad file before anything starts
    os.environ["LMGATE_CONFIG"] = os.path.abspath(args.config)
    simulator = None
    if config.simulator is not None:
        simulator = subprocess.Popen(
            [sys.executable, "-m", "lmgate", "simulate", "--host", config.simulator.host, "--port", str(config.simulator.port)],
            preexec_fn=_die_with_parent,
        )
        _wait_for_port(config.simulator.host, config.simulator.port)
    try:
        uvicorn.run(
            "lmgate.app:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers if args.workers > 1 else None,
            loop="uvloop",
            http="httptools",
            access_log=False,
            proxy_headers=False,  # lmgate reads neither the client address nor the scheme: a wasted pass over the headers
            log_level=config.server.log_level,
            server_header=False,
            date_header=False,
            timeout_graceful_shutdown=30,
            ssl_certfile=config.server.ssl_certfile,
            ssl_keyfile=config.server.ssl_keyfile,
        )
    finally:
        if simulator is not None:
            simulator.terminate()
            simulator.wait(10)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from lmgate.simulator.app import run

    run(host=args.host, port=args.port)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from lmgate.catalog.catalog import Catalog

    catalog = Catalog.builtin()
    names = catalog.names()
    if args.config:
        from lmgate.app import build_catalog
        from lmgate.config import load_config

        config = load_config(args.config)
        catalog = build_catalog(config)
        names = [m.name for m in config.models]
    print(f"{'model':48} {'kind':9} {'input':>10} {'output':>10} {'unit':14} {'context':>9}  modalities / status")
    for name in names:
        info = catalog.get(name)
        if info is None:
            print(f"{name:48} (not in the catalog)")
            continue
        p = info.price
        pin = f"{p.input:g}" if p else "-"
        pout = f"{p.output:g}" if p else "-"
        unit = p.unit if p else "-"
        ctx = str(info.context_window or "-")
        print(f"{name:48} {info.kind:9} {pin:>10} {pout:>10} {unit:14} {ctx:>9}  {', '.join(sorted(info.modalities))} / {info.status}")
    return 0


def _die_with_parent() -> None:
    """In the simulator child: end with the gateway. uvicorn re-raises SIGTERM/SIGINT after its
    graceful shutdown, which kills the gateway before any `finally` could stop the child."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the `finally` in cmd_serve is all there is
        pass


def _wait_for_port(host: str, port: int, timeout: float = 15.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise ConfigError(f"the simulator did not start on {host}:{port}")


if __name__ == "__main__":
    sys.exit(main())
