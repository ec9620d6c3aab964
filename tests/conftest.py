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
from agreements_kit.resources import clauses_dir
from agreements_kit.signing.setup import init_practice

REPO = Path(__file__).resolve().parent.parent
# What verify and audit trust when not told on the command line: never taken from the environment tests run in.
TRUST_VARIABLES = ("AGREEMENTS_TRUST", "AGREEMENTS_TRUST_SHA256", "AGREEMENTS_TSA_TRUST", "AGREEMENTS_LOG_KEY")


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
                  therapists={"lee": ("Dr. Robin Lee", "PhD", "psychologist"), "ortiz": ("Sam Ortiz", "LCSW", "lcsw")})
    return root


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch):
    """Run ``agreements ARGS`` in-process; returns exit code, stdout and stderr."""
    for key in ("AGREEMENTS_PRACTICE", *TRUST_VARIABLES):
        monkeypatch.delenv(key, raising=False)

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
        full_env = {k: v for k, v in os.environ.items() if k not in ("AGREEMENTS_PRACTICE", *TRUST_VARIABLES)}
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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requires_tool(name): the test needs a program the README installs; "
                                       "it FAILS (never skips) when the program is missing")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers("requires_tool"):
        for tool in marker.args:
            if shutil.which(tool) is None:
                pytest.fail(f"{tool} is not installed: run scripts/bootstrap --test (the README's test command)")
