"""The CRL set format: ``crl.pem``, the practice's published revocation lists.

One PEM file holding exactly one CRL per issuing CA (the root's, the intake CA's,
the clinician CA's, and those of CAs retired by rotation). Each CRL carries its
own CRL number (RFC 5280 5.2.3), which grows by one each time its own CA
re-issues it, and only that CA's key re-issues it: revoking a therapist changes
the clinician CA's CRL alone, and needs no other key.

Anything else is refused: two CRLs from one issuer (an older one prepended or
appended: which would a reader take?), a CRL without a number, text between the
PEM blocks, a file too large. Each set the practice publishes is entered in the
ledger (per issuer its CRL number and its CRL's SHA-256), so a verifier can tell,
issuer by issuer, a current CRL from an older one put back or another one put in
its place.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agreements_kit.errors import InvalidFormat

MAX_BYTES = 4 * 1024 * 1024
_BLOCK = re.compile(rb"-----BEGIN X509 CRL-----\r?\n[A-Za-z0-9+/=\r\n]+-----END X509 CRL-----\r?\n?")


@dataclass(frozen=True, eq=False)
class CrlSet:
    raw: bytes
    crls: tuple[x509.CertificateRevocationList, ...]
    numbers: dict[str, int] = field(default_factory=dict)  # issuer key (issuer_key) -> its CRL's number
    _described: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def number(self) -> int:
        """How many times this set's CRLs were issued in all (the sum of their numbers): it grows by one with
        every CRL a CA publishes, so of two sets of one practice the newer has the larger. Per issuer: ``numbers``."""
        return sum(self.numbers.values())

    def digests(self) -> dict[str, str]:
        """SHA-256 of each issuer's name (DER) -> SHA-256 of its CRL (DER): what the ledger records."""
        return {issuer_key(c.issuer): hashlib.sha256(c.public_bytes(serialization.Encoding.DER)).hexdigest()
                for c in self.crls}

    def for_issuer(self, name: x509.Name) -> x509.CertificateRevocationList | None:
        return next((c for c in self.crls if c.issuer == name), None)

    def describe(self) -> str:
        """The numbers of its CRLs, for verdicts: 'CRL numbers 1, 2, 1' (worked out once: every signature's
        verdict names it, and the set never changes)."""
        found = self._described.get("text")
        if found is None:
            found = self._described["text"] = "CRL number" + ("s " if len(self.crls) > 1 else " ") + ", ".join(
                str(self.numbers[issuer_key(c.issuer)]) for c in self.crls)
        return found


def issuer_key(name: x509.Name) -> str:
    return hashlib.sha256(name.public_bytes()).hexdigest()


def crl_number(crl: x509.CertificateRevocationList) -> int | None:
    try:
        return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    except x509.ExtensionNotFound:
        return None


def parse_crl_set(data: bytes, where: str) -> CrlSet:
    """Parse ``crl.pem`` strictly; raises :class:`InvalidFormat` with a code."""
    if len(data) > MAX_BYTES:
        raise InvalidFormat(f"larger than {MAX_BYTES} bytes", path=where, code="format.too-large")
    blocks = list(_BLOCK.finditer(data))
    rest = _BLOCK.sub(b"", data).strip()
    if not blocks or rest:
        raise InvalidFormat("not a file of PEM CRLs (no CRL, or other text between them)", path=where,
                            code="format.not-pem")
    crls = []
    for block in blocks:
        try:
            crl = x509.load_pem_x509_crl(block.group(0))
            # Parsed lazily: touch what verification reads, so that damage shows here, as this format's error.
            crl.issuer  # noqa: B018
            crl.extensions  # noqa: B018 - a duplicated extension raises DuplicateExtension
            for revoked in crl:
                revoked.serial_number  # noqa: B018
                revoked.extensions  # noqa: B018
        except (ValueError, x509.DuplicateExtension):
            raise InvalidFormat("a CRL in it cannot be read (damaged)", path=where, code="format.bad-crl") from None
        crls.append(crl)
    issuers = [c.issuer for c in crls]
    if len(set(issuers)) != len(issuers):
        raise InvalidFormat("holds two CRLs from the same issuer: an older CRL was added to it", path=where,
                            code="format.duplicate-crl")
    numbers: dict[str, int] = {}
    for crl in crls:
        number = crl_number(crl)
        if number is None:
            raise InvalidFormat("a CRL in it has no CRL number", path=where, code="format.bad-crl")
        numbers[issuer_key(crl.issuer)] = number
    return CrlSet(data, tuple(crls), numbers)
