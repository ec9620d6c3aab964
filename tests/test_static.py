"""Static checks as tests, so the README's one test command runs them too: ruff, mypy, import-linter.

The layers contract (pyproject.toml) keeps imports running one way, downward:
cli > intake > verification > signing > authoring > store > formats.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(("tool", "args"), [
    ("ruff", ["check", "agreements_kit", "tests", "bench"]),
    ("mypy", ["agreements_kit"]),
    ("lint-imports", []),
])
def test_static_check(tool: str, args: list[str]):
    exe = BIN / tool
    assert exe.exists(), f"{tool} is missing: install the test extras (scripts/bootstrap --test)"
    proc = subprocess.run([str(exe), *args], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{tool} found problems:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"


def test_the_layers_contract_is_real():
    """The contract names every layer package, so a new package cannot slip outside it unnoticed."""
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    layers = {name.strip() for contract in config["tool"]["importlinter"]["contracts"]
              if contract["type"] == "layers" for layer in contract["layers"] for name in layer.split("|")}
    packages = sorted(p.name for p in (REPO / "agreements_kit").iterdir()
                      if p.is_dir() and (p / "__init__.py").exists())
    for name in packages:
        assert f"agreements_kit.{name}" in layers, f"agreements_kit/{name} is not in the import-linter layers"
