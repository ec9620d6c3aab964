"""Verification: a tamper corpus, the ``verify`` command, and three judges that must agree.

One signed practice is built once with the library (four complete agreements, one
signed by the client only, one voided), with signing times a little in the past so
that a revocation "now" falls after them. Every test that tampers works on its own
copy. Each tamper must be caught by its own step with its own reason code (and a
sentence an auditor can act on), and ``agreements verify`` must exit 1 on it; the
untouched copy verifies clean. The trust root is always named from outside the
archive (``--trust``), as an auditor must.

For every signature of the corpus (each record and its ``.p7s``, tampered or not)
three verdicts are computed and must agree: OpenSSL (the README's command, with
``-attime`` the record's signing time), pyHanko (``async_validate_detached_cms``,
through ``helpers.pyhanko_verdict``), and ours (the signature, path and revocation
steps ``verify_folder`` ran for that record).

Beyond the corpus: edited JSON with values of the wrong type, and signature files
with one bit changed in a chosen part of their DER, must give a verdict (never a
traceback) that agrees with OpenSSL and pyHanko, or differs for a stated reason.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import (
    clean_environ,
    describe_failures,
    failure_codes,
    jcs_line,
    private_copy,
    pyhanko_verdict,
    trust_args,
)

from agreements_kit.authoring.practice import load_practice
from agreements_kit.authoring.render import Job, Renderer
from agreements_kit.authoring.spec import make_spec
from agreements_kit.formats import record as record_format
from agreements_kit.formats.jsonio import canonical_json
from agreements_kit.signing import cms
from agreements_kit.signing import sign as sign_module
from agreements_kit.signing.pki import PKI, load_cert, load_key, utcnow
from agreements_kit.signing.renders import log_renders
from agreements_kit.signing.setup import init_practice
from agreements_kit.signing.sign import ClientSigning, sign_client, sign_therapist, void
from agreements_kit.verification.cms import CertCache, CmsProblem, check_signature
from agreements_kit.verification.steps import STEPS
from agreements_kit.verification.trust import Trust, load_trust
from agreements_kit.verification.verify import Verdict, verify_folder

PASS = b"practice-pass-1"  # the root's
INTAKE_PASS = b"intake-pass-1"
CLINICIAN_PASS = b"clinician-ca-pass-1"
LEE_PASS = b"lee-key-pass-1"
ORTIZ_PASS = b"ortiz-key-pass-1"
PRACTICE_NAME = "Test Practice"
CLIENT = "Jane Q. Doe"
COMPLETE = ("agr-ver-a", "agr-ver-b", "agr-ver-c", "agr-ver-d")
A, B, C, D = COMPLETE
HALF = "agr-ver-half"  # signed by the client only
VOIDED = "agr-ver-void"
ALL = (*COMPLETE, HALF, VOIDED)
CLIENT_REC = "01-client.json"
THERAPIST_REC = "02-therapist.json"
# The steps that judge what OpenSSL and pyHanko judge: the CMS signature, the path to the root, revocation.
SIGNATURE_STEPS = ("signature", "path", "revocation")


# --------------------------------------------------------------------------- the signed practice


@dataclass(frozen=True)
class Base:
    root: Path
    t0: dt.datetime  # the first signing time (90 s before the fixture was built)


def client_signing(draft: Path) -> ClientSigning:
    manifest = json.loads((draft / "manifest.json").read_text())
    return ClientSigning(name=CLIENT, consent=True, initials={c["id"]: "JQD" for c in manifest["clauses"]
                                                              if c["initials"]},
                         intent=True, identity_method="photo ID", identity_checked_by="Front desk")


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Base:
    root = tmp_path_factory.mktemp("verify") / "practice"
    t0 = utcnow() - dt.timedelta(seconds=90)
    init_practice(root, name=PRACTICE_NAME, jurisdiction="US-NY", phone="(212) 555-0100",
                  therapists={"lee": ("Dr. Robin Lee", "PhD", "psychologist"), "ortiz": ("Sam Ortiz", "LCSW", "lcsw")})
    # The PKI (and its first, empty CRL) dates from an hour before the first signature,
    # so that OpenSSL's CRL check at the signing time has a CRL that was already issued.
    PKI(root / "pki").create(PRACTICE_NAME, PASS, INTAKE_PASS, CLINICIAN_PASS, now=t0 - dt.timedelta(hours=1))
    practice = load_practice(root)
    PKI(root / "pki").issue_clinician("lee", "Dr. Robin Lee", practice.name, CLINICIAN_PASS, LEE_PASS,
                                      now=t0 - dt.timedelta(hours=1))
    renderer = Renderer.load(root)
    drafts = [renderer.render_to(Job(make_spec(client=CLIENT, therapist="lee", id=aid, date=t0.date()),
                                     practice.drafts)) for aid in ALL]
    log_renders(practice, drafts)
    for i, (aid, draft) in enumerate(zip(ALL, drafts, strict=True)):
        sign_client(practice, aid, client_signing(draft), INTAKE_PASS, now=t0 + dt.timedelta(seconds=i))
    for i, aid in enumerate(COMPLETE):
        sign_therapist(practice, aid, LEE_PASS, now=t0 + dt.timedelta(seconds=10 + i))
    void(practice, VOIDED, "Replaced by a newer agreement", LEE_PASS, now=t0 + dt.timedelta(seconds=20))
    return Base(root, t0)


@pytest.fixture
def pr(base: Base, tmp_path: Path, monkeypatch) -> Path:
    """A private copy of the signed practice."""
    return private_copy(base.root, tmp_path, monkeypatch)


# --------------------------------------------------------------------------- helpers


def trust_of(root: Path) -> Trust:
    return load_trust(root / "pki" / "root.pem")


def verify(root: Path, aid: str, **kw) -> Verdict:
    return verify_folder(root / "signed" / aid, trust_of(root), ledger=root / "signed" / "ledger.jsonl", **kw)


describe = describe_failures


def assert_fails(v: Verdict, step: str, code: str, *words: str, subject: str | None = None) -> None:
    """The verdict is invalid, and step ``step`` failed with reason ``code`` (about ``subject``),
    in a sentence that says every one of ``words``."""
    assert v.status == "invalid", f"status {v.status}\n{describe(v)}"
    hits = [c for c in v.failures if c.name == step and c.code == code and (subject is None or c.subject == subject)]
    assert hits, f"no failing '{step}' check with code {code}{f' for {subject}' if subject else ''}:\n{describe(v)}"
    assert any(all(w in c.detail for w in words) for c in hits), \
        f"no failing '{step}' {code} check says {words}:\n{describe(v)}"


def rewrite(path: Path, data: bytes) -> None:
    os.chmod(path, 0o600)
    path.write_bytes(data)


def flip(path: Path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0x01
    rewrite(path, bytes(data))


def signed_at(record: Path) -> dt.datetime:
    return dt.datetime.fromisoformat(json.loads(record.read_bytes())["signed_at"].replace("Z", "+00:00"))


def openssl_verify(record: Path, ca_file: Path, when: dt.datetime, *extra: str) -> subprocess.CompletedProcess:
    """The README's command: the record, its .p7s, the trusted root, as of the signing time."""
    return subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", f"{record}.p7s",
                           "-content", str(record), "-CAfile", str(ca_file), "-purpose", "any",
                           "-attime", str(int(when.timestamp())), "-out", "/dev/null", *extra],
                          capture_output=True, text=True)


def root_and_crl(root: Path, dest: Path) -> Path:
    """``cat root.pem crl.pem > trust.pem``: OpenSSL's -crl_check_all takes the CRLs from the CAfile."""
    dest.write_bytes((root / "pki" / "root.pem").read_bytes() + (root / "pki" / "crl.pem").read_bytes())
    return dest


def cms_intact(raw: bytes, p7s: bytes) -> bool:
    """Our CMS step alone (verification.cms): the signature is well formed and covers the record."""
    try:
        check_signature(raw, p7s, CertCache())
    except CmsProblem:
        return False
    return True


def ours_for(v: Verdict, name: str) -> bool:
    """Our verdict on one record's signature: each of the signature, path and revocation steps ran
    for it, and none failed."""
    checks = [c for c in v.checks if c.subject == name and c.name in SIGNATURE_STEPS]
    return {c.name for c in checks} == set(SIGNATURE_STEPS) and all(c.ok for c in checks)


def three_verdicts(folder: Path, trust: Trust, v: Verdict, crl_ca_file: Path | None = None
                   ) -> dict[str, tuple[bool, bool, bool]]:
    """record name -> (OpenSSL, pyHanko, ours) for every record with a .p7s in ``folder``."""
    out = {}
    for rec in sorted(folder.glob("[0-9][0-9]-*.json")):
        p7s = rec.with_name(rec.name + ".p7s")
        if not p7s.exists():
            continue
        raw, sig = rec.read_bytes(), p7s.read_bytes()
        try:
            when = signed_at(rec)
        except ValueError:  # a damaged record: judge it as of now (its one-time certificate is a day long)
            when = utcnow()
        if crl_ca_file is None:
            ossl = openssl_verify(rec, trust.root_path, when)
        else:
            ossl = openssl_verify(rec, crl_ca_file, when, "-crl_check_all")
        ph = pyhanko_verdict(raw, sig, trust, when)
        ours = ours_for(v, rec.name)
        if ours:  # and our CMS step alone agrees
            assert cms_intact(raw, sig), (rec.name, describe(v))
        out[rec.name] = (ossl.returncode == 0, ph, ours)
    return out


def assert_signatures(folder: Path, trust: Trust, v: Verdict, invalid: set[str] = frozenset(),
                      crl_ca_file: Path | None = None) -> None:
    """OpenSSL, pyHanko and ours agree on every signature of ``folder``: those in ``invalid`` fail."""
    verdicts = three_verdicts(folder, trust, v, crl_ca_file)
    assert verdicts, f"no signatures in {folder}"
    assert invalid <= set(verdicts)
    for name, (ossl, ph, ours) in verdicts.items():
        want = name not in invalid
        assert (ossl, ph, ours) == (want, want, want), \
            f"{folder.name}/{name}: OpenSSL {ossl}, pyHanko {ph}, ours {ours}; expected {want}\n{describe(v)}"


def cli_verify(cli, pr: Path, *args):
    """``agreements verify --trust PR/pki/root.pem ARGS``."""
    return cli("verify", *trust_args(pr), *args)


def cli_fails(cli, pr: Path, folder: Path, step: str, code: str, *words: str):
    """``agreements verify FOLDER`` exits 1, and prints a FAIL line for ``step`` with ``code`` and the words."""
    res = cli_verify(cli, pr, folder)
    assert res.exit_code == 1, f"exit {res.exit_code}\n{res.stdout}\n{res.stderr}"
    assert "Traceback" not in res.stdout + res.stderr
    assert res.stdout.startswith(f"not valid: {folder.name}: "), res.stdout
    pattern = re.compile(rf"^  FAIL +{STEPS.index(step) + 1} {re.escape(step)}( \[[^]]+\])?: .* \[{re.escape(code)}\]$")
    fails = [line for line in res.stdout.splitlines() if pattern.match(line)]
    assert fails, f"no FAIL {step} [{code}] line:\n{res.stdout}"
    assert any(all(w in line for w in words) for line in fails), res.stdout
    return res


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


def bypass_credential_checks(monkeypatch) -> None:
    """Let sign_therapist use a revoked or expired certificate, as a forger with the key could."""
    def credentials(pki: PKI, tid: str, passphrase: bytes, now: dt.datetime):
        cert = load_cert(pki.therapist_cert(tid), tid)
        return cert, load_key(pki.therapist_key(tid), passphrase, tid), [pki.issuer_of(cert)]

    monkeypatch.setattr(sign_module, "_therapist_credentials", credentials)
    # pyHanko will not sign a copy with such a certificate; the forger writes none (its ledger entry says so).
    monkeypatch.setattr(sign_module, "signed_copy", lambda *a, **k: {})


# --------------------------------------------------------------------------- the untouched practice


def test_untouched_practice_verifies(pr: Path):
    statuses = {aid: verify(pr, aid) for aid in ALL}
    trust = trust_of(pr)
    for aid in COMPLETE:
        v = statuses[aid]
        assert v.status == "valid", describe(v)
        assert not v.failures
        assert v.notes == [trust.describe()]  # the only note: which root was trusted, by its fingerprint
        assert trust.fingerprint_hex in v.notes[0]
        assert {c.name for c in v.checks} == set(STEPS)  # every step ran
        for name in (CLIENT_REC, THERAPIST_REC):  # and each per-record step ran for each record
            assert {c.name for c in v.checks if c.subject == name} >= {
                "records", "signature", "register", "path", "revocation", "role", "order", "ledger"}, name
        assert [c.code for c in v.checks if c.name == "order" and not c.subject] == ["order.complete"]
    assert statuses[HALF].status == "incomplete", describe(statuses[HALF])
    assert "order.incomplete" in {c.code for c in statuses[HALF].checks}
    assert statuses[VOIDED].status == "voided", describe(statuses[VOIDED])
    assert not statuses[HALF].failures and not statuses[VOIDED].failures


def test_untouched_signatures_agree_everywhere(pr: Path, tmp_path: Path):
    """Every signature of the clean practice: valid for OpenSSL (also with the CRLs), pyHanko and us."""
    trust = trust_of(pr)
    ca_crl = root_and_crl(pr, tmp_path / "trust.pem")
    for aid in ALL:
        v = verify(pr, aid)
        assert_signatures(pr / "signed" / aid, trust, v)
        assert_signatures(pr / "signed" / aid, trust, v, crl_ca_file=ca_crl)


@pytest.mark.parametrize(("aid", "code", "status"), [(A, 0, "valid"), (HALF, 1, "incomplete"), (VOIDED, 1, "voided")])
def test_cli_verify_untouched(cli, pr: Path, aid: str, code: int, status: str):
    res = cli_verify(cli, pr, pr / "signed" / aid)
    assert res.exit_code == code, res.stdout + res.stderr
    assert res.stdout.startswith(f"{status}: {aid}"), res.stdout
    assert "FAIL" not in res.stdout


def test_cli_headline_names_both_signers(cli, pr: Path, base: Base):
    res = cli_verify(cli, pr, pr / "signed" / A)
    assert res.exit_code == 0, res.stdout + res.stderr
    headline = res.stdout.splitlines()[0]
    when = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"
    assert re.fullmatch(rf"valid: {A} signed by Jane Q\. Doe \(client\) on ({when}) and "
                        rf"Dr\. Robin Lee \(therapist\) on ({when})", headline), headline
    client_at = (base.t0).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert f"(client) on {client_at}" in headline


def test_cli_verbose_lists_every_step(cli, pr: Path):
    res = cli_verify(cli, pr, "-v", pr / "signed" / A)
    assert res.exit_code == 0
    for number, name in enumerate(STEPS, start=1):
        assert re.search(rf"^  ok   +{number} {name}\b.* \[[a-z-]+\.[a-z-]+\]$", res.stdout, re.M), (name, res.stdout)
    assert f"note: trust root: {pr / 'pki' / 'root.pem'} (given with --trust), SHA-256 " in res.stdout


def test_cli_json(cli, pr: Path):
    res = cli_verify(cli, pr, "--json", pr / "signed" / A)
    assert res.exit_code == 0, res.stdout + res.stderr
    out = json.loads(res.stdout)
    assert out["status"] == "valid"
    assert out["agreement_id"] == A
    assert out["headline"].startswith(f"valid: {A} signed by {CLIENT} (client)")
    assert [s["role"] for s in out["signers"]] == ["client", "therapist"]
    assert {c["name"] for c in out["checks"]} == set(STEPS)
    assert all(c["ok"] for c in out["checks"])
    assert all(c["step"] == STEPS.index(c["name"]) + 1 and c["code"] for c in out["checks"])
    assert {c["subject"] for c in out["checks"] if c["name"] == "signature"} == {CLIENT_REC, THERAPIST_REC}


def test_cli_json_of_a_tampered_agreement(cli, pr: Path):
    flip(pr / "signed" / A / "agreement.pdf", 100)
    res = cli_verify(cli, pr, "--json", pr / "signed" / A)
    assert res.exit_code == 1
    out = json.loads(res.stdout)
    assert out["status"] == "invalid"
    assert any(c["name"] == "pdf" and c["code"] == "pdf.hash-mismatch" and not c["ok"] for c in out["checks"])


def test_cli_has_one_verification_path(cli, pr: Path):
    """The --fast backend is gone: one path, every step, for verify and audit alike."""
    res = cli_verify(cli, pr, "--fast", pr / "signed" / A)
    assert res.exit_code == 2 and "No such option '--fast'" in res.stderr, res.stderr
    rec = pr / "signed" / B / THERAPIST_REC
    flip(rec, rec.read_bytes().index(b"Dr. Robin Lee") + 1)  # still a well-formed record, but not the one signed
    res = cli_fails(cli, pr, pr / "signed" / B, "signature", "cms.digest", "changed after it was signed")
    assert "FAIL  5 signature [02-therapist.json]" in res.stdout


# --------------------------------------------------------------------------- the tamper corpus: the PDF


def first_stream_byte(pdf: Path) -> int:
    """A byte inside the PDF's first content stream (well before the embedded manifest)."""
    data = pdf.read_bytes()
    return data.index(b"stream\n") + len(b"stream\n") + 10


@pytest.mark.parametrize("how", ["flipped", "truncated", "appended"])
def test_pdf_changed(cli, pr: Path, how: str):
    pdf = pr / "signed" / A / "agreement.pdf"
    data = pdf.read_bytes()
    if how == "flipped":
        flip(pdf, first_stream_byte(pdf))
    elif how == "truncated":
        rewrite(pdf, data[: len(data) - 300])
    else:
        rewrite(pdf, data + b"\n% appended\n")
    v = verify(pr, A)
    assert_fails(v, "pdf", "pdf.hash-mismatch", "is not the manifest's", "changed, truncated or extended")
    for rec in (CLIENT_REC, THERAPIST_REC):
        assert_fails(v, "records", "records.wrong-pdf", "signs a different PDF", subject=rec)
    assert "ledger.wrong-pdf" in v.codes  # the ledger recorded the archived PDF's hash too
    assert "ledger.entry-differs" not in v.codes  # and its entries still describe the records: it was not edited
    assert_signatures(pr / "signed" / A, trust_of(pr), v)  # the records themselves are untouched
    cli_fails(cli, pr, pr / "signed" / A, "pdf", "pdf.hash-mismatch", "changed, truncated or extended")


def test_manifest_edited(cli, pr: Path):
    path = pr / "signed" / A / "manifest.json"
    data = path.read_bytes()
    assert data.count(CLIENT.encode()) >= 1
    rewrite(path, data.replace(CLIENT.encode(), b"John Q. Doe"))
    v = verify(pr, A)  # deep: manifest.json against the manifest embedded in the PDF
    assert_fails(v, "pdf", "manifest.embedded-mismatch", "differs from the manifest embedded in the PDF", "edited")
    assert_fails(v, "records", "records.wrong-manifest", "different manifest.json", subject=CLIENT_REC)
    assert_fails(v, "ledger", "ledger.wrong-manifest", "manifest.json was edited")
    assert_signatures(pr / "signed" / A, trust_of(pr), v)
    cli_fails(cli, pr, pr / "signed" / A, "pdf", "manifest.embedded-mismatch", "edited")
    # Without the comparison with the embedded copy the records still bind the manifest's hash.
    shallow = verify(pr, A, check_embedded=False)
    assert "manifest.embedded-mismatch" not in shallow.codes
    assert_fails(shallow, "records", "records.wrong-manifest", "different manifest.json", subject=THERAPIST_REC)


def test_pdf_replaced_and_manifest_hash_updated(cli, pr: Path):
    """Another agreement's PDF, with manifest.json's document hash updated to match: the records object."""
    folder = pr / "signed" / A
    other = (pr / "signed" / B / "agreement.pdf").read_bytes()
    rewrite(folder / "agreement.pdf", other)
    manifest = json.loads((folder / "manifest.json").read_bytes())
    manifest["document"]["sha256"] = hashlib.sha256(other).hexdigest()
    rewrite(folder / "manifest.json", canonical_json(manifest))
    v = verify(pr, A)
    assert [c.code for c in v.checks if c.name == "pdf"][0] == "pdf.ok"  # the PDF matches the (edited) manifest
    for rec in (CLIENT_REC, THERAPIST_REC):
        assert_fails(v, "records", "records.wrong-pdf", "signs a different PDF", subject=rec)
        assert_fails(v, "records", "records.wrong-manifest", "different manifest.json", subject=rec)
    assert_fails(v, "pdf", "manifest.embedded-mismatch", "differs from the manifest embedded in the PDF")
    assert_signatures(folder, trust_of(pr), v)
    cli_fails(cli, pr, folder, "records", "records.wrong-pdf", "signs a different PDF")


# --------------------------------------------------------------------------- the tamper corpus: records


FIELD_EDITS = {
    "signer.name": lambda r: r["signer"].__setitem__("name", r["signer"]["name"] + " Jr"),
    "signed_at": lambda r: r.__setitem__("signed_at", (signed_at_of(r) - dt.timedelta(hours=1))
                                         .strftime("%Y-%m-%dT%H:%M:%SZ")),
    "document.sha256": lambda r: r["document"].__setitem__("sha256", hashlib.sha256(b"another pdf").hexdigest()),
    "initials": lambda r: r.__setitem__("initials", {**r["initials"], "extra.clause": "XY"}),
    "identity.method": lambda r: r["identity"].__setitem__("method", "none: not checked"),
    "agreement_id": lambda r: r.__setitem__("agreement_id", B),
    "esign": lambda r: r.__setitem__("esign", None if r["esign"] else {"disclosure_accepted": True}),
    "ledger_head": lambda r: r.__setitem__("ledger_head", "0" * 64),
}
# Edits that make the record something no signer could have signed: refused as a format before any signature check.
REFUSED_AS_FORMAT = {"esign"}


def signed_at_of(rec: dict) -> dt.datetime:
    return dt.datetime.fromisoformat(rec["signed_at"].replace("Z", "+00:00"))


def field_value(rec: dict, dotted: str):
    for part in dotted.split("."):
        rec = rec[part]
    return rec


@pytest.mark.parametrize("name", [CLIENT_REC, THERAPIST_REC])
@pytest.mark.parametrize("field", list(FIELD_EDITS))
def test_record_field_edited(cli, pr: Path, name: str, field: str):
    path = pr / "signed" / A / name
    original = path.read_bytes()
    rec = json.loads(original)
    assert record_format.encode(rec) == original  # so re-serializing changes only the edited field
    before = json.loads(original)
    FIELD_EDITS[field](rec)
    assert field_value(rec, field) != field_value(before, field)
    edited = record_format.encode(rec)
    changed = {k for k in rec if rec[k] != before[k]}
    assert changed == {field.split(".")[0]}
    rewrite(path, edited)
    v = verify(pr, A)
    if field in REFUSED_AS_FORMAT:
        assert [c.code for c in v.failures if c.subject == name and c.name == "records"][0].startswith("format."), \
            describe(v)
        assert not [c for c in v.checks if c.subject == name and c.name == "signature"], describe(v)
    else:
        assert_fails(v, "signature", "cms.digest", "does not cover this record", "changed after it was signed",
                     subject=name)
        cli_fails(cli, pr, pr / "signed" / A, "signature", "cms.digest", "changed after it was signed")
    assert "ledger.files-differ" in failure_codes(v, subject=name)
    assert_signatures(pr / "signed" / A, trust_of(pr), v, invalid={name})


def test_record_damaged_beyond_json(cli, pr: Path):
    path = pr / "signed" / A / CLIENT_REC
    rewrite(path, path.read_bytes()[:-10])
    v = verify(pr, A)
    assert_fails(v, "records", "format.not-json", "not a valid signing record", subject=CLIENT_REC)
    assert_signatures(pr / "signed" / A, trust_of(pr), v, invalid={CLIENT_REC})
    cli_fails(cli, pr, pr / "signed" / A, "records", "format.not-json", "not a valid signing record")


def test_signature_file_missing(cli, pr: Path):
    (pr / "signed" / A / f"{THERAPIST_REC}.p7s").unlink()
    v = verify(pr, A)
    assert_fails(v, "records", "records.missing-signature", "signature file (.p7s) of this record is missing",
                 subject=THERAPIST_REC)
    assert_signatures(pr / "signed" / A, trust_of(pr), v)  # the client's, the only one left
    cli_fails(cli, pr, pr / "signed" / A, "records", "records.missing-signature", ".p7s")


def test_record_and_signature_moved_from_another_agreement(cli, pr: Path):
    src, dst = pr / "signed" / A, pr / "signed" / B
    for suffix in ("", ".p7s"):
        os.replace(src / f"{THERAPIST_REC}{suffix}", dst / f"{THERAPIST_REC}{suffix}")
    v = verify(pr, B)
    assert_fails(v, "records", "records.wrong-agreement", f"for agreement '{A}'", "moved here from another agreement",
                 subject=THERAPIST_REC)
    assert_fails(v, "records", "records.wrong-pdf", "signs a different PDF", subject=THERAPIST_REC)
    assert_signatures(dst, trust_of(pr), v)  # a genuine signature, over a record of another agreement
    cli_fails(cli, pr, dst, "records", "records.wrong-agreement", "moved here from another agreement")


def forge_with_another_ca(pr: Path, tmp_path: Path, name: str, *, rename_certificate: bool) -> Path:
    """A CA with the very same names as the practice's, but not its key, signs B's record ``name``
    (as it is, or naming the forged certificate); returns the record."""
    other = PKI(tmp_path / "other" / "pki")
    other.create(PRACTICE_NAME, b"other-pass-1", b"other-intake-1", b"other-clinician-1")
    path = pr / "signed" / B / name
    if name == CLIENT_REC:
        cert, key = other.one_time_client(CLIENT, PRACTICE_NAME, load_key(other.intake_key, b"other-intake-1", "x"),
                                          signed_at(path), B, "client")
        intermediates = [other.intake()]
    else:
        cert = other.issue_clinician("lee", "Dr. Robin Lee", PRACTICE_NAME, b"other-clinician-1", b"forger-pass-1",
                                     now=signed_at(path) - dt.timedelta(minutes=1))
        key = load_key(other.therapist_key("lee"), b"forger-pass-1", "x")
        intermediates = [other.clinician_ca()]
    if rename_certificate:
        rec = json.loads(path.read_bytes())
        rec["certificate"] = sign_module._certificate(cert)
        rewrite(path, record_format.encode(rec))
    rewrite(Path(f"{path}.p7s"), cms.sign_detached(path.read_bytes(), cert, key, intermediates))
    assert cms_intact(path.read_bytes(), Path(f"{path}.p7s").read_bytes())  # intact, but by whom?
    return path


@pytest.mark.parametrize("name", [CLIENT_REC, THERAPIST_REC])
def test_record_resigned_by_another_ca(cli, pr: Path, tmp_path: Path, name: str):
    """The record's bytes as they were: it names the practice's certificate, not the one that signed it."""
    forge_with_another_ca(pr, tmp_path, name, rename_certificate=False)
    v = verify(pr, B)
    assert_fails(v, "signature", "certificate.not-named", "not the one the record names", subject=name)
    assert_signatures(pr / "signed" / B, trust_of(pr), v, invalid={name})
    cli_fails(cli, pr, pr / "signed" / B, "signature", "certificate.not-named", "not the one the record names")


@pytest.mark.parametrize("name", [CLIENT_REC, THERAPIST_REC])
def test_record_rewritten_and_signed_by_another_ca(cli, pr: Path, tmp_path: Path, name: str):
    """The record rewritten to name the forged certificate: not in the register, no path to the root."""
    forge_with_another_ca(pr, tmp_path, name, rename_certificate=True)
    v = verify(pr, B)
    assert_fails(v, "register", "register.unregistered", "not in the practice's register", subject=name)
    assert_fails(v, "path", "chain.untrusted", "does not lead to the trusted root", subject=name)
    assert "ledger.files-differ" in failure_codes(v, subject=name)
    assert_signatures(pr / "signed" / B, trust_of(pr), v, invalid={name})
    cli_fails(cli, pr, pr / "signed" / B, "path", "chain.untrusted", "does not lead to the trusted root")


# --------------------------------------------------------------------------- the tamper corpus: certificates, times


def countersign_with_revoked_certificate(pr: Path, base: Base, monkeypatch) -> Verdict:
    """lee's certificate is revoked (half an hour before the first signature); a countersignature
    made afterwards with its key, the signing code's own refusal bypassed."""
    store = PKI(pr / "pki")
    store.revoke(load_cert(store.therapist_cert("lee"), "lee"), CLINICIAN_PASS, now=base.t0 - dt.timedelta(minutes=30))
    bypass_credential_checks(monkeypatch)
    sign_therapist(load_practice(pr), HALF, LEE_PASS, completion=False)
    return verify(pr, HALF)


def test_certificate_revoked_before_the_signature(cli, pr: Path, base: Base, tmp_path: Path, monkeypatch):
    v = countersign_with_revoked_certificate(pr, base, monkeypatch)
    assert_fails(v, "revocation", "revocation.revoked", "Dr. Robin Lee was revoked on", "before this signature",
                 subject=THERAPIST_REC)
    # The ledger says so too: the CRL set that revokes it was entered before the signature.
    assert_fails(v, "revocation", "revocation.revoked-by-ledger", "before this signature was entered",
                 subject=THERAPIST_REC)
    # OpenSSL ignores revocation unless given the CRLs; with them (both CRLs were issued
    # before both signing times) it says "revoked" for the therapist, valid for the client.
    ca_crl = root_and_crl(pr, tmp_path / "trust.pem")
    folder = pr / "signed" / HALF
    rec = folder / THERAPIST_REC
    proc = openssl_verify(rec, ca_crl, signed_at(rec), "-crl_check_all")
    assert proc.returncode != 0 and "certificate revoked" in proc.stderr, proc.stderr
    client = folder / CLIENT_REC
    assert openssl_verify(client, ca_crl, signed_at(client), "-crl_check_all").returncode == 0
    verdicts = three_verdicts(folder, trust_of(pr), v, ca_crl)
    assert verdicts[CLIENT_REC] == (True, True, True)
    assert verdicts[THERAPIST_REC] == (False, False, False)
    cli_fails(cli, pr, folder, "revocation", "revocation.revoked", "before this signature")


def test_certificate_revoked_before_the_signature_three_judges_agree(pr: Path, base: Base, tmp_path: Path,
                                                                   monkeypatch):
    v = countersign_with_revoked_certificate(pr, base, monkeypatch)
    ca_crl = root_and_crl(pr, tmp_path / "trust.pem")
    assert_signatures(pr / "signed" / HALF, trust_of(pr), v, invalid={THERAPIST_REC}, crl_ca_file=ca_crl)


def test_certificate_revoked_after_the_signature(cli, pr: Path, tmp_path: Path):
    """Revoking lee now leaves the agreements lee signed earlier valid, with a note."""
    store = PKI(pr / "pki")
    store.revoke(load_cert(store.therapist_cert("lee"), "lee"), CLINICIAN_PASS)
    v = verify(pr, A)
    assert v.status == "valid", describe(v)
    assert any("revoked later" in n and THERAPIST_REC in n for n in v.notes), v.notes
    # The README's command (no CRL) and pyHanko (with the CRLs, retroactively) agree with us.
    assert_signatures(pr / "signed" / A, trust_of(pr), v)
    # With -CRLfile alone OpenSSL would refuse ("CRL is not yet valid" at -attime: the CRL listing lee
    # came later), but the signature carries the CRL set in force when it was made, and OpenSSL uses it.
    ca_crl = root_and_crl(pr, tmp_path / "trust.pem")
    rec = pr / "signed" / A / THERAPIST_REC
    proc = openssl_verify(rec, ca_crl, signed_at(rec), "-crl_check_all")
    assert proc.returncode == 0, proc.stderr
    res = cli_verify(cli, pr, pr / "signed" / A)
    assert res.exit_code == 0, res.stdout
    assert "note: 02-therapist.json: the certificate of Dr. Robin Lee was revoked later" in res.stdout


def test_certificate_expired_at_the_signing_time(cli, pr: Path, monkeypatch):
    """ortiz's one-day certificate expired two days before it countersigns."""
    store = PKI(pr / "pki")
    store.issue_clinician("ortiz", "Sam Ortiz", PRACTICE_NAME, CLINICIAN_PASS, ORTIZ_PASS,
                          now=utcnow() - dt.timedelta(days=3), days=1)
    bypass_credential_checks(monkeypatch)
    sign_therapist(load_practice(pr), HALF, ORTIZ_PASS, therapist_id="ortiz", completion=False)
    v = verify(pr, HALF)
    assert_fails(v, "path", "validity.expired", "'Sam Ortiz' was not valid at the signing time", subject=THERAPIST_REC)
    assert_signatures(pr / "signed" / HALF, trust_of(pr), v, invalid={THERAPIST_REC})
    cli_fails(cli, pr, pr / "signed" / HALF, "path", "validity.expired", "not valid at the signing time")


def test_signing_time_in_the_future(cli, pr: Path):
    sign_therapist(load_practice(pr), HALF, LEE_PASS, now=utcnow() + dt.timedelta(days=2), completion=False)
    v = verify(pr, HALF)
    assert_fails(v, "order", "time.future", "in the future", subject=THERAPIST_REC)
    assert_signatures(pr / "signed" / HALF, trust_of(pr), v)  # the signature itself is sound
    cli_fails(cli, pr, pr / "signed" / HALF, "order", "time.future", "in the future")


def test_countersignature_dated_before_the_client_signature(cli, pr: Path, base: Base):
    sign_therapist(load_practice(pr), HALF, LEE_PASS, now=base.t0 - dt.timedelta(minutes=1), completion=False)
    v = verify(pr, HALF)
    assert_fails(v, "order", "time.out-of-order", "is dated before 01-client.json (client)", "out of order",
                 subject=THERAPIST_REC)
    assert_signatures(pr / "signed" / HALF, trust_of(pr), v)
    cli_fails(cli, pr, pr / "signed" / HALF, "order", "time.out-of-order", "out of order")


# --------------------------------------------------------------------------- the tamper corpus: signers


def test_client_signature_missing(cli, pr: Path):
    folder = pr / "signed" / A
    for suffix in ("", ".p7s"):
        (folder / f"{CLIENT_REC}{suffix}").unlink()
    v = verify(pr, A)
    assert_fails(v, "records", "records.renamed", "records were renamed, removed or duplicated", subject=THERAPIST_REC)
    assert_fails(v, "order", "order.therapist-first", "no client signature is there")
    assert_fails(v, "ledger", "ledger.record-erased", f"the ledger records {CLIENT_REC} (client), which is missing "
                 "from the archive", "deleted")
    assert_signatures(folder, trust_of(pr), v)
    cli_fails(cli, pr, folder, "ledger", "ledger.record-erased", "missing from the archive")


def test_signer_duplicated(cli, pr: Path):
    folder = pr / "signed" / A
    for suffix in ("", ".p7s"):
        shutil.copyfile(folder / f"{THERAPIST_REC}{suffix}", folder / f"03-therapist.json{suffix}")
    v = verify(pr, A)
    assert_fails(v, "order", "order.duplicate-signer", "the therapist signed more than once")
    assert_fails(v, "records", "records.renamed", "numbered 2", subject="03-therapist.json")
    assert_fails(v, "ledger", "ledger.unlogged-record", "no entry for this record", subject="03-therapist.json")
    assert_signatures(folder, trust_of(pr), v)
    cli_fails(cli, pr, folder, "order", "order.duplicate-signer", "signed more than once")


# --------------------------------------------------------------------------- the tamper corpus: the ledger


def test_ledger_line_deleted(cli, pr: Path):
    lines = ledger_lines(pr)
    i = ledger_index(lines, A, "sign", CLIENT_REC)
    write_ledger(pr, lines[:i] + lines[i + 1:])
    v = verify(pr, A)
    assert_fails(v, "ledger", "ledger.deleted", f"entry {i + 1} missing before it", "deleted")
    assert_fails(v, "ledger", "ledger.unlogged-record", "no entry for this record", subject=CLIENT_REC)
    assert_signatures(pr / "signed" / A, trust_of(pr), v)
    cli_fails(cli, pr, pr / "signed" / A, "ledger", "ledger.deleted", "deleted")


def test_ledger_line_edited(cli, pr: Path):
    lines = ledger_lines(pr)
    i = ledger_index(lines, A, "archive")
    entry = json.loads(lines[i])
    entry["time"] = "2020-01-01T00:00:00Z"
    lines[i] = jcs_line(entry)
    write_ledger(pr, lines)
    v = verify(pr, A)
    assert_fails(v, "ledger", "ledger.chain", f"ledger line {i + 2} does not chain", f"line {i + 1} was edited")
    assert_signatures(pr / "signed" / A, trust_of(pr), v)
    cli_fails(cli, pr, pr / "signed" / A, "ledger", "ledger.chain", "edited")


def test_ledger_lines_reordered(cli, pr: Path):
    lines = ledger_lines(pr)
    i = ledger_index(lines, A, "sign", CLIENT_REC)
    lines[i], lines[i + 1] = lines[i + 1], lines[i]
    write_ledger(pr, lines)
    v = verify(pr, A)
    assert_fails(v, "ledger", "ledger.reordered", "out of place", "reordered")
    assert_signatures(pr / "signed" / A, trust_of(pr), v)
    cli_fails(cli, pr, pr / "signed" / A, "ledger", "ledger.reordered", "reordered")


def test_ledger_swap_is_not_reported_as_a_deletion(pr: Path):
    lines = ledger_lines(pr)
    i = ledger_index(lines, A, "sign", CLIENT_REC)
    lines[i], lines[i + 1] = lines[i + 1], lines[i]
    write_ledger(pr, lines)
    codes = failure_codes(verify(pr, A), subject="", step="ledger")
    assert "ledger.reordered" in codes and "ledger.deleted" not in codes, codes


# --------------------------------------------------------------------------- wrong-typed values in edited JSON


def set_path(obj: dict, keys: list[str], value) -> None:
    for k in keys[:-1]:
        obj = obj[k]
    obj[keys[-1]] = value


def edit_record(pr: Path, keys: list[str], value) -> None:
    path = pr / "signed" / A / CLIENT_REC
    rec = json.loads(path.read_bytes())
    set_path(rec, keys, value)
    rewrite(path, record_format.encode(rec))


def edit_manifest(pr: Path, keys: list[str], value) -> None:
    path = pr / "signed" / A / "manifest.json"
    manifest = json.loads(path.read_bytes())
    set_path(manifest, keys, value)
    rewrite(path, canonical_json(manifest))


def edit_ledger_sign_entry(pr: Path, keys: list[str], value) -> None:
    lines = ledger_lines(pr)
    i = ledger_index(lines, A, "sign", CLIENT_REC)
    entry = json.loads(lines[i])
    set_path(entry, keys, value)
    lines[i] = jcs_line(entry)
    write_ledger(pr, lines)


@pytest.mark.parametrize(("edit", "keys", "value", "step", "code"), [
    pytest.param(edit_record, ["document"], "tampered", "records", "format.bad-type", id="record-document"),
    pytest.param(edit_record, ["manifest"], "tampered", "records", "format.bad-type", id="record-manifest"),
    pytest.param(edit_record, ["certificate"], "tampered", "records", "format.bad-type", id="record-certificate"),
    pytest.param(edit_manifest, ["document"], "tampered", "manifest", "format.bad-type", id="manifest-document"),
    pytest.param(edit_manifest, ["agreement", "date"], "soon", "manifest", "format.bad-value",
                 id="manifest-date-text"),
    pytest.param(edit_manifest, ["agreement", "date"], 5, "manifest", "format.bad-type", id="manifest-date-number"),
    pytest.param(edit_ledger_sign_entry, ["files"], "tampered", "ledger", "ledger.malformed", id="ledger-files"),
    pytest.param(edit_ledger_sign_entry, ["record"], [CLIENT_REC], "ledger", "ledger.malformed", id="ledger-record"),
])
def test_wrong_typed_value_gives_a_verdict_not_a_traceback(cli, pr: Path, edit, keys, value, step: str, code: str):
    """Edited JSON whose values have the wrong type: a verdict naming the failing step and why, never a traceback."""
    edit(pr, keys, value)
    v = verify(pr, A)
    assert_fails(v, step, code)
    cli_fails(cli, pr, pr / "signed" / A, step, code)


# --------------------------------------------------------------------------- malformed signature files


def der_tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, value start, value end) of the DER element at ``pos``."""
    first = data[pos + 1]
    start = pos + 2
    if first < 0x80:
        return data[pos], start, start + first
    n = first & 0x7F
    return data[pos], start + n, start + n + int.from_bytes(data[start:start + n], "big")


def der_children(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(tag, element start, value start, value end) of each element in [start, end)."""
    out, pos = [], start
    while pos < end:
        tag, vs, ve = der_tlv(data, pos)
        out.append((tag, pos, vs, ve))
        pos = ve
    return out


def p7s_positions(p7s: bytes) -> dict[str, int]:
    """Byte positions of parts of a SignedData (one signer), found by walking its DER."""
    _, vs, ve = der_tlv(p7s, 0)
    content_info = der_children(p7s, vs, ve)
    _, svs, sve = der_tlv(p7s, content_info[1][2])
    signed_data = der_children(p7s, svs, sve)
    encap = der_children(p7s, signed_data[2][2], signed_data[2][3])
    signer_info = der_children(p7s, signed_data[-1][2], signed_data[-1][3])[0]
    fields = der_children(p7s, signer_info[2], signer_info[3])
    digest_algorithms = der_children(p7s, signed_data[1][2], signed_data[1][3])
    # The signer's certificate, wherever the DER order of the certificate SET puts it (the chain is there too).
    certificates = der_children(p7s, signed_data[3][2], signed_data[3][3])
    at = next(c[1] for c in certificates if b"Dr. Robin Lee" in p7s[c[1]:c[3]])
    return {
        "signed-data-version": signed_data[0][2],  # 1 -> 0
        "digest-algorithms-oid": der_children(p7s, digest_algorithms[0][2], digest_algorithms[0][3])[0][3] - 1,
        "econtent-type-tag": encap[0][1],  # OBJECT IDENTIFIER -> another tag
        "econtent-type": encap[0][3] - 1,  # last byte of id-data
        "signer-info-version": fields[0][2],  # 1 -> 0
        "signer-info-tag": signer_info[1],  # SEQUENCE -> SET
        "signer-info-version-tag": fields[0][1],  # INTEGER -> BIT STRING
        "digest-algorithm-oid-tag": der_children(p7s, fields[2][2], fields[2][3])[0][1],
        "signature-algorithm-oid": der_children(p7s, fields[4][2], fields[4][3])[0][2],
        "certificate-version": p7s.index(b"\xa0\x03\x02\x01\x02", at) + 4,  # v3 -> an invalid version
        "certificate-key-algorithm": p7s.index(bytes.fromhex("06072a8648ce3d0201"), at) + 2,
        "certificate-duplicate-extension": p7s.index(bytes.fromhex("0603551d0e"), at) + 4,  # SKI -> a 2nd keyUsage
    }


def damage_p7s(pr: Path, what: str) -> Path:
    """Flip the lowest bit of one byte of A's therapist signature file; returns the record."""
    rec = pr / "signed" / A / THERAPIST_REC
    p7s = Path(f"{rec}.p7s")
    flip(p7s, p7s_positions(p7s.read_bytes())[what])
    return rec


def judges(pr: Path, rec: Path) -> tuple[bool, bool, bool]:
    """(OpenSSL, pyHanko, ours) on one record's signature: ours is the verifier's signature, path
    and revocation steps for that record."""
    raw, sig, when = rec.read_bytes(), Path(f"{rec}.p7s").read_bytes(), signed_at(rec)
    return (openssl_verify(rec, pr / "pki" / "root.pem", when).returncode == 0,
            pyhanko_verdict(raw, sig, trust_of(pr), when), ours_for(verify(pr, A), rec.name))


@pytest.mark.parametrize("what", ["certificate-version", "certificate-key-algorithm",
                                  "certificate-duplicate-extension"])
def test_damaged_certificate_in_the_signature_file(cli, pr: Path, what: str):
    """One bit of the signer's certificate inside the .p7s: every judge says not valid, and we say why."""
    rec = damage_p7s(pr, what)
    assert judges(pr, rec) == (False, False, False)
    v = verify(pr, A)
    assert_fails(v, "signature", "cms.structure", "a certificate inside the signature cannot be read",
                 subject=THERAPIST_REC)
    assert "ledger.files-differ" in failure_codes(v, subject=THERAPIST_REC)  # the ledger has the .p7s's hash
    cli_fails(cli, pr, pr / "signed" / A, "signature", "cms.structure", "cannot be read")


@pytest.mark.parametrize("what", ["signer-info-tag", "digest-algorithm-oid-tag", "signer-info-version-tag",
                                  "econtent-type-tag"])
def test_malformed_der_is_rejected_as_openssl_rejects_it(pr: Path, what: str):
    """An element with the wrong tag: refused, as OpenSSL's strict DER decoder refuses it.

    pyHanko (asn1crypto, which parses lazily) accepts a SignerInfo version that is not an
    INTEGER, since it never reads that field: there it is the lenient one. Our CMS step
    parses every field of the SignedData before using any.
    """
    rec = damage_p7s(pr, what)
    lenient_pyhanko = what == "signer-info-version-tag"
    assert judges(pr, rec) == (False, lenient_pyhanko, False)
    assert_fails(verify(pr, A), "signature", "cms.structure", "does not cover this record", subject=THERAPIST_REC)


@pytest.mark.parametrize("what", ["signed-data-version", "signer-info-version"])
def test_unsigned_version_fields_all_judges_agree(pr: Path, what: str):
    rec = damage_p7s(pr, what)
    verdicts = judges(pr, rec)
    assert len(set(verdicts)) == 1, f"OpenSSL, pyHanko, ours: {verdicts}"


@pytest.mark.parametrize(("what", "expected"), [
    ("econtent-type", (True, False, False)),
    ("signature-algorithm-oid", (True, False, False)),
    ("digest-algorithms-oid", (False, True, False)),
])
def test_judges_differ_on_unsigned_fields(pr: Path, what: str, expected: tuple[bool, bool, bool]):
    """Where one judge disagrees, and why: none of these bytes is covered by the signature.

    - eContentType and the SignerInfo's signatureAlgorithm: RFC 5652 (11.1) requires the
      signed content-type attribute to equal eContentType, and the algorithm to suit the
      key; pyHanko and we check both and reject, OpenSSL 3.0 checks neither and prints
      "CMS Verification successful". The record's bytes are still bound (its digest is in
      the signed attributes), so nothing forged gets through, but an auditor with OpenSSL
      alone accepts a file agreements-kit rejects.
    - the SignedData-level digestAlgorithms set: OpenSSL computes the content digest with
      the algorithms listed there and fails ("unknown digest algorithm"); we require that
      set to be SHA-256 alone, as we write it, and reject too; pyHanko uses the SignerInfo's
      own digestAlgorithm (signed, and SHA-256) and accepts.

    Whatever the judges say of the signature alone, the ledger recorded the .p7s's hash at
    signing, so the changed file is caught there too.
    """
    rec = damage_p7s(pr, what)
    assert judges(pr, rec) == expected
    v = verify(pr, A)
    assert_fails(v, "signature", "cms.structure", "does not cover this record", subject=THERAPIST_REC)
    assert_fails(v, "ledger", "ledger.files-differ", f"{THERAPIST_REC}.p7s", subject=THERAPIST_REC)


# --------------------------------------------------------------------------- exit code 2: could not check
# --------------------------------------------------------------------------- exit code 2: could not check


def random_pdf(dest: Path) -> Path:
    from weasyprint import HTML  # already imported by the fixture's rendering

    dest.write_bytes(HTML(string="<p>Not an agreement, just a PDF.</p>").write_pdf())
    return dest


def cannot_check(res, *words: str) -> None:
    assert res.exit_code == 2, f"exit {res.exit_code}\n{res.stdout}\n{res.stderr}"
    assert "Traceback" not in res.stdout + res.stderr
    assert res.stderr.startswith("error: "), res.stderr
    for w in words:
        assert w in res.stderr, res.stderr


def test_cli_cannot_check_nonexistent_path(cli, pr: Path, tmp_path: Path):
    cannot_check(cli_verify(cli, pr, tmp_path / "no-such-agreement"), "does not exist")


def test_cli_cannot_check_a_folder_that_is_not_an_agreement(cli, pr: Path, tmp_path: Path):
    folder = tmp_path / "agr-empty"
    folder.mkdir()
    (folder / "notes.txt").write_text("not an agreement\n")
    cannot_check(cli_verify(cli, pr, folder), "is not an agreement folder (no manifest.json)")


def test_cli_an_agreement_folder_without_its_manifest_is_not_valid(cli, pr: Path, tmp_path: Path):
    """A PDF but no manifest.json: an agreement whose manifest was removed, so checked and not valid."""
    folder = tmp_path / "agr-empty"
    folder.mkdir()
    (folder / "agreement.pdf").write_bytes(b"%PDF-1.7\n")
    res = cli_verify(cli, pr, folder)
    assert res.exit_code == 1, res.stdout + res.stderr
    assert res.stdout.startswith("not valid: agr-empty: "), res.stdout
    assert "  FAIL  2 manifest: manifest.json is missing [manifest.missing]" in res.stdout.splitlines()


def test_cli_cannot_check_a_pdf_without_our_manifest(cli, pr: Path, tmp_path: Path):
    pdf = random_pdf(tmp_path / "other.pdf")
    cannot_check(cli_verify(cli, pr, pdf, "--archive", pr / "signed"), "carries no agreements-kit manifest")


def test_cli_cannot_check_with_a_trust_file_that_is_not_a_certificate(cli, pr: Path, tmp_path: Path):
    bogus = tmp_path / "root.pem"
    bogus.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")
    cannot_check(cli("verify", "--trust", bogus, pr / "signed" / A), "is not a PEM certificate")
    cannot_check(cli("verify", "--trust", pr / "pki" / "crl.pem", pr / "signed" / A), "not a PEM certificate")


# --------------------------------------------------------------------------- a standalone copy of the PDF


def test_cli_standalone_pdf_copy(cli, pr: Path, tmp_path: Path, monkeypatch):
    copy = tmp_path / "copy.pdf"
    shutil.copyfile(pr / "signed" / A / "agreement.pdf", copy)
    monkeypatch.chdir(pr)
    res = cli("verify", copy, "--archive", "signed", "--trust", "pki/root.pem")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert res.stdout.startswith(f"valid: {A} signed by {CLIENT} (client) on "), res.stdout
    # Run from the practice folder the PDF is looked up in its archive, but the practice's
    # root is not trusted for being in the current folder: it must be named.
    res = cli("verify", copy)
    assert res.exit_code == 1 and res.stdout == "", res.stdout
    assert res.stderr.startswith("error: not verified: no trusted root"), res.stderr


@pytest.mark.parametrize("how", ["flipped", "truncated"])
def test_cli_standalone_pdf_copy_tampered(cli, pr: Path, tmp_path: Path, monkeypatch, how: str):
    copy = tmp_path / "copy.pdf"
    shutil.copyfile(pr / "signed" / A / "agreement.pdf", copy)
    if how == "flipped":
        flip(copy, first_stream_byte(copy))
    else:
        rewrite(copy, copy.read_bytes()[:-300])  # the xref and trailer are gone, the manifest is not
    monkeypatch.chdir(pr)
    res = cli("verify", copy, "--archive", "signed", "--practice", pr)
    assert res.exit_code == 1, res.stdout + res.stderr
    assert res.stdout.startswith(f"not valid: {A}: "), res.stdout
    assert re.search(r"^  FAIL  3 pdf: .*changed, truncated or extended.* \[pdf\.hash-mismatch\]$", res.stdout,
                     re.M), res.stdout
    assert "the practice's own, named with --practice" in res.stdout  # the root it trusted, and why
    # The archived agreement itself is untouched.
    assert cli_verify(cli, pr, pr / "signed" / A).exit_code == 0


# --------------------------------------------------------------------------- verify never imports WeasyPrint

IMPORT_PROBE = """
import json, sys
from agreements_kit.cli.commands import main
try:
    main.main(args=sys.argv[1:], prog_name="agreements", standalone_mode=False)
    code = 0
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "weasyprint": sorted(m for m in sys.modules if m.split(".")[0] == "weasyprint")}))
"""


def probe(*args) -> dict:
    proc = subprocess.run([sys.executable, "-c", IMPORT_PROBE, *map(str, args)], capture_output=True, text=True,
                          env=clean_environ(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("target", ["folder", "pdf"])
def test_verify_does_not_import_weasyprint(pr: Path, target: str):
    path = pr / "signed" / A if target == "folder" else pr / "signed" / A / "agreement.pdf"
    out = probe("verify", path, "--archive", pr / "signed", *trust_args(pr))
    assert out["code"] == 0  # it really verified
    assert out["weasyprint"] == []


def test_help_does_not_import_weasyprint(agreements_bin: str):
    proc = subprocess.run([sys.executable, "-X", "importtime", agreements_bin, "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for command in ("verify", "audit", "reproduce"):
        assert re.search(rf"^  {command}\b", proc.stdout, re.M), proc.stdout
    modules = [line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
    assert "agreements_kit.cli" in modules  # the module list is real
    assert not [m for m in modules if m.split(".")[0] == "weasyprint"]
