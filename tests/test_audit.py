"""Auditing: ``agreements audit`` over a whole archive, ledger tampering, the report,
``agreements reproduce``, and the README's OpenSSL-only commands.

One signed practice is built once with the library (four complete agreements, one
signed by the client only, one voided, and one draft never archived); every test
that tampers works on its own copy. The audit must exit 0 on the untouched archive
(incomplete and voided agreements are listed, not problems), and 1 with the step and
reason code of each tamper, never crash or hang on one agreement it cannot parse. It
runs the very steps ``agreements verify`` runs, so both give each agreement the same
verdict. The trust root is named from outside the archive (``--trust``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import clean_environ, jcs_line, private_copy, root_fingerprint, trust_args

from agreements_kit.authoring.practice import load_practice
from agreements_kit.authoring.render import Job, Renderer
from agreements_kit.authoring.spec import make_spec
from agreements_kit.formats import record as record_format
from agreements_kit.resources import clauses_dir
from agreements_kit.signing import cms
from agreements_kit.signing import sign as sign_module
from agreements_kit.signing.pki import PKI, load_cert, load_key, utcnow
from agreements_kit.signing.renders import log_renders
from agreements_kit.signing.setup import init_practice
from agreements_kit.signing.sign import ClientSigning, sign_client, sign_therapist, void
from agreements_kit.verification.audit import _ARCHIVE_WIDE
from agreements_kit.verification.ledgerview import build_index
from agreements_kit.verification.steps import STEPS
from agreements_kit.verification.trust import load_trust
from agreements_kit.verification.verify import Verifier, verify_folder

PASS = b"practice-pass-1"  # the root's
INTAKE_PASS = b"intake-pass-1"
CLINICIAN_PASS = b"clinician-ca-pass-1"
LEE_PASS = b"lee-key-pass-1"
ORTIZ_PASS = b"ortiz-key-pass-1"
PRACTICE_NAME = "Test Practice"
CLIENT = "Jane Q. Doe"
COMPLETE = ("agr-aud-a", "agr-aud-b", "agr-aud-c", "agr-aud-d")
A, B, C, D = COMPLETE
HALF = "agr-aud-half"  # signed by the client only
VOIDED = "agr-aud-void"
DRAFT = "agr-aud-draft"  # rendered and logged, never signed
ARCHIVED = (*COMPLETE, HALF, VOIDED)
CLIENT_REC = "01-client.json"
THERAPIST_REC = "02-therapist.json"



# --------------------------------------------------------------------------- the signed practice


@dataclass(frozen=True)
class Base:
    root: Path
    t0: dt.datetime


def client_signing(draft: Path) -> ClientSigning:
    manifest = json.loads((draft / "manifest.json").read_text())
    return ClientSigning(name=CLIENT, consent=True, initials={c["id"]: "JQD" for c in manifest["clauses"]
                                                              if c["initials"]},
                         intent=True, identity_method="photo ID", identity_checked_by="Front desk")


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Base:
    root = tmp_path_factory.mktemp("audit") / "practice"
    t0 = utcnow() - dt.timedelta(seconds=90)
    init_practice(root, name=PRACTICE_NAME, jurisdiction="US-NY", phone="(212) 555-0100",
                  therapists={"lee": ("Dr. Robin Lee", "PhD", "psychologist"), "ortiz": ("Sam Ortiz", "LCSW", "lcsw")})
    PKI(root / "pki").create(PRACTICE_NAME, PASS, INTAKE_PASS, CLINICIAN_PASS, now=t0 - dt.timedelta(hours=1))
    practice = load_practice(root)
    PKI(root / "pki").issue_clinician("lee", "Dr. Robin Lee", practice.name, CLINICIAN_PASS, LEE_PASS,
                                      now=t0 - dt.timedelta(hours=1))
    renderer = Renderer.load(root)
    drafts = [renderer.render_to(Job(make_spec(client=CLIENT, therapist="lee", id=aid, date=t0.date()),
                                     practice.drafts)) for aid in (*ARCHIVED, DRAFT)]
    log_renders(practice, drafts)
    for i, (aid, draft) in enumerate(zip(ARCHIVED, drafts[:len(ARCHIVED)], strict=True)):
        sign_client(practice, aid, client_signing(draft), INTAKE_PASS, now=t0 + dt.timedelta(seconds=i))
    for i, aid in enumerate(COMPLETE):
        sign_therapist(practice, aid, LEE_PASS, now=t0 + dt.timedelta(seconds=10 + i))
    void(practice, VOIDED, "Replaced by a newer agreement", LEE_PASS, now=t0 + dt.timedelta(seconds=20))
    return Base(root, t0)


@pytest.fixture
def pr(base: Base, tmp_path: Path, monkeypatch) -> Path:
    return private_copy(base.root, tmp_path, monkeypatch)


# --------------------------------------------------------------------------- helpers


def rewrite(path: Path, data: bytes) -> None:
    os.chmod(path, 0o600)
    path.write_bytes(data)


def flip(path: Path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0x01
    rewrite(path, bytes(data))


def ledger_lines(root: Path) -> list[bytes]:
    return (root / "signed" / "ledger.jsonl").read_bytes().split(b"\n")[:-1]


def write_ledger(root: Path, lines: list[bytes]) -> None:
    rewrite(root / "signed" / "ledger.jsonl", b"".join(line + b"\n" for line in lines))


def ledger_index(lines: list[bytes], aid: str, event: str, record: str | None = None) -> int:
    for i, line in enumerate(lines):
        e = json.loads(line)
        if e.get("agreement_id") == aid and e["event"] == event and (record is None or e.get("record") == record):
            return i
    raise AssertionError(f"no {event} entry for {aid} {record or ''}")


def audit(cli, root: Path, *args):
    """``agreements audit ROOT/signed --trust ROOT/pki/root.pem ARGS``."""
    res = cli("audit", root / "signed", *trust_args(root), *args)
    assert "Traceback" not in res.stdout + res.stderr, res.stdout + res.stderr
    return res


def audit_json(cli, root: Path) -> dict:
    res = audit(cli, root, "--json")
    out = json.loads(res.stdout)
    assert res.exit_code == (0 if out["summary"]["ok"] else 1)
    return out


def bypass_credential_checks(monkeypatch) -> None:
    """Let sign_therapist use a revoked or expired certificate, as a forger with the key could."""
    def credentials(pki: PKI, tid: str, passphrase: bytes, now: dt.datetime):
        cert = load_cert(pki.therapist_cert(tid), tid)
        return cert, load_key(pki.therapist_key(tid), passphrase, tid), [pki.issuer_of(cert)]

    monkeypatch.setattr(sign_module, "_therapist_credentials", credentials)
    # pyHanko will not sign a copy with such a certificate; the forger writes none (its ledger entry says so).
    monkeypatch.setattr(sign_module, "signed_copy", lambda *a, **k: {})


# --------------------------------------------------------------------------- the untouched archive


def test_audit_untouched_archive(cli, pr: Path):
    res = audit(cli, pr)
    assert res.exit_code == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    entries = len(ledger_lines(pr))
    assert lines[0] == (f"ok: 6 agreements: 4 valid, 0 invalid, 1 incomplete, 1 voided; "
                        f"ledger {entries} entries, 0 problem(s)")
    # The root it trusted, by its fingerprint, to compare with the one the practice published.
    fp = root_fingerprint(pr / "pki" / "root.pem")
    assert lines[1] == f"  trust root: {pr / 'pki' / 'root.pem'} (given with --trust), SHA-256 {fp}"
    # Incomplete and voided agreements are listed (problems first), valid ones are not; no failures.
    assert lines[2].startswith(f"  incomplete: {HALF} is not fully signed (signed by {CLIENT} (client) on ")
    assert lines[3] == f"  voided: {VOIDED} was voided and is no longer in effect"
    assert lines[4:] == [], res.stdout  # valid ones are not listed


def test_audit_json_summary(cli, pr: Path):
    out = audit_json(cli, pr)
    s = out["summary"]
    assert s["ok"] is True
    assert s["agreements"] == 6
    assert s["counts"] == {"invalid": 0, "incomplete": 1, "voided": 1, "valid": 4}
    assert s["ledger"] == {"entries": len(ledger_lines(pr)), "problems": [], "codes": []}
    assert s["missing_from_archive"] == []
    assert s["drafts_not_archived"] == 1  # DRAFT
    rows = out["agreements"]
    assert [r["id"] for r in rows] == [HALF, VOIDED, *COMPLETE]  # problems first, then by id
    assert [r["status"] for r in rows] == ["incomplete", "voided"] + ["valid"] * 4
    assert all(r["failures"] == [] for r in rows)
    assert [signer["role"] for signer in rows[2]["signers"]] == ["client", "therapist"]


def verify_verdicts(pr: Path) -> dict[str, tuple[str, list[tuple[str, str, str]]]]:
    """agreement id -> (status, sorted (step, code, subject) of each failure), as ``verify`` finds them.

    ``verify`` of one agreement also fails it for the ledger's archive-wide problems, which
    audit lists once, in its summary; leaving those out, the failures must be audit's, and
    the status the one the same Verifier gives with them left out."""
    trust = load_trust(pr / "pki" / "root.pem")
    ledger = pr / "signed" / "ledger.jsonl"
    verifier = Verifier(trust, build_index(str(ledger)), leave_out=_ARCHIVE_WIDE)
    out = {}
    for folder in sorted((pr / "signed").glob("agr-*")):
        v = verify_folder(folder, trust, ledger=ledger)
        failures = sorted((c.name, c.code, c.subject) for c in v.failures
                          if not (c.name == "ledger" and not c.subject and c.code in _ARCHIVE_WIDE))
        w = verifier.verify(folder)
        assert failures == sorted((c.name, c.code, c.subject) for c in w.failures)
        assert v.status == w.status or (w.status != "invalid" and v.status == "invalid")
        out[folder.name] = (w.status, failures)
    return out


def audit_verdicts(out: dict) -> dict[str, tuple[str, list[tuple[str, str, str]]]]:
    return {r["id"]: (r["status"], sorted((f["name"], f["code"], f["subject"]) for f in r["failures"]))
            for r in out["agreements"]}


def test_audit_agrees_with_verify_on_the_untouched_archive(cli, pr: Path):
    """Audit and verify run the same steps: every agreement gets the same status and no failure."""
    verdicts = verify_verdicts(pr)
    assert verdicts == audit_verdicts(audit_json(cli, pr))
    assert {aid: status for aid, (status, _) in verdicts.items()} == {
        A: "valid", B: "valid", C: "valid", D: "valid", HALF: "incomplete", VOIDED: "voided"}


def test_audit_revocation_after_the_signatures_is_no_problem(cli, pr: Path):
    store = PKI(pr / "pki")
    store.revoke(load_cert(store.therapist_cert("lee"), "lee"), CLINICIAN_PASS)
    res = audit(cli, pr)
    assert res.exit_code == 0, res.stdout
    assert res.stdout.startswith("ok: 6 agreements: 4 valid, 0 invalid")


# --------------------------------------------------------------------------- each tamper: exit 1 with the reason


def t_pdf_flipped(pr: Path, mp, base: Base) -> str:
    flip(pr / "signed" / C / "agreement.pdf", 2000)
    return C


def t_manifest_edited(pr: Path, mp, base: Base) -> str:
    path = pr / "signed" / C / "manifest.json"
    rewrite(path, path.read_bytes().replace(CLIENT.encode(), b"John Q. Doe"))
    return C


def t_record_edited(pr: Path, mp, base: Base) -> str:
    path = pr / "signed" / C / CLIENT_REC
    rec = json.loads(path.read_bytes())
    rec["identity"]["method"] = "not checked"
    rewrite(path, record_format.encode(rec))
    return C


def t_record_moved(pr: Path, mp, base: Base) -> str:
    for suffix in ("", ".p7s"):
        os.replace(pr / "signed" / A / f"{THERAPIST_REC}{suffix}", pr / "signed" / C / f"{THERAPIST_REC}{suffix}")
    return C  # (A is then missing its therapist record too)


def t_other_ca(pr: Path, mp, base: Base) -> str:
    other = PKI(pr.parent / "other-pki")
    other.create(PRACTICE_NAME, b"other-pass-1", b"other-intake-1", b"other-clinician-1")
    path = pr / "signed" / C / THERAPIST_REC
    cert = other.issue_clinician("lee", "Dr. Robin Lee", PRACTICE_NAME, b"other-clinician-1", b"forger-pass-1",
                                 now=utcnow() - dt.timedelta(hours=1))
    key = load_key(other.therapist_key("lee"), b"forger-pass-1", "x")
    rewrite(Path(f"{path}.p7s"), cms.sign_detached(path.read_bytes(), cert, key))
    return C


def t_revoked(pr: Path, mp, base: Base) -> str:
    store = PKI(pr / "pki")
    # after the fixture's signatures (the last at t0 + 20 s), before this one
    store.revoke(load_cert(store.therapist_cert("lee"), "lee"), CLINICIAN_PASS, now=base.t0 + dt.timedelta(seconds=30))
    bypass_credential_checks(mp)
    sign_therapist(load_practice(pr), HALF, LEE_PASS, completion=False)
    return HALF


def t_expired(pr: Path, mp, base: Base) -> str:
    PKI(pr / "pki").issue_clinician("ortiz", "Sam Ortiz", PRACTICE_NAME, CLINICIAN_PASS, ORTIZ_PASS,
                                    now=utcnow() - dt.timedelta(days=3), days=1)
    bypass_credential_checks(mp)
    sign_therapist(load_practice(pr), HALF, ORTIZ_PASS, therapist_id="ortiz", completion=False)
    return HALF


def t_future(pr: Path, mp, base: Base) -> str:
    sign_therapist(load_practice(pr), HALF, LEE_PASS, now=utcnow() + dt.timedelta(days=2), completion=False)
    return HALF


def t_client_missing(pr: Path, mp, base: Base) -> str:
    for suffix in ("", ".p7s"):
        (pr / "signed" / C / f"{CLIENT_REC}{suffix}").unlink()
    return C


def t_signer_duplicated(pr: Path, mp, base: Base) -> str:
    folder = pr / "signed" / C
    for suffix in ("", ".p7s"):
        shutil.copyfile(folder / f"{THERAPIST_REC}{suffix}", folder / f"03-therapist.json{suffix}")
    return C


AGREEMENT_TAMPERS = {  # case: (tamper, step, reason code, words of its sentence)
    "pdf-flipped": (t_pdf_flipped, "pdf", "pdf.hash-mismatch", "changed, truncated or extended"),
    "manifest-edited": (t_manifest_edited, "records", "records.wrong-manifest", "signs a different manifest.json"),
    "record-edited": (t_record_edited, "signature", "cms.digest", "changed after it was signed"),
    "record-moved": (t_record_moved, "records", "records.wrong-agreement", "moved here from another agreement"),
    "other-ca": (t_other_ca, "signature", "certificate.not-named", "not the one the record names"),
    "revoked": (t_revoked, "revocation", "revocation.revoked", "before this signature"),
    "expired": (t_expired, "path", "validity.expired", "not valid at the signing time"),
    "future": (t_future, "order", "time.future", "in the future"),
    "client-missing": (t_client_missing, "ledger", "ledger.record-erased", "missing from the archive"),
    "signer-duplicated": (t_signer_duplicated, "order", "order.duplicate-signer", "signed more than once"),
}


@pytest.mark.parametrize("case", list(AGREEMENT_TAMPERS))
def test_audit_tampered_agreement(cli, pr: Path, base: Base, monkeypatch, case: str):
    tamper, name, code, words = AGREEMENT_TAMPERS[case]
    target = tamper(pr, monkeypatch, base)
    res = audit(cli, pr)
    assert res.exit_code == 1, res.stdout + res.stderr
    assert res.stdout.startswith("PROBLEMS: 6 agreements: "), res.stdout
    lines = res.stdout.splitlines()
    # Invalid agreements come first (before the incomplete and voided ones), each with its failures.
    headlines = [line for line in lines if re.match(r"  (not valid|incomplete|voided|valid): ", line)]
    assert f"  not valid: {target}: " in "\n".join(headlines), res.stdout
    invalid = [i for i, line in enumerate(headlines) if line.startswith("  not valid: ")]
    assert invalid == list(range(len(invalid))), res.stdout
    step = STEPS.index(name) + 1
    assert any(re.match(rf"    +{step} {re.escape(name)}( \[[^]]+\])?: .*{re.escape(words)}.* \[{re.escape(code)}\]$",
                        line) for line in lines), res.stdout
    out = audit_json(cli, pr)
    row = next(r for r in out["agreements"] if r["id"] == target)
    assert row["status"] == "invalid"
    assert any(f["name"] == name and f["code"] == code and f["step"] == step and words in f["detail"]
               for f in row["failures"]), row["failures"]
    assert out["summary"]["ok"] is False
    # Every other agreement keeps its status (the moved record also leaves A without a therapist record).
    expected = {A: "valid", B: "valid", C: "valid", D: "valid", HALF: "incomplete", VOIDED: "voided", target: "invalid"}
    if case == "record-moved":
        expected[A] = "invalid"
    assert {r["id"]: r["status"] for r in out["agreements"]} == expected
    # And verify says the same of every agreement, failure for failure.
    assert audit_verdicts(out) == verify_verdicts(pr)


def damaged_certificate(pr: Path) -> None:
    """One bit of the therapist's certificate inside C's signature file: its X.509 version becomes invalid."""
    p7s = pr / "signed" / C / f"{THERAPIST_REC}.p7s"
    flip(p7s, p7s.read_bytes().index(b"\xa0\x03\x02\x01\x02") + 4)


def wrong_typed_record(pr: Path) -> None:
    path = pr / "signed" / C / CLIENT_REC
    rec = json.loads(path.read_bytes())
    rec["document"] = "tampered"
    rewrite(path, record_format.encode(rec))


def audit_in_subprocess(agreements_bin: str, root: Path, timeout: float = 6) -> subprocess.CompletedProcess:
    """``agreements audit`` in its own session, killed (the session only) if it outlives ``timeout``."""
    env = clean_environ()
    proc = subprocess.Popen([agreements_bin, "audit", str(root / "signed"), *map(str, trust_args(root))],
                            stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"agreements audit still running after {timeout} s (it hangs)\n{err[-2000:]}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_audit_survives_a_damaged_certificate(pr: Path, agreements_bin: str):
    """In a subprocess with a time limit: a worker exception that cannot be unpickled (cryptography's
    InvalidVersion) hung the pool before 6ceadf5."""
    damaged_certificate(pr)
    proc = audit_in_subprocess(agreements_bin, pr)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout.startswith("PROBLEMS: 6 agreements: 3 valid, 1 invalid, 1 incomplete, 1 voided"), proc.stdout
    assert f"  not valid: {C}: " in proc.stdout


def test_audit_survives_a_wrong_typed_record(cli, pr: Path):
    wrong_typed_record(pr)
    res = audit(cli, pr)
    assert res.exit_code == 1, res.stdout + res.stderr
    assert res.stdout.startswith("PROBLEMS: 6 agreements: 3 valid, 1 invalid, 1 incomplete, 1 voided"), res.stdout
    assert f"  not valid: {C}: " in res.stdout


# --------------------------------------------------------------------------- the ledger


def l_deleted(pr: Path) -> None:
    lines = ledger_lines(pr)
    i = ledger_index(lines, B, "sign", CLIENT_REC)
    write_ledger(pr, lines[:i] + lines[i + 1:])


def l_edited(pr: Path) -> None:
    lines = ledger_lines(pr)
    i = ledger_index(lines, B, "archive")
    entry = json.loads(lines[i])
    entry["time"] = "2020-01-01T00:00:00Z"
    lines[i] = jcs_line(entry)
    write_ledger(pr, lines)


def l_reordered(pr: Path) -> None:
    lines = ledger_lines(pr)
    i = ledger_index(lines, B, "sign", CLIENT_REC)
    lines[i], lines[i + 1] = lines[i + 1], lines[i]
    write_ledger(pr, lines)


def l_inserted(pr: Path) -> None:
    lines = ledger_lines(pr)
    i = ledger_index(lines, B, "sign", CLIENT_REC)
    lines.insert(i, lines[i - 1])  # a copy of an earlier line
    write_ledger(pr, lines)


LEDGER_TAMPERS = {  # case: (tamper, reason code, words of its sentence)
    "deleted": (l_deleted, "ledger.deleted", "ledger lines were deleted"),
    "edited": (l_edited, "ledger.chain", "was edited"),
    "reordered": (l_reordered, "ledger.reordered", "ledger lines were reordered"),
    "inserted": (l_inserted, "ledger.duplicate", "inserted"),
}


@pytest.mark.parametrize("case", list(LEDGER_TAMPERS))
def test_audit_ledger_tampered(cli, pr: Path, case: str):
    tamper, code, words = LEDGER_TAMPERS[case]
    tamper(pr)
    res = audit(cli, pr)
    assert res.exit_code == 1, res.stdout + res.stderr
    assert re.match(r"PROBLEMS: 6 agreements: .*; ledger \d+ entries, [1-9]\d* problem\(s\)$",
                    res.stdout.splitlines()[0]), res.stdout
    assert any(line.startswith("  ledger: ") and words in line for line in res.stdout.splitlines()), res.stdout
    out = audit_json(cli, pr)
    ledger = out["summary"]["ledger"]
    assert code in ledger["codes"] and any(words in p for p in ledger["problems"]), out["summary"]
    assert len(ledger["codes"]) == len(ledger["problems"])
    assert out["summary"]["ok"] is False
    # Reported once, in the summary: not again in every agreement's verdict, whose status stays
    # what its own checks make it.
    assert not [f for r in out["agreements"] for f in r["failures"] if f["code"] == code]
    statuses = {r["id"]: r["status"] for r in out["agreements"]}
    assert {aid: statuses[aid] for aid in (A, C, D, HALF, VOIDED)} == {
        A: "valid", C: "valid", D: "valid", HALF: "incomplete", VOIDED: "voided"}
    assert audit_verdicts(out) == verify_verdicts(pr)
    # And `agreements verify` of the affected agreement says the same.
    v = cli("verify", *trust_args(pr), pr / "signed" / B)
    assert v.exit_code == 1, v.stdout
    assert any(re.match(rf"  FAIL 12 ledger: .*{re.escape(words)}.* \[{re.escape(code)}\]$", line)
               for line in v.stdout.splitlines()), v.stdout


def test_audit_ledger_line_deleted_names_the_record(cli, pr: Path):
    l_deleted(pr)
    out = audit_json(cli, pr)
    row = next(r for r in out["agreements"] if r["id"] == B)
    assert row["status"] == "invalid"
    assert any(f["name"] == "ledger" and f["subject"] == CLIENT_REC and f["code"] == "ledger.unlogged-record"
               and "no entry for this record" in f["detail"] for f in row["failures"]), row["failures"]


def test_audit_last_ledger_line_edited(cli, pr: Path):
    lines = ledger_lines(pr)
    entry = json.loads(lines[-1])
    assert (entry["event"], entry["agreement_id"]) == ("void", VOIDED)
    entry["pdf_sha256"] = hashlib.sha256(b"another pdf").hexdigest()
    entry["role"] = "client"
    lines[-1] = jcs_line(entry)
    write_ledger(pr, lines)
    res = audit(cli, pr)
    assert res.exit_code == 1, res.stdout
    out = audit_json(cli, pr)
    assert "ledger.chain" not in out["summary"]["ledger"]["codes"]  # the last line: nothing chains to it
    row = next(r for r in out["agreements"] if r["id"] == VOIDED)
    assert "ledger.entry-differs" in {f["code"] for f in row["failures"]}, row["failures"]


def test_audit_ledger_entry_without_folder(cli, pr: Path):
    shutil.rmtree(pr / "signed" / D)
    res = audit(cli, pr)
    assert res.exit_code == 1, res.stdout
    assert res.stdout.startswith("PROBLEMS: 5 agreements: 3 valid, 0 invalid, 1 incomplete, 1 voided"), res.stdout
    assert f"  missing: {D} is in the ledger but not in the archive" in res.stdout.splitlines()
    out = audit_json(cli, pr)
    assert out["summary"]["missing_from_archive"] == [D]


def test_audit_archived_folder_not_in_the_ledger(cli, pr: Path):
    """DRAFT is signed into the archive, and the ledger lines that recorded it are cut off."""
    before = (pr / "signed" / "ledger.jsonl").read_bytes()
    practice = load_practice(pr)
    sign_client(practice, DRAFT, client_signing(pr / "drafts" / DRAFT), INTAKE_PASS)
    assert (pr / "signed" / DRAFT / CLIENT_REC).exists()
    rewrite(pr / "signed" / "ledger.jsonl", before)
    res = audit(cli, pr)
    assert res.exit_code == 1, res.stdout
    assert res.stdout.startswith("PROBLEMS: 7 agreements: 4 valid, 1 invalid"), res.stdout
    out = audit_json(cli, pr)
    assert out["summary"]["ledger"]["problems"] == []  # the chain itself is intact
    row = next(r for r in out["agreements"] if r["id"] == DRAFT)
    assert row["status"] == "invalid"
    codes = {f["code"] for f in row["failures"]}
    assert {"ledger.not-archived", "ledger.unlogged-record"} <= codes, row["failures"]
    # The one-time certificate was entered in the register in the lines cut off, too.
    assert "register.unregistered" in codes, row["failures"]


def test_audit_folder_that_is_not_an_agreement(cli, pr: Path):
    junk = pr / "signed" / "agr-aud-junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("not an agreement\n")
    res = audit(cli, pr)
    assert res.exit_code == 1, res.stdout
    assert "  not valid: agr-aud-junk: " in res.stdout
    assert "no manifest.json" in res.stdout


def test_audit_without_a_trusted_root_is_not_verified(cli, tmp_path: Path):
    archive = tmp_path / "signed"
    archive.mkdir()
    res = cli("audit", archive, "--practice", tmp_path)  # a practice folder with no pki/root.pem
    assert res.exit_code == 1, res.stdout + res.stderr
    assert res.stdout == ""
    assert res.stderr.startswith("error: not verified: no trusted root: give --trust ROOT.pem or --trust-sha256 HEX")


def test_audit_does_not_trust_the_root_beside_the_archive(cli, pr: Path):
    """pki/root.pem beside signed/ proves nothing (anyone can put a root there): exit 1, naming its fingerprint."""
    res = cli("audit", pr / "signed")
    assert res.exit_code == 1, res.stdout + res.stderr
    assert res.stdout == ""
    fp = root_fingerprint(pr / "pki" / "root.pem")
    assert res.stderr.startswith("error: not verified: no trusted root. "), res.stderr
    assert f"its SHA-256 is {fp}" in res.stderr and f"--trust-sha256 {fp}" in res.stderr
    # Pinned by that fingerprint, the same root file is trusted.
    res = cli("audit", pr / "signed", "--trust-sha256", fp)
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "(pinned by --trust-sha256)" in res.stdout


# --------------------------------------------------------------------------- the report


def report_rows(text: str) -> list[tuple[str, str, str]]:
    """(status class, agreement id, problems cell) for each row of the agreements table."""
    body = text.split('<table class="agreements">', 1)[1]
    return [(cls, html.unescape(aid), html.unescape(cell)) for cls, aid, cell in re.findall(
        r'<tr class="(\w+)">\s*<td>([^<]*)</td>\s*<td class="status">\w+</td>\s*<td>.*?</td>\s*<td>(.*?)</td>\s*</tr>',
        body, re.S)]


def test_audit_report_html_lists_problems_first(cli, pr: Path, tmp_path: Path):
    flip(pr / "signed" / D / "agreement.pdf", 2000)  # D: last by id, first in the report
    report = tmp_path / "audit.html"
    res = audit(cli, pr, "--report", report)
    assert res.exit_code == 1, res.stdout
    assert f"report: {report}" in res.stdout
    text = report.read_text(encoding="utf-8")
    rows = report_rows(text)
    assert [(cls, aid) for cls, aid, _ in rows] == [("invalid", D), ("incomplete", HALF), ("voided", VOIDED),
                                                   ("valid", A), ("valid", B), ("valid", C)]
    assert "pdf: " in rows[0][2] and "changed, truncated or extended" in rows[0][2]
    assert rows[-1][2] == "none"
    assert "Problems found" in text
    summary = re.search(r'<table class="summary">.*?</tr>\s*<tr>(.*?)</tr>', text, re.S).group(1)
    assert re.findall(r"<td>([^<]*)</td>", summary)[:5] == ["6", "3", "1", "1", "1"]


def test_audit_report_html_clean(cli, pr: Path, tmp_path: Path):
    report = tmp_path / "audit.html"
    assert audit(cli, pr, "--report", report).exit_code == 0
    text = report.read_text(encoding="utf-8")
    assert "No problems found." in text
    assert [cls for cls, _, _ in report_rows(text)] == ["incomplete", "voided"] + ["valid"] * 4


def test_audit_report_refuses_to_overwrite(cli, pr: Path, tmp_path: Path):
    report = tmp_path / "audit.html"
    report.write_text("keep me")
    res = audit(cli, pr, "--report", report)
    assert res.exit_code == 2 and "already exists" in res.stderr
    assert report.read_text() == "keep me"


def test_audit_report_pdf(cli, pr: Path, tmp_path: Path):
    flip(pr / "signed" / D / "agreement.pdf", 2000)
    report = tmp_path / "audit.pdf"
    res = audit(cli, pr, "--report", report)
    assert res.exit_code == 1, res.stdout
    assert report.read_bytes().startswith(b"%PDF-")
    text = subprocess.run(["pdftotext", "-layout", str(report), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "Audit of signed agreements" in text
    assert "Problems found" in text
    assert "Summary" in text and "Agreements (problems first)" in text
    # problems first: the invalid D before the valid A
    assert D in text and A in text and text.index(D) < text.index(A)


def test_audit_does_not_import_weasyprint(pr: Path):
    probe = ("import sys\nfrom agreements_kit.cli import main\n"
             "try:\n    main.main(args=sys.argv[1:], prog_name='agreements', standalone_mode=False)\n"
             "except SystemExit as exc:\n    code = exc.code\n"
             "print(code, any(m.split('.')[0] == 'weasyprint' for m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", probe, "audit", str(pr / "signed"), "--workers", "1",
                           *map(str, trust_args(pr))],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("ok: 6 agreements")
    assert proc.stdout.splitlines()[-1] == "0 False"


# --------------------------------------------------------------------------- reproduce


def test_reproduce_identical(cli, pr: Path):
    res = cli("reproduce", A, "--practice", pr)
    assert res.exit_code == 0, res.stdout + res.stderr
    pdf_sha = hashlib.sha256((pr / "signed" / A / "agreement.pdf").read_bytes()).hexdigest()
    assert res.stdout.strip() == f"identical: re-rendering {A} gives the signed PDF byte for byte (sha256 {pdf_sha})"


def test_reproduce_names_the_edited_clause(cli, pr: Path):
    from agreements_kit.authoring.library import load_library

    # The agreement was rendered from the shipped library: the report names the clause's version there.
    signed_version = load_library(clauses_dir()).clauses["limits.rescue"].version
    library = pr / "my-clauses"
    shutil.copytree(clauses_dir(), library)
    limits = library / "limits.yaml"
    text = limits.read_text(encoding="utf-8")
    assert "- We cannot rescue you." in text
    limits.write_text(text.replace("- We cannot rescue you.", "- We can rescue you."), encoding="utf-8")
    with open(pr / "practice.yaml", "a", encoding="utf-8") as fh:
        fh.write("clauses: my-clauses\n")
    assert load_practice(pr).library_dir() == library.resolve()
    res = cli("reproduce", A, "--practice", pr)
    assert res.exit_code == 1, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith(f"different: re-rendering {A} gives sha256 ")
    assert f"  clause limits.rescue differs from the text that was signed (v{signed_version})" in lines
    assert not [line for line in lines[1:] if "limits.rescue" not in line], res.stdout  # nothing else differs


# --------------------------------------------------------------------------- the README's OpenSSL-only commands


def readme_script() -> str:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Verify without agreements-kit", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "no ```sh block after the heading"
    return match.group(1)


@pytest.fixture(scope="module")
def demo(tmp_path_factory, agreements_bin: str) -> tuple[Path, Path]:
    """``agreements demo DIR`` (as a clinician would run it): the practice and its signed agreement."""
    directory = tmp_path_factory.mktemp("demo") / "demo-practice"
    env = clean_environ()
    proc = subprocess.run([agreements_bin, "demo", str(directory)], capture_output=True, text=True, env=env,
                          cwd=directory.parent, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    folders = [p for p in (directory / "signed").iterdir() if p.is_dir() and p.name.startswith("agr-")]
    assert len(folders) == 1
    return directory, folders[0]


def run_readme(practice: Path, folder: Path) -> subprocess.CompletedProcess:
    script = readme_script()
    assert re.search(r"^A=signed/\S+$", script, re.M)
    script = re.sub(r"^A=signed/\S+$", f"A=signed/{folder.name}", script, count=1, flags=re.M)
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=practice, capture_output=True,
                          text=True, timeout=120)


def test_readme_commands_verify_a_demo_agreement(demo):
    practice, folder = demo
    proc = run_readme(practice, folder)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    records = sorted(folder.glob("[0-9][0-9]-*.json"))
    assert [r.name for r in records] == [CLIENT_REC, THERAPIST_REC]
    out = proc.stdout + proc.stderr
    assert out.count("CMS Verification successful") == len(records), out
    lines = proc.stdout.splitlines()
    pdf_sha = lines[0].split()[0]
    assert pdf_sha == hashlib.sha256((folder / "agreement.pdf").read_bytes()).hexdigest()
    printed = re.findall(r'^"document": *\{"file": *"agreement\.pdf", *"sha256": *"([0-9a-f]{64})"\}$', proc.stdout,
                         re.M)
    assert printed == [pdf_sha] * len(records), proc.stdout
    for r in records:
        assert f"== signed/{folder.name}/{r.name}" in lines
    assert re.search(r'^"role": *"client"$', proc.stdout, re.M) and re.search(r'^"role": *"therapist"$', proc.stdout,
                                                                              re.M), proc.stdout
    assert "Issuer" in proc.stdout and "CRL Number" in proc.stdout  # the CRL listing ran


def test_readme_commands_fail_on_a_changed_record(demo, tmp_path: Path):
    practice, folder = demo
    copy = tmp_path / "demo-copy"
    shutil.copytree(practice, copy)
    rec = copy / "signed" / folder.name / CLIENT_REC
    data = rec.read_bytes()
    flip(rec, data.index(b"I have read") + 3)  # in the intent statement: every grep still works
    proc = run_readme(copy, folder)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Verification failure" in proc.stderr
    assert "CMS Verification successful" not in proc.stdout + proc.stderr


# --------------------------------------------------------------------------- the ledger on two cores


def index_dump(index) -> tuple:
    """Everything an index holds and its report says, comparable."""
    tables = tuple(tuple(sorted(index.db.execute(f"SELECT * FROM {t}").fetchall()))  # noqa: S608 - fixed names
                   for t in ("entries", "certs", "revoked", "crls"))
    r = index.report
    return tables, tuple((p.code, p.message) for p in r.problems), r.entries, r.legacy_lines, r.migrated_at, r.missing


def _swap(lines: list[bytes], a: int, b: int) -> list[bytes]:
    out = list(lines)
    out[a], out[b] = out[b], out[a]
    return out


LEDGER_EDITS = {
    "untouched": lambda ls: ls,
    "not-json": lambda ls: [*ls[:3], b"{not json", *ls[4:]],
    "array": lambda ls: [*ls[:3], b"[1,2]", *ls[4:]],
    "seq-a-string": lambda ls: [*ls[:3], re.sub(rb'"seq":(\d+)', rb'"seq":"\1"', ls[3]), *ls[4:]],
    "unknown-member": lambda ls: [*ls[:3], ls[3][:-1] + b',"zzz":1}', *ls[4:]],
    "not-canonical": lambda ls: [*ls[:3], ls[3].replace(b'":', b'": ', 1), *ls[4:]],
    "version-true": lambda ls: [*ls[:3], ls[3].replace(b'"format_version":2', b'"format_version":true'), *ls[4:]],
    "reordered": lambda ls: _swap(ls, 4, 5),
    "deleted": lambda ls: [*ls[:6], *ls[7:]],
    "duplicated": lambda ls: [*ls[:3], ls[2], *ls[3:]],
    "prev-edited": lambda ls: [*ls[:7], re.sub(rb'"prev":"[0-9a-f]', b'"prev":"f', ls[7]), *ls[8:]],
    "overlong": lambda ls: [*ls[:3], b'{"a":"' + b"x" * (70 * 1024) + b'"}', *ls[3:]],
    "empty-line": lambda ls: [*ls[:3], b"", *ls[3:]],
}


@pytest.mark.parametrize("case", sorted(LEDGER_EDITS))
def test_ledger_two_cores_indexes_as_one(pr: Path, case: str):
    """The two-core scan (a plain decode here, the strict read in a second process) gives exactly the one-way
    scan's index and report, for the untouched ledger and for every kind of damage; on damage it gives up
    and the one-way scan, which names what is wrong, stands."""
    from agreements_kit.verification import ledgerview

    lines = LEDGER_EDITS[case](ledger_lines(pr))
    write_ledger(pr, lines)
    path = str(pr / "signed" / "ledger.jsonl")
    one_way = build_index(path)
    two_cores = build_index(path, two_cores=True, two_cores_from=0)
    assert index_dump(two_cores) == index_dump(one_way)
    if case == "untouched":
        assert one_way.report.ok
    elif case not in ("reordered", "deleted", "duplicated", "prev-edited"):
        assert not one_way.report.ok
    # Whether the second process vouched: only for a ledger whose every line is well formed.
    with open(path, "rb") as fh:
        vouched = ledgerview._scan_two_cores(fh, path, sqlite_schema(), ledgerview.LedgerReport(path))
    assert vouched == (case in ("untouched", "reordered", "deleted", "duplicated", "prev-edited"))


def sqlite_schema():
    import sqlite3

    from agreements_kit.verification.ledgerview import SCHEMA

    db = sqlite3.connect(":memory:")
    db.executescript(SCHEMA)
    return db


def test_ledger_two_cores_falls_back_when_the_reads_differ(pr: Path, monkeypatch):
    """If the second process read other bytes (the ledger grew or was replaced between the reads), or found a
    line it could not read, the two-core scan is thrown away and the one-way scan stands."""
    from agreements_kit.verification import ledgerview

    lines = ledger_lines(pr)
    write_ledger(pr, [*lines[:3], re.sub(rb'"seq":(\d+)', rb'"seq":"\1"', lines[3]), *lines[4:]])
    path = str(pr / "signed" / "ledger.jsonl")
    one_way = index_dump(build_index(path))

    def lies(path: str, conn) -> None:  # says all is well, over bytes it did not read
        conn.send((True, len(lines), hashlib.sha256(b"other bytes").digest()))
        conn.close()

    monkeypatch.setattr(ledgerview, "_check_strictly", lies)
    assert index_dump(build_index(path, two_cores=True, two_cores_from=0)) == one_way
    assert "ledger.malformed" in {code for code, _ in one_way[1]}


def test_ledger_two_cores_without_a_second_process_reads_one_way(pr: Path, monkeypatch):
    """No process to be had (fork fails: EAGAIN, ENOMEM): the index is built the one way, not refused."""
    import multiprocessing.process

    path = str(pr / "signed" / "ledger.jsonl")
    one_way = index_dump(build_index(path))

    def no_fork(self) -> None:
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", no_fork)
    assert index_dump(build_index(path, two_cores=True, two_cores_from=0)) == one_way
