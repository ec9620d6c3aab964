"""Shared fixtures: a fresh practice per test, and the CLI run two ways.

``cli`` runs the command in-process through click's runner (fast, for the many
bad-input cases); ``agreements_bin`` runs the installed console script in a
subprocess from a temporary folder, as a clinician would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from agreements_kit.cli.commands import main
from agreements_kit.signing.setup import init_practice
from agreements_kit.resources import clauses_dir

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def practice(tmp_path: Path) -> Path:
    """A practice in New York with two therapists."""
    root = tmp_path / "practice"
    init_practice(root, name="Test Practice", jurisdiction="US-NY", phone="(212) 555-0100",
                  therapists={"lee": ("Dr. Robin Lee", "PhD"), "ortiz": ("Sam Ortiz", "LCSW")})
    return root


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch):
    """Run ``agreements ARGS`` in-process; returns exit code, stdout and stderr."""
    monkeypatch.delenv("AGREEMENTS_PRACTICE", raising=False)

    def run(*args: str | os.PathLike) -> Result:
        runner = CliRunner()
        res = runner.invoke(main, [str(a) for a in args], catch_exceptions=False)
        return Result(res.exit_code, res.stdout, res.stderr)

    return run


@pytest.fixture(scope="session")
def agreements_bin() -> str:
    """The installed console script (next to this interpreter, else on PATH)."""
    candidate = Path(sys.executable).parent / "agreements"
    found = str(candidate) if candidate.exists() else shutil.which("agreements")
    if not found:
        pytest.fail("the 'agreements' console script is not installed; run scripts/bootstrap --test")
    return found


@pytest.fixture
def run_bin(agreements_bin: str, tmp_path: Path):
    """Run the installed ``agreements`` in a subprocess, from an empty folder."""
    workdir = tmp_path / "cwd"
    workdir.mkdir()

    def run(*args: str | os.PathLike, env: dict[str, str] | None = None, cwd: Path | None = None) -> Result:
        full_env = {k: v for k, v in os.environ.items() if k != "AGREEMENTS_PRACTICE"}
        full_env.update(env or {})
        proc = subprocess.run([agreements_bin, *map(str, args)], capture_output=True, text=True,
                              cwd=cwd or workdir, env=full_env, timeout=300)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture
def library_copy(tmp_path: Path) -> Path:
    """A writable copy of the default clause library, for tests that break it."""
    dest = tmp_path / "library"
    shutil.copytree(clauses_dir(), dest)
    return dest
