"""Forgeries by insiders: valid-looking CMS signatures made with the wrong kind of certificate.

Each forgery is a real CMS signature that chains to the practice root (or claims to),
written into the archive through the normal commit path, so only the role and chain
rules of verification can catch it: a therapist signing the client's part with their
own certificate, an intake certificate countersigning as a therapist, a "CA" made
from an ordinary certificate, a client record in someone else's name.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agreements_kit.formats import record
from agreements_kit.signing import sign
from agreements_kit.store.archive import Archive
from agreements_kit.signing.pki import PKI, load_cert, load_key, utcnow
from agreements_kit.signing.setup import init_practice
from agreements_kit.authoring.practice import load_practice
from agreements_kit.authoring.render import Job, Renderer
from agreements_kit.authoring.spec import make_spec
from agreements_kit.verification.trust import load_trust
from agreements_kit.verification.verify import verify_folder
from helpers import private_copy

PASS = b"forgery-test-passphrase"
CLIENT = "Jane Q. Doe"


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("forge") / "practice"
    init_practice(root, name="Forgery Test Practice", jurisdiction="US", passphrase=PASS,
                  therapists={"lee": ("Dr. Robin Lee", "PhD")})
    PKI(root / "pki").issue_clinician("lee", "Dr. Robin Lee", "Forgery Test Practice", PASS, PASS)
    Renderer.load(root).render_to(Job(make_spec(client=CLIENT, therapist="lee", id="agr-forge-1"), root / "drafts"))
    return root


@pytest.fixture
def pr(base: Path, tmp_path: Path) -> Path:
    return private_copy(base, tmp_path)


def client_body(folder, name: str = CLIENT, role: str = "client") -> dict:
    d = record.load_disclosure()
    signer = {"role": role, "name": name, **({"on_behalf_of": CLIENT} if role == "guardian" else {})}
    return {"kind": "signature", "signer": signer, "intent": {"statement": record.INTENT, "adopted": True},
            "esign": {"disclosure_version": d.version, "disclosure_sha256": d.sha256, "disclosure_accepted": True,
                      "consent_to_electronic_records": True},
            "initials": {c["id"]: "JQD" for c in folder.manifest["clauses"] if c["initials"]},
            "method": {"typed_name": name, "drawn_signature_png_sha256": None, "drawn_signature_file": None},
            "identity": {"method": "photo ID", "checked_by": "front desk"}}


def forge_client_record(pr: Path, cert, key, chain_extra, name: str = CLIENT, role: str = "client") -> None:
    practice = load_practice(pr)
    archive = Archive(practice.archive)
    now = utcnow()
    with archive.locked():
        folder = sign._in_archive(archive, sign.find_agreement(practice, "agr-forge-1"), now)
        sign._commit(archive, folder, role, client_body(folder, name, role), cert, key, chain_extra, now)


def lee(pr: Path):
    store = PKI(pr / "pki")
    return load_cert(store.therapist_cert("lee"), "lee"), load_key(store.therapist_key("lee"), PASS, "lee")


def verdict(pr: Path, backend: str = "pyhanko"):
    return verify_folder(pr / "signed" / "agr-forge-1", load_trust(pr / "pki" / "root.pem"),
                         ledger=pr / "signed" / "ledger.jsonl", backend=backend)


def failing(v, name: str) -> list[str]:
    return [c.detail for c in v.failures if c.name == name]


@pytest.mark.parametrize("backend", ["pyhanko", "fast"])
def test_a_therapist_cannot_sign_the_clients_part_with_their_own_certificate(pr: Path, backend: str):
    cert, key = lee(pr)
    forge_client_record(pr, cert, key, [], name="Dr. Robin Lee")
    sign.sign_therapist(load_practice(pr), "agr-forge-1", PASS)
    v = verdict(pr, backend)
    assert v.status == "invalid"
    assert any("one-time client certificate from the practice's intake CA" in d for d in failing(v, "role"))


def test_an_intake_certificate_cannot_countersign_as_the_therapist(pr: Path):
    practice = load_practice(pr)
    sign.sign_client(practice, "agr-forge-1", sign.ClientSigning(
        name=CLIENT, consent=True, initials={c.id: "JQD" for c in Renderer.load(pr).prepare(
            make_spec(client=CLIENT, therapist="lee")).clauses if c.initials},
        intent=True, identity_method="photo ID", identity_checked_by="desk"), PASS)
    store = PKI(pr / "pki")
    now = utcnow()
    fake, fake_key = store.one_time_client("Dr. Robin Lee", practice.name, load_key(store.intake_key, PASS, "i"), now)
    archive = Archive(practice.archive)
    with archive.locked():
        folder = sign._in_archive(archive, sign.find_agreement(practice, "agr-forge-1"), now)
        body = {"kind": "signature", "signer": {"role": "therapist", "name": "Dr. Robin Lee", "therapist_id": "lee"},
                "intent": {"statement": record.INTENT, "adopted": True}, "esign": None, "initials": {},
                "method": {"typed_name": "Dr. Robin Lee", "drawn_signature_png_sha256": None,
                           "drawn_signature_file": None},
                "identity": {"method": "key", "checked_by": "x"}}
        sign._commit(archive, folder, "therapist", body, fake, fake_key, [store.intake()], now)
    v = verdict(pr)
    assert any("therapist's certificate issued by the practice root" in d for d in failing(v, "role"))


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
              .sign(key, hashes.SHA256()))
    forge_client_record(pr, forged, leaf_key, [cert])
    if not with_crl:
        (pr / "pki" / "crl.pem").unlink()  # revocation then cannot mask the problem
    for backend in ("pyhanko", "fast"):
        v = verdict(pr, backend)
        assert any("not a certificate authority" in d for d in failing(v, "chain")), (backend, v.failures)


@pytest.mark.parametrize("role", ["client", "guardian"])
def test_a_client_side_record_must_concern_the_agreements_client(pr: Path, role: str):
    practice = load_practice(pr)
    store = PKI(pr / "pki")
    now = utcnow()
    cert, key = store.one_time_client("Mallory Other", practice.name, load_key(store.intake_key, PASS, "i"), now)
    if role == "client":
        forge_client_record(pr, cert, key, [store.intake()], name="Mallory Other")
        expected = "someone other than the agreement's client"
    else:
        body_name = "Mallory Other"
        forge_client_record(pr, cert, key, [store.intake()], name=body_name, role="guardian")
        record_path = pr / "signed" / "agr-forge-1" / "01-guardian.json"
        assert record_path.exists()
        expected = None  # on_behalf_of is the real client: a guardian may have another name
    v = verdict(pr)
    if expected:
        assert any(expected in d for d in failing(v, "role")), v.failures
    else:
        assert not failing(v, "role"), v.failures
