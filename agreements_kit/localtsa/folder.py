"""The TSA's folder: its root, its certificate, its encrypted key and OpenSSL's configuration.

The root's private key is used once, to issue the TSA certificate, and is never
written: nothing else is ever issued under it, so there is no root key to guard.
A new TSA is a new folder. The TSA key is encrypted at rest like every key of the
project; its random passphrase sits beside it in ``tsa.pass`` (0600) because this
TSA runs unattended, and OpenSSL reads it with ``-passin file:``.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agreements_kit.errors import AgreementsError
from agreements_kit.store.files import make_private_dir, write_new

# The TSA policy: a UUID-based OID (ITU-T X.667, arc 2.25), which needs no registration.
POLICY_OID = "2.25.176284631859908745650185468624739903599"

ROOT = "tsa-root.pem"
CERT = "tsa.pem"
KEY = "tsa.key.pem"
PASS = "tsa.pass"
CONFIG = "openssl.cnf"
SERIAL = "tsaserial"
ROOT_YEARS = 20
CERT_YEARS = 10

# Paths are relative: the server runs openssl inside the folder, so the folder can move.
# No `certs =` chain: tokens carry the TSA certificate only (the auditor holds the root), and
# OpenSSL does not DER-sort a certificate SET of two, which rfc3161-client's strict parser refuses.
_CONFIG = f"""\
# OpenSSL configuration of an agreements-kit local TSA (openssl ts -reply).
[ tsa ]
default_tsa = tsa_config

[ tsa_config ]
serial = ./{SERIAL}
crypto_device = builtin
signer_cert = ./{CERT}
signer_key = ./{KEY}
signer_digest = sha256
default_policy = {POLICY_OID}
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


@dataclass(frozen=True)
class TsaFolder:
    """Where one local TSA keeps its files."""

    path: Path

    @property
    def root(self) -> Path:
        return self.path / ROOT

    @property
    def cert(self) -> Path:
        return self.path / CERT

    @property
    def key(self) -> Path:
        return self.path / KEY

    @property
    def passfile(self) -> Path:
        return self.path / PASS

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    def root_certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.root.read_bytes())

    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert.read_bytes())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def create(folder: Path, name: str = "agreements-kit local TSA") -> TsaFolder:
    """Make a new TSA in ``folder`` (created 0700; an existing non-empty folder is refused)."""
    folder = Path(folder)
    if not name.strip() or any(c in name for c in "\r\n"):
        raise AgreementsError("the TSA name must be one non-empty line", code="usage.tsa-name")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise AgreementsError("is not an empty folder: a new TSA needs a new folder", path=folder,
                              code="conflict.tsa-folder")
    make_private_dir(folder, exist_ok=True)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start = now - dt.timedelta(minutes=5)  # a little slack for clocks that disagree

    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{name} root"))
        .issuer_name(_name(f"{name} root"))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + dt.timedelta(days=365 * ROOT_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    tsa_key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(root.subject)
        .public_key(tsa_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + dt.timedelta(days=365 * CERT_YEARS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        # RFC 3161 2.3: the TSA certificate has exactly one, critical, extended key usage: timeStamping.
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(tsa_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    passphrase = secrets.token_urlsafe(32)
    encrypted = tsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.BestAvailableEncryption(passphrase.encode()))
    tsa = TsaFolder(folder)
    write_new(tsa.passfile, passphrase.encode() + b"\n")
    write_new(tsa.key, encrypted)
    write_new(tsa.cert, _pem(cert))
    write_new(tsa.root, _pem(root))
    write_new(tsa.config, _CONFIG.encode())
    write_new(folder / SERIAL, b"01\n")
    return tsa


def open_folder(folder: Path) -> TsaFolder:
    """A TSA folder made by :func:`create`, checked for its files (before a server starts on it)."""
    tsa = TsaFolder(Path(folder))
    missing = [p.name for p in (tsa.root, tsa.cert, tsa.key, tsa.passfile, tsa.config) if not p.is_file()]
    if missing:
        raise AgreementsError(f"is not a TSA folder (missing {', '.join(missing)}); make one with "
                              "'agreements tsa init FOLDER'", path=tsa.path, code="not-found.tsa-folder")
    if not os.access(tsa.path, os.W_OK):
        raise AgreementsError("the TSA folder is not writable (its serial number file changes with every token)",
                              path=tsa.path, code="denied.tsa-folder")
    return tsa
