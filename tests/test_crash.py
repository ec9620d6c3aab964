"""A signing process killed mid-commit, a cut ledger line, and two signers at once.

``archive.py`` has fault-injection points: with ``AGREEMENTS_FAULT=before-ledger``
(pending files written, no ledger entry yet) or ``after-ledger`` (ledger entry
written, pending files not yet renamed) the process SIGKILLs itself there. After
each crash the archive must agree with its ledger, and the next writer must
finish (or undo) the interrupted commit.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from helpers import ledger_entries as ledger
from helpers import private_copy, refused, sha256_of

from agreements_kit.authoring.practice import load_practice
from agreements_kit.authoring.render import Job, Renderer
from agreements_kit.authoring.spec import make_spec
from agreements_kit.signing.pki import PKI
from agreements_kit.signing.renders import log_renders
from agreements_kit.signing.setup import init_practice
from agreements_kit.signing.sign import ClientSigning, sign_client

PRACTICE_PASS = "practice-pass-1"  # the intake CA's (client signatures)
ROOT_PASS = "root-pass-1"
CLINICIAN_PASS = "clinician-ca-pass-1"
LEE_PASS = "lee-key-pass-1"
CLIENT = "Jane Q. Doe"
ONE = "agr-crash-one"
TWO = "agr-crash-two"
ZEROS = "0" * 64
KILLED = -9

needs_openssl = pytest.mark.requires_tool("openssl")


# --------------------------------------------------------------------------- helpers


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def consistent(archive: Path) -> list[dict]:
    """Check the archive agrees with its ledger; returns the ledger entries.

    - the ledger is whole and chained;
    - no record, signature or PNG file exists without the ledger entry naming it with its hash;
    - every file a ledger entry commits is in place, or pending with the committed bytes
      (so that the next writer can finish the job);
    - every archived folder was logged by an 'archive' entry with its PDF's hash;
    - every record was signed with a certificate entered in the register (a 'certificate'
      entry) before the record's own entry; a one-time certificate, for its agreement.
    """
    entries = [e for e, _ in ledger(archive / "ledger.jsonl")]
    committed: dict[tuple[str, str], str] = {}
    registered: dict[str, dict] = {}
    for e in entries:
        if e["event"] == "certificate":
            registered[e["certificate_sha256"]] = e
        if e["event"] in ("sign", "void"):
            cert = registered.get(e["certificate_sha256"])
            assert cert is not None, f"seq {e['seq']}: signed with a certificate not in the register"
            if cert["role"] in ("client", "guardian"):
                assert (cert["agreement_id"], cert["role"]) == (e["agreement_id"], e["role"])
        for name, digest in (e.get("files") or {}).items():
            committed[(e["agreement_id"], name)] = digest
    archived = {e["agreement_id"]: e["pdf_sha256"] for e in entries if e["event"] == "archive"}
    for folder in archive.iterdir():
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        assert archived.get(folder.name) == sha256_of(folder / "agreement.pdf"), folder
        for f in folder.iterdir():
            if re.match(r"^\d\d-", f.name):
                assert committed.get((folder.name, f.name)) == sha256_of(f), f"{f} has no ledger entry"
    for (aid, name), digest in committed.items():
        final, pending = archive / aid / name, archive / aid / f".{name}.pending"
        assert ((final.exists() and sha256_of(final) == digest)
                or (pending.exists() and sha256_of(pending) == digest)), f"{aid}/{name} committed but lost"
    return entries


def sign_entries(entries: list[dict], agreement_id: str) -> list[dict]:
    return [e for e in entries if e["event"] == "sign" and e["agreement_id"] == agreement_id]


def events_of(entries: list[dict], agreement_id: str) -> list[str]:
    """The events about one agreement (its one-time certificates' register entries included)."""
    return [e["event"] for e in entries if e.get("agreement_id") == agreement_id]


def records(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("[0-9][0-9]-*.json"))


def pending(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(".*.pending"))


def client_args(practice: Path, ref: str = ONE) -> list:
    return ["sign", ref, "--practice", practice, "--as", "client", "--name", CLIENT, "--initials", "JQD",
            "--consent", "--agree", "--identity", "photo ID", "--checked-by", "Front desk"]


def openssl_ok(record: Path, root_pem: Path) -> bool:
    proc = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", f"{record}.p7s",
                           "-content", str(record), "-CAfile", str(root_pem), "-purpose", "any",
                           "-out", "/dev/null"], capture_output=True, text=True)
    return proc.returncode == 0


def client_env(**more: str) -> dict[str, str]:
    return {"AGREEMENTS_INTAKE_PASSPHRASE": PRACTICE_PASS, **more}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A practice with its PKI, lee's certificate, and two rendered (and logged) drafts."""
    root = tmp_path_factory.mktemp("crash-base") / "practice"
    init_practice(root, name="Test Practice", jurisdiction="US-NY", phone="(212) 555-0100",
                  therapists={"lee": ("Dr. Robin Lee", "PhD", "psychologist")}, passphrase=ROOT_PASS.encode(),
                  intake_passphrase=PRACTICE_PASS.encode(), clinician_passphrase=CLINICIAN_PASS.encode())
    practice = load_practice(root)
    PKI(root / "pki").issue_clinician("lee", "Dr. Robin Lee", practice.name, CLINICIAN_PASS.encode(),
                                      LEE_PASS.encode())
    renderer = Renderer.load(root)
    drafts = [renderer.render_to(Job(make_spec(client=CLIENT, therapist="lee", id=aid, date="2026-11-27"),
                                     practice.drafts)) for aid in (ONE, TWO)]
    log_renders(practice, drafts)
    return root


@pytest.fixture
def pr(base: Path, tmp_path: Path, monkeypatch) -> Path:
    return private_copy(base, tmp_path, monkeypatch)


def sign_as_client_in_process(pr: Path, ref: str = ONE):
    manifest = json.loads((pr / "drafts" / ref / "manifest.json").read_text())
    initials = {c["id"]: "JQD" for c in manifest["clauses"] if c["initials"]}
    return sign_client(load_practice(pr), ref, ClientSigning(
        name=CLIENT, consent=True, initials=initials, intent=True, identity_method="photo ID",
        identity_checked_by="Front desk"), PRACTICE_PASS.encode())


# --------------------------------------------------------------------------- killed mid-commit


@needs_openssl
def test_killed_before_the_ledger_entry_signs_again_cleanly(run_bin, pr: Path):
    archive, folder = pr / "signed", pr / "signed" / ONE
    ledger_before = (archive / "ledger.jsonl").read_bytes()
    res = run_bin(*client_args(pr), env=client_env(AGREEMENTS_FAULT="before-ledger"))
    assert res.exit_code == KILLED, (res.exit_code, res.stderr)

    entries = consistent(archive)
    assert sign_entries(entries, ONE) == []  # not committed
    assert records(folder) == []
    assert (archive / "ledger.jsonl").read_bytes().startswith(ledger_before)
    assert pending(folder) == [".01-client.copy.pdf.pending", ".01-client.json.p7s.pending", ".01-client.json.pending"]

    res = run_bin(*client_args(pr), env=client_env())
    assert res.exit_code == 0, res.stderr
    entries = consistent(archive)
    assert records(folder) == ["01-client.json"]
    assert sorted(p.name for p in folder.glob("[0-9][0-9]-*")) == ["01-client.copy.pdf", "01-client.json",
                                                                  "01-client.json.p7s"]
    assert pending(folder) == []
    assert len(sign_entries(entries, ONE)) == 1
    # The killed process had issued (and registered) a one-time certificate; the retry issues its own.
    assert events_of(entries, ONE) == ["render", "archive", "certificate", "certificate", "sign"]
    certificates = [e for e in entries if e["event"] == "certificate" and e.get("agreement_id") == ONE]
    assert certificates[0]["certificate_sha256"] != certificates[1]["certificate_sha256"]
    assert sign_entries(entries, ONE)[0]["certificate_sha256"] == certificates[1]["certificate_sha256"]
    assert openssl_ok(folder / "01-client.json", pr / "pki" / "root.pem")
    rec = json.loads((folder / "01-client.json").read_bytes())
    assert rec["sequence"] == 1
    assert rec["ledger_head"] == sign_entries(entries, ONE)[0]["prev"]


@needs_openssl
def test_killed_after_the_ledger_entry_is_finished_by_the_next_writer(run_bin, cli, monkeypatch, pr: Path):
    archive, folder = pr / "signed", pr / "signed" / ONE
    res = run_bin(*client_args(pr), env=client_env(AGREEMENTS_FAULT="after-ledger"))
    assert res.exit_code == KILLED, (res.exit_code, res.stderr)

    entries = consistent(archive)
    committed = sign_entries(entries, ONE)
    assert len(committed) == 1  # the signature WAS made
    assert set(committed[0]["files"]) == {"01-client.json", "01-client.json.p7s", "01-client.copy.pdf"}
    assert records(folder) == []  # ...but its files are still pending
    assert pending(folder) == [".01-client.copy.pdf.pending", ".01-client.json.p7s.pending", ".01-client.json.pending"]
    ledger_after_crash = (archive / "ledger.jsonl").read_bytes()

    res = run_bin(*client_args(pr), env=client_env())
    refused(res, "already signed")
    assert (archive / "ledger.jsonl").read_bytes() == ledger_after_crash  # nothing new committed
    entries = consistent(archive)
    assert pending(folder) == []
    assert records(folder) == ["01-client.json"]
    for name, digest in committed[0]["files"].items():
        assert sha256_of(folder / name) == digest
    assert openssl_ok(folder / "01-client.json", pr / "pki" / "root.pem")

    monkeypatch.setenv("AGREEMENTS_PASSPHRASE", LEE_PASS)
    res = cli("sign", ONE, "--practice", pr, "--as", "therapist")
    assert res.exit_code == 0, res.stderr
    entries = consistent(archive)
    assert [e["role"] for e in sign_entries(entries, ONE)] == ["client", "therapist"]
    assert records(folder) == ["01-client.json", "02-therapist.json"]
    assert openssl_ok(folder / "02-therapist.json", pr / "pki" / "root.pem")
    assert (folder / "completion.pdf").is_file()


def test_countersignature_killed_after_the_ledger_still_gets_its_completion(run_bin, pr: Path):
    sign_as_client_in_process(pr)
    folder = pr / "signed" / ONE
    therapist = ["sign", ONE, "--practice", pr, "--as", "therapist"]
    res = run_bin(*therapist, env={"AGREEMENTS_PASSPHRASE": LEE_PASS, "AGREEMENTS_FAULT": "after-ledger"})
    assert res.exit_code == KILLED, (res.exit_code, res.stderr)
    res = run_bin(*therapist, env={"AGREEMENTS_PASSPHRASE": LEE_PASS})
    refused(res, "already countersigned")  # right: the countersignature was committed
    consistent(pr / "signed")
    assert records(folder) == ["01-client.json", "02-therapist.json"]
    assert (folder / "completion.pdf").is_file()


def test_next_writer_on_another_agreement_finishes_an_interrupted_commit(run_bin, pr: Path):
    folder = pr / "signed" / ONE
    res = run_bin(*client_args(pr, ONE), env=client_env(AGREEMENTS_FAULT="after-ledger"))
    assert res.exit_code == KILLED, (res.exit_code, res.stderr)
    res = run_bin(*client_args(pr, TWO), env=client_env())
    assert res.exit_code == 0, res.stderr
    consistent(pr / "signed")
    assert pending(folder) == []
    assert records(folder) == ["01-client.json"]


# --------------------------------------------------------------------------- a cut ledger line


@needs_openssl
@pytest.mark.parametrize("after_crash", [False, True], ids=["partial-line", "partial-line-and-pending-files"])
def test_partial_ledger_line_is_dropped_by_the_next_sign(run_bin, pr: Path, after_crash: bool):
    archive, folder = pr / "signed", pr / "signed" / ONE
    if after_crash:
        res = run_bin(*client_args(pr), env=client_env(AGREEMENTS_FAULT="before-ledger"))
        assert res.exit_code == KILLED
        assert pending(folder)
    whole = (archive / "ledger.jsonl").read_bytes()
    last_line = whole.split(b"\n")[-2]
    with open(archive / "ledger.jsonl", "ab") as fh:
        fh.write(b'{"partial')

    res = run_bin(*client_args(pr), env=client_env())
    assert res.exit_code == 0, res.stderr
    data = (archive / "ledger.jsonl").read_bytes()
    assert b"partial" not in data
    assert data.startswith(whole)  # the committed lines are untouched
    entries = consistent(archive)
    sign = sign_entries(entries, ONE)
    assert len(sign) == 1
    new_lines = data[len(whole):].split(b"\n")[:-1]
    # (after the crash, the archive entry and the one-time certificate of the killed process are whole lines)
    assert [json.loads(ln)["event"] for ln in new_lines] == (
        ["certificate", "sign"] if after_crash else ["archive", "certificate", "sign"])
    assert json.loads(new_lines[0])["prev"] == sha256(last_line)  # chained to the last whole line
    assert pending(folder) == []
    assert records(folder) == ["01-client.json"]
    assert json.loads((folder / "01-client.json").read_bytes())["ledger_head"] == sign[0]["prev"]
    assert openssl_ok(folder / "01-client.json", pr / "pki" / "root.pem")


# --------------------------------------------------------------------------- two signers at once


def _popen(agreements_bin: str, args: list, cwd: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("AGREEMENTS_PRACTICE", "AGREEMENTS_FAULT")}
    env["AGREEMENTS_INTAKE_PASSPHRASE"] = PRACTICE_PASS
    return subprocess.Popen([agreements_bin, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=cwd)


@needs_openssl
def test_two_processes_sign_two_agreements_at_once(agreements_bin, pr: Path, tmp_path: Path):
    procs = [_popen(agreements_bin, client_args(pr, ref), tmp_path) for ref in (ONE, TWO)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    entries = consistent(pr / "signed")
    assert sorted(e["agreement_id"] for e in entries if e["event"] == "sign") == [ONE, TWO]
    assert sorted(e["agreement_id"] for e in entries if e["event"] == "archive") == [ONE, TWO]
    for ref in (ONE, TWO):
        folder = pr / "signed" / ref
        assert records(folder) == ["01-client.json"]
        assert openssl_ok(folder / "01-client.json", pr / "pki" / "root.pem")
        rec = json.loads((folder / "01-client.json").read_bytes())
        assert rec["ledger_head"] == sign_entries(entries, ref)[0]["prev"]


def test_two_processes_sign_the_same_agreement_at_once(agreements_bin, pr: Path, tmp_path: Path):
    procs = [_popen(agreements_bin, client_args(pr, ref), tmp_path) for ref in (ONE, pr / "drafts" / ONE)]
    outs = [p.communicate(timeout=120) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    loser = next(err for p, (_, err) in zip(procs, outs, strict=True) if p.returncode == 2)
    assert loser.startswith("error: ") and "already signed" in loser and len(loser.splitlines()) == 1
    entries = consistent(pr / "signed")
    assert len(sign_entries(entries, ONE)) == 1
    assert events_of(entries, ONE) == ["render", "archive", "certificate", "sign"]  # the loser issued nothing
    assert records(pr / "signed" / ONE) == ["01-client.json"]


def test_a_private_folder_makes_its_missing_parents_private_too(tmp_path):
    import stat as _stat

    from agreements_kit.store.files import make_private_dir

    before = os.umask(0o022)  # the usual umask: mkdir(parents=True) would leave "a" and "a/b" 0755
    try:
        make_private_dir(tmp_path / "a" / "b" / "c")
    finally:
        os.umask(before)
    for part in ("a", "a/b", "a/b/c"):
        assert _stat.S_IMODE(os.stat(tmp_path / part).st_mode) == 0o700, part
