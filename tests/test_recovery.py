"""Crashes around admission and the certificate of completion, and drafts edited before signing.

The fault-injection points (AGREEMENTS_FAULT) kill the signing process at the
named step; the next writer, whichever agreement it touches, must leave the
archive as if the interrupted step had completed or had never started.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import private_copy, refused, tree

from agreements_kit.authoring.render import Job, Renderer
from agreements_kit.authoring.spec import make_spec
from agreements_kit.formats.jsonio import canonical_json
from agreements_kit.signing.setup import init_practice
from agreements_kit.verification.trust import load_trust
from agreements_kit.verification.verify import verify_folder

PASS = "recovery-test-passphrase"  # the intake CA's
ROOT_PASS = "recovery-root-pass"
CLINICIAN_PASS = "recovery-clinician-pass"
LEE_PASS = "recovery-lee-pass"
ONE, TWO = "agr-rec-0001", "agr-rec-0002"


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    from agreements_kit.signing.pki import PKI

    root = tmp_path_factory.mktemp("recovery") / "practice"
    init_practice(root, name="Recovery Practice", jurisdiction="US", passphrase=ROOT_PASS.encode(),
                  intake_passphrase=PASS.encode(), clinician_passphrase=CLINICIAN_PASS.encode(),
                  therapists={"lee": ("Dr. Robin Lee", "PhD", "psychologist")})
    PKI(root / "pki").issue_clinician("lee", "Dr. Robin Lee", "Recovery Practice", CLINICIAN_PASS.encode(),
                                      LEE_PASS.encode())
    renderer = Renderer.load(root)
    for aid in (ONE, TWO):
        renderer.render_to(Job(make_spec(client="Jane Q. Doe", therapist="lee", id=aid), root / "drafts"))
    return root


@pytest.fixture
def pr(base: Path, tmp_path: Path) -> Path:
    return private_copy(base, tmp_path)


def sign_client(run_bin, pr: Path, aid: str, fault: str | None = None, name: str = "Jane Q. Doe"):
    env = {"AGREEMENTS_INTAKE_PASSPHRASE": PASS, **({"AGREEMENTS_FAULT": fault} if fault else {})}
    return run_bin("sign", aid, "--practice", pr, "--as", "client", "--name", name, "--initials", "JQD",
                   "--consent", "--agree", "--identity", "photo ID", "--checked-by", "Desk", env=env)


def sign_therapist(run_bin, pr: Path, aid: str, fault: str | None = None):
    env = {"AGREEMENTS_PASSPHRASE": LEE_PASS, **({"AGREEMENTS_FAULT": fault} if fault else {})}
    return run_bin("sign", aid, "--practice", pr, "--as", "therapist", env=env)


def verdict(pr: Path, aid: str):
    return verify_folder(pr / "signed" / aid, load_trust(pr / "pki" / "root.pem"),
                         ledger=pr / "signed" / "ledger.jsonl")


def test_crash_after_the_admission_is_logged_is_finished_by_the_next_writer(run_bin, pr: Path):
    res = sign_client(run_bin, pr, ONE, fault="admit-after-ledger")
    assert res.exit_code == -9
    assert not (pr / "signed" / ONE).exists()  # still in .work, but the ledger committed it
    assert sign_client(run_bin, pr, TWO).exit_code == 0  # another agreement's writer recovers ONE
    assert (pr / "signed" / ONE / "agreement.pdf").read_bytes() == (pr / "drafts" / ONE / "agreement.pdf").read_bytes()
    assert not list((pr / "signed" / ".work").glob("*.partial"))
    assert sign_client(run_bin, pr, ONE).exit_code == 0
    assert sign_therapist(run_bin, pr, ONE).exit_code == 0
    assert verdict(pr, ONE).status == "valid", verdict(pr, ONE).failures


def test_crash_before_the_admission_is_logged_leaves_nothing(run_bin, pr: Path):
    assert sign_client(run_bin, pr, ONE, fault="admit-before-ledger").exit_code == -9
    assert sign_client(run_bin, pr, TWO).exit_code == 0
    assert not (pr / "signed" / ONE).exists() and not list((pr / "signed" / ".work").glob("*.partial"))
    events = [json.loads(line)["event"] for line in (pr / "signed" / "ledger.jsonl").read_text().splitlines()
              if json.loads(line).get("agreement_id") == ONE]
    assert events == []  # no admission, and no one-time certificate: it is issued only after admission
    assert sign_client(run_bin, pr, ONE).exit_code == 0
    assert sign_therapist(run_bin, pr, ONE).exit_code == 0
    assert verdict(pr, ONE).status == "valid"


def test_crash_before_the_certificate_of_completion_is_finished_by_any_next_writer(run_bin, pr: Path):
    assert sign_client(run_bin, pr, ONE).exit_code == 0
    assert sign_therapist(run_bin, pr, ONE, fault="before-completion").exit_code == -9
    assert not (pr / "signed" / ONE / "completion.pdf").exists()
    # A render, which touches no signed agreement, takes the lock and finishes the job.
    res = run_bin("render", "--practice", pr, "--client", "John Roe", "--therapist", "lee")
    assert res.exit_code == 0, res.stderr
    assert (pr / "signed" / ONE / "completion.pdf").is_file()
    assert not list((pr / "signed" / ".work").glob("inflight-*"))


def test_a_draft_whose_manifest_was_edited_cannot_be_signed(run_bin, pr: Path):
    path = pr / "drafts" / ONE / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["agreement"]["client"]["name"] = manifest["inputs"]["client"] = "Mallory Other"
    path.write_bytes(canonical_json(manifest))  # document.sha256 untouched: the PDF still matches
    before = tree(pr)
    refused(sign_client(run_bin, pr, ONE, name="Mallory Other"), "does not match the manifest embedded")
    after = tree(pr)
    assert {k: v for k, v in after.items() if not k.startswith("signed/.lock")} == \
        {k: v for k, v in before.items() if not k.startswith("signed/.lock")}
