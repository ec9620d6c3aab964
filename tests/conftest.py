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
import rgw as rgwlib
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


@pytest.fixture(scope="session")
def rgw(tmp_path_factory: pytest.TempPathFactory):
    """One real Ceph RGW (mon, memstore OSD, radosgw) for the whole session; stopped by pid at the end, pass or fail.

    FAILS when Ceph is not installed (scripts/bootstrap --test installs it). HTTP at
    ``endpoint``, HTTPS at ``tls_endpoint`` (test CA: ``ca_bundle``). The daemons get SIGTERM
    if the test process dies. See tests/rgw.py and scripts/rgwcluster.py.
    """
    missing = rgwlib.missing_programs()
    if missing:
        pytest.fail("Ceph is not installed (missing " + ", ".join(missing) + "): run scripts/bootstrap --test",
                    pytrace=False)
    try:
        cluster = rgwlib.Cluster.start(tmp_path_factory.mktemp("rgw") / "ceph", tls=True, die_with_parent=True)
    except rgwlib.ClusterError as exc:
        pytest.fail(f"the test Ceph RGW did not start: {exc}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def rgw_env(rgw) -> dict[str, str]:
    """The AWS_* variables for a subprocess to reach the test RGW as its S3 user (HTTP; merge into its env)."""
    return rgwlib.client_env(rgw)


@pytest.fixture(scope="session")
def s3_client(rgw):
    """``s3_client(tls=False, **botocore_config)``: a boto3 S3 client for the test RGW's user (see tests/rgw.py)."""
    return lambda tls=False, **config: rgwlib.s3_client(rgw, tls=tls, **config)


@pytest.fixture
def s3_bucket_name(rgw, request: pytest.FixtureRequest) -> str:
    """A new bucket name for this test (a locked object never goes away, so no bucket is reused).

    Also restarts radosgw if an earlier test stopped it and failed before starting it again.
    """
    if not rgw.daemons[rgwlib.RGW].alive():
        rgw.start_gateway()
    return rgwlib.bucket_name(request.node.name)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requires_tool(name): the test needs a program the README installs; "
                                       "it FAILS (never skips) when the program is missing")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers("requires_tool"):
        for tool in marker.args:
            if shutil.which(tool) is None:
                pytest.fail(f"{tool} is not installed: run scripts/bootstrap --test (the README's test command)")
