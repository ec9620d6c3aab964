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
            "AGREEMENTS_INTAKE_PASSPHRASE": None, "AGREEMENTS_CLINICIAN_CA_PASSPHRASE": None,
            "AGREEMENTS_FAULT": None, "AGREEMENTS_TRUST": None, "AGREEMENTS_TRUST_SHA256": None,
            "AGREEMENTS_TSA_TRUST": None, "AGREEMENTS_LOG_KEY": None, "AGREEMENTS_LOG_PASSPHRASE": None}
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


AGREEMENTS_VARIABLES = ("AGREEMENTS_PASSPHRASE", "AGREEMENTS_KEY_PASSPHRASE", "AGREEMENTS_INTAKE_PASSPHRASE",
                        "AGREEMENTS_CLINICIAN_CA_PASSPHRASE", "AGREEMENTS_FAULT", "AGREEMENTS_PRACTICE",
                        "AGREEMENTS_TRUST", "AGREEMENTS_TRUST_SHA256")


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


# --------------------------------------------------------------------------- verification


def trust_args(practice: Path) -> list:
    """``--trust PRACTICE/pki/root.pem``: verify and audit trust only a root named from outside the archive."""
    return ["--trust", Path(practice) / "pki" / "root.pem"]


def root_fingerprint(root_pem: Path) -> str:
    """The SHA-256 of a root certificate's DER, as ``--trust-sha256`` takes it and verdicts print it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    return x509.load_pem_x509_certificate(Path(root_pem).read_bytes()).fingerprint(hashes.SHA256()).hex()


def jcs_line(entry: dict) -> bytes:
    """A ledger entry re-encoded as a format 2 line is (RFC 8785), so an edit is not also a format error."""
    from agreements_kit.formats.jsonio import jcs

    return jcs(entry)


def describe_failures(verdict) -> str:
    """A verdict's failures, one a line, for assertion messages."""
    return "\n".join(f"{c.step} {c.name} [{c.subject}] {c.code}: {c.detail}" for c in verdict.failures) \
        or "(no failures)"


def failure_codes(verdict, subject: str | None = None, step: str | None = None) -> set[str]:
    """The reason codes of a verdict's failures (about ``subject``, in ``step``, when given)."""
    return {c.code for c in verdict.failures
            if (subject is None or c.subject == subject) and (step is None or c.name == step)}


def pyhanko_verdict(record: bytes, p7s: bytes, trust, moment) -> bool:
    """pyHanko's own judgement of one detached signature (its bottom line), as of ``moment``.

    Trust is anchored at ``trust.root`` with the CRL set ``trust.crls`` (when there is
    one) in "require" mode (our certificates name no CRL distribution point, so
    hard-fail would consult nothing), with retroactive revocation information (a
    CRL issued after the signature still counts, so a revocation after the signing
    time leaves the signature valid and one before it does not). Anything pyHanko
    cannot process is "not valid".
    """
    import asyncio

    from asn1crypto import cms as acms
    from asn1crypto import crl as acrl
    from asn1crypto import x509 as ax509
    from cryptography.hazmat.primitives import serialization
    from pyhanko.sign.validation.generic_cms import async_validate_detached_cms
    from pyhanko_certvalidator import ValidationContext

    root = ax509.Certificate.load(trust.root.public_bytes(serialization.Encoding.DER))
    crls = [acrl.CertificateList.load(c.public_bytes(serialization.Encoding.DER))
            for c in (trust.crls.crls if trust.crls is not None else ())]
    context = ValidationContext(trust_roots=[root], crls=crls, allow_fetching=False, moment=moment,
                                revocation_mode="require" if crls else "soft-fail", retroactive_revinfo=True)
    try:
        info = acms.ContentInfo.load(p7s)
        if info["content_type"].native != "signed_data":
            return False
        status = asyncio.run(async_validate_detached_cms(record, info["content"],
                                                         signer_validation_context=context))
    except Exception:  # pyHanko raises many kinds on malformed input
        return False
    return bool(status.bottom_line)


def clean_environ() -> dict[str, str]:
    """This process's environment without the agreements-kit variables (practice, trust, passphrases), for
    subprocesses that must be told everything on their command line."""
    return {k: v for k, v in os.environ.items() if k not in AGREEMENTS_VARIABLES}


# --------------------------------------------------------------------------- intake


class FakeClock:
    """A monotonic clock for the intake app's sessions and rate limits: it stands still until advanced."""

    def __init__(self, start: float = 10_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def cheap_hasher():
    """An argon2id PasswordHasher with the smallest parameters: staff accounts in tests (the app must use
    the same one, or each sign-in rehashes with the default, slower ones)."""
    from argon2 import PasswordHasher

    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
