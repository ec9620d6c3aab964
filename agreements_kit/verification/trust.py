"""What a verifier trusts: the practice root certificate and its CRLs.

An auditor names the root (``--trust ROOT.pem``); the CRL file published beside
it (``crl.pem``) is found automatically, or named with ``--crl``. Without a CRL
revocation cannot be checked, and the verdict says so instead of guessing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from agreements_kit.errors import AgreementsError


class TrustError(AgreementsError):
    """The trust root or CRL cannot be read (exit 2: could not check)."""


@dataclass
class Trust:
    root: x509.Certificate
    root_path: Path
    crls: list[x509.CertificateRevocationList] = field(default_factory=list)
    crl_path: Path | None = None
    # issuer fingerprint -> {serial: revocation time}, for CRLs whose signature checked out.
    _revoked: dict[bytes, dict[int, dt.datetime] | None] = field(default_factory=dict, repr=False)  # by issuer DER

    @property
    def root_der(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.DER)

    @cached_property
    def root_fingerprint(self) -> bytes:
        return self.root.fingerprint(hashes.SHA256())

    def crl_for(self, issuer: x509.Certificate) -> x509.CertificateRevocationList | None:
        for crl in self.crls:
            if crl.issuer == issuer.subject:
                try:
                    if crl.is_signature_valid(issuer.public_key()):
                        return crl
                except TypeError:
                    continue
        return None

    def revocation(self, cert: x509.Certificate, issuer: x509.Certificate) -> tuple[bool, dt.datetime | None]:
        """(CRL available for the issuer, revocation time or None). Each CRL is checked once."""
        key = issuer.public_bytes(serialization.Encoding.DER) if issuer is not self.root else b"root"
        if key not in self._revoked:
            crl = self.crl_for(issuer)
            self._revoked[key] = None if crl is None else {r.serial_number: r.revocation_date_utc for r in crl}
        revoked = self._revoked[key]
        if revoked is None:
            return False, None
        return True, revoked.get(cert.serial_number)


def load_trust(root: str | Path, crl: str | Path | None = None) -> Trust:
    root = Path(root)
    try:
        cert = x509.load_pem_x509_certificate(root.read_bytes())
    except FileNotFoundError:
        raise TrustError(f"trust root not found: {root}") from None
    except ValueError:
        raise TrustError(f"{root} is not a PEM certificate") from None
    crl_path = Path(crl) if crl else root.with_name("crl.pem")
    crls: list[x509.CertificateRevocationList] = []
    if crl_path.is_file():
        from agreements_kit.signing.pki import parse_crls

        try:
            crls = parse_crls(crl_path.read_bytes())
        except ValueError:
            raise TrustError(f"{crl_path} is not a PEM CRL file") from None
    elif crl:
        raise TrustError(f"CRL file not found: {crl_path}")
    return Trust(cert, root, crls, crl_path if crls else None)
