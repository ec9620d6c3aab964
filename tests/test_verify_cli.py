"""What `agreements verify` trusts and requires when it is not told: the ledger, the root, the PDF's id."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def demo(tmp_path_factory, agreements_bin) -> Path:
    root = tmp_path_factory.mktemp("vcli") / "practice"
    proc = subprocess.run([agreements_bin, "demo", str(root)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return root


@pytest.fixture
def pr(demo: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "practice"
    shutil.copytree(demo, copy)
    return copy


def folder(pr: Path) -> Path:
    return next(p for p in (pr / "signed").iterdir() if p.name.startswith("agr-"))


def test_a_deleted_ledger_makes_an_archived_agreement_not_valid(pr: Path, run_bin):
    assert run_bin("verify", folder(pr)).exit_code == 0
    (pr / "signed" / "ledger.jsonl").unlink()
    res = run_bin("verify", folder(pr))
    assert res.exit_code == 1
    assert "the ledger is missing" in res.stdout
    assert run_bin("verify", folder(pr), "--no-ledger").exit_code == 2  # not for a folder inside its archive


def test_a_folder_handed_over_alone_verifies_with_no_ledger(pr: Path, run_bin, tmp_path: Path):
    lone = tmp_path / "handed-over"
    shutil.copytree(folder(pr), lone / folder(pr).name)
    args = ("verify", lone / folder(pr).name, "--trust", pr / "pki" / "root.pem")
    assert run_bin(*args).exit_code == 1
    res = run_bin(*args, "--no-ledger")
    assert res.exit_code == 0, res.stdout
    assert "the ledger was not checked" in res.stdout


def test_the_practice_root_is_preferred_and_named_with_its_fingerprint(pr: Path, demo: Path, run_bin, tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    other = tmp_path / "other"
    res = run_bin("demo", other)
    assert res.exit_code == 0
    fp = x509.load_pem_x509_certificate((pr / "pki" / "root.pem").read_bytes()).fingerprint(hashes.SHA256()).hex()
    # Verifying another practice's agreement with this practice as the context: this practice's root wins.
    res = run_bin("verify", folder(other), env={"AGREEMENTS_PRACTICE": str(pr)})
    assert res.exit_code == 1
    assert f"SHA-256 {fp}" in res.stdout and "the practice's" in res.stdout
    res = run_bin("verify", folder(other))  # no practice around: the root beside the archive, said so
    assert res.exit_code == 0
    assert "found beside the archive" in res.stdout


@pytest.mark.parametrize("bad_id", [5, {"a": 1}, "../../../etc", "a/b"])
def test_a_pdf_whose_embedded_id_is_not_an_id_cannot_be_checked(pr: Path, run_bin, tmp_path: Path, bad_id):
    from weasyprint import HTML, Attachment

    manifest = {"format": "agreements-kit/manifest", "agreement": {"id": bad_id}}
    pdf = tmp_path / "odd.pdf"
    HTML(string="<p>hello</p>").write_pdf(pdf, attachments=[Attachment(string=json.dumps(manifest).encode(),
                                                                       name="manifest.json")])
    res = run_bin("verify", pdf, "--archive", pr / "signed")
    assert res.exit_code == 2
    assert re.match(r"error: .*agreement id is not valid", res.stderr), res.stderr


def test_reproduce_ignores_a_newer_python_patch_release(pr: Path, monkeypatch):
    import platform

    from agreements_kit.authoring.practice import load_practice
    from agreements_kit.verification.reproduce import reproduce

    practice = load_practice(pr)
    monkeypatch.setattr(platform, "python_version", lambda: "3.99.1")
    result = reproduce(folder(pr), practice.library_dir(), practice.template_dir())
    assert result.identical, result.differences


def test_render_into_a_path_below_a_file_is_one_line(pr: Path, run_bin):
    (pr / "afile").write_text("x")
    res = run_bin("render", "--practice", pr, "--client", "Jane Q. Doe", "--therapist", "lee",
                  "--out", pr / "afile" / "sub")
    assert res.exit_code == 2 and res.stderr.count("\n") == 1 and "is a file" in res.stderr


def test_void_of_an_unknown_agreement_says_so_before_asking_a_passphrase(pr: Path, run_bin):
    res = run_bin("void", "agr-nope-1234", "--practice", pr, "--reason", "test")
    assert res.exit_code == 2 and "no agreement 'agr-nope-1234'" in res.stderr
