"""`python -m lmgate.simulator [--host H] [--port P]`: the simulator without the lmgate CLI."""

from __future__ import annotations

import argparse

from lmgate.simulator.app import run


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m lmgate.simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8101)
    args = parser.parse_args()
    run(host=args.host, port=args.port)


if __name__ == "__main__":
    main()
