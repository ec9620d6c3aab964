"""The practice's own certificate authority, with ``cryptography``: keys in separate hands.

Layout, in ``PRACTICE/pki/`` (private keys encrypted, each with a passphrase of its
own; every file owner-only)::

    root.pem                the practice root CA: what auditors trust (publish it)
    root.key.pem            its key (root passphrase): needed only to issue or revoke a CA
                              certificate, so it can live offline ('agreements pki export-root-key';
                              commands that need it then take --root-key FILE)
    intake.pem              the intake CA, issued by the root: it issues one-time client
    intake.key.pem            certificates at signing time (intake CA passphrase)
    clinicians.pem          the clinician CA, issued by the root: it issues therapists'
    clinicians.key.pem        certificates, and revokes them (clinician CA passphrase)
    crl.pem                 one CRL per CA (root, intake, clinicians, retired CAs), each numbered
                              and re-issued by its own CA only (publish beside root.pem)
    therapists/ID.pem       a clinician's certificate, issued by the clinician CA
    therapists/ID.key.pem   its key (the clinician's own passphrase)
    therapists/ID-SERIAL.pem  earlier certificates of that clinician (kept for the record)
    retired/KIND-SERIAL.pem CA certificates replaced by 'agreements pki rotate' (their keys deleted)

So front desk (the intake passphrase) can sign clients in but cannot issue or
revoke a therapist; the practice administrator (the clinician CA passphrase) can
issue and revoke therapists but cannot sign as a client; the root stays offline;
each therapist opens only their own key. Practices made before the clinician CA
had their therapists issued by the root: those certificates still verify, and
``add_clinician_ca`` (``agreements pki add-clinician-ca``) gives them one.

ECDSA P-256 with SHA-256 throughout: small, fast, and what OpenSSL and pyHanko
verify everywhere. Validity: root 30 years and the CAs 20 (they must outlive
the six years records are kept), clinicians 2 years, one-time client
certificates one day around the signature.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agreements_kit.errors import InvalidFormat, PKIError
from agreements_kit.formats.certprofile import (  # noqa: F401 - re-exported for callers
    AGREEMENT_URN,
    NAME_BYTES,
    OU_CLIENT,
    OU_CLINICIANS,
    OU_GUARDIAN,
    OU_INTAKE,
    OU_ROOT,
    OU_THERAPIST,
    agreement_uri,
    common_name,
    fingerprint,
    iso,
    name_text,
)
from agreements_kit.formats.crlset import CrlSet, crl_number, parse_crl_set
from agreements_kit.store.files import fsync_dir, make_private_dir, rename_noreplace, write_new

# Organizational units name what a certificate is for; verifiers bind roles to them (formats.certprofile).

ROOT_YEARS = 30
INTAKE_YEARS = 20
CA_YEARS = INTAKE_YEARS
CLINICIAN_DAYS = 730
ONE_TIME = dt.timedelta(days=1)
CRL_DAYS = 3650
MIN_PASSPHRASE = 8
NO_CLINICIAN_CA = ("this practice has no clinician CA (it was made before keys were separated, and its "
                   "therapists were issued by the root): run 'agreements pki add-clinician-ca' once (it needs the "
                   "root passphrase and sets the clinician CA's own)")


@dataclass(frozen=True)
class CaKind:
    """One of the practice's CAs under the root: its files, its role in the register, its names."""

    role: str      # the register's role for its certificate
    stem: str      # PKI folder file stem
    unit: str      # subject OU
    label: str     # subject CN suffix, and what messages call it
    env: str       # the CLI's environment variable for its passphrase


INTAKE = CaKind("intake", "intake", OU_INTAKE, "Intake CA", "AGREEMENTS_INTAKE_PASSPHRASE")
CLINICIANS = CaKind("clinician-ca", "clinicians", OU_CLINICIANS, "Clinician CA", "AGREEMENTS_CLINICIAN_CA_PASSPHRASE")
CA_KINDS = {"intake": INTAKE, "clinician-ca": CLINICIANS}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _name(common: str, org: str, unit: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, common),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, name_text(org)),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
    ])


def _ca_extensions(builder: x509.CertificateBuilder, key: ec.EllipticCurvePrivateKey, issuer_key,
                   path_length: int | None) -> x509.CertificateBuilder:
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (builder
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                           critical=False))


def _sub_ca(name: x509.Name, root: x509.Certificate, root_key: ec.EllipticCurvePrivateKey, now: dt.datetime
            ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A CA under the root that issues end-entity certificates only (path length 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _ca_extensions(
        x509.CertificateBuilder().subject_name(name).issuer_name(root.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365 * CA_YEARS)),
        key, root_key, path_length=0).sign(root_key, hashes.SHA256())
    return cert, key


def _leaf(subject: x509.Name, public_key, issuer: x509.Certificate, issuer_key, not_before: dt.datetime,
          not_after: dt.datetime, uri: str | None = None) -> x509.Certificate:
    builder = (x509.CertificateBuilder()
               .subject_name(subject).issuer_name(issuer.subject).public_key(public_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
               # emailProtection: the purpose OpenSSL's `cms -verify` checks by default.
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                              critical=False))
    if uri is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]),
                                        critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _crl(issuer: x509.Certificate, key: ec.EllipticCurvePrivateKey, number: int,
         entries: list[x509.RevokedCertificate], now: dt.datetime) -> bytes:
    """One CA's CRL (PEM), numbered ``number``, listing ``entries``."""
    builder = (x509.CertificateRevocationListBuilder().issuer_name(issuer.subject)
               .last_update(now).next_update(now + dt.timedelta(days=CRL_DAYS))
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
               .add_extension(x509.CRLNumber(number), critical=False))
    for entry in entries:
        builder = builder.add_revoked_certificate(entry)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _revocation(serial: int, when: dt.datetime, reason: x509.ReasonFlags | None = None) -> x509.RevokedCertificate:
    b = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
    if reason is not None:
        b = b.add_extension(x509.CRLReason(reason), critical=False)
    return b.build()


def _copy(entry: x509.RevokedCertificate) -> x509.RevokedCertificate:
    """An entry of an earlier CRL, for the next one (with its reason, if any)."""
    b = x509.RevokedCertificateBuilder().serial_number(entry.serial_number).revocation_date(entry.revocation_date_utc)
    for ext in entry.extensions:
        b = b.add_extension(ext.value, ext.critical)
    return b.build()


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _encrypted(key: ec.EllipticCurvePrivateKey, passphrase: bytes) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.BestAvailableEncryption(passphrase))


def _same_key(key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> bool:
    der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(*der) == cert.public_key().public_bytes(*der)


def check_passphrase(passphrase: bytes) -> bytes:
    if len(passphrase) < MIN_PASSPHRASE:
        raise PKIError(f"passphrase too short: use at least {MIN_PASSPHRASE} characters")
    return passphrase


def check_distinct(**passphrases: bytes) -> None:
    """Each key its own passphrase: refuse one passphrase given for two keys (names the two)."""
    seen: dict[bytes, str] = {}
    for what, value in passphrases.items():
        check_passphrase(value)
        if value in seen:
            raise PKIError(f"the {seen[value].replace('_', ' ')} and the {what.replace('_', ' ')} passphrases are the "
                           "same: each key needs a passphrase of its own, so that whoever holds one cannot open "
                           "the other")
        seen[value] = what


def load_key(path: Path, passphrase: bytes, what: str) -> ec.EllipticCurvePrivateKey:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PKIError(f"{what} key not found: {path}") from None
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except (ValueError, TypeError):
        raise PKIError(f"wrong passphrase for the {what} key ({path})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PKIError(f"{what} key {path} is not an ECDSA key")
    return key


def load_cert(path: Path, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        raise PKIError(f"{what} certificate not found: {path} (run 'agreements init' or 'agreements pki issue')") \
            from None
    except ValueError:
        raise PKIError(f"{what} certificate {path} is not a PEM certificate") from None


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    if cert.issuer != ca.subject:
        return False
    try:
        cert.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


@dataclass(frozen=True)
class PKI:
    """Paths of one practice's PKI folder, and what its CAs do."""

    root_dir: Path

    @property
    def root_cert(self) -> Path:
        return self.root_dir / "root.pem"

    @property
    def root_key(self) -> Path:
        return self.root_dir / "root.key.pem"

    def ca_cert_path(self, kind: CaKind) -> Path:
        return self.root_dir / f"{kind.stem}.pem"

    def ca_key_path(self, kind: CaKind) -> Path:
        return self.root_dir / f"{kind.stem}.key.pem"

    @property
    def intake_cert(self) -> Path:
        return self.ca_cert_path(INTAKE)

    @property
    def intake_key(self) -> Path:
        return self.ca_key_path(INTAKE)

    @property
    def clinician_cert(self) -> Path:
        return self.ca_cert_path(CLINICIANS)

    @property
    def clinician_key(self) -> Path:
        return self.ca_key_path(CLINICIANS)

    @property
    def crl(self) -> Path:
        return self.root_dir / "crl.pem"

    @property
    def therapists(self) -> Path:
        return self.root_dir / "therapists"

    @property
    def retired(self) -> Path:
        return self.root_dir / "retired"

    def therapist_cert(self, tid: str) -> Path:
        return self.therapists / f"{tid}.pem"

    def therapist_key(self, tid: str) -> Path:
        return self.therapists / f"{tid}.key.pem"

    def exists(self) -> bool:
        return self.root_cert.is_file()

    def has_clinician_ca(self) -> bool:
        return self.clinician_cert.is_file()

    def root(self) -> x509.Certificate:
        return load_cert(self.root_cert, "root CA")

    def intake(self) -> x509.Certificate:
        return load_cert(self.intake_cert, "intake CA")

    def clinician_ca(self) -> x509.Certificate:
        if not self.has_clinician_ca():
            raise PKIError(NO_CLINICIAN_CA)
        return load_cert(self.clinician_cert, "clinician CA")

    def practice_name(self) -> str:
        attrs = self.root().subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        return str(attrs[0].value) if attrs else ""

    def load_root_key(self, passphrase: bytes, key_file: Path | None = None) -> ec.EllipticCurvePrivateKey:
        """The root's key, from pki/ or from where it was exported (``key_file``); it must be root.pem's key."""
        path = Path(key_file) if key_file is not None else self.root_key
        if key_file is None and not path.exists():
            raise PKIError(f"the root key is not in {self.root_dir} (exported to removable media?): give its "
                           "file with --root-key FILE")
        key = load_key(path, passphrase, "root CA")
        if not _same_key(key, self.root()):
            raise PKIError(f"{path} is not the key of this practice's root certificate ({self.root_cert})")
        return key

    def load_ca_key(self, kind: CaKind, passphrase: bytes) -> ec.EllipticCurvePrivateKey:
        return load_key(self.ca_key_path(kind), passphrase, kind.label)

    # ------------------------------------------------------------------ creation

    def create(self, practice_name: str, root_passphrase: bytes, intake_passphrase: bytes,
               clinician_passphrase: bytes, now: dt.datetime | None = None) -> None:
        """Root CA, intake CA, clinician CA and their empty CRLs, each key under its own passphrase.
        Refuses to replace an existing PKI, and one passphrase for two keys."""
        check_distinct(root=root_passphrase, intake_CA=intake_passphrase, clinician_CA=clinician_passphrase)
        if self.exists():
            raise PKIError(f"{self.root_dir} already holds a PKI; it is never replaced")
        now = now or utcnow()
        make_private_dir(self.root_dir, exist_ok=True)
        make_private_dir(self.therapists, exist_ok=True)
        root_key = ec.generate_private_key(ec.SECP256R1())
        root_name = _name(f"{name_text(practice_name[:52], NAME_BYTES - 8).rstrip()} Root CA", practice_name, OU_ROOT)
        root = _ca_extensions(
            x509.CertificateBuilder().subject_name(root_name).issuer_name(root_name)
            .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365 * ROOT_YEARS)),
            root_key, root_key, path_length=1).sign(root_key, hashes.SHA256())
        intake, intake_key = _sub_ca(self._ca_name(INTAKE, practice_name, 1), root, root_key, now)
        clinicians, clinician_key = _sub_ca(self._ca_name(CLINICIANS, practice_name, 1), root, root_key, now)
        write_new(self.root_key, _encrypted(root_key, root_passphrase))
        write_new(self.intake_key, _encrypted(intake_key, intake_passphrase))
        write_new(self.clinician_key, _encrypted(clinician_key, clinician_passphrase))
        write_new(self.intake_cert, _pem(intake))
        write_new(self.clinician_cert, _pem(clinicians))
        write_new(self.crl, b"".join(_crl(c, k, 1, [], now) for c, k in
                                     ((root, root_key), (intake, intake_key), (clinicians, clinician_key))))
        self.register(root, "root", root, now)
        self.register(intake, INTAKE.role, root, now)
        self.register(clinicians, CLINICIANS.role, root, now)
        self.log_crls(now, [])
        write_new(self.root_cert, _pem(root))  # last: its presence means the PKI is complete

    @staticmethod
    def _ca_name(kind: CaKind, practice_name: str, generation: int) -> x509.Name:
        """A CA's subject; a rotated CA's carries its generation, so every CA's CRL has an issuer of its own."""
        suffix = kind.label if generation == 1 else f"{kind.label} {generation}"
        prefix = name_text(practice_name[:62 - len(suffix)], NAME_BYTES - 1 - len(suffix.encode()))
        return _name(f"{prefix.rstrip()} {suffix}", practice_name, kind.unit)

    def add_clinician_ca(self, root_passphrase: bytes, clinician_passphrase: bytes, now: dt.datetime | None = None,
                         root_key_file: Path | None = None) -> x509.Certificate:
        """Give a practice made before keys were separated its clinician CA (its therapists' certificates,
        issued by the root, stay valid until they are revoked or expire)."""
        check_distinct(root=root_passphrase, clinician_CA=clinician_passphrase)
        if self.has_clinician_ca():
            raise PKIError(f"{self.clinician_cert} exists: the practice has a clinician CA already (replace it with "
                           "'agreements pki rotate --clinician-ca')")
        now = now or utcnow()
        root_key = self.load_root_key(root_passphrase, root_key_file)
        root = self.root()
        cert, key = _sub_ca(self._ca_name(CLINICIANS, self.practice_name(), 1), root, root_key, now)
        write_new(self.clinician_key, _encrypted(key, clinician_passphrase))
        self.register(cert, CLINICIANS.role, root, now)
        self._publish(now, {}, [_crl(cert, key, 1, [], now)], [])
        write_new(self.clinician_cert, _pem(cert))
        return cert

    # ------------------------------------------------------------------ the register, in the ledger

    def archive_dir(self) -> Path:
        """The practice's archive, whose ledger holds the register of certificates and CRLs."""
        return self.root_dir.parent / "signed"

    def register_fields(self, cert: x509.Certificate, role: str, issuer: x509.Certificate, now: dt.datetime,
                        source: str = "issued", **ids: str) -> dict:
        """The ledger entry that enters ``cert`` in the register of issued certificates (no names)."""
        return {"event": "certificate", "certificate_sha256": fingerprint(cert), "serial": f"{cert.serial_number:x}",
                "role": role, "issuer_sha256": fingerprint(issuer), "source": source, "time": iso(now),
                "not_before": iso(cert.not_valid_before_utc), "not_after": iso(cert.not_valid_after_utc), **ids}

    def register(self, cert: x509.Certificate, role: str, issuer: x509.Certificate, now: dt.datetime,
                 **ids: str) -> None:
        """Enter a certificate this PKI issued in the register (the archive's ledger), under its lock."""
        from agreements_kit.store.archive import Archive

        archive = Archive(self.archive_dir())
        with archive.locked():
            archive.log(self.register_fields(cert, role, issuer, now, **ids))

    @staticmethod
    def crl_fields(crls: CrlSet, now: dt.datetime, revoked: list[x509.Certificate]) -> dict:
        """The ledger's ``crl`` entry for a published set: per issuer its CRL's number and SHA-256, and what
        it newly revokes."""
        return {"event": "crl", "crl_numbers": dict(crls.numbers), "crls": crls.digests(), "time": iso(now),
                "revoked": [fingerprint(c) for c in revoked]}

    def log_crls(self, now: dt.datetime, revoked: list[x509.Certificate]) -> None:
        """Enter the CRL set just published in the ledger."""
        from agreements_kit.store.archive import Archive

        crls = parse_crl_set(self.crl.read_bytes(), str(self.crl))
        archive = Archive(self.archive_dir())
        with archive.locked():
            archive.log(self.crl_fields(crls, now, revoked))

    def _publish(self, now: dt.datetime, reissued: dict[str, bytes], added: list[bytes],
                 revoked: list[x509.Certificate]) -> None:
        """Replace some CAs' CRLs (issuer rfc4514 -> new PEM) and add new CAs' in crl.pem, then log the set.

        Every other CRL stays byte for byte: each is re-issued only by its own CA."""
        current = self.crl_set()
        blocks = []
        for crl in current.crls:
            key = crl.issuer.rfc4514_string()
            blocks.append(reissued.pop(key) if key in reissued else crl.public_bytes(serialization.Encoding.PEM))
        if reissued:
            raise PKIError(f"crl.pem holds no CRL of {', '.join(reissued)} to re-issue")
        data = b"".join(blocks + added)
        parse_crl_set(data, str(self.crl))  # what verifiers will read: one CRL per issuer, each numbered
        tmp = self.crl.with_name(".crl.pem.new")
        tmp.unlink(missing_ok=True)
        write_new(tmp, data)
        os.replace(tmp, self.crl)  # the CRL set is the one file replaced in place: each CRL only grows
        fsync_dir(self.root_dir)
        self.log_crls(now, revoked)

    def _reissued(self, issuer: x509.Certificate, key: ec.EllipticCurvePrivateKey,
                  new: list[x509.RevokedCertificate], now: dt.datetime) -> dict[str, bytes]:
        """``issuer``'s next CRL: its entries and ``new``, the next number (RFC 5280 5.2.3: they increase)."""
        old = self.crl_set().for_issuer(issuer.subject)
        if old is None:
            raise PKIError(f"crl.pem holds no CRL of '{common_name(issuer)}'")
        number = (crl_number(old) or 0) + 1
        entries = [_copy(r) for r in old] + new
        return {issuer.subject.rfc4514_string(): _crl(issuer, key, number, entries, now)}

    # ------------------------------------------------------------------ CRL

    def crl_set(self) -> CrlSet:
        try:
            data = self.crl.read_bytes()
        except FileNotFoundError:
            raise PKIError(f"CRL not found: {self.crl}") from None
        try:
            return parse_crl_set(data, str(self.crl))  # the verifiers' own reader of crl.pem
        except InvalidFormat as exc:
            raise PKIError(f"{self.crl}: {exc.message}") from None

    def crls(self) -> list[x509.CertificateRevocationList]:
        return list(self.crl_set().crls)

    def revoked(self) -> dict[int, dt.datetime]:
        """Serial -> revocation time, over every CA's CRL."""
        return {r.serial_number: r.revocation_date_utc for crl in self.crls() for r in crl}

    def issuer_of(self, cert: x509.Certificate) -> x509.Certificate:
        """The CA in service that issued a therapist's certificate: the clinician CA, or, for a certificate
        from before the practice had one, the root."""
        cas = ([self.clinician_ca()] if self.has_clinician_ca() else []) + [self.root()]
        for ca in cas:
            if _issued_by(cert, ca):
                return ca
        raise PKIError(f"the certificate of '{common_name(cert)}' was not issued by this practice's clinician CA "
                       "(nor, before it had one, by its root): issue a new one with 'agreements pki issue'")

    def revoke(self, cert: x509.Certificate, passphrase: bytes, now: dt.datetime | None = None,
               root_key_file: Path | None = None) -> None:
        """Revoke a therapist's certificate in its issuer's CRL: the clinician CA's (``passphrase`` is its
        passphrase); for a certificate the root issued before the practice had a clinician CA, the root's
        (``passphrase`` is the root's)."""
        now = now or utcnow()
        issuer = self.issuer_of(cert)
        if issuer == self.root():
            key = self.load_root_key(passphrase, root_key_file)
        else:
            key = load_key(self.clinician_key, passphrase, "clinician CA")
        revoked = self.revoked()
        if cert.serial_number in revoked:
            raise PKIError(f"certificate {cert.serial_number:x} is already revoked")
        self._publish(now, self._reissued(issuer, key, [_revocation(cert.serial_number, now)], now), [], [cert])

    # ------------------------------------------------------------------ rotation

    def rotate(self, kind: CaKind, root_passphrase: bytes, new_passphrase: bytes, now: dt.datetime | None = None,
               root_key_file: Path | None = None) -> tuple[x509.Certificate, x509.Certificate]:
        """Replace the intake CA or the clinician CA with a new certificate and key (the new passphrase).

        The old CA certificate is revoked in the root's CRL (reason superseded, as of now), so nothing
        its key signs from now on verifies, while what it issued before stays valid; its last CRL stays in
        crl.pem, its certificate moves to retired/ and its key is deleted. The new CA is entered in the
        register and the new CRL set in the ledger. Returns (old, new)."""
        check_distinct(root=root_passphrase, **{f"new {kind.label}": new_passphrase})
        now = now or utcnow()
        root_key = self.load_root_key(root_passphrase, root_key_file)
        root = self.root()
        cert_path, key_path = self.ca_cert_path(kind), self.ca_key_path(kind)
        if not cert_path.exists():
            raise PKIError(NO_CLINICIAN_CA if kind is CLINICIANS else f"{kind.label} certificate not found: "
                           f"{cert_path}")
        old = load_cert(cert_path, kind.label)
        make_private_dir(self.retired, exist_ok=True)
        generation = 2 + len(list(self.retired.glob(f"{kind.stem}-*.pem")))
        new, key = _sub_ca(self._ca_name(kind, self.practice_name(), generation), root, root_key, now)
        staged_key = key_path.with_name(f".{key_path.name}.new")
        staged_cert = cert_path.with_name(f".{cert_path.name}.new")
        for staged in (staged_key, staged_cert):
            staged.unlink(missing_ok=True)
        write_new(staged_key, _encrypted(key, new_passphrase))
        write_new(staged_cert, _pem(new))
        self.register(new, kind.role, root, now)
        superseded = _revocation(old.serial_number, now, x509.ReasonFlags.superseded)
        self._publish(now, self._reissued(root, root_key, [superseded], now), [_crl(new, key, 1, [], now)], [old])
        rename_noreplace(cert_path, self.retired / f"{kind.stem}-{old.serial_number:x}.pem")
        os.replace(staged_key, key_path)  # the old key is gone: replaced, never kept
        os.replace(staged_cert, cert_path)
        fsync_dir(self.root_dir)
        return old, new

    # ------------------------------------------------------------------ the root offline

    def export_root_key(self, destination: Path, passphrase: bytes) -> Path:
        """Move the root's key to ``destination`` (a folder on removable media) and out of pki/.

        The copy is written atomically, read back, decrypted with the root passphrase and matched to
        root.pem before the key in pki/ is removed; on any failure the key stays in pki/ and no copy is
        left behind."""
        destination = Path(destination)
        if not self.root_key.exists():
            raise PKIError(f"the root key is not in {self.root_dir}: it was exported already")
        if not destination.is_dir():
            raise PKIError(f"{destination} is not a folder (mount the removable medium and name a folder on it)")
        if destination.resolve() == self.root_dir.resolve():
            raise PKIError("export the root key to another folder (removable media), not to pki/ itself")
        self.load_root_key(passphrase)  # the right passphrase, the right key
        data = self.root_key.read_bytes()
        target = destination / "root.key.pem"
        if target.exists():
            raise PKIError(f"{target} exists already; choose another folder (no key file is ever replaced)")
        write_new(target, data)
        try:
            if target.read_bytes() != data:
                raise PKIError(f"the copy {target} reads back differently: the medium is faulty; the key stays "
                               f"in {self.root_dir}")
            self.load_root_key(passphrase, target)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        self.root_key.unlink()
        fsync_dir(self.root_dir)
        return target

    # ------------------------------------------------------------------ issuing

    def issue_clinician(self, tid: str, name: str, practice_name: str, ca_passphrase: bytes,
                        key_passphrase: bytes, now: dt.datetime | None = None,
                        days: int = CLINICIAN_DAYS) -> x509.Certificate:
        """A therapist's certificate from the clinician CA (``ca_passphrase`` is its passphrase), with a new
        key under the therapist's own passphrase."""
        check_passphrase(key_passphrase)
        if key_passphrase == ca_passphrase:
            raise PKIError("the therapist's passphrase is the clinician CA's: each key needs a passphrase of its own")
        now = now or utcnow()
        ca = self.clinician_ca()
        ca_key = load_key(self.clinician_key, ca_passphrase, "clinician CA")
        current = self.therapist_cert(tid)
        if current.exists():
            old = load_cert(current, f"therapist '{tid}'")
            in_service = _issued_by(old, ca) or _issued_by(old, self.root())
            if in_service and old.serial_number not in self.revoked() and old.not_valid_after_utc > now:
                raise PKIError(f"therapist '{tid}' already has a valid certificate (expires "
                               f"{old.not_valid_after_utc:%Y-%m-%d}); revoke it first")
            # Keep the earlier certificate and key for the record; the new ones take the plain names.
            os.rename(current, self.therapists / f"{tid}-{old.serial_number:x}.pem")
            key_path = self.therapist_key(tid)
            if key_path.exists():
                os.rename(key_path, self.therapists / f"{tid}-{old.serial_number:x}.key.pem")
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _leaf(_name(name, practice_name, OU_THERAPIST), key.public_key(), ca, ca_key,
                     now - dt.timedelta(minutes=5), now + dt.timedelta(days=days))
        write_new(self.therapist_key(tid), _encrypted(key, key_passphrase))
        write_new(current, _pem(cert))
        self.register(cert, "therapist", ca, now, therapist_id=tid)
        return cert

    def one_time_client(self, name: str, practice_name: str, intake_key: ec.EllipticCurvePrivateKey,
                        now: dt.datetime, agreement_id: str, role: str = "client"
                        ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """A certificate for one signature by the client (or guardian) of one agreement.

        Its OU names the role and its SAN the agreement (``urn:agreements-kit:agreement:ID:ROLE``),
        so it cannot be used for another agreement or role; its private key never leaves memory."""
        if role not in (OU_CLIENT, OU_GUARDIAN):
            raise PKIError(f"one-time certificates are for a client or guardian, not '{role}'")
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _leaf(_name(name_text(name), practice_name, role), key.public_key(), self.intake(), intake_key,
                     now - dt.timedelta(minutes=5), now + ONE_TIME, uri=agreement_uri(agreement_id, role))
        return cert, key

    def server_certificate(self, hostnames: list[str], ca_passphrase: bytes, days: int = 30
                           ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """A TLS server certificate for the intake app, from the intake CA; the key stays in memory."""
        import ipaddress

        intake_key = load_key(self.intake_key, ca_passphrase, "intake CA")
        intake = self.intake()
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = []
        for host in hostnames:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        now = utcnow()
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0][:64])]))
                .issuer_name(intake.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.SubjectAlternativeName(names), critical=False)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                             crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .sign(intake_key, hashes.SHA256()))
        self.register(cert, "server", intake, now)
        return cert, key

    # ------------------------------------------------------------------ listing

    def inventory(self) -> list[dict]:
        """Every certificate in the PKI folder with its role, expiry and status."""
        revoked = self.revoked()
        now = utcnow()
        rows = []
        paths = [("root CA", self.root_cert), ("intake CA", self.intake_cert)]
        if self.has_clinician_ca():
            paths.append(("clinician CA", self.clinician_cert))
        if self.retired.is_dir():
            paths += [("retired CA", p) for p in sorted(self.retired.glob("*.pem"))]
        paths += [("therapist", p) for p in sorted(self.therapists.glob("*.pem")) if not p.name.endswith(".key.pem")]
        for role, path in paths:
            cert = load_cert(path, role)
            status = ("revoked" if cert.serial_number in revoked
                      else "expired" if cert.not_valid_after_utc <= now else "valid")
            rows.append({
                "role": role, "file": path.relative_to(self.root_dir).as_posix(),
                "subject": cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value,
                "serial": f"{cert.serial_number:x}", "not_after": cert.not_valid_after_utc.isoformat(),
                "status": status, "sha256": fingerprint(cert),
            })
        return rows
