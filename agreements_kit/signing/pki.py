"""The practice's own certificate authority, with ``cryptography``.

Layout, in ``PRACTICE/pki/`` (private keys encrypted with a passphrase, every file
owner-only)::

    root.pem                the practice root CA: what auditors trust (publish it)
    root.key.pem            its key, encrypted (practice passphrase)
    intake.pem              the intake CA, issued by the root: it issues one-time
    intake.key.pem            client certificates at signing time
    crl.pem                 the CRLs of the root and the intake CA (publish beside root.pem)
    therapists/ID.pem       a clinician's certificate, issued by the root
    therapists/ID.key.pem   its key, encrypted (the clinician's own passphrase)
    therapists/ID-SERIAL.pem  earlier certificates of that clinician (kept for the record)

ECDSA P-256 with SHA-256 throughout: small, fast, and what OpenSSL and pyHanko
verify everywhere. Validity: root 30 years and intake CA 20 (they must outlive
the six years records are kept), clinicians 2 years, one-time client
certificates one day around the signature.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agreements_kit.errors import InvalidFormat, PKIError
from agreements_kit.formats.certprofile import (  # noqa: F401 - re-exported for callers
    AGREEMENT_URN,
    OU_CLIENT,
    OU_GUARDIAN,
    OU_INTAKE,
    OU_ROOT,
    OU_THERAPIST,
    agreement_uri,
    common_name,
    fingerprint,
    iso,
)
from agreements_kit.formats.crlset import parse_crl_set
from agreements_kit.store.files import make_private_dir, write_new

# Organizational units name what a certificate is for; verifiers bind roles to them (formats.certprofile).

ROOT_YEARS = 30
INTAKE_YEARS = 20
CLINICIAN_DAYS = 730
ONE_TIME = dt.timedelta(days=1)
CRL_DAYS = 3650
MIN_PASSPHRASE = 8


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _name(common: str, org: str, unit: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, common),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org[:64]),
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


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _encrypted(key: ec.EllipticCurvePrivateKey, passphrase: bytes) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.BestAvailableEncryption(passphrase))


def check_passphrase(passphrase: bytes) -> bytes:
    if len(passphrase) < MIN_PASSPHRASE:
        raise PKIError(f"passphrase too short: use at least {MIN_PASSPHRASE} characters")
    return passphrase


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


@dataclass(frozen=True)
class PKI:
    """Paths of one practice's PKI folder."""

    root_dir: Path

    @property
    def root_cert(self) -> Path:
        return self.root_dir / "root.pem"

    @property
    def root_key(self) -> Path:
        return self.root_dir / "root.key.pem"

    @property
    def intake_cert(self) -> Path:
        return self.root_dir / "intake.pem"

    @property
    def intake_key(self) -> Path:
        return self.root_dir / "intake.key.pem"

    @property
    def crl(self) -> Path:
        return self.root_dir / "crl.pem"

    @property
    def therapists(self) -> Path:
        return self.root_dir / "therapists"

    def therapist_cert(self, tid: str) -> Path:
        return self.therapists / f"{tid}.pem"

    def therapist_key(self, tid: str) -> Path:
        return self.therapists / f"{tid}.key.pem"

    def exists(self) -> bool:
        return self.root_cert.is_file()

    def root(self) -> x509.Certificate:
        return load_cert(self.root_cert, "root CA")

    def intake(self) -> x509.Certificate:
        return load_cert(self.intake_cert, "intake CA")

    # ------------------------------------------------------------------ creation

    def create(self, practice_name: str, passphrase: bytes, now: dt.datetime | None = None) -> None:
        """Root CA, intake CA and empty CRLs. Refuses to replace an existing PKI."""
        check_passphrase(passphrase)
        if self.exists():
            raise PKIError(f"{self.root_dir} already holds a PKI; it is never replaced")
        now = now or utcnow()
        make_private_dir(self.root_dir, exist_ok=True)
        make_private_dir(self.therapists, exist_ok=True)
        root_key = ec.generate_private_key(ec.SECP256R1())
        root_name = _name(f"{practice_name[:52].rstrip()} Root CA", practice_name, OU_ROOT)
        root = _ca_extensions(
            x509.CertificateBuilder().subject_name(root_name).issuer_name(root_name)
            .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365 * ROOT_YEARS)),
            root_key, root_key, path_length=1).sign(root_key, hashes.SHA256())
        intake_key = ec.generate_private_key(ec.SECP256R1())
        intake_name = _name(f"{practice_name[:50].rstrip()} Intake CA", practice_name, OU_INTAKE)
        intake = _ca_extensions(
            x509.CertificateBuilder().subject_name(intake_name).issuer_name(root.subject)
            .public_key(intake_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365 * INTAKE_YEARS)),
            intake_key, root_key, path_length=0).sign(root_key, hashes.SHA256())
        write_new(self.root_key, _encrypted(root_key, passphrase))
        write_new(self.intake_key, _encrypted(intake_key, passphrase))
        write_new(self.intake_cert, _pem(intake))
        self._write_crls(root, root_key, intake, intake_key, revoked=[], now=now, replace=False)
        self.register(root, "root", root, now)
        self.register(intake, "intake", root, now)
        self.log_crls(now, [])
        write_new(self.root_cert, _pem(root))  # last: its presence means the PKI is complete

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

    def log_crls(self, now: dt.datetime, revoked: list[x509.Certificate]) -> None:
        """Enter the CRL set just published in the ledger: its number, each CRL's hash, what it revokes."""
        from agreements_kit.store.archive import Archive

        crls = parse_crl_set(self.crl.read_bytes(), str(self.crl))
        archive = Archive(self.archive_dir())
        with archive.locked():
            archive.log({"event": "crl", "crl_number": crls.number, "crls": crls.digests(), "time": iso(now),
                         "revoked": [fingerprint(c) for c in revoked]})

    def _write_crls(self, root, root_key, intake, intake_key, revoked: list[tuple[int, dt.datetime]],
                    now: dt.datetime, replace: bool) -> None:
        crls = []
        number = 1
        if self.crl.exists():  # RFC 5280 5.2.3: CRL numbers increase monotonically
            for old in self.crls():
                with contextlib.suppress(x509.ExtensionNotFound):
                    number = max(number, old.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number + 1)
        for issuer, key, entries in ((root, root_key, revoked), (intake, intake_key, [])):
            builder = (x509.CertificateRevocationListBuilder().issuer_name(issuer.subject)
                       .last_update(now).next_update(now + dt.timedelta(days=CRL_DAYS))
                       .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()),
                                      critical=False)
                       .add_extension(x509.CRLNumber(number), critical=False))
            for serial, when in entries:
                builder = builder.add_revoked_certificate(
                    x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build())
            crls.append(builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
        data = b"".join(crls)
        if replace:
            tmp = self.crl.with_name(".crl.pem.new")
            tmp.unlink(missing_ok=True)
            write_new(tmp, data)
            os.replace(tmp, self.crl)  # the CRL is the one file that is replaced: it only grows
        else:
            write_new(self.crl, data)

    # ------------------------------------------------------------------ CRL

    def crls(self) -> list[x509.CertificateRevocationList]:
        try:
            data = self.crl.read_bytes()
        except FileNotFoundError:
            raise PKIError(f"CRL not found: {self.crl}") from None
        try:
            return list(parse_crl_set(data, str(self.crl)).crls)  # the verifiers' own reader of crl.pem
        except InvalidFormat as exc:
            raise PKIError(f"{self.crl}: {exc.message}") from None

    def revoked(self) -> dict[int, dt.datetime]:
        """Serial -> revocation time, over both CRLs."""
        return {r.serial_number: r.revocation_date_utc for crl in self.crls() for r in crl}

    def revoke(self, cert: x509.Certificate, passphrase: bytes, now: dt.datetime | None = None) -> None:
        now = now or utcnow()
        root_key = load_key(self.root_key, passphrase, "root CA")
        intake_key = load_key(self.intake_key, passphrase, "intake CA")
        root, intake = self.root(), self.intake()
        if cert.issuer != root.subject:
            raise PKIError("only clinician certificates issued by the practice root can be revoked")
        revoked = self.revoked()
        if cert.serial_number in revoked:
            raise PKIError(f"certificate {cert.serial_number:x} is already revoked")
        entries = [(s, t) for s, t in revoked.items()] + [(cert.serial_number, now)]
        self._write_crls(root, root_key, intake, intake_key, entries, now, replace=True)
        self.log_crls(now, [cert])

    # ------------------------------------------------------------------ issuing

    def issue_clinician(self, tid: str, name: str, practice_name: str, ca_passphrase: bytes,
                        key_passphrase: bytes, now: dt.datetime | None = None,
                        days: int = CLINICIAN_DAYS) -> x509.Certificate:
        check_passphrase(key_passphrase)
        now = now or utcnow()
        root_key = load_key(self.root_key, ca_passphrase, "root CA")
        current = self.therapist_cert(tid)
        if current.exists():
            old = load_cert(current, f"therapist '{tid}'")
            if old.serial_number not in self.revoked() and old.not_valid_after_utc > now:
                raise PKIError(f"therapist '{tid}' already has a valid certificate (expires "
                               f"{old.not_valid_after_utc:%Y-%m-%d}); revoke it first")
            # Keep the earlier certificate and key for the record; the new ones take the plain names.
            os.rename(current, self.therapists / f"{tid}-{old.serial_number:x}.pem")
            key_path = self.therapist_key(tid)
            if key_path.exists():
                os.rename(key_path, self.therapists / f"{tid}-{old.serial_number:x}.key.pem")
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _leaf(_name(name, practice_name, OU_THERAPIST), key.public_key(), self.root(), root_key,
                     now - dt.timedelta(minutes=5), now + dt.timedelta(days=days))
        write_new(self.therapist_key(tid), _encrypted(key, key_passphrase))
        write_new(current, _pem(cert))
        self.register(cert, "therapist", self.root(), now, therapist_id=tid)
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
        cert = _leaf(_name(name[:64], practice_name, role), key.public_key(), self.intake(), intake_key,
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
