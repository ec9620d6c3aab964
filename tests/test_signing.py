"""Signing: records, detached CMS signatures, the archive and its ledger.

Everything a signature produces is read back independently of the package:
hashes with ``hashlib`` and ``sha256sum``, certificates with ``cryptography``
and ``openssl pkcs7``, and every record is verified with exactly the OpenSSL
command an auditor is given. Bad input must give one ``error:`` line, exit
code 2, and leave every file of the practice as it was.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import random
import re
import shlex
import shutil
import stat
import struct
import subprocess
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID
from helpers import flip, invoke, ok, private_copy, refused, sha256_of, tree
from helpers import ledger_entries as ledger

from agreements_kit.authoring.practice import load_practice
from agreements_kit.authoring.render import Job, Renderer
from agreements_kit.authoring.spec import make_spec
from agreements_kit.formats.record import INTENT
from agreements_kit.resources import templates_dir
from agreements_kit.signing.pki import PKI, PKIError, utcnow
from agreements_kit.signing.renders import log_renders
from agreements_kit.signing.setup import init_practice
from agreements_kit.signing.sign import ClientSigning, sign_client, sign_therapist
from agreements_kit.store.archive import ArchiveError

PRACTICE_PASS = "practice-pass-1"  # the intake CA's (client signatures)
ROOT_PASS = "root-pass-1"
CLINICIAN_PASS = "clinician-ca-pass-1"
LEE_PASS = "lee-key-pass-1"
CLIENT = "Jane Q. Doe"
ONE = "agr-sign-one"
TWO = "agr-sign-two"
WARD = "agr-sign-ward"  # an agreement that names a guardian (rendered by the tests that need it)
GUARDIAN = "Pat Doe"
DATE = dt.date(2026, 11, 27)
ZEROS = "0" * 64

needs_openssl = pytest.mark.requires_tool("openssl")
needs_poppler = pytest.mark.requires_tool("pdftotext")


# --------------------------------------------------------------------------- helpers


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def client_args(practice: Path, ref: str | Path = ONE, omit: tuple[str, ...] = (), **values: str) -> list:
    """``sign REF --as client`` with every answer given, except those in ``omit``; ``values`` replace some."""
    options = {"--name": CLIENT, "--initials": "JQD", "--identity": "photo ID", "--checked-by": "Front desk"}
    options.update({f"--{k.replace('_', '-')}": v for k, v in values.items()})
    args: list = ["sign", ref, "--practice", practice, "--as", "client"]
    for opt, value in options.items():
        if opt not in omit:
            args += [opt, value]
    for flag in ("--consent", "--agree"):
        if flag not in omit:
            args.append(flag)
    return args


def openssl_verify(record: Path, root_pem: Path, *extra: str) -> subprocess.CompletedProcess:
    """Exactly the auditor's command (plus ``extra`` options)."""
    return subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", f"{record}.p7s",
                           "-content", str(record), "-CAfile", str(root_pem), "-purpose", "any",
                           "-out", "/dev/null", *extra], capture_output=True, text=True)


def initial_clauses(folder: Path) -> list[str]:
    manifest = json.loads((folder / "manifest.json").read_text())
    return [c["id"] for c in manifest["clauses"] if c["initials"]]


def signing(folder: Path, **changes) -> ClientSigning:
    values = dict(name=CLIENT, consent=True, initials=dict.fromkeys(initial_clauses(folder), "JQD"), intent=True,
                  identity_method="photo ID", identity_checked_by="Front desk")
    values.update(changes)
    return ClientSigning(**values)


def sign_as_client(pr: Path, ref: str = ONE):
    return sign_client(load_practice(pr), ref, signing(pr / "drafts" / ONE), PRACTICE_PASS.encode())


def png(width: int = 2, height: int = 2, rows: list[bytes] | None = None) -> bytes:
    """A valid RGB PNG (each row: filter byte + pixels)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    if rows is None:
        rows = [b"\x00" + b"\x10\x20\x30" * width for _ in range(height)]
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))


def p7s_certs(p7s: Path) -> list[x509.Certificate]:
    return pkcs7.load_der_pkcs7_certificates(p7s.read_bytes())


def der_sha256(c: x509.Certificate) -> str:
    return sha256(c.public_bytes(serialization.Encoding.DER))


def cn(c: x509.Certificate) -> str:
    return c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A practice with its PKI, lee's certificate, and two rendered (and logged) drafts."""
    root = tmp_path_factory.mktemp("signing-base") / "practice"
    init_practice(root, name="Test Practice", jurisdiction="US-NY", phone="(212) 555-0100",
                  therapists={"lee": ("Dr. Robin Lee", "PhD", "psychologist"), "ortiz": ("Sam Ortiz", "LCSW", "lcsw")},
                  passphrase=ROOT_PASS.encode(), intake_passphrase=PRACTICE_PASS.encode(),
                  clinician_passphrase=CLINICIAN_PASS.encode())
    practice = load_practice(root)
    PKI(root / "pki").issue_clinician("lee", "Dr. Robin Lee", practice.name, CLINICIAN_PASS.encode(),
                                      LEE_PASS.encode())
    renderer = Renderer.load(root)
    drafts = [renderer.render_to(Job(make_spec(client=CLIENT, therapist="lee", id=aid, date=DATE),
                                     practice.drafts)) for aid in (ONE, TWO)]
    log_renders(practice, drafts)
    return root


@pytest.fixture
def pr(base: Path, tmp_path: Path, monkeypatch) -> Path:
    """A private copy of ``base``; the passphrase variables start unset."""
    return private_copy(base, tmp_path, monkeypatch)


@dataclass
class Signed:
    root: Path
    draft: Path
    folder: Path
    client_stdout: str
    therapist_stdout: str
    ledger_after_client: bytes
    files_after_client: set[str]

    @property
    def client(self) -> Path:
        return self.folder / "01-client.json"

    @property
    def therapist(self) -> Path:
        return self.folder / "02-therapist.json"

    @property
    def root_pem(self) -> Path:
        return self.root / "pki" / "root.pem"

    def record(self, name: str) -> dict:
        return json.loads((self.folder / name).read_bytes())


@pytest.fixture(scope="module")
def signed(base: Path, tmp_path_factory) -> Signed:
    """ONE signed through the CLI: by the client (draft folder path), then the therapist (id)."""
    root = tmp_path_factory.mktemp("signed") / "practice"
    shutil.copytree(base, root)
    draft = root / "drafts" / ONE
    client = invoke(client_args(root, draft), env={"AGREEMENTS_INTAKE_PASSPHRASE": PRACTICE_PASS})
    folder = root / "signed" / ONE
    after_client = (root / "signed" / "ledger.jsonl").read_bytes()
    files_after_client = {p.name for p in folder.iterdir()}
    therapist = invoke(["sign", ONE, "--practice", root, "--as", "therapist"],
                       env={"AGREEMENTS_PASSPHRASE": LEE_PASS})
    return Signed(root, draft, folder, client.stdout, therapist.stdout, after_client, files_after_client)


# --------------------------------------------------------------------------- the signed records


def test_cli_reports_what_it_wrote(signed: Signed):
    assert f"signed {ONE} as client ({CLIENT})" in signed.client_stdout
    assert str(signed.client) in signed.client_stdout
    assert f"{signed.client}.p7s" in signed.client_stdout
    assert f"signed {ONE} as therapist (Dr. Robin Lee)" in signed.therapist_stdout
    assert str(signed.folder / "completion.pdf") in signed.therapist_stdout


def test_archive_folder_holds_exactly_the_expected_files(signed: Signed):
    assert signed.files_after_client == {"agreement.pdf", "manifest.json", "01-client.json", "01-client.json.p7s",
                                         "01-client.copy.pdf"}
    assert {p.name for p in signed.folder.iterdir()} == signed.files_after_client | {
        "02-therapist.json", "02-therapist.json.p7s", "02-therapist.copy.pdf", "completion.pdf"}


def test_archived_pdf_and_manifest_are_the_draft_bytes(signed: Signed):
    assert (signed.folder / "agreement.pdf").read_bytes() == (signed.draft / "agreement.pdf").read_bytes()
    assert (signed.folder / "manifest.json").read_bytes() == (signed.draft / "manifest.json").read_bytes()


def test_client_record_contents(signed: Signed):
    rec = signed.record("01-client.json")
    assert rec["format"] == "agreements-kit/signing-record"
    assert rec["format_version"] == 2
    assert rec["kind"] == "signature"
    assert rec["agreement_id"] == ONE
    assert rec["sequence"] == 1
    pdf = signed.folder / "agreement.pdf"
    assert rec["document"] == {"file": "agreement.pdf", "sha256": sha256_of(pdf)}
    assert rec["manifest"] == {"file": "manifest.json", "sha256": sha256_of(signed.folder / "manifest.json")}
    assert rec["signer"] == {"role": "client", "name": CLIENT}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rec["signed_at"]), rec["signed_at"]
    signed_at = dt.datetime.fromisoformat(rec["signed_at"].replace("Z", "+00:00"))
    assert abs(dt.datetime.now(dt.UTC) - signed_at) < dt.timedelta(minutes=10)
    assert rec["intent"] == {"statement": INTENT, "adopted": True}
    disclosure = templates_dir() / "esign-disclosure.txt"
    version = re.match(r"Version:\s*(\S+)", disclosure.read_text()).group(1)
    assert rec["esign"] == {"disclosure_version": version, "disclosure_sha256": sha256_of(disclosure),
                            "disclosure_accepted": True, "consent_to_electronic_records": True}
    needed = initial_clauses(signed.folder)
    assert needed  # the default library has clauses to initial
    assert rec["initials"] == dict.fromkeys(needed, "JQD")
    assert rec["method"] == {"typed_name": CLIENT, "drawn_signature_png_sha256": None,
                             "drawn_signature_file": None}
    assert rec["identity"] == {"method": "photo ID", "checked_by": "Front desk"}


def test_record_is_canonical_json_bytes(signed: Signed):
    """Format version 2: a record's bytes are exactly the RFC 8785 (JCS) form of what they say."""
    for path in (signed.client, signed.therapist):
        data = path.read_bytes()
        assert json.loads(data)["format_version"] == 2
        assert data == rfc8785.dumps(json.loads(data))
        assert not data.endswith(b"\n")


@pytest.mark.requires_tool("sha256sum")
def test_record_pdf_hash_equals_sha256sum(signed: Signed):
    pdf = signed.folder / "agreement.pdf"
    out = subprocess.run(["sha256sum", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert out.split()[0] == hashlib.sha256(pdf.read_bytes()).hexdigest()
    for name in ("01-client.json", "02-therapist.json"):
        assert signed.record(name)["document"]["sha256"] == out.split()[0]


def test_client_certificate_is_one_time_from_the_intake_ca(signed: Signed):
    rec = signed.record("01-client.json")
    certs = p7s_certs(Path(f"{signed.client}.p7s"))
    by_fp = {der_sha256(c): c for c in certs}
    assert rec["certificate"]["sha256"] in by_fp
    client = by_fp[rec["certificate"]["sha256"]]
    intake = x509.load_pem_x509_certificate((signed.root / "pki" / "intake.pem").read_bytes())
    assert cn(client) == CLIENT
    assert client.issuer == intake.subject
    client.verify_directly_issued_by(intake)
    assert client.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    # The whole chain travels in the signature (the intake CA and the root: long-term evidence).
    root = x509.load_pem_x509_certificate((signed.root / "pki" / "root.pem").read_bytes())
    assert der_sha256(intake) in by_fp and der_sha256(root) in by_fp
    assert len(certs) == 3
    # One-time: valid around the signature only.
    signed_at = dt.datetime.fromisoformat(rec["signed_at"].replace("Z", "+00:00"))
    assert client.not_valid_before_utc <= signed_at < client.not_valid_after_utc
    assert client.not_valid_after_utc - client.not_valid_before_utc <= dt.timedelta(days=1, minutes=5)
    assert rec["certificate"]["serial"] == f"{client.serial_number:x}"
    assert rec["certificate"]["subject"] == client.subject.rfc4514_string()
    assert rec["certificate"]["issuer"] == intake.subject.rfc4514_string()


def test_therapist_record_and_certificate(signed: Signed):
    rec = signed.record("02-therapist.json")
    assert rec["signer"] == {"role": "therapist", "name": "Dr. Robin Lee", "therapist_id": "lee"}
    assert rec["sequence"] == 2
    assert rec["agreement_id"] == ONE
    assert rec["intent"] == {"statement": INTENT, "adopted": True}
    assert rec["initials"] == {}
    assert rec["document"]["sha256"] == sha256_of(signed.folder / "agreement.pdf")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rec["signed_at"])
    lee = x509.load_pem_x509_certificate((signed.root / "pki" / "therapists" / "lee.pem").read_bytes())
    certs = p7s_certs(Path(f"{signed.therapist}.p7s"))
    pki = signed.root / "pki"  # lee's CA: the clinician CA where the practice has one, else the root
    chain = [lee, *(x509.load_pem_x509_certificate(p.read_bytes())
                    for p in (pki / "clinicians.pem", pki / "root.pem") if p.is_file())]
    assert sorted(der_sha256(c) for c in certs) == sorted(der_sha256(c) for c in chain)  # the whole chain
    assert rec["certificate"]["sha256"] == der_sha256(lee)


@needs_openssl
@pytest.mark.parametrize("name", ["01-client.json", "02-therapist.json"])
def test_fingerprint_matches_the_certificate_openssl_finds_in_the_p7s(signed: Signed, name: str):
    p7s = signed.folder / f"{name}.p7s"
    out = subprocess.run(["openssl", "pkcs7", "-inform", "DER", "-print_certs", "-in", str(p7s)],
                         capture_output=True, check=True).stdout
    certs = x509.load_pem_x509_certificates(out)
    signer_name = signed.record(name)["signer"]["name"]
    signer = [c for c in certs if cn(c) == signer_name]
    assert len(signer) == 1
    assert signed.record(name)["certificate"]["sha256"] == der_sha256(signer[0])


def test_ledger_chain_and_events(signed: Signed):
    entries = ledger(signed.root / "signed" / "ledger.jsonl")
    assert entries[0][0]["prev"] == ZEROS
    for entry, line in entries:  # format version 2: every line is RFC 8785 and says so
        assert entry["format_version"] == 2
        assert line == rfc8785.dumps(entry)
    events = [(e["event"], e.get("agreement_id") or e.get("therapist_id") or e.get("role")) for e, _ in entries]
    assert events == [
        # the practice's PKI (init, then lee's certificate): each certificate registered, the first CRL set logged
        ("certificate", "root"), ("certificate", "intake"), ("certificate", "clinician-ca"), ("crl", None),
        ("certificate", "lee"),
        ("render", ONE), ("render", TWO),
        # the client's signature: admission, the one-time certificate, the record
        ("archive", ONE), ("certificate", ONE), ("sign", ONE),
        ("sign", ONE),  # the therapist's countersignature (lee's certificate is registered already)
    ]
    pdf_sha = sha256_of(signed.folder / "agreement.pdf")
    assert all(e["pdf_sha256"] == pdf_sha for e, _ in entries
               if e.get("agreement_id") == ONE and e["event"] != "certificate")
    archive = entries[7][0]
    assert (archive["event"], archive["agreement_id"]) == ("archive", ONE)
    assert archive["manifest_sha256"] == sha256_of(signed.folder / "manifest.json")
    # The register of certificates names each certificate by hash and role, never by a person's name.
    pki = signed.root / "pki"
    root = x509.load_pem_x509_certificate((pki / "root.pem").read_bytes())
    intake = x509.load_pem_x509_certificate((pki / "intake.pem").read_bytes())
    clinicians = x509.load_pem_x509_certificate((pki / "clinicians.pem").read_bytes())
    lee = x509.load_pem_x509_certificate((pki / "therapists" / "lee.pem").read_bytes())
    client_cert = signed.record("01-client.json")["certificate"]["sha256"]
    registered = [(e["role"], e["certificate_sha256"], e["issuer_sha256"], e.get("therapist_id"),
                   e.get("agreement_id")) for e, _ in entries if e["event"] == "certificate"]
    assert registered == [("root", der_sha256(root), der_sha256(root), None, None),
                          ("intake", der_sha256(intake), der_sha256(root), None, None),
                          ("clinician-ca", der_sha256(clinicians), der_sha256(root), None, None),
                          ("therapist", der_sha256(lee), der_sha256(clinicians), "lee", None),
                          ("client", client_cert, der_sha256(intake), None, ONE)]
    crl = entries[3][0]
    # each CA's CRL numbered on its own: the root's, the intake CA's and the clinician CA's, each number 1
    assert set(crl["crl_numbers"].values()) == {1} and len(crl["crl_numbers"]) == 3 and crl["revoked"] == []
    assert "crl_number" not in crl
    for (entry, _), name, role in ((entries[9], "01-client.json", "client"),
                                   (entries[10], "02-therapist.json", "therapist")):
        assert entry["role"] == role
        assert entry["record"] == name
        assert entry["certificate_sha256"] == signed.record(name)["certificate"]["sha256"]
        assert entry["files"] == {n: sha256_of(signed.folder / n) for n in (name, f"{name}.p7s",
                                                                          name.replace(".json", ".copy.pdf"))}


def test_ledger_grew_by_appending_only(signed: Signed):
    final = (signed.root / "signed" / "ledger.jsonl").read_bytes()
    assert final.startswith(signed.ledger_after_client)
    assert final.count(b"\n") == signed.ledger_after_client.count(b"\n") + 1


def test_record_ledger_head_is_the_hash_of_the_line_before_its_sign_entry(signed: Signed):
    entries = ledger(signed.root / "signed" / "ledger.jsonl")
    for name in ("01-client.json", "02-therapist.json"):
        index = next(i for i, (e, _) in enumerate(entries) if e.get("record") == name)
        assert signed.record(name)["ledger_head"] == sha256(entries[index - 1][1])
        assert signed.record(name)["ledger_head"] == entries[index][0]["prev"]


def test_no_client_name_in_the_ledger(signed: Signed):
    data = (signed.root / "signed" / "ledger.jsonl").read_bytes().lower()
    for word in (CLIENT, "Jane", "Doe"):
        assert word.lower().encode() not in data


def test_archive_files_are_private(signed: Signed):
    for dirpath, _, filenames in os.walk(signed.root / "signed"):
        assert stat.S_IMODE(os.stat(dirpath).st_mode) == 0o700, dirpath
        for f in filenames:
            assert stat.S_IMODE(os.stat(os.path.join(dirpath, f)).st_mode) == 0o600, f


@needs_poppler
def test_completion_pdf_names_both_signers_and_the_pdf_hash(signed: Signed):
    completion = signed.folder / "completion.pdf"
    assert "completion.pdf" not in signed.files_after_client
    assert completion.read_bytes().startswith(b"%PDF-")
    text = subprocess.run(["pdftotext", str(completion), "-"], capture_output=True, text=True, check=True).stdout
    flat = " ".join(text.split())
    assert CLIENT in flat
    assert "Dr. Robin Lee" in flat
    assert sha256_of(signed.folder / "agreement.pdf") in "".join(text.split())


@needs_openssl
@pytest.mark.parametrize("name", ["01-client.json", "02-therapist.json"])
def test_openssl_verifies_every_record(signed: Signed, name: str):
    proc = openssl_verify(signed.folder / name, signed.root_pem)
    assert proc.returncode == 0, proc.stderr
    assert "Verification successful" in proc.stderr


@needs_openssl
@pytest.mark.parametrize("name", ["01-client.json", "02-therapist.json"])
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_openssl_rejects_a_record_with_one_byte_changed(signed: Signed, tmp_path: Path, name: str, where: str):
    copy = tmp_path / name
    shutil.copyfile(signed.folder / name, copy)
    shutil.copyfile(signed.folder / f"{name}.p7s", f"{copy}.p7s")
    assert openssl_verify(copy, signed.root_pem).returncode == 0  # the copy itself verifies
    size = copy.stat().st_size
    flip(copy, {"first": 0, "middle": size // 2, "last": size - 1}[where])
    assert openssl_verify(copy, signed.root_pem).returncode != 0


@needs_openssl
def test_openssl_rejects_the_signatures_against_another_practice_root(signed: Signed, tmp_path: Path):
    other = PKI(tmp_path / "other-pki")
    other.create("Other Practice", b"other-pass-1", b"other-intake-1", b"other-clinician-1")
    for name in ("01-client.json", "02-therapist.json"):
        assert openssl_verify(signed.folder / name, other.root_cert).returncode != 0


@needs_openssl
@pytest.mark.parametrize(("name", "days_later"), [("01-client.json", 2), ("02-therapist.json", 3 * 365)])
def test_openssl_verifies_a_record_years_later_as_of_its_signing_time(signed: Signed, name: str, days_later: int):
    """Certificates are short-lived, so an auditor checks them as of the signature (README: -attime).

    ``-attime`` replaces OpenSSL's clock: with the record's own signing time the verdict no
    longer depends on when the audit happens; judged at a later date the certificate has
    expired, which is why the documented command passes the signing time.
    """
    signed_at = json.loads((signed.folder / name).read_text())["signed_at"]
    at_signing = int(dt.datetime.fromisoformat(signed_at.replace("Z", "+00:00")).timestamp())
    proc = openssl_verify(signed.folder / name, signed.root_pem, "-attime", str(at_signing))
    assert proc.returncode == 0, proc.stderr
    later = int(time.time()) + days_later * 86400
    assert openssl_verify(signed.folder / name, signed.root_pem, "-attime", str(later)).returncode != 0


# --------------------------------------------------------------------------- other successful paths


@needs_openssl
def test_sign_by_id_then_countersign_by_draft_path_with_passphrase_file(cli, monkeypatch, pr: Path,
                                                                        tmp_path: Path):
    monkeypatch.setenv("AGREEMENTS_INTAKE_PASSPHRASE", PRACTICE_PASS)
    ok(cli(*client_args(pr, TWO)))
    monkeypatch.delenv("AGREEMENTS_INTAKE_PASSPHRASE")
    pass_file = tmp_path / "lee.txt"
    pass_file.write_text(LEE_PASS + "\n")
    res = ok(cli("sign", pr / "drafts" / TWO, "--practice", pr, "--as", "therapist", "--passphrase-file",
                 pass_file))
    folder = pr / "signed" / TWO
    assert "complete:" in res.stdout
    assert (folder / "completion.pdf").is_file()
    assert (folder / "agreement.pdf").read_bytes() == (pr / "drafts" / TWO / "agreement.pdf").read_bytes()
    for name in ("01-client.json", "02-therapist.json"):
        assert openssl_verify(folder / name, pr / "pki" / "root.pem").returncode == 0
    assert not (pr / "signed" / ONE).exists()
    entries = ledger(pr / "signed" / "ledger.jsonl")
    assert [e["event"] for e, _ in entries if e.get("agreement_id") == TWO] == [
        "render", "archive", "certificate", "sign", "sign"]  # "certificate": the client's one-time certificate


@needs_openssl
def test_drawn_signature_is_stored_and_its_hash_recorded(cli, monkeypatch, pr: Path, tmp_path: Path):
    monkeypatch.setenv("AGREEMENTS_INTAKE_PASSPHRASE", PRACTICE_PASS)
    image = png()
    drawn = tmp_path / "drawn.png"
    drawn.write_bytes(image)
    ok(cli(*client_args(pr, ONE), "--drawn-signature", drawn))
    folder = pr / "signed" / ONE
    stored = folder / "01-client.png"
    # Redrawn as the intake pages redraw a pad's picture: the stored PNG is Pillow's, not the file given.
    from agreements_kit.intake.drawing import clean_png

    redrawn = clean_png(image)
    assert stored.read_bytes() == redrawn != image
    assert stat.S_IMODE(os.stat(stored).st_mode) == 0o600
    rec = json.loads((folder / "01-client.json").read_bytes())
    assert rec["method"]["drawn_signature_png_sha256"] == sha256(redrawn)
    assert rec["method"]["drawn_signature_file"] == "01-client.png"
    sign_entry = ledger(pr / "signed" / "ledger.jsonl")[-1][0]
    assert sign_entry["files"]["01-client.png"] == sha256(redrawn)
    assert openssl_verify(folder / "01-client.json", pr / "pki" / "root.pem").returncode == 0


@needs_openssl
def test_void_record_is_signed_and_closes_the_agreement(cli, monkeypatch, pr: Path):
    monkeypatch.setenv("AGREEMENTS_PASSPHRASE", LEE_PASS)
    res = ok(cli("void", ONE, "--practice", pr, "--reason", "Client chose another program"))
    record = pr / "signed" / ONE / "01-void.json"
    assert str(record) in res.stdout
    rec = json.loads(record.read_bytes())
    assert rec["kind"] == "void" and rec["reason"] == "Client chose another program"
    assert rec["signer"]["role"] == "therapist"
    assert openssl_verify(record, pr / "pki" / "root.pem").returncode == 0
    assert [e["event"] for e, _ in ledger(pr / "signed" / "ledger.jsonl")][-2:] == ["archive", "void"]
    before = tree(pr)
    refused(cli("void", ONE, "--practice", pr, "--reason", "again"), "voided")
    assert tree(pr) == before


# --------------------------------------------------------------------------- the demo


@needs_openssl
def test_demo_prints_openssl_commands_that_all_succeed(run_bin, tmp_path: Path):
    res = run_bin("demo", tmp_path / "demo")
    assert res.exit_code == 0, res.stderr
    commands = [ln.strip() for ln in res.stdout.splitlines() if ln.strip().startswith("openssl cms")]
    assert len(commands) == 2, res.stdout
    for command in commands:
        args = shlex.split(command)
        assert args[:3] == ["openssl", "cms", "-verify"]
        proc = subprocess.run(args, capture_output=True, text=True)
        assert proc.returncode == 0, (command, proc.stderr)
    sums = [ln.strip() for ln in res.stdout.splitlines() if ln.strip().startswith("sha256sum ")]
    assert len(sums) == 1
    pdf = Path(shlex.split(sums[0].split("#")[0])[1])
    digest = hashlib.sha256(pdf.read_bytes()).hexdigest()
    for record in pdf.parent.glob("0[0-9]-*.json"):
        assert json.loads(record.read_bytes())["document"]["sha256"] == digest


# --------------------------------------------------------------------------- bad input


def test_wrong_practice_passphrase_for_client_signing(cli, monkeypatch, pr: Path):
    monkeypatch.setenv("AGREEMENTS_INTAKE_PASSPHRASE", "not-the-intake-pass")
    before = tree(pr)
    refused(cli(*client_args(pr)), "wrong passphrase")
    assert tree(pr) == before


def test_client_signing_without_any_passphrase(cli, pr: Path):
    before = tree(pr)
    refused(cli(*client_args(pr)), "AGREEMENTS_INTAKE_PASSPHRASE")
    assert tree(pr) == before


def test_wrong_passphrase_for_therapist_signing(cli, monkeypatch, pr: Path):
    sign_as_client(pr)
    monkeypatch.setenv("AGREEMENTS_PASSPHRASE", PRACTICE_PASS)  # the intake CA's, not lee's
    before = tree(pr)
    refused(cli("sign", ONE, "--practice", pr, "--as", "therapist"), "wrong passphrase")
    assert tree(pr) == before


def test_unreadable_passphrase_file_for_therapist_signing(cli, pr: Path, tmp_path: Path):
    sign_as_client(pr)
    before = tree(pr)
    refused(cli("sign", ONE, "--practice", pr, "--as", "therapist", "--passphrase-file", tmp_path / "missing.txt"),
            "cannot read passphrase file")
    assert tree(pr) == before


def test_wrong_passphrase_for_void(cli, monkeypatch, pr: Path):
    monkeypatch.setenv("AGREEMENTS_PASSPHRASE", PRACTICE_PASS)  # the intake CA's, not lee's
    before = tree(pr)
    refused(cli("void", ONE, "--practice", pr, "--reason", "duplicate"), "wrong passphrase")
    assert tree(pr) == before


def test_revoked_therapist_certificate_cannot_sign(cli, monkeypatch, pr: Path):
    sign_as_client(pr)
    monkeypatch.setenv("AGREEMENTS_CLINICIAN_CA_PASSPHRASE", CLINICIAN_PASS)
    ok(cli("pki", "revoke", "--practice", pr, "--therapist", "lee"))
    monkeypatch.setenv("AGREEMENTS_PASSPHRASE", LEE_PASS)
    before = tree(pr)
    refused(cli("sign", ONE, "--practice", pr, "--as", "therapist"), "revoked")
    assert tree(pr) == before


def test_expired_therapist_certificate_cannot_sign_library(cli, monkeypatch, pr: Path):
    monkeypatch.setenv("AGREEMENTS_CLINICIAN_CA_PASSPHRASE", CLINICIAN_PASS)
    monkeypatch.setenv("AGREEMENTS_KEY_PASSPHRASE", "ortiz-key-pass")
    ok(cli("pki", "issue", "--practice", pr, "--therapist", "ortiz", "--days", "1"))
    sign_as_client(pr)
    before = tree(pr)
    with pytest.raises(PKIError, match="expired"):
        sign_therapist(load_practice(pr), ONE, b"ortiz-key-pass", therapist_id="ortiz",
                       now=utcnow() + dt.timedelta(days=2))
    assert tree(pr) == before


def test_expired_therapist_certificate_cannot_sign_cli(cli, monkeypatch, pr: Path):
    practice = load_practice(pr)
    pki = PKI(pr / "pki")
    old = pki.therapist_cert("lee")
    old.rename(pki.therapists / "lee-old.pem.bak")  # make room for an expired certificate of lee's
    pki.therapist_key("lee").rename(pki.therapists / "lee-old.key.pem.bak")
    pki.issue_clinician("lee", "Dr. Robin Lee", practice.name, CLINICIAN_PASS.encode(), LEE_PASS.encode(),
                        now=utcnow() - dt.timedelta(days=10), days=1)
    sign_as_client(pr)
    monkeypatch.setenv("AGREEMENTS_PASSPHRASE", LEE_PASS)
    before = tree(pr)
    refused(cli("sign", ONE, "--practice", pr, "--as", "therapist"), "expired")
    assert tree(pr) == before


def test_draft_pdf_changed_before_the_first_signature(cli, monkeypatch, pr: Path):
    pdf = pr / "drafts" / ONE / "agreement.pdf"
    flip(pdf, pdf.stat().st_size // 2)
    monkeypatch.setenv("AGREEMENTS_INTAKE_PASSPHRASE", PRACTICE_PASS)
    before = tree(pr)
    refused(cli(*client_args(pr)), "no longer matches its manifest")
    assert tree(pr) == before
    assert not (pr / "signed" / ONE).exists()


def test_archived_pdf_changed_before_the_countersignature(cli, monkeypatch, pr: Path):
    sign_as_client(pr)
    pdf = pr / "signed" / ONE / "agreement.pdf"
    flip(pdf, pdf.stat().st_size // 2)
    monkeypatch.setenv("AGREEMENTS_PASSPHRASE", LEE_PASS)
    before = tree(pr)
    refused(cli("sign", ONE, "--practice", pr, "--as", "therapist"), "no longer matches its manifest")
    assert tree(pr) == before


@pytest.mark.parametrize("ref", ["id", "draft"])
@pytest.mark.parametrize("role", ["client", "guardian"])
def test_client_side_signs_only_once(cli, monkeypatch, pr: Path, ref: str, role: str):
    """Once the client has signed, neither the client nor the guardian the agreement names can sign again."""
    practice = load_practice(pr)
    draft = Renderer.load(pr).render_to(Job(make_spec(client=CLIENT, therapist="lee", id=WARD, date=DATE,
                                                      guardian=GUARDIAN, relation="parent"), practice.drafts))
    log_renders(practice, [draft])
    sign_client(practice, WARD, signing(pr / "drafts" / WARD), PRACTICE_PASS.encode())
    monkeypatch.setenv("AGREEMENTS_INTAKE_PASSPHRASE", PRACTICE_PASS)
    before = tree(pr)
    args = client_args(pr, WARD if ref == "id" else pr / "drafts" / WARD,
                       name=CLIENT if role == "client" else GUARDIAN)
    args[args.index("client")] = role
    refused(cli(*args), "already signed")
    assert tree(pr) == before


def test_therapist_signs_only_once(cli, monkeypatch, pr: Path):
    sign_as_client(pr)
    sign_therapist(load_practice(pr), ONE, LEE_PASS.encode())
    monkeypatch.setenv("AGREEMENTS_PASSPHRASE", LEE_PASS)
    before = tree(pr)
    refused(cli("sign", ONE, "--practice", pr, "--as", "therapist"), "already countersigned")
    assert tree(pr) == before


def test_countersignature_before_the_client_is_refused(cli, monkeypatch, pr: Path):
    monkeypatch.setenv("AGREEMENTS_PASSPHRASE", LEE_PASS)
    refused(cli("sign", ONE, "--practice", pr, "--as", "therapist"), "only after the client")
    assert not list((pr / "signed").glob(f"{ONE}/0*"))  # no record of any kind


def test_countersignature_before_the_client_writes_nothing(cli, monkeypatch, pr: Path):
    monkeypatch.setenv("AGREEMENTS_PASSPHRASE", LEE_PASS)
    before = tree(pr)
    refused(cli("sign", ONE, "--practice", pr, "--as", "therapist"), "only after the client")
    assert tree(pr) == before


def test_voided_agreement_cannot_be_signed(cli, monkeypatch, pr: Path):
    monkeypatch.setenv("AGREEMENTS_PASSPHRASE", LEE_PASS)
    ok(cli("void", ONE, "--practice", pr, "--reason", "Rendered for the wrong program"))
    before = tree(pr)
    monkeypatch.setenv("AGREEMENTS_INTAKE_PASSPHRASE", PRACTICE_PASS)
    refused(cli(*client_args(pr)), "voided")
    refused(cli(*client_args(pr, pr / "drafts" / ONE)), "voided")
    assert tree(pr) == before


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_void_needs_a_reason(cli, monkeypatch, pr: Path, reason):
    monkeypatch.setenv("AGREEMENTS_PASSPHRASE", LEE_PASS)
    before = tree(pr)
    args = ["void", ONE, "--practice", pr] + ([] if reason is None else ["--reason", reason])
    refused(cli(*args), "reason")
    assert tree(pr) == before


def test_missing_initials_names_the_clause(cli, monkeypatch, pr: Path):
    monkeypatch.setenv("AGREEMENTS_INTAKE_PASSPHRASE", PRACTICE_PASS)
    first = initial_clauses(pr / "drafts" / ONE)[0]
    before = tree(pr)
    refused(cli(*client_args(pr, omit=("--initials",))), "initials missing", first)
    assert tree(pr) == before


def test_missing_initials_library_names_each_clause(pr: Path):
    needed = initial_clauses(pr / "drafts" / ONE)
    before = tree(pr)
    for missing in needed:
        initials = {c: "JQD" for c in needed if c != missing}
        with pytest.raises(Exception, match=re.escape(missing)):
            sign_client(load_practice(pr), ONE, signing(pr / "drafts" / ONE, initials=initials),
                        PRACTICE_PASS.encode())
    assert tree(pr) == before


@pytest.mark.parametrize(("omit", "values", "words"), [
    (("--consent",), {}, ["no consent"]),
    (("--agree",), {}, ["intent statement"]),
    ((), {"name": "Jane Roe"}, ["typed name does not match"]),
    ((), {"initials": "J1"}, ["1 to 5 letters"]),
    (("--identity",), {}, ["identity check method is required"]),
    (("--checked-by",), {}, ["identity checked by is required"]),
    ((), {"identity": "  "}, ["identity check method is required"]),
])
def test_client_request_refused(cli, monkeypatch, pr: Path, omit, values, words):
    monkeypatch.setenv("AGREEMENTS_INTAKE_PASSPHRASE", PRACTICE_PASS)
    before = tree(pr)
    refused(cli(*client_args(pr, omit=omit, **values)), *words)
    assert tree(pr) == before


@pytest.mark.parametrize("role", ["client", "therapist"])
def test_unknown_agreement_id(cli, monkeypatch, pr: Path, role: str):
    monkeypatch.setenv("AGREEMENTS_INTAKE_PASSPHRASE" if role == "client" else "AGREEMENTS_PASSPHRASE",
                       PRACTICE_PASS if role == "client" else LEE_PASS)
    before = tree(pr)
    args = client_args(pr, "agr-does-not-exist") if role == "client" else \
        ["sign", "agr-does-not-exist", "--practice", pr, "--as", "therapist"]
    refused(cli(*args), "no agreement", "agr-does-not-exist")
    assert tree(pr) == before


def test_unknown_agreement_id_library(pr: Path):
    with pytest.raises(ArchiveError, match="no agreement"):
        sign_client(load_practice(pr), "agr-nope", signing(pr / "drafts" / ONE), PRACTICE_PASS.encode())


def test_drawn_signature_that_is_not_png_is_refused(cli, monkeypatch, pr: Path, tmp_path: Path):
    monkeypatch.setenv("AGREEMENTS_INTAKE_PASSPHRASE", PRACTICE_PASS)
    fake = tmp_path / "sig.png"
    fake.write_bytes(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")
    before = tree(pr)
    refused(cli(*client_args(pr), "--drawn-signature", fake), "could not be used", "PNG")
    assert tree(pr) == before


def test_drawn_signature_over_the_size_limit_is_refused(cli, monkeypatch, pr: Path, tmp_path: Path):
    monkeypatch.setenv("AGREEMENTS_INTAKE_PASSPHRASE", PRACTICE_PASS)
    rnd = random.Random(0)
    width, height = 512, 400
    big = png(width, height, [b"\x00" + rnd.randbytes(width * 3) for _ in range(height)])
    assert len(big) > 512 * 1024
    path = tmp_path / "big.png"
    path.write_bytes(big)
    before = tree(pr)
    refused(cli(*client_args(pr), "--drawn-signature", path), "could not be used", "256 KiB")
    assert tree(pr) == before


def test_client_certificate_names_the_recorded_signer(pr: Path):
    """A typed name with extra spaces matches the client; record and certificate both hold it normalized."""
    result = sign_client(load_practice(pr), ONE, signing(pr / "drafts" / ONE, name="Jane  Q.  Doe"),
                         PRACTICE_PASS.encode())
    certs = p7s_certs(result.signature_path)
    signer = next(c for c in certs if der_sha256(c) == result.record["certificate"]["sha256"])
    assert result.record["signer"]["name"] == CLIENT
    assert cn(signer) == result.record["signer"]["name"]


@needs_openssl
def test_a_long_accented_name_signs_and_verifies(cli, monkeypatch, tmp_path: Path):
    """cryptography counts a name attribute's 64 in bytes of UTF-8: "María ... Ñúñez" of 64 characters is
    more; the one-time certificate names its first 64 bytes (whole characters), and verify agrees."""
    name = "María Fernanda de los Ángeles Castellanos-Ñúñez y Peñalosa de la Concepción Ibáñez"
    assert len(name[:64].encode()) > 64
    practice_name = "Clínica de Terapia Dialéctica Conductual Señora de los Ángeles, Peñalolén"
    root = tmp_path / "practice"
    init_practice(root, name=practice_name, jurisdiction="US-NY", phone="(212) 555-0100",
                  therapists={"lee": ("Dr. Robin Lee", "PhD", "psychologist")}, passphrase=ROOT_PASS.encode(),
                  intake_passphrase=PRACTICE_PASS.encode(), clinician_passphrase=CLINICIAN_PASS.encode())
    practice = load_practice(root)
    draft = Renderer.load(root).render_to(Job(make_spec(client=name, therapist="lee", id=ONE, date=DATE),
                                              practice.drafts))
    log_renders(practice, [draft])
    monkeypatch.setenv("AGREEMENTS_INTAKE_PASSPHRASE", PRACTICE_PASS)
    ok(cli(*client_args(root, ONE, name=name, initials="MFC")))
    folder = root / "signed" / ONE
    certs = pkcs7.load_der_pkcs7_certificates((folder / "01-client.json.p7s").read_bytes())
    leaf = next(c for c in certs if c.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value
                == "client")
    cn = str(leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
    assert name.startswith(cn) and len(cn.encode()) <= 64 and len(cn) < 64
    res = cli("verify", folder, "--trust", root / "pki" / "root.pem")  # incomplete: the therapist has not signed
    assert res.stdout.startswith("incomplete:") and "role." not in res.stdout, res.stdout + res.stderr
