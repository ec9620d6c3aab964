"""What `agreements verify` trusts and requires when it is not told: the ledger, the root, the PDF's id.

The trust root comes only from outside the archive being checked: ``--trust FILE``
(or AGREEMENTS_TRUST), ``--trust-sha256 HEX`` (or AGREEMENTS_TRUST_SHA256), or the
practice named with ``--practice`` (or AGREEMENTS_PRACTICE), never the current folder.
A root found only beside the archive decides nothing: "no trusted root", exit 1,
with that root's fingerprint to compare with the one the practice published.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import root_fingerprint, trust_args


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
    assert run_bin("verify", folder(pr), *trust_args(pr)).exit_code == 0
    (pr / "signed" / "ledger.jsonl").unlink()
    res = run_bin("verify", folder(pr), *trust_args(pr))
    assert res.exit_code == 1
    assert re.search(r"^  FAIL 12 ledger: .*the ledger is missing.* \[ledger\.missing\]$", res.stdout, re.M), res.stdout
    res = run_bin("verify", folder(pr), *trust_args(pr), "--no-ledger")
    assert res.exit_code == 2, res.stdout + res.stderr  # not for a folder inside its archive
    assert "--no-ledger is for a folder outside its archive" in res.stderr


def test_a_folder_handed_over_alone_verifies_with_no_ledger(pr: Path, run_bin, tmp_path: Path):
    lone = tmp_path / "handed-over"
    shutil.copytree(folder(pr), lone / folder(pr).name)
    args = ("verify", lone / folder(pr).name, "--trust", pr / "pki" / "root.pem")
    assert run_bin(*args).exit_code == 1
    res = run_bin(*args, "--no-ledger")
    assert res.exit_code == 0, res.stdout
    assert "the ledger was not checked" in res.stdout
    # Without the ledger there is no register to consult: said so, for each signature.
    assert run_bin(*args, "--no-ledger", "-v").stdout.count("not checked: no ledger given (--no-ledger)") == 2


@pytest.fixture(scope="module")
def other(tmp_path_factory, agreements_bin) -> Path:
    """Another practice, with its own root and its own signed agreement (only read by the tests)."""
    root = tmp_path_factory.mktemp("other") / "practice"
    proc = subprocess.run([agreements_bin, "demo", str(root)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return root


def not_verified(res, *words: str) -> None:
    """Exit 1 (not verified, not "could not check"), one line on stderr saying ``words``, nothing on stdout."""
    assert res.exit_code == 1, f"exit {res.exit_code}\n{res.stdout}\n{res.stderr}"
    assert res.stdout == "" and "Traceback" not in res.stderr
    assert res.stderr.startswith("error: not verified: ") and res.stderr.count("\n") == 1, res.stderr
    for word in words:
        assert word in res.stderr, res.stderr


def test_a_root_beside_the_archive_is_not_trusted(other: Path, run_bin):
    """Only pki/root.pem beside signed/ (anyone can put a root there): not verified, naming its fingerprint."""
    fp = root_fingerprint(other / "pki" / "root.pem")
    not_verified(run_bin("verify", folder(other)), "no trusted root", f"{other / 'pki' / 'root.pem'} lies beside "
                 "the archive, so it proves nothing", f"its SHA-256 is {fp}", f"--trust-sha256 {fp}")


def test_the_current_folder_is_not_a_trusted_practice(other: Path, run_bin):
    """Run from inside the practice folder, the practice's root is still only a root beside the archive."""
    not_verified(run_bin("verify", folder(other), cwd=other), "no trusted root")
    not_verified(run_bin("verify", folder(other) / "agreement.pdf", cwd=other), "no trusted root")


def test_nothing_to_trust_at_all(pr: Path, run_bin, tmp_path: Path):
    lone = tmp_path / "handed-over"
    shutil.copytree(folder(pr), lone / folder(pr).name)
    not_verified(run_bin("verify", lone / folder(pr).name, "--no-ledger"),
                 "no trusted root: give --trust ROOT.pem or --trust-sha256 HEX")


def test_the_root_pinned_by_its_fingerprint_is_trusted(other: Path, pr: Path, run_bin):
    fp = root_fingerprint(other / "pki" / "root.pem")
    tsa = other / "pki" / "tsa-roots.pem"
    res = run_bin("verify", folder(other), "--trust-sha256", fp.upper(), "--tsa-trust", tsa)  # as a person may copy it
    assert res.exit_code == 0, res.stdout + res.stderr
    assert f"note: trust root: {other / 'pki' / 'root.pem'} (pinned by --trust-sha256), SHA-256 {fp}" in res.stdout
    res = run_bin("verify", folder(other), env={"AGREEMENTS_TRUST_SHA256": fp, "AGREEMENTS_TSA_TRUST": str(tsa)})
    assert res.exit_code == 0, res.stdout + res.stderr
    # A pinned root vouches for no TSA root found beside it: the tokens' times then prove nothing, and say so.
    res = run_bin("verify", folder(other), "--trust-sha256", fp)
    assert res.exit_code == 1 and "[time.no-trusted-tsa]" in res.stdout, res.stdout
    # Another pin: the root beside the archive is not the pinned one.
    pin = root_fingerprint(pr / "pki" / "root.pem")
    not_verified(run_bin("verify", folder(other), "--trust-sha256", pin),
                 f"no root certificate with the pinned SHA-256 {pin} was found")
    # A root given with --trust must be the pinned one too.
    not_verified(run_bin("verify", folder(other), *trust_args(other), "--trust-sha256", pin),
                 f"has SHA-256 {fp}, not the pinned {pin}")
    res = run_bin("verify", folder(other), "--trust-sha256", "abc")
    assert res.exit_code == 2 and "is not a SHA-256 fingerprint (64 hex digits)" in res.stderr, res.stderr


def test_the_named_practice_root_is_trusted_and_named_with_its_fingerprint(pr: Path, other: Path, run_bin):
    fp = root_fingerprint(pr / "pki" / "root.pem")
    # Another practice's agreement checked against this practice (named): this practice's root decides.
    for how in ({"args": ("--practice", pr)}, {"env": {"AGREEMENTS_PRACTICE": str(pr)}}):
        res = run_bin("verify", folder(other), *how.get("args", ()), env=how.get("env"))
        assert res.exit_code == 1, res.stdout + res.stderr
        assert res.stdout.startswith(f"not valid: {folder(other).name}: "), res.stdout
        assert re.search(r"^  FAIL  8 path \[01-client\.json\]: .*does not lead to the trusted root.* "
                         r"\[chain\.untrusted\]$", res.stdout, re.M), res.stdout
        assert f"(the practice's own, named with --practice or AGREEMENTS_PRACTICE), SHA-256 {fp}" in res.stdout
    # And its own agreement verifies against it.
    res = run_bin("verify", folder(pr), env={"AGREEMENTS_PRACTICE": str(pr)})
    assert res.exit_code == 0, res.stdout + res.stderr


def test_the_root_given_in_the_environment_is_trusted(other: Path, run_bin):
    res = run_bin("verify", folder(other), env={"AGREEMENTS_TRUST": str(other / "pki" / "root.pem")})
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "(given with --trust)" in res.stdout


@pytest.mark.parametrize("bad_id", [5, {"a": 1}, "../../../etc", "a/b"])
def test_a_pdf_whose_embedded_id_is_not_an_id_cannot_be_checked(pr: Path, run_bin, tmp_path: Path, bad_id):
    from weasyprint import HTML, Attachment

    manifest = {"format": "agreements-kit/manifest", "agreement": {"id": bad_id}}
    pdf = tmp_path / "odd.pdf"
    HTML(string="<p>hello</p>").write_pdf(pdf, attachments=[Attachment(string=json.dumps(manifest).encode(),
                                                                       name="manifest.json")])
    res = run_bin("verify", pdf, "--archive", pr / "signed", *trust_args(pr))
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
