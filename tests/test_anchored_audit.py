"""The demo's archive end to end: every signature time-stamped, the ledger anchored.

One demo practice (a real local TSA process, a log key, a witness) is made per module
and copied for each case. The checks an auditor makes from outside the archive run
through the CLI: the README's OpenSSL recipe on each token, and ``audit --checkpoint``
with the checkpoint from the client's paper (read back from completion.pdf with
pdftotext) or from the witness's folder.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import rfc8785
from click.testing import CliRunner

from agreements_kit.cli.commands import main
from agreements_kit.cli.demo import run_demo
from agreements_kit.formats.checkpoint import parse_checkpoint
from agreements_kit.store import tlog

pytestmark = pytest.mark.requires_tool("openssl", "pdftotext")

ENV = {"AGREEMENTS_PRACTICE": None, "AGREEMENTS_TRUST": None, "AGREEMENTS_TRUST_SHA256": None,
       "AGREEMENTS_TSA_TRUST": None, "AGREEMENTS_LOG_KEY": None}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("anchored") / "demo"
    result = run_demo(root)
    assert result.verdict is not None and result.verdict.valid
    return root


@pytest.fixture
def copy(demo: Path, tmp_path: Path) -> Path:
    target = tmp_path / "demo"
    shutil.copytree(demo, target, symlinks=True)
    return target


def _folder(practice: Path) -> Path:
    (folder,) = [p for p in (practice / "signed").iterdir() if p.name.startswith("agr-")]
    return folder


def _witness_checkpoint(practice: Path) -> Path:
    (path,) = (practice / "demo-witness" / "logs").glob("*/checkpoint")
    return path


def _receipt_checkpoint(practice: Path, out: Path) -> Path:
    """The checkpoint as the client's paper carries it, read back with pdftotext."""
    text = subprocess.run(["pdftotext", "-layout", str(_folder(practice) / "completion.pdf"), "-"],
                          capture_output=True, text=True, check=True).stdout
    match = re.search(r"^(agreements-kit/ledger/[0-9a-f]{16}\n\d+\n[A-Za-z0-9+/=]+\n\n\u2014 [^\n]+\n)", text, re.M)
    assert match, "the certificate of completion does not print the signed checkpoint"
    out.write_text(match.group(1), encoding="utf-8")
    return out


def _audit(practice: Path, *extra: str):
    return CliRunner().invoke(main, ["audit", "--trust", str(practice / "pki" / "root.pem"), *extra,
                                     str(practice / "signed")], env=ENV, catch_exceptions=False)


def _recipe() -> str:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Check a time-stamp token with OpenSSL", 1)[1]
    return section.split("```bash\n", 1)[1].split("```", 1)[0]


def test_every_demo_signature_carries_a_token_openssl_shows_and_accepts(demo: Path, tmp_path: Path) -> None:
    script = tmp_path / "check-token.sh"
    script.write_text(_recipe(), encoding="utf-8")
    signatures = sorted(_folder(demo).glob("*.p7s"))
    assert [p.name for p in signatures] == ["01-client.json.p7s", "02-therapist.json.p7s"]
    for p7s in signatures:
        shown = subprocess.run(["openssl", "cms", "-cmsout", "-print", "-inform", "DER", "-in", str(p7s)],
                               capture_output=True, text=True, check=True).stdout
        assert "id-smime-aa-timeStampToken" in shown
        res = subprocess.run(["bash", str(script), str(p7s), str(demo / "pki" / "tsa-roots.pem")],
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        assert "Verification: OK" in res.stdout


def test_the_demo_archive_holds_signed_checkpoints_covering_the_whole_ledger(demo: Path) -> None:
    lines = (demo / "signed" / "ledger.jsonl").read_bytes().splitlines()
    cp, _ = tlog.read_checkpoint_file(demo / "signed" / "log" / "checkpoint")
    assert cp.size == len(lines)
    assert cp.root_hash == tlog.build_tree(iter(lines)).root()
    history = sorted((demo / "signed" / "log" / "checkpoints").glob("*.txt"))
    assert len(history) == 2  # one after the client's signature, one after the therapist's
    # The ledger entered the log key; the log key is no CA key (an Ed25519 key of its own).
    assert b'"event":"log-key"' in b"\n".join(lines)
    key_pem = (demo / "pki" / "log.key.pem").read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in key_pem


def test_pristine_archive_passes_with_the_witness_and_receipt_checkpoints(demo: Path, tmp_path: Path) -> None:
    receipt = _receipt_checkpoint(demo, tmp_path / "receipt.txt")
    assert parse_checkpoint(receipt.read_bytes(), "receipt").size == parse_checkpoint(
        _witness_checkpoint(demo).read_bytes(), "witness").size
    res = _audit(demo, "--checkpoint", str(receipt))
    assert res.exit_code == 0, res.stdout
    assert res.stdout.startswith("ok: 1 agreements: 1 valid")
    assert "log key: agreements-kit-log+" in res.stdout
    witness_key = str(demo / "demo-witness" / "witness.pub")
    res = _audit(demo, "--checkpoint", str(_witness_checkpoint(demo)), "--witness-key", witness_key)
    assert res.exit_code == 0, res.stdout
    # The receipt's copy carries no cosignature: asking for the witness's on it is a named failure.
    res = _audit(demo, "--checkpoint", str(receipt), "--witness-key", witness_key)
    assert res.exit_code == 1 and "[checkpoint.cosignature]" in res.stdout


def _rewrite_and_reanchor(practice: Path, line: int, seconds: str) -> bytes:
    """A dishonest log keeper: one ledger line's time changed, the chain recomputed, the archive's own
    checkpoints replaced by a fresh one signed with the log key. Returns that checkpoint."""
    ledger = practice / "signed" / "ledger.jsonl"
    lines = ledger.read_bytes().splitlines()
    entry = json.loads(lines[line])
    entry["time"] = entry["time"][:-3] + seconds + "Z"
    lines[line] = rfc8785.dumps(entry)
    out, prev = [], "0" * 64
    for raw in lines:
        rechained = dict(json.loads(raw), prev=prev)
        data = rfc8785.dumps(rechained)
        out.append(data)
        prev = hashlib.sha256(data).hexdigest()
    ledger.write_bytes(b"".join(data + b"\n" for data in out))
    shutil.rmtree(practice / "signed" / "log")
    passphrase = (practice / "demo-log-passphrase.txt").read_bytes().strip()
    return tlog.sign_checkpoint(practice / "signed", tlog.load_log_key(practice / "pki", passphrase))[1]


def test_tail_erased_with_the_log_is_revealed_by_the_receipts_checkpoint(copy: Path, tmp_path: Path) -> None:
    receipt = _receipt_checkpoint(copy, tmp_path / "receipt.txt")
    ledger = copy / "signed" / "ledger.jsonl"
    lines = ledger.read_bytes().splitlines()
    # Erase the agreement: its folder, its ledger lines at the end, and the archive's own checkpoints.
    shutil.rmtree(_folder(copy))
    shutil.rmtree(copy / "signed" / "log")
    kept = [line for line in lines if b'"agreement_id":"agr-' not in line or b'"event":"render"' in line]
    ledger.write_bytes(b"".join(line + b"\n" for line in kept))
    assert len(kept) < len(lines)
    clean = _audit(copy)
    assert "ledger.truncated" not in clean.stdout  # without an outside checkpoint nothing tells
    res = _audit(copy, "--checkpoint", str(receipt))
    assert res.exit_code == 1
    assert "[ledger.truncated]" in res.stdout and "erased from its end" in res.stdout


def test_history_rewritten_and_re_anchored_is_revealed_by_the_witness(copy: Path) -> None:
    _rewrite_and_reanchor(copy, 2, "59")
    res = _audit(copy, "--checkpoint", str(_witness_checkpoint(copy)))
    assert res.exit_code == 1
    assert "[ledger.rewritten]" in res.stdout


def test_a_checkpoint_with_a_bad_signature_is_named(copy: Path, tmp_path: Path) -> None:
    text = _witness_checkpoint(copy).read_text(encoding="utf-8")
    forged = text.replace(text.splitlines()[2], "A" * 43 + "=", 1)
    (tmp_path / "forged.txt").write_text(forged, encoding="utf-8")
    res = _audit(copy, "--checkpoint", str(tmp_path / "forged.txt"))
    assert res.exit_code == 1
    assert "[checkpoint.signature]" in res.stdout


def test_two_inconsistent_checkpoints_are_refused(copy: Path, demo: Path, tmp_path: Path) -> None:
    old = copy / "signed" / "log" / "checkpoints"
    first = sorted(old.glob("*.txt"))[0]
    # Another history of the same log: rewrite the first line and sign a checkpoint of it.
    other = tmp_path / "other"
    shutil.copytree(demo, other, symlinks=True)
    rewritten = _rewrite_and_reanchor(other, 0, "58")
    (tmp_path / "rewritten.txt").write_bytes(rewritten)
    res = CliRunner().invoke(main, ["log", "consistency", str(first), str(tmp_path / "rewritten.txt"),
                                    "--log-key", str(copy / "pki" / "log.pub"), "--practice", str(copy)],
                             env=ENV, catch_exceptions=False)
    assert res.exit_code == 1, res.output
    assert "consisten" in (res.stdout + res.stderr)
    # The witness that cosigned the true history refuses the rewritten one.
    res = CliRunner().invoke(main, ["log", "witness", str(tmp_path / "rewritten.txt"), "--state",
                                    str(copy / "demo-witness"), "--log-key", str(copy / "pki" / "log.pub"),
                                    "--archive", str(other / "signed")],
                             env={**ENV, "AGREEMENTS_WITNESS_PASSPHRASE": (
                                 copy / "demo-witness" / "demo-witness-passphrase.txt").read_text().strip()},
                             catch_exceptions=False)
    assert res.exit_code == 1, res.output
    assert "rewritten" in (res.stdout + res.stderr) or "consistent" in (res.stdout + res.stderr)


def test_verdicts_name_each_signatures_time_source(demo: Path) -> None:
    from cryptography import x509

    tsa = x509.load_pem_x509_certificate((demo / "demo-tsa" / "tsa.pem").read_bytes())
    from agreements_kit.formats.certprofile import fingerprint

    res = CliRunner().invoke(main, ["verify", "--trust", str(demo / "pki" / "root.pem"), str(_folder(demo))],
                             env=ENV, catch_exceptions=False)
    assert res.exit_code == 0, res.stdout
    for name in ("01-client.json", "02-therapist.json"):
        assert f"time of {name}: TSA 'Riverbend demo TSA (fictional)' (certificate SHA-256 {fingerprint(tsa)})" \
            in res.stdout
