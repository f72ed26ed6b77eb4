"""The simulator is the independent reference: it must not import lmgate code outside itself."""

from __future__ import annotations

import ast
from pathlib import Path

import lmgate.simulator

SIM_DIR = Path(lmgate.simulator.__file__).parent


def test_simulator_imports_nothing_else_from_lmgate() -> None:
    offenders = []
    for path in sorted(SIM_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                if (name == "lmgate" or name.startswith("lmgate.")) and not name.startswith(
                        "lmgate.simulator"):
                    offenders.append(f"{path.name}: {name}")
    assert offenders == []


def test_modules_stay_small() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in SIM_DIR.glob("*.py")}
    assert max(sizes.values()) <= 500, sizes
