"""Tools of the three adversaries of docs/threat-model.md, for tests/test_attacks.py.

- the forger holds only the practice's public files (root.pem, crl.pem) and a copy
  of the archive: no key at all;
- a dishonest therapist holds their own key and passphrase and may write to the
  archive (its folders and its ledger);
- front-desk staff run intakes: they hold the intake CA's passphrase (its key alone;
  the root's and the clinician CA's have passphrases of their own) and write to the
  archive. Attacks that need the root's or the clinician CA's key say so: they are an
  insider holding that passphrase too.

A pristine practice is built once (:func:`build_pristine`); every attack works on its
own copy. :func:`judge` runs both verifiers on a copy: ``verify_folder`` with the
archive's ledger and ``audit`` over the whole archive, with the trust an auditor has
(the practice root, published outside the archive; the CRL set from beside the archive).

Signatures here are made with asn1crypto by hand (:func:`build_cms`), so that the
attacker chooses every signed attribute (a signingTime set back, a second
messageDigest) and signs it with a key they really hold.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agreements_kit.authoring.practice import load_practice
from agreements_kit.authoring.render import Job, Renderer
from agreements_kit.authoring.spec import make_spec
from agreements_kit.formats import record as record_format
from agreements_kit.formats.jsonio import jcs
from agreements_kit.signing.pki import PKI, fingerprint, load_cert, load_key, utcnow
from agreements_kit.signing.renders import log_renders
from agreements_kit.signing.setup import init_practice
from agreements_kit.signing.sign import ClientSigning, iso, sign_client, sign_therapist, void
from agreements_kit.store.ledger import GENESIS, line_bytes

PASS = b"practice-pass-1"  # the root's passphrase
INTAKE_PASS = b"intake-pass-1"  # the intake CA's (front desk knows it)
CLINICIAN_PASS = b"clinician-ca-pass-1"  # the clinician CA's (whoever issues and revokes therapists)
KEY_PASS = {"lee": b"lee-key-pass-1", "ortiz": b"ortiz-key-pass-1", "kim": b"kim-key-pass-1",
            "park": b"park-key-pass-1"}
PRACTICE_NAME = "Test Practice"
CLIENT = "Jane Q. Doe"
THERAPISTS = {"lee": ("Dr. Robin Lee", "PhD", "psychologist"), "ortiz": ("Sam Ortiz", "LCSW", "lcsw"),
              "kim": ("Alex Kim", "LMHC", "lpc"), "park": ("Jo Park", "PsyD", "psychologist")}

VALID = "agr-atk-valid"      # client, then lee: valid
OTHER = "agr-atk-other"      # client, then lee: valid (material for moving things between agreements)
ORTIZ = "agr-atk-ortiz"      # client, then ortiz: valid
HALF = "agr-atk-half"        # client only (lee's): incomplete
VOIDED = "agr-atk-void"      # client, then a void by lee: voided
KIMS = "agr-atk-kim"         # client only; its therapist kim is revoked after the client signed
PARKS = "agr-atk-park"       # client only, dated 40 days back; its therapist park's certificate has expired
FRESH = "agr-atk-fresh"      # a draft, rendered (and logged) but never signed nor archived
GUARDED = "agr-atk-guarded"  # names a guardian (GUARDIAN, parent), who signed; then lee: valid
FRESH_GUARDED = "agr-atk-fresh-guarded"  # a draft naming the guardian, never signed
GUARDIAN = "Mary Doe"
SIGNED = (VALID, OTHER, ORTIZ, HALF, VOIDED, KIMS, PARKS, GUARDED)
DRAFTS = (FRESH, FRESH_GUARDED)
EXPECTED_STATUS = {VALID: "valid", OTHER: "valid", ORTIZ: "valid", HALF: "incomplete", VOIDED: "voided",
                   KIMS: "incomplete", PARKS: "incomplete", GUARDED: "valid"}


@dataclass(frozen=True)
class Pristine:
    root: Path            # the practice
    auditor: Path         # what an auditor holds, outside any archive: root.pem (and nothing else)
    old_crl: Path         # the CRL set number 1, as published before kim's revocation
    t0: dt.datetime       # first client signature
    revoked_at: dt.datetime  # kim's revocation


def client_signing(draft: Path, name: str = CLIENT, role: str = "client") -> ClientSigning:
    manifest = json.loads((draft / "manifest.json").read_text())
    return ClientSigning(name=name, consent=True, initials={c["id"]: "JQD" for c in manifest["clauses"]
                                                            if c["initials"]},
                         intent=True, identity_method="photo ID", identity_checked_by="Front desk", role=role)


def build_pristine(base: Path) -> Pristine:
    """The practice every attack copies: see the agreement ids above."""
    root = base / "practice"
    now = utcnow()
    t0 = now - dt.timedelta(seconds=120)
    early = now - dt.timedelta(days=40)
    init_practice(root, name=PRACTICE_NAME, jurisdiction="US-NY", phone="(212) 555-0100", therapists=THERAPISTS)
    pki = PKI(root / "pki")
    pki.create(PRACTICE_NAME, PASS, INTAKE_PASS, CLINICIAN_PASS, now=early)
    practice = load_practice(root)
    pki.issue_clinician("park", THERAPISTS["park"][0], practice.name, CLINICIAN_PASS, KEY_PASS["park"], now=early,
                        days=1)
    for tid in ("lee", "ortiz", "kim"):
        pki.issue_clinician(tid, THERAPISTS[tid][0], practice.name, CLINICIAN_PASS, KEY_PASS[tid], now=early)
    renderer = Renderer.load(root)
    therapist_of = {ORTIZ: "ortiz", KIMS: "kim", PARKS: "park"}
    date_of = {PARKS: early.date()}
    guardian_of = {GUARDED: {"guardian": GUARDIAN, "relation": "parent"},
                   FRESH_GUARDED: {"guardian": GUARDIAN, "relation": "parent"}}
    drafts = {aid: renderer.render_to(Job(make_spec(client=CLIENT, therapist=therapist_of.get(aid, "lee"), id=aid,
                                                    date=date_of.get(aid, t0.date()), **guardian_of.get(aid, {})),
                                          practice.drafts))
              for aid in (*SIGNED, *DRAFTS)}
    log_renders(practice, list(drafts.values()))
    for i, aid in enumerate(SIGNED):
        signing = client_signing(drafts[aid], GUARDIAN, "guardian") if aid == GUARDED else client_signing(drafts[aid])
        sign_client(practice, aid, signing, INTAKE_PASS, now=t0 + dt.timedelta(seconds=i))
    for i, aid in enumerate((VALID, OTHER, GUARDED)):
        sign_therapist(practice, aid, KEY_PASS["lee"], now=t0 + dt.timedelta(seconds=10 + i))
    sign_therapist(practice, ORTIZ, KEY_PASS["ortiz"], now=t0 + dt.timedelta(seconds=15))
    void(practice, VOIDED, "Replaced by a newer agreement", KEY_PASS["lee"], now=t0 + dt.timedelta(seconds=20))
    auditor = base / "auditor"
    auditor.mkdir()
    shutil.copy(root / "pki" / "root.pem", auditor / "root.pem")
    old_crl = base / "crl-1.pem"
    shutil.copy(root / "pki" / "crl.pem", old_crl)
    revoked_at = utcnow()
    pki.revoke(load_cert(pki.therapist_cert("kim"), "kim"), CLINICIAN_PASS, now=revoked_at)
    return Pristine(root, auditor, old_crl, t0, revoked_at)


# ----------------------------------------------------------------------------- judging


def judge(root: Path, auditor: Path, target: str, *, trust_file: Path | None = None) -> dict[str, Any]:
    """Both verdicts on one agreement of the practice copy ``root``, as plain data.

    ``verify``: status and failure codes of ``verify_folder`` (the archive's ledger);
    ``audit``: the agreement's row (status, codes; None if audit never saw the folder),
    the summary's ledger codes and missing agreements."""
    from agreements_kit.verification.audit import audit, results
    from agreements_kit.verification.trust import resolve_trust
    from agreements_kit.verification.verify import verify_folder

    archive = root / "signed"
    trust = resolve_trust(trust_file=trust_file or auditor / "root.pem", archive=archive)
    v = verify_folder(archive / target, trust, ledger=archive / "ledger.jsonl")
    summary, db = audit(archive, trust, workers=1)
    try:
        rows = {r["id"]: r for r in results(db)}
    finally:
        shutil.rmtree(db.parent, ignore_errors=True)
    row = rows.get(target)
    return {
        "verify": {"status": v.status, "codes": sorted(v.codes),
                   "failures": [f"{c.name} [{c.subject}] {c.code}: {c.detail}" for c in v.failures]},
        "audit": {"status": row["status"] if row else None,
                  "codes": sorted({f["code"] for f in row["failures"]}) if row else [],
                  "ledger_codes": sorted(set(summary.ledger_codes)),
                  "missing": summary.missing_from_archive, "ok": summary.ok,
                  "others": {i: r["status"] for i, r in rows.items() if i != target}},
    }


# ----------------------------------------------------------------------------- files


def rewrite(path: Path, data: bytes) -> None:
    if path.exists():
        os.chmod(path, 0o600)
    path.write_bytes(data)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------- the ledger


def ledger_lines(archive: Path) -> list[bytes]:
    return (archive / "ledger.jsonl").read_bytes().split(b"\n")[:-1]


def ledger_append(archive: Path, fields: dict[str, Any]) -> dict[str, Any]:
    """Append an entry with a correct sequence number and hash chain, as anyone with write access can."""
    lines = ledger_lines(archive)
    last = json.loads(lines[-1]) if lines else None
    entry = dict(fields, seq=last["seq"] + 1 if last else 1, prev=sha(lines[-1]) if lines else GENESIS)
    with open(archive / "ledger.jsonl", "ab") as fh:
        fh.write(line_bytes(entry) + b"\n")
    return entry


def ledger_head(archive: Path) -> str:
    lines = ledger_lines(archive)
    return sha(lines[-1]) if lines else GENESIS


def register(archive: Path, cert: x509.Certificate, role: str, issuer: x509.Certificate, when: dt.datetime,
             **ids: str) -> None:
    ledger_append(archive, PKI(archive.parent / "pki").register_fields(cert, role, issuer, when, **ids))


# ----------------------------------------------------------------------------- CMS by hand


def build_cms(data: bytes, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey,
              intermediates: list[x509.Certificate] = (), *, signing_time: dt.datetime | None = None,
              digests: list[bytes] | None = None, two_values: bool = False) -> bytes:
    """A detached CMS SignedData over ``data``, every signed attribute chosen by the caller.

    ``digests``: the messageDigest attribute(s) (default: one, the SHA-256 of ``data``); with
    several, each is its own attribute, or with ``two_values`` one attribute of several values."""
    from asn1crypto import algos, core
    from asn1crypto import cms as acms
    from asn1crypto import x509 as ax509

    when = (signing_time or utcnow()).astimezone(dt.UTC).replace(microsecond=0)
    digests = digests or [hashlib.sha256(data).digest()]
    attrs = [acms.CMSAttribute({"type": "content_type", "values": ["data"]}),
             acms.CMSAttribute({"type": "signing_time", "values": [acms.Time({"utc_time": when})]})]
    if two_values:
        attrs.append(acms.CMSAttribute({"type": "message_digest", "values": digests}))
    else:
        attrs += [acms.CMSAttribute({"type": "message_digest", "values": [d]}) for d in digests]
    signed_attrs = acms.CMSAttributes(attrs)
    signature = key.sign(signed_attrs.dump(), ec.ECDSA(hashes.SHA256()))
    acert = ax509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    certs = [acert, *(ax509.Certificate.load(c.public_bytes(serialization.Encoding.DER)) for c in intermediates)]
    signer = acms.SignerInfo({
        "version": "v1",
        "sid": acms.SignerIdentifier({"issuer_and_serial_number": acms.IssuerAndSerialNumber(
            {"issuer": acert.issuer, "serial_number": acert.serial_number})}),
        "digest_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
        "signed_attrs": signed_attrs,
        "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}),
        "signature": core.OctetString(signature),
    })
    sd = acms.SignedData({
        "version": "v1",
        "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
        "encap_content_info": {"content_type": "data"},
        "certificates": certs,
        "signer_infos": [signer],
    })
    return acms.ContentInfo({"content_type": "signed_data", "content": sd}).dump()


# ----------------------------------------------------------------------------- certificates


def name(common: str, unit: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, PRACTICE_NAME),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit)])


def mint(subject: x509.Name, issuer: x509.Certificate | x509.Name, issuer_key: ec.EllipticCurvePrivateKey, *,
         ca: bool = False, uri: str | None = None, not_before: dt.datetime | None = None,
         days: float = 365) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate like the practice's (leaf: S/MIME signing; ``ca``: a CA), signed by ``issuer_key``."""
    key = ec.generate_private_key(ec.SECP256R1())
    issuer_name = issuer.subject if isinstance(issuer, x509.Certificate) else issuer
    start = not_before or utcnow() - dt.timedelta(days=60)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(start)
         .not_valid_after(start + dt.timedelta(days=days))
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False))
    if ca:
        b = (b.add_extension(x509.BasicConstraints(ca=True, path_length=None if uri == "root" else 0), critical=True)
             .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                          data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                          crl_sign=True, encipher_only=False, decipher_only=False), critical=True))
    else:
        b = (b.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                          data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                          crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
             .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False))
        if uri:
            b = b.add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=False)
    return b.sign(issuer_key, hashes.SHA256()), key


@dataclass
class Keys:
    """What one adversary holds, loaded from the practice copy."""

    root: Path

    @property
    def pki(self) -> PKI:
        return PKI(self.root / "pki")

    def therapist(self, tid: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """A therapist's own certificate and key (the dishonest therapist knows their passphrase)."""
        return (load_cert(self.pki.therapist_cert(tid), tid),
                load_key(self.pki.therapist_key(tid), KEY_PASS[tid], tid))

    def intake_key(self) -> ec.EllipticCurvePrivateKey:
        """The intake CA's key: front desk holds its passphrase."""
        return load_key(self.pki.intake_key, INTAKE_PASS, "intake CA")

    def root_key(self) -> ec.EllipticCurvePrivateKey:
        """The root's key (an insider holding the root passphrase)."""
        return load_key(self.pki.root_key, PASS, "root CA")

    def clinician_key(self) -> ec.EllipticCurvePrivateKey:
        """The clinician CA's key (whoever issues and revokes therapists holds its passphrase)."""
        return load_key(self.pki.clinician_key, CLINICIAN_PASS, "clinician CA")

    def chain(self, cert: x509.Certificate) -> list[x509.Certificate]:
        """The CA certificates a signature by ``cert`` carries, as the tools send them: the clinician CA for
        a therapist's certificate it issued."""
        ca = self.pki.clinician_ca()
        return [ca] if cert.issuer == ca.subject else []

    def one_time(self, signer: str, agreement_id: str, role: str = "client", *, when: dt.datetime | None = None
                 ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """A one-time client or guardian certificate, made as the intake does it."""
        return self.pki.one_time_client(signer, PRACTICE_NAME, self.intake_key(), when or utcnow(), agreement_id,
                                        role)


# ----------------------------------------------------------------------------- records


def _cert_fields(cert: x509.Certificate) -> dict[str, str]:
    return {"sha256": fingerprint(cert), "subject": cert.subject.rfc4514_string(),
            "issuer": cert.issuer.rfc4514_string(), "serial": f"{cert.serial_number:x}"}


def client_body(signer: str, folder: Path, role: str = "client", **signer_extra: str) -> dict[str, Any]:
    manifest = json.loads((folder / "manifest.json").read_bytes())
    disclosure = record_format.load_disclosure()
    return {
        "kind": "signature",
        "signer": {"role": role, "name": signer, **signer_extra},
        "intent": {"statement": record_format.INTENT, "adopted": True},
        "esign": {"disclosure_version": disclosure.version, "disclosure_sha256": disclosure.sha256,
                  "disclosure_accepted": True, "consent_to_electronic_records": True},
        "initials": {c["id"]: "JQD" for c in manifest["clauses"] if c["initials"]},
        "method": {"typed_name": signer, "drawn_signature_png_sha256": None, "drawn_signature_file": None},
        "identity": {"method": "photo ID", "checked_by": "Front desk"},
    }


def therapist_body(tid: str, signer: str | None = None) -> dict[str, Any]:
    signer = signer or THERAPISTS[tid][0]
    return {
        "kind": "signature",
        "signer": {"role": "therapist", "name": signer, "therapist_id": tid},
        "intent": {"statement": record_format.INTENT, "adopted": True},
        "esign": None,
        "initials": {},
        "method": {"typed_name": signer, "drawn_signature_png_sha256": None, "drawn_signature_file": None},
        "identity": {"method": "the therapist's own certificate key, unlocked with its passphrase",
                     "checked_by": f"{signer} (certificate holder)"},
    }


def void_body(tid: str = "lee", role: str = "therapist") -> dict[str, Any]:
    ident = {"therapist_id": tid} if role == "therapist" else {"administrator_id": tid}
    return {"kind": "void", "signer": {"role": role, "name": THERAPISTS.get(tid, ("Pat Admin",))[0], **ident},
            "intent": {"statement": record_format.VOID_INTENT, "adopted": True},
            "reason": "Closed at the client's request"}


@dataclass
class Forged:
    data: dict[str, Any]
    raw: bytes
    name: str


def record_data(folder: Path, kind: str, body: dict[str, Any], cert: x509.Certificate, signed_at: dt.datetime,
                sequence: int | None = None) -> dict[str, Any]:
    """The record the software would write for this act now (ledger head: the ledger's current head)."""
    archive = folder.parent
    if sequence is None:
        sequence = len(list(folder.glob("[0-9][0-9]-*.json"))) + 1
    return dict(body, format=record_format.FORMAT, format_version=record_format.FORMAT_VERSION,
                agreement_id=folder.name, sequence=sequence, ledger_head=ledger_head(archive),
                certificate=_cert_fields(cert), signed_at=iso(signed_at),
                document={"file": "agreement.pdf", "sha256": sha((folder / "agreement.pdf").read_bytes())},
                manifest={"file": "manifest.json", "sha256": sha((folder / "manifest.json").read_bytes())})


def forge(folder: Path, kind: str, body: dict[str, Any], cert: x509.Certificate, key: ec.EllipticCurvePrivateKey,
          intermediates: list[x509.Certificate] = (), *, signed_at: dt.datetime | None = None,
          cms_time: dt.datetime | None = None, ledger: bool = True, ledger_time: dt.datetime | None = None,
          encode: Callable[[dict[str, Any]], bytes] | None = None, edit: Callable[[dict[str, Any]], None] | None = None,
          sequence: int | None = None, file_kind: str | None = None, role: str | None = None) -> Forged:
    """Write a record of ``kind``, signed with ``key``, and (``ledger``) its ledger entry, correctly chained.

    ``signed_at`` is the time the record claims (and, unless ``cms_time``, the CMS signingTime);
    ``ledger_time`` the time of its ledger entry (default: now, as the attacker cannot append in the past
    without it showing). ``encode`` turns the record's data into its bytes (default: RFC 8785);
    ``edit`` changes the data first."""
    now = utcnow()
    signed_at = signed_at or now
    data = record_data(folder, kind, body, cert, signed_at, sequence)
    if edit:
        edit(data)
    raw = (encode or jcs)(data)
    name = record_format.record_name(data["sequence"] if isinstance(data.get("sequence"), int) else 9,
                                     file_kind or kind)
    p7s = build_cms(raw, cert, key, list(intermediates), signing_time=cms_time or signed_at)
    rewrite(folder / name, raw)
    rewrite(folder / f"{name}.p7s", p7s)
    if ledger:
        signer_role = role or (body.get("signer") or {}).get("role")
        ledger_append(folder.parent, {
            "event": "void" if kind == "void" else "sign", "agreement_id": folder.name,
            "time": iso(ledger_time or now), "role": signer_role, "certificate_sha256": fingerprint(cert),
            "pdf_sha256": data["document"]["sha256"] if isinstance(data.get("document"), dict) else "0" * 64,
            "record": name, "files": {name: sha(raw), f"{name}.p7s": sha(p7s)}})
    return Forged(data, raw, name)


def admit(root: Path, agreement_id: str, when: dt.datetime | None = None) -> Path:
    """Admit a draft into the archive (what the intake does on a first signature)."""
    from agreements_kit.store.archive import Archive, load_folder

    archive = Archive(root / "signed")
    with archive.locked():
        folder = archive.admit(load_folder(root / "drafts" / agreement_id), iso(when or utcnow()))
    return folder.path


def dup_keys(data: dict[str, Any], key: str, fake: Any, *, attacker_first: bool, inside: str | None = None) -> bytes:
    """RFC 8785 bytes of ``data`` with ``key`` (in ``inside``, if given) given twice: ``fake`` and the real value.

    Both members stand where the key sorts, so everything else stays canonical."""
    target = data[inside] if inside else data
    real = target[key]
    marker = "@@duplicate@@"
    target[key] = marker
    text = jcs(data).decode()
    target[key] = real
    fake_text, real_text = jcs(fake).decode(), jcs(real).decode()
    first, second = (fake_text, real_text) if attacker_first else (real_text, fake_text)
    old = f'"{key}":"{marker}"'
    assert text.count(old) == 1, text
    return text.replace(old, f'"{key}":{first},"{key}":{second}').encode()


@dataclass
class Attack:
    """One case of the corpus: who attacks, what class of attack, and the reason code both verifiers must give."""

    name: str
    adversary: str  # forger, therapist, frontdesk
    klass: str
    target: str
    code: str
    mutate: Callable[[Any], None]
    isolate: bool = False  # run the verifiers in a subprocess with a timeout (FIFOs, /dev/zero)
    audit_expect: str = "row"  # row: the agreement's row; ledger: the summary's ledger codes; missing


# ----------------------------------------------------------------------------- CRLs


def crl_set(issuers: list[tuple[x509.Certificate | x509.Name, ec.EllipticCurvePrivateKey]], number: int,
            revoked: list[tuple[int, dt.datetime]] = (), when: dt.datetime | None = None) -> bytes:
    """A ``crl.pem`` of one CRL per issuer, all numbered ``number``; ``revoked`` (serial, time) go on the
    first issuer's CRL."""
    when = when or utcnow()
    out = []
    for i, (issuer, key) in enumerate(issuers):
        subject = issuer.subject if isinstance(issuer, x509.Certificate) else issuer
        b = (x509.CertificateRevocationListBuilder().issuer_name(subject).last_update(when)
             .next_update(when + dt.timedelta(days=3650))
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
             .add_extension(x509.CRLNumber(number), critical=False))
        for serial, at in (revoked if i == 0 else ()):
            b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(serial)
                                          .revocation_date(at).build())
        out.append(b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    return b"".join(out)


def replace_crl(data: bytes, issuer: x509.Certificate, key: ec.EllipticCurvePrivateKey, number: int,
                revoked: list[tuple[int, dt.datetime]] = ()) -> bytes:
    """``data`` (a crl.pem) with ``issuer``'s CRL replaced by one numbered ``number`` listing ``revoked``;
    the other issuers' CRLs stay byte for byte (each CA re-issues only its own)."""
    from agreements_kit.formats.crlset import parse_crl_set

    others = [c.public_bytes(serialization.Encoding.PEM) for c in parse_crl_set(data, "crl.pem").crls
              if c.issuer != issuer.subject]
    return b"".join(others) + crl_set([(issuer, key)], number, revoked)


# ----------------------------------------------------------------------------- one attack's scene


@dataclass
class Scene:
    """A private copy of the pristine practice, for one attack to change."""

    root: Path
    pristine: Pristine
    trust_file: Path | None = None  # what the auditor trusts (default: the published root.pem)

    @property
    def archive(self) -> Path:
        return self.root / "signed"

    @property
    def keys(self) -> Keys:
        return Keys(self.root)

    def folder(self, agreement_id: str) -> Path:
        return self.archive / agreement_id

    def judge(self, target: str) -> dict[str, Any]:
        return judge(self.root, self.pristine.auditor, target, trust_file=self.trust_file)


JUDGE_SCRIPT = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
sys.path.insert(0, sys.argv[1])
from pathlib import Path
import attack_kit
trust = Path(sys.argv[5]) if sys.argv[5] else None
print(json.dumps(attack_kit.judge(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4], trust_file=trust)))
"""


def judge_isolated(scene: Scene, target: str, timeout: float = 60) -> dict[str, Any]:
    """:func:`judge` in a child process with a memory limit, killed after ``timeout`` seconds (a hang fails)."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", JUDGE_SCRIPT, str(Path(__file__).parent), str(scene.root),
                           str(scene.pristine.auditor), target, str(scene.trust_file or "")],
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"the verifiers crashed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
