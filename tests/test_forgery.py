"""Forgeries by insiders: valid-looking CMS signatures made with the wrong kind of certificate.

Each forgery is a real CMS signature that chains to the practice root (or claims to),
written into the archive through the normal commit path, so only the register, chain
and role steps of verification can catch it: a therapist signing the client's part
with their own certificate, an intake certificate countersigning as a therapist, a
"CA" made from an ordinary certificate, a client record in someone else's name, a
one-time certificate issued for another agreement or role. Where the forger also
entered the certificate in the practice's register (an insider with the intake CA's
key and the archive can), the role step still catches it on its own.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from helpers import describe_failures, failure_codes, private_copy

from agreements_kit.authoring.practice import load_practice
from agreements_kit.authoring.render import Job, Renderer
from agreements_kit.authoring.spec import make_spec
from agreements_kit.formats import record
from agreements_kit.signing import sign
from agreements_kit.signing.pki import PKI, load_cert, load_key, utcnow
from agreements_kit.signing.setup import init_practice
from agreements_kit.store.archive import Archive
from agreements_kit.verification.trust import load_trust
from agreements_kit.verification.verify import verify_folder

PASS = b"forgery-test-passphrase"  # the root's
INTAKE_PASS = b"forgery-intake-pass"
CLINICIAN_PASS = b"forgery-clinician-pass"
LEE_PASS = b"forgery-lee-pass"
CLIENT = "Jane Q. Doe"
GUARDIAN = "Pat Q. Doe"
AID = "agr-forge-1"
WITH_GUARDIAN = "agr-forge-g"  # names GUARDIAN (parent) as the client's guardian


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("forge") / "practice"
    init_practice(root, name="Forgery Test Practice", jurisdiction="US", passphrase=PASS,
                  intake_passphrase=INTAKE_PASS, clinician_passphrase=CLINICIAN_PASS,
                  therapists={"lee": ("Dr. Robin Lee", "PhD", "psychologist")})
    PKI(root / "pki").issue_clinician("lee", "Dr. Robin Lee", "Forgery Test Practice", CLINICIAN_PASS, LEE_PASS)
    renderer = Renderer.load(root)
    renderer.render_to(Job(make_spec(client=CLIENT, therapist="lee", id=AID), root / "drafts"))
    renderer.render_to(Job(make_spec(client=CLIENT, therapist="lee", id=WITH_GUARDIAN, guardian=GUARDIAN,
                                     relation="parent"), root / "drafts"))
    return root


@pytest.fixture
def pr(base: Path, tmp_path: Path, monkeypatch) -> Path:
    return private_copy(base, tmp_path, monkeypatch)


def client_body(folder, name: str = CLIENT, role: str = "client", relation: str = "parent") -> dict:
    d = record.load_disclosure()
    signer = {"role": role, "name": name,
              **({"on_behalf_of": CLIENT, "relation": relation} if role == "guardian" else {})}
    return {"kind": "signature", "signer": signer, "intent": {"statement": record.INTENT, "adopted": True},
            "esign": {"disclosure_version": d.version, "disclosure_sha256": d.sha256, "disclosure_accepted": True,
                      "consent_to_electronic_records": True},
            "initials": {c["id"]: "JQD" for c in folder.manifest["clauses"] if c["initials"]},
            "method": {"typed_name": name, "drawn_signature_png_sha256": None, "drawn_signature_file": None},
            "identity": {"method": "photo ID", "checked_by": "front desk"}}


def forge_client_record(pr: Path, cert, key, chain_extra, name: str = CLIENT, role: str = "client",
                        aid: str = AID) -> None:
    practice = load_practice(pr)
    archive = Archive(practice.archive)
    now = utcnow()
    with archive.locked():
        folder = sign._in_archive(archive, sign.find_agreement(practice, aid), now)
        sign._commit(archive, folder, role, client_body(folder, name, role), cert, key, chain_extra, now)


def one_time(pr: Path, name: str, role: str = "client", issued_for: str = AID, register: bool = True):
    """A one-time certificate from the practice's own intake CA, for agreement ``issued_for`` and ``role``,
    entered in the register (as ``sign_client`` does) unless ``register`` is false."""
    store = PKI(pr / "pki")
    now = utcnow()
    intake_key = load_key(store.intake_key, INTAKE_PASS, "intake")
    cert, key = store.one_time_client(name, load_practice(pr).name, intake_key, now, issued_for, role)
    if register:
        store.register(cert, role, store.intake(), now, agreement_id=issued_for)
    return cert, key


def lee(pr: Path):
    store = PKI(pr / "pki")
    return load_cert(store.therapist_cert("lee"), "lee"), load_key(store.therapist_key("lee"), LEE_PASS, "lee")


def verdict(pr: Path, aid: str = AID):
    return verify_folder(pr / "signed" / aid, load_trust(pr / "pki" / "root.pem"),
                         ledger=pr / "signed" / "ledger.jsonl")


def failing(v, step: str, code: str) -> list[str]:
    """The sentences of the failures of ``step`` with reason ``code``."""
    return [c.detail for c in v.failures if c.name == step and c.code == code]


def client_signs(pr: Path, aid: str = AID, role: str = "client", name: str = CLIENT) -> None:
    practice = load_practice(pr)
    folder = sign.find_agreement(practice, aid)
    sign.sign_client(practice, aid, sign.ClientSigning(
        name=name, consent=True, initials={c["id"]: "JQD" for c in folder.manifest["clauses"] if c["initials"]},
        intent=True, identity_method="photo ID", identity_checked_by="desk", role=role), INTAKE_PASS)


def test_a_therapist_cannot_sign_the_clients_part_with_their_own_certificate(pr: Path):
    cert, key = lee(pr)
    forge_client_record(pr, cert, key, [PKI(pr / "pki").clinician_ca()], name="Dr. Robin Lee")
    sign.sign_therapist(load_practice(pr), AID, LEE_PASS)
    v = verdict(pr)
    assert v.status == "invalid"
    assert any("one-time certificate from the practice's intake CA" in d
               for d in failing(v, "role", "role.not-intake")), describe_failures(v)
    # The register knows the certificate too, as a therapist's: not one for a client's record.
    assert failing(v, "register", "register.wrong-role"), describe_failures(v)


@pytest.mark.parametrize("registered", [False, True])
def test_an_intake_certificate_cannot_countersign_as_the_therapist(pr: Path, registered: bool):
    client_signs(pr)
    practice = load_practice(pr)
    store = PKI(pr / "pki")
    fake, fake_key = one_time(pr, "Dr. Robin Lee", register=registered)
    now = utcnow()
    archive = Archive(practice.archive)
    with archive.locked():
        folder = sign._in_archive(archive, sign.find_agreement(practice, AID), now)
        body = {"kind": "signature", "signer": {"role": "therapist", "name": "Dr. Robin Lee", "therapist_id": "lee"},
                "intent": {"statement": record.INTENT, "adopted": True}, "esign": None, "initials": {},
                "method": {"typed_name": "Dr. Robin Lee", "drawn_signature_png_sha256": None,
                           "drawn_signature_file": None},
                "identity": {"method": "key", "checked_by": "x"}}
        sign._commit(archive, folder, "therapist", body, fake, fake_key, [store.intake()], now)
    v = verdict(pr)
    assert v.status == "invalid"
    assert any("only a therapist or the practice administrator can sign this" in d
               for d in failing(v, "role", "role.wrong-certificate")), describe_failures(v)
    expected = "register.wrong-role" if registered else "register.unregistered"
    assert expected in failure_codes(v, subject="02-therapist.json", step="register"), describe_failures(v)
    assert not failure_codes(v, subject="01-client.json"), describe_failures(v)  # the client's signature is sound


@pytest.mark.parametrize("with_crl", [True, False])
def test_an_ordinary_certificate_cannot_act_as_a_certificate_authority(pr: Path, with_crl: bool):
    cert, key = lee(pr)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    now = utcnow()
    forged = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CLIENT),
                                       x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "client")]))
              .issuer_name(cert.subject).public_key(leaf_key.public_key())
              .serial_number(x509.random_serial_number())
              .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
              .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False), True)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
              .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), False)
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(cert.public_key()), False)
              .sign(key, hashes.SHA256()))  # a well-formed leaf in every way but its issuer
    forge_client_record(pr, forged, leaf_key, [cert, PKI(pr / "pki").clinician_ca()])
    if not with_crl:
        (pr / "pki" / "crl.pem").unlink()  # revocation cannot be what refuses it
    v = verdict(pr)
    assert any("not a certificate authority" in d for d in failing(v, "path", "chain.not-a-ca")), describe_failures(v)
    assert failing(v, "register", "register.unregistered"), describe_failures(v)  # minted outside the practice


def test_a_client_record_must_be_in_the_agreements_clients_name(pr: Path):
    cert, key = one_time(pr, "Mallory Other")
    forge_client_record(pr, cert, key, [PKI(pr / "pki").intake()], name="Mallory Other")
    v = verdict(pr)
    assert any("someone other than the agreement's client" in d
               for d in failing(v, "role", "role.not-the-client")), describe_failures(v)
    assert not failure_codes(v, step="register"), describe_failures(v)  # the role step alone catches it


def test_a_guardian_signature_needs_a_guardian_named_in_the_agreement(pr: Path):
    """AID names no guardian: anyone signing "on behalf of" the client is refused."""
    cert, key = one_time(pr, "Mallory Other", role="guardian")
    forge_client_record(pr, cert, key, [PKI(pr / "pki").intake()], name="Mallory Other", role="guardian")
    assert (pr / "signed" / AID / "01-guardian.json").exists()
    v = verdict(pr)
    assert any("the agreement names no guardian" in d
               for d in failing(v, "role", "role.guardian-unnamed")), describe_failures(v)


@pytest.mark.parametrize("name", [GUARDIAN, "Mallory Other"])
def test_a_guardian_signature_must_be_the_named_guardians(pr: Path, name: str):
    cert, key = one_time(pr, name, role="guardian", issued_for=WITH_GUARDIAN)
    practice = load_practice(pr)
    archive = Archive(practice.archive)
    now = utcnow()
    relation = "legal guardian" if name == GUARDIAN else "parent"  # the named guardian, with another relation
    with archive.locked():
        folder = sign._in_archive(archive, sign.find_agreement(practice, WITH_GUARDIAN), now)
        sign._commit(archive, folder, "guardian", client_body(folder, name, "guardian", relation), cert, key,
                     [PKI(pr / "pki").intake()], now)
    v = verdict(pr, WITH_GUARDIAN)
    assert any("someone other than the guardian the agreement names" in d
               for d in failing(v, "role", "role.guardian-mismatch")), describe_failures(v)


def test_the_named_guardian_signs_validly(pr: Path):
    client_signs(pr, WITH_GUARDIAN, role="guardian", name=GUARDIAN)
    sign.sign_therapist(load_practice(pr), WITH_GUARDIAN, LEE_PASS, completion=False)
    v = verdict(pr, WITH_GUARDIAN)
    assert v.status == "valid", describe_failures(v)
    assert [s["role"] for s in v.signers] == ["guardian", "therapist"]


def test_a_one_time_certificate_is_for_one_agreement(pr: Path):
    """Issued (and registered) for another agreement, it cannot sign this one."""
    cert, key = one_time(pr, CLIENT, issued_for="agr-forge-other")
    forge_client_record(pr, cert, key, [PKI(pr / "pki").intake()])
    v = verdict(pr)
    assert any("issued for another agreement" in d
               for d in failing(v, "role", "role.wrong-agreement")), describe_failures(v)
    assert any("for another agreement" in d
               for d in failing(v, "register", "register.wrong-agreement")), describe_failures(v)


def test_a_one_time_certificate_is_for_one_role(pr: Path):
    """A guardian's one-time certificate for this very agreement cannot sign the client's record."""
    cert, key = one_time(pr, CLIENT, role="guardian")
    forge_client_record(pr, cert, key, [PKI(pr / "pki").intake()])
    v = verdict(pr)
    assert any("guardian certificate, not a client's" in d
               for d in failing(v, "role", "role.wrong-certificate")), describe_failures(v)
    assert failing(v, "register", "register.wrong-role"), describe_failures(v)
