"""The signed copy (PAdES): what a client is given, checked by readers that are not ours.

One practice with a local RFC 3161 TSA signs one agreement (client, then therapist);
its copies are then read by ``cmp``, poppler's ``pdfsig`` (the practice root in an NSS
database made by ``certutil``), the ``pyhanko`` command line, and our own
``check_copy`` / ``agreements verify``. Each damaged copy (a page changed after
signing, one byte of the prefix changed, a signature by another key) must be refused
with its reason.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from helpers import invoke, private_copy

from agreements_kit import localtsa
from agreements_kit.authoring.practice import load_practice
from agreements_kit.authoring.render import Job, Renderer
from agreements_kit.authoring.spec import make_spec
from agreements_kit.signing.copy import sign_copy
from agreements_kit.signing.pki import PKI, load_cert, load_key, utcnow
from agreements_kit.signing.renders import log_renders
from agreements_kit.signing.setup import configure_timestamping, init_practice
from agreements_kit.signing.sign import ClientSigning, sign_client, sign_therapist
from agreements_kit.verification.copycheck import check_copy, record_facts
from agreements_kit.verification.trust import resolve_trust
from agreements_kit.verification.verify import verify_folder

ROOT_PASS = b"root-pass-1"
INTAKE_PASS = b"intake-pass-1"
CLINICIAN_PASS = b"clinician-ca-pass-1"
LEE_PASS = b"lee-key-pass-1"
CLIENT = "José Q. Núñez"  # accents: the stamp's font must carry them
AID = "agr-copy-one"
LATER = "agr-copy-two"  # rendered, left unsigned for the tests that sign (private copies)

needs_pdfsig = pytest.mark.requires_tool("pdfsig", "certutil", "cmp")


@dataclass
class Signed:
    root: Path
    folder: Path

    @property
    def pdf(self) -> Path:
        return self.folder / "agreement.pdf"

    @property
    def client_copy(self) -> Path:
        return self.folder / "01-client.copy.pdf"

    @property
    def copy(self) -> Path:
        return self.folder / "02-therapist.copy.pdf"

    @property
    def root_pem(self) -> Path:
        return self.root / "pki" / "root.pem"

    @property
    def tsa_roots(self) -> Path:
        return self.root / "pki" / "tsa-roots.pem"

    def trust(self):
        return resolve_trust(trust_file=self.root_pem, trust_sha256=None, crl=None, practice=None,
                             archive=self.root / "signed", tsa_trust=self.tsa_roots)


def initials(folder: Path) -> dict[str, str]:
    manifest = json.loads((folder / "manifest.json").read_text())
    return {c["id"]: "JQN" for c in manifest["clauses"] if c["initials"]}


def client_signing(folder: Path) -> ClientSigning:
    return ClientSigning(name=CLIENT, consent=True, initials=initials(folder), intent=True,
                         identity_method="photo ID", identity_checked_by="Front desk")


@pytest.fixture(scope="module")
def tsa(tmp_path_factory) -> Iterator[tuple[localtsa.TsaFolder, localtsa.LocalTsa]]:
    folder = localtsa.create(tmp_path_factory.mktemp("tsa") / "tsa", "Copy Test TSA")
    with open(tmp_path_factory.mktemp("tsa-log") / "stderr.log", "wb") as err, \
            localtsa.start(folder.path, stderr=err) as running:
        yield folder, running


@pytest.fixture(scope="module")
def base(tmp_path_factory, tsa) -> Path:
    """A practice with lee's certificate, timestamping by the local TSA, two rendered drafts."""
    tsa_folder, running = tsa
    root = tmp_path_factory.mktemp("copy-base") / "practice"
    init_practice(root, name="Copy Practice", jurisdiction="US-NY", phone="(212) 555-0100",
                  therapists={"lee": ("Dr. Robin Lee", "PhD", "psychologist")}, passphrase=ROOT_PASS,
                  intake_passphrase=INTAKE_PASS, clinician_passphrase=CLINICIAN_PASS)
    configure_timestamping(root, [running.url], tsa_folder.root.read_bytes())
    practice = load_practice(root)
    PKI(root / "pki").issue_clinician("lee", "Dr. Robin Lee", practice.name, CLINICIAN_PASS, LEE_PASS)
    renderer = Renderer.load(root)
    drafts = [renderer.render_to(Job(make_spec(client=CLIENT, therapist="lee", id=aid, date=dt.date(2026, 11, 27)),
                                     practice.drafts)) for aid in (AID, LATER)]
    log_renders(practice, drafts)
    return root


@pytest.fixture(scope="module")
def signed(base: Path, tmp_path_factory) -> Signed:
    root = tmp_path_factory.mktemp("copy-signed") / "practice"
    shutil.copytree(base, root)
    practice = load_practice(root)
    sign_client(practice, AID, client_signing(root / "drafts" / AID), INTAKE_PASS)
    sign_therapist(practice, AID, LEE_PASS)
    return Signed(root, root / "signed" / AID)


def pdfsig(nssdir: Path, pdf: Path) -> str:
    res = subprocess.run(["pdfsig", "-nssdir", f"sql:{nssdir}", str(pdf)], capture_output=True, text=True,
                         timeout=60)
    return res.stdout + res.stderr


def nss_db(tmp_path: Path, *certs: Path) -> Path:
    """An NSS database (what pdfsig reads) trusting exactly ``certs`` as CAs."""
    db = tmp_path / "nss"
    db.mkdir()
    subprocess.run(["certutil", "-N", "-d", f"sql:{db}", "--empty-password"], check=True, capture_output=True)
    for i, cert in enumerate(certs):
        subprocess.run(["certutil", "-A", "-d", f"sql:{db}", "-n", f"trusted-{i}", "-t", "CT,C,C", "-i", str(cert)],
                       check=True, capture_output=True)
    return db


def pyhanko_bin() -> str:
    found = Path(sys.executable).parent / "pyhanko"
    if not found.exists():
        pytest.fail("the pyhanko command (pyhanko-cli) is not installed: run scripts/bootstrap --test")
    return str(found)


def add_to_page(pdf: bytes) -> bytes:
    """``pdf`` with one more incremental update that paints a rectangle on page 1 (a content change)."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    stream = writer.add_object(generic.StreamObject(stream_data=b"q 1 0 0 rg 72 600 200 40 re f Q"))
    writer.add_stream_to_page(0, stream)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def copy_codes(signed: Signed, data: bytes, upto: int | None = None) -> list[str]:
    facts = record_facts(str(signed.folder))
    return [code for code, _ in check_copy(data, signed.pdf.read_bytes(), facts[:upto], signed.trust())]


# --------------------------------------------------------------------------- what signing writes


def test_each_signature_writes_its_copy_with_its_record(signed: Signed):
    names = {p.name for p in signed.folder.iterdir()}
    assert {"01-client.copy.pdf", "02-therapist.copy.pdf"} <= names
    pdf, first, second = signed.pdf.read_bytes(), signed.client_copy.read_bytes(), signed.copy.read_bytes()
    assert first.startswith(pdf) and len(first) > len(pdf)
    assert second.startswith(first) and len(second) > len(first), "the therapist's copy extends the client's"
    for path in (signed.client_copy, signed.copy):
        assert path.stat().st_mode & 0o777 == 0o600
    # Committed by the same ledger entry as its record (crash-safe, write-once, hash recorded).
    entries = [json.loads(line) for line in (signed.root / "signed" / "ledger.jsonl").read_text().splitlines()]
    signs = {e["record"]: e for e in entries if e.get("event") == "sign"}
    assert signs["01-client.json"]["files"]["01-client.copy.pdf"] == hashlib.sha256(first).hexdigest()
    assert signs["02-therapist.json"]["files"]["02-therapist.copy.pdf"] == hashlib.sha256(second).hexdigest()


@pytest.mark.requires_tool("cmp")
def test_cmp_shows_the_archived_pdf_as_the_copys_prefix(signed: Signed):
    size = signed.pdf.stat().st_size
    same = subprocess.run(["cmp", "-n", str(size), str(signed.pdf), str(signed.copy)], capture_output=True, text=True)
    assert same.returncode == 0, same.stdout + same.stderr
    whole = subprocess.run(["cmp", str(signed.pdf), str(signed.copy)], capture_output=True, text=True)
    assert whole.returncode == 1 and "EOF on" in whole.stderr, "the copy only adds bytes after the archived PDF"


def pdf_text(text: str) -> bytes:
    """``text`` as pyHanko writes a PDF text string (the stamp's /ActualText)."""
    from pyhanko.pdf_utils import generic

    out = io.BytesIO()
    generic.TextStringObject(text).write_to_stream(out)
    return out.getvalue()


def test_copy_signers_are_the_cms_signers_with_a_stamp_on_the_last_page(signed: Signed):
    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(io.BytesIO(signed.copy.read_bytes()))
    sigs = reader.embedded_signatures
    assert [s.field_name for s in sigs] == ["Signature-01-client", "Signature-02-therapist"]
    recorded = [json.loads((signed.folder / n).read_bytes()) for n in ("01-client.json", "02-therapist.json")]
    assert [hashlib.sha256(s.signer_cert.dump()).hexdigest() for s in sigs] == \
        [r["certificate"]["sha256"] for r in recorded]
    last_page = reader.find_page_for_modification(-1)[0]
    for sig, rec, who in zip(sigs, recorded, (f"{CLIENT}, client", "Dr. Robin Lee, therapist"), strict=True):
        assert sig.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"
        assert sig.self_reported_timestamp == dt.datetime.fromisoformat(rec["signed_at"])
        widget = sig.sig_field
        assert widget.raw_get("/P").idnum == last_page.idnum, "the stamp is on the last page"
        x1, y1, x2, y2 = (float(v) for v in widget["/Rect"])
        assert x2 - x1 > 100 and y2 - y1 > 20, "a visible field"
        stamp = widget["/AP"]["/N"].data
        when = rec["signed_at"].replace("T", " ").replace("Z", " UTC")
        for line in (f"Signed by {who}", when, f"Agreement {AID}"):
            assert pdf_text(line) in stamp, (line, stamp[:400])
        font = widget["/AP"]["/N"]["/Resources"]["/Font"]["/F1"]
        assert "/FontFile2" in font["/DescendantFonts"][0]["/FontDescriptor"], "the stamp's font is embedded"


def test_copy_is_pades_b_lt_with_the_chain_and_crls_in_its_dss(signed: Signed):
    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(io.BytesIO(signed.copy.read_bytes()))
    dss = reader.root["/DSS"]
    in_dss = {hashlib.sha256(c.get_object().data).hexdigest() for c in dss["/Certs"]}
    pki = PKI(signed.root / "pki")
    for ca in (pki.root(), pki.intake(), pki.clinician_ca()):
        assert hashlib.sha256(ca.public_bytes(serialization.Encoding.DER)).hexdigest() in in_dss
    crls = {hashlib.sha256(c.public_bytes(serialization.Encoding.DER)).hexdigest() for c in pki.crls()}
    assert crls <= {hashlib.sha256(c.get_object().data).hexdigest() for c in dss["/CRLs"]}
    for sig in reader.embedded_signatures:  # B-T: a signature time-stamp token from the practice's TSA
        unsigned = [a["type"].native for a in sig.signer_info["unsigned_attrs"]]
        assert "signature_time_stamp_token" in unsigned, unsigned


# --------------------------------------------------------------------------- readers that are not ours


@needs_pdfsig
def test_pdfsig_finds_two_valid_signatures_with_the_practice_root(signed: Signed, tmp_path: Path):
    out = pdfsig(nss_db(tmp_path, signed.root_pem), signed.copy)
    assert out.count("Signature Validation: Signature is Valid.") == 2, out
    assert out.count("Certificate Validation: Certificate is Trusted.") == 2, out
    assert "Total document signed" in out, out
    assert f"Common Name: {CLIENT}" in out and "Common Name: Dr. Robin Lee" in out


@needs_pdfsig
def test_pdfsig_does_not_trust_the_copy_without_the_practice_root(signed: Signed, tmp_path: Path):
    out = pdfsig(nss_db(tmp_path), signed.copy)
    assert out.count("Signature Validation: Signature is Valid.") == 2, out
    assert "Certificate Validation: Certificate is Trusted." not in out, out


def test_pyhanko_cli_reports_the_signatures_intact_with_no_disallowed_changes(signed: Signed):
    res = subprocess.run([pyhanko_bin(), "sign", "validate", "--trust", str(signed.root_pem), "--trust",
                          str(signed.tsa_roots), "--trust-replace", "--pretty-print", str(signed.copy)],
                         capture_output=True, text=True, timeout=120)
    out = res.stdout
    assert res.returncode == 0, out + res.stderr
    assert out.count("The signature is cryptographically sound.") == 2, out
    assert out.count("The signature is judged VALID.") == 2, out
    assert out.count("The signer's certificate is trusted.") == 2, out
    assert out.count("The TSA certificate is trusted.") == 2, out
    assert ("All modifications relate to signing and form filling operations, and they appear to be compatible "
            "with the current document modification policy.") in out, out
    assert "The signature covers the entire file." in out, out


def test_pyhanko_cli_reports_a_page_change_after_the_signatures(signed: Signed, tmp_path: Path):
    bad = tmp_path / "changed.pdf"
    bad.write_bytes(add_to_page(signed.copy.read_bytes()))
    res = subprocess.run([pyhanko_bin(), "sign", "validate", "--trust", str(signed.root_pem), "--trust",
                          str(signed.tsa_roots), "--trust-replace", "--pretty-print", str(bad)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "The signature is judged VALID." not in res.stdout, res.stdout


# --------------------------------------------------------------------------- check_copy and verify


def test_check_copy_accepts_both_copies(signed: Signed):
    assert copy_codes(signed, signed.copy.read_bytes()) == []
    assert copy_codes(signed, signed.client_copy.read_bytes(), upto=1) == []


def test_check_copy_refuses_a_copy_with_an_update_that_changes_a_page(signed: Signed):
    facts = record_facts(str(signed.folder))
    problems = check_copy(add_to_page(signed.copy.read_bytes()), signed.pdf.read_bytes(), facts, signed.trust())
    assert {c for c, _ in problems} == {"copy.modified"}, problems
    sentences = {s.split(" (Signature-")[0]: s for _, s in problems}
    assert set(sentences) == {"an update after the client's signature", "an update after the therapist's signature"}
    assert all("changes the document's content" in s and "changed after it was signed" in s for s in sentences.values())


def test_check_copy_refuses_a_page_change_slipped_in_between_the_signatures(signed: Signed):
    """The client's copy, changed, then countersigned: the therapist's signature covers the change, but the
    client's does not, and an update that is not a signature stands between them."""
    pki = PKI(signed.root / "pki")
    cert = load_cert(pki.therapist_cert("lee"), "lee")
    key = load_key(pki.therapist_key("lee"), LEE_PASS, "lee")
    changed = add_to_page(signed.client_copy.read_bytes())
    countersigned = sign_copy(changed, key, cert, [pki.clinician_ca()], role="therapist", name="Dr. Robin Lee",
                              signed_at=utcnow(), agreement_id=AID, field_name="Signature-02-therapist")
    assert "copy.modified" in copy_codes(signed, countersigned)


def test_check_copy_refuses_a_copy_whose_prefix_differs_by_one_byte(signed: Signed):
    data = bytearray(signed.copy.read_bytes())
    data[9] ^= 0x01  # in the PDF header's binary comment: the rest of the file still parses
    assert copy_codes(signed, bytes(data)) == ["copy.prefix"]


def test_check_copy_refuses_a_copy_signed_by_another_key(signed: Signed):
    """A certificate from the practice's own intake CA, so trusted: but not the one of the record."""
    pki = PKI(signed.root / "pki")
    intake_key = load_key(pki.intake_key, INTAKE_PASS, "intake CA")
    now = utcnow()
    cert, key = pki.one_time_client(CLIENT, "Copy Practice", intake_key, now, AID, "client")
    other = sign_copy(signed.pdf.read_bytes(), key, cert, [pki.intake()], role="client", name=CLIENT, signed_at=now,
                      agreement_id=AID, field_name="Signature-01-client")
    assert copy_codes(signed, other, upto=1) == ["copy.signers"]


def test_verify_accepts_the_signed_copy(signed: Signed):
    res = invoke(["verify", signed.copy, "--trust", signed.root_pem, "--archive", signed.root / "signed", "-v"])
    assert res.stdout.startswith(f"valid: {AID}"), res.stdout
    assert "copy [02-therapist.copy.pdf]" in res.stdout and "[copy.ok]" in res.stdout
    assert "note: signed copy 02-therapist.copy.pdf: its prefix is the archived agreement.pdf" in res.stdout


def test_verify_accepts_the_clients_copy_made_before_countersigning(signed: Signed):
    res = invoke(["verify", signed.client_copy, "--trust", signed.root_pem, "--archive", signed.root / "signed"])
    assert res.stdout.startswith(f"valid: {AID}"), res.stdout
    assert "was made before 02-therapist.json" in res.stdout


@pytest.mark.parametrize(("damage", "code"), [("page", "copy.modified"), ("byte", "copy.prefix")])
def test_verify_rejects_a_damaged_copy_with_its_reason(signed: Signed, tmp_path: Path, damage: str, code: str):
    from click.testing import CliRunner

    from agreements_kit.cli.commands import main

    data = signed.copy.read_bytes()
    data = add_to_page(data) if damage == "page" else data[:9] + bytes([data[9] ^ 1]) + data[10:]
    bad = tmp_path / "copy.pdf"
    bad.write_bytes(data)
    res = CliRunner().invoke(main, ["verify", str(bad), "--trust", str(signed.root_pem), "--archive",
                                    str(signed.root / "signed")], catch_exceptions=False)
    assert res.exit_code == 1, res.stdout + res.stderr
    assert res.stdout.startswith(f"not valid: {AID}"), res.stdout
    assert f"[{code}]" in res.stdout and "FAIL" in res.stdout


def test_a_folder_without_copies_still_verifies_but_the_ledger_misses_them(signed: Signed, tmp_path: Path,
                                                                         monkeypatch):
    """The signatures do not need the copies (archives from before them have none); but a copy the ledger
    entered at signing and now gone is a file erased from the archive, and the ledger says so."""
    root = private_copy(signed.root, tmp_path, monkeypatch)
    folder = root / "signed" / AID
    for name in ("01-client.copy.pdf", "02-therapist.copy.pdf"):
        (folder / name).unlink()
    trust = resolve_trust(trust_file=root / "pki" / "root.pem", trust_sha256=None, crl=None, practice=None,
                          archive=root / "signed", tsa_trust=None)
    assert verify_folder(folder, trust, ledger=None).valid
    verdict = verify_folder(folder, trust, ledger=root / "signed" / "ledger.jsonl")
    assert {c.code for c in verdict.failures} == {"ledger.files-differ"}
    assert "01-client.copy.pdf" in " ".join(c.detail for c in verdict.failures)


def _audit_codes(root: Path) -> tuple[int, str]:
    from click.testing import CliRunner

    from agreements_kit.cli.commands import main

    res = CliRunner().invoke(main, ["audit", str(root / "signed"), "--trust", str(root / "pki" / "root.pem"),
                                    "--json"], catch_exceptions=False)
    return res.exit_code, res.stdout


def test_audit_holds_each_copy_to_its_ledger_entry(signed: Signed, tmp_path: Path, monkeypatch):
    """audit leaves pyHanko's reading of the copies to verify, but a copy replaced or added is caught."""
    root = private_copy(signed.root, tmp_path, monkeypatch)
    code, out = _audit_codes(root)
    assert code == 0, out
    folder = root / "signed" / AID
    replaced = add_to_page(folder.joinpath("02-therapist.copy.pdf").read_bytes())
    folder.joinpath("02-therapist.copy.pdf").write_bytes(replaced)
    code, out = _audit_codes(root)
    assert code == 1 and "ledger.files-differ" in out and "02-therapist.copy.pdf" in out, out


def test_audit_refuses_a_copy_no_ledger_entry_records(signed: Signed, tmp_path: Path, monkeypatch):
    root = private_copy(signed.root, tmp_path, monkeypatch)
    folder = root / "signed" / AID
    shutil.copyfile(folder / "02-therapist.copy.pdf", folder / "03-therapist.copy.pdf")
    code, out = _audit_codes(root)
    assert code == 1 and "ledger.unlogged-file" in out and "03-therapist.copy.pdf" in out, out


def test_countersigning_an_agreement_signed_before_copies_makes_none(base: Path, tmp_path: Path, monkeypatch):
    root = private_copy(base, tmp_path, monkeypatch)
    practice = load_practice(root)
    sign_client(practice, LATER, client_signing(root / "drafts" / LATER), INTAKE_PASS)
    folder = root / "signed" / LATER
    (folder / "01-client.copy.pdf").unlink()  # as an older archive has it
    sign_therapist(practice, LATER, LEE_PASS)
    assert not list(folder.glob("*.copy.pdf"))


def test_demo_writes_the_signed_copy(tmp_path: Path):
    from agreements_kit.cli.demo import run_demo

    result = run_demo(tmp_path / "demo")
    assert result.copy is not None and result.copy.name == "02-therapist.copy.pdf"
    assert result.copy.read_bytes().startswith((result.archived / "agreement.pdf").read_bytes())
    assert any(line.strip().startswith("cmp -n ") and str(result.copy) in line for line in result.lines)
    facts = record_facts(str(result.archived))
    trust = resolve_trust(trust_file=result.practice / "pki" / "root.pem", trust_sha256=None, crl=None,
                          practice=None, archive=result.practice / "signed", tsa_trust=None)
    assert check_copy(result.copy.read_bytes(), (result.archived / "agreement.pdf").read_bytes(), facts, trust) == []


def test_signing_never_writes_the_one_time_key(signed: Signed):
    """The client's key signs both the CMS signature and the copy, in memory: no key file appears."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    keys = {p.relative_to(signed.root).as_posix() for p in signed.root.rglob("*")
            if p.is_file() and b"PRIVATE KEY" in p.read_bytes()[:200]}
    assert keys == {"pki/root.key.pem", "pki/intake.key.pem", "pki/clinicians.key.pem",
                    *(k for k in keys if k.startswith("pki/therapists/"))}, keys
    signer = PdfFileReader(io.BytesIO(signed.client_copy.read_bytes())).embedded_signatures[0].signer_cert
    cert = x509.load_der_x509_certificate(signer.dump())
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= dt.timedelta(days=1, minutes=5), \
        "the copy is signed with the one-time client certificate"


def dead_url() -> str:
    """An http URL on loopback where nothing listens (connections are refused at once)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def retarget_tsa(root: Path, url: str, on_failure: str) -> None:
    path = root / "practice.yaml"
    lines = path.read_text().splitlines()
    lines = [f'  tsa: ["{url}"]' if ln.startswith("  tsa: ") else
             f"  on_failure: {on_failure}" if ln.startswith("  on_failure: ") else ln for ln in lines]
    path.write_text("\n".join(lines) + "\n")


def test_no_tsa_answering_signs_nothing_copy_included(base: Path, tmp_path: Path, monkeypatch):
    from agreements_kit.errors import TimestampError

    root = private_copy(base, tmp_path, monkeypatch)
    url = dead_url()
    retarget_tsa(root, url, "stop")
    with pytest.raises(TimestampError) as caught:
        sign_client(load_practice(root), LATER, client_signing(root / "drafts" / LATER), INTAKE_PASS)
    assert caught.value.code == "unavailable.tsa"
    assert "nothing was signed" in caught.value.message and url in caught.value.message
    folder = root / "signed" / LATER
    assert not folder.exists() or not [p for p in folder.iterdir() if p.name[:2].isdigit()]


def test_an_untimestamped_archive_still_gets_a_signed_copy(base: Path, tmp_path: Path, monkeypatch):
    """practice.yaml on_failure: archive-untimestamped: the copy is made (PAdES B-LT, without B-T) and checks out."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    root = private_copy(base, tmp_path, monkeypatch)
    retarget_tsa(root, dead_url(), "archive-untimestamped")
    result = sign_client(load_practice(root), LATER, client_signing(root / "drafts" / LATER), INTAKE_PASS)
    assert result.untimestamped is not None
    folder = root / "signed" / LATER
    data = (folder / "01-client.copy.pdf").read_bytes()
    sig = PdfFileReader(io.BytesIO(data)).embedded_signatures[0]
    assert "signature_time_stamp_token" not in [a["type"].native for a in sig.signer_info["unsigned_attrs"]]
    trust = resolve_trust(trust_file=root / "pki" / "root.pem", trust_sha256=None, crl=None, practice=None,
                          archive=root / "signed", tsa_trust=None)
    assert check_copy(data, (folder / "agreement.pdf").read_bytes(), record_facts(str(folder)), trust) == []


def test_verify_checks_the_copies_in_the_folder(signed: Signed, tmp_path: Path, monkeypatch):
    """Step 14 in a folder: each NN-ROLE.copy.pdf's prefix (and step 12, its ledger entry); read in full with
    pyHanko when the Verifier is asked to (as `agreements verify COPY.pdf` reads a copy)."""
    from helpers import failure_codes

    from agreements_kit.verification.ledgerview import build_index
    from agreements_kit.verification.verify import Verifier

    root = private_copy(signed.root, tmp_path, monkeypatch)
    folder = root / "signed" / AID
    trust = resolve_trust(trust_file=root / "pki" / "root.pem", trust_sha256=None, crl=None, practice=None,
                          archive=root / "signed", tsa_trust=root / "pki" / "tsa-roots.pem")
    verdict = verify_folder(folder, trust, ledger=root / "signed" / "ledger.jsonl")
    assert verdict.valid, [(c.code, c.detail) for c in verdict.failures]
    checked = {c.subject: c.step for c in verdict.checks if c.code == "copy.prefix-ok"}
    assert checked == {"01-client.copy.pdf": 14, "02-therapist.copy.pdf": 14}
    deep = Verifier(trust, build_index(str(root / "signed" / "ledger.jsonl")), check_copies=True).verify(folder)
    assert {c.subject for c in deep.checks if c.code == "copy.ok"} == {"01-client.copy.pdf", "02-therapist.copy.pdf"}
    copy = folder / "02-therapist.copy.pdf"
    copy.chmod(0o600)
    copy.write_bytes(add_to_page(copy.read_bytes()))
    verdict = verify_folder(folder, trust, ledger=root / "signed" / "ledger.jsonl")
    assert failure_codes(verdict, "02-therapist.json") == {"ledger.files-differ"}  # the ledger entered other bytes
    deep = Verifier(trust, build_index(str(root / "signed" / "ledger.jsonl")), check_copies=True).verify(folder)
    assert failure_codes(deep, "02-therapist.copy.pdf") == {"copy.modified"}
    assert failure_codes(deep, "01-client.copy.pdf") == set()


def test_verify_without_the_ledger_reads_a_copy_in_full(signed: Signed, tmp_path: Path, monkeypatch):
    """Without a ledger nothing holds a copy's bytes, so the folder's copies are read with pyHanko (found in
    review: --no-ledger passed a copy with a later update)."""
    root = private_copy(signed.root, tmp_path, monkeypatch)
    folder = root / "signed" / AID
    copy = folder / "02-therapist.copy.pdf"
    copy.chmod(0o600)
    copy.write_bytes(add_to_page(copy.read_bytes()))
    trust = resolve_trust(trust_file=root / "pki" / "root.pem", trust_sha256=None, crl=None, practice=None,
                          archive=root / "signed", tsa_trust=root / "pki" / "tsa-roots.pem")
    verdict = verify_folder(folder, trust, ledger=None)
    assert "copy.modified" in {c.code for c in verdict.failures}, [(c.code, c.detail) for c in verdict.failures]


def test_countersigning_refuses_a_clients_copy_changed_on_disk(base: Path, tmp_path: Path, monkeypatch):
    """The therapist's copy would sign over the change: refused before anything is signed (found in review)."""
    from agreements_kit.errors import SigningError

    root = private_copy(base, tmp_path, monkeypatch)
    practice = load_practice(root)
    sign_client(practice, LATER, client_signing(root / "drafts" / LATER), INTAKE_PASS)
    folder = root / "signed" / LATER
    client_copy = folder / "01-client.copy.pdf"
    client_copy.chmod(0o600)
    client_copy.write_bytes(add_to_page(client_copy.read_bytes()))
    with pytest.raises(SigningError) as err:
        sign_therapist(practice, LATER, LEE_PASS)
    assert err.value.code == "conflict.signed-copy"
    assert not (folder / "02-therapist.json").exists()
