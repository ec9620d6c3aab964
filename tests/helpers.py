"""Small helpers several test modules share (fixtures live in conftest.py)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

from click.testing import CliRunner

from agreements_kit.cli.commands import main

ZEROS = "0" * 64


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tree(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (hidden ones too): folders as 'dir', files by SHA-256."""
    if not Path(root).exists():
        return {}
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = "dir"
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = sha256_of(Path(p))
    return out


def refused(res, *words: str) -> str:
    """A clean refusal: exit 2, one 'error: ' line on stderr, nothing on stdout, no traceback; returns the line."""
    assert res.exit_code == 2, f"exit {res.exit_code}\nstdout: {res.stdout}\nstderr: {res.stderr}"
    assert "Traceback" not in res.stderr + res.stdout
    lines = res.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {res.stderr!r}"
    assert lines[0].startswith("error: "), lines[0]
    assert res.stdout == "", f"nothing should be printed on stdout: {res.stdout!r}"
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    return lines[0]


def ok(res):
    assert res.exit_code == 0, f"exit {res.exit_code}\nstdout: {res.stdout}\nstderr: {res.stderr}"
    assert "Traceback" not in res.stderr
    return res


def invoke(args: list, env: dict[str, str] | None = None):
    """The CLI in-process, for module-scoped fixtures (which cannot use monkeypatch)."""
    base = {"AGREEMENTS_PRACTICE": None, "AGREEMENTS_PASSPHRASE": None, "AGREEMENTS_KEY_PASSPHRASE": None,
            "AGREEMENTS_FAULT": None}
    return ok(CliRunner().invoke(main, [str(a) for a in args], env={**base, **(env or {})},
                                 catch_exceptions=False))


def ledger_entries(path: Path) -> list[tuple[dict, bytes]]:
    """The ledger's entries, after checking every line is complete, JSON, numbered and chained."""
    data = Path(path).read_bytes()
    assert data.endswith(b"\n"), f"the ledger ends with a partial line: {data[-40:]!r}"
    prev = ZEROS
    out = []
    for number, line in enumerate(data.split(b"\n")[:-1], start=1):
        entry = json.loads(line)
        assert entry["prev"] == prev, f"line {number}: chain broken"
        assert entry["seq"] == number
        assert entry["format"] == "agreements-kit/ledger"
        prev = hashlib.sha256(line).hexdigest()
        out.append((entry, line))
    return out


def flip(path: Path, position: int) -> None:
    """Flip one bit of a file, keeping its permissions."""
    data = bytearray(Path(path).read_bytes())
    data[position] ^= 0x01
    mode = stat.S_IMODE(os.stat(path).st_mode)
    os.chmod(path, 0o600)
    Path(path).write_bytes(bytes(data))
    os.chmod(path, mode)


AGREEMENTS_VARIABLES = ("AGREEMENTS_PASSPHRASE", "AGREEMENTS_KEY_PASSPHRASE", "AGREEMENTS_FAULT",
                        "AGREEMENTS_PRACTICE")


def private_copy(base: Path, tmp_path: Path, monkeypatch=None) -> Path:
    """A copy of a module-scoped practice for one test to change; with ``monkeypatch``, the
    agreements-kit environment variables start unset."""
    import shutil

    if monkeypatch is not None:
        for key in AGREEMENTS_VARIABLES:
            monkeypatch.delenv(key, raising=False)
    dest = tmp_path / "practice"
    shutil.copytree(base, dest)
    return dest
