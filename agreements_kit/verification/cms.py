"""Step: one detached CMS signature (RFC 5652) over one record, read strictly by formats/cmsder.

What is checked, and refused with a reason code:

- ``cms.structure``: DER ContentInfo holding SignedData (read by cryptography's Rust DER
  reader, every part exactly as encoded, no trailing bytes), detached content of type
  id-data, exactly one SignerInfo identified by issuer and serial, digest SHA-256,
  signature ECDSA with SHA-256, the signer's certificate inside (and only one
  certificate matching the signer's issuer and serial), certificates and CRLs that
  ``cryptography`` reads;
- ``cms.attributes``: signed attributes present, each attribute type once with one
  value (a second messageDigest is how a signature is made to mean two things), each
  value of its type, contentType id-data, messageDigest equal to the record's SHA-256,
  signingTime; no unsigned attribute but one time-stamp token;
- ``cms.signature``: the ECDSA signature over the DER of the signed attributes
  (re-tagged as SET OF, RFC 5652 5.4) verifies with the signer's key.

Certificates and CRLs are parsed with ``cryptography`` and cached by the SHA-256 of
their DER, so an audit parses each therapist's and CA's certificate, and each CRL,
once. The token is taken as its bytes: step 6 reads and checks it (timestamps.py).

Until this reader, signatures were parsed with asn1crypto, every field in full;
tests/test_fastpaths.py holds this one to accepting nothing that one refused
(tests/cms_reference.py keeps it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from agreements_kit.formats import cmsder
from agreements_kit.formats.cmsder import (
    CONTENT_TYPE,
    ID_DATA,
    ID_SIGNED_DATA,
    MESSAGE_DIGEST,
    SIGNING_TIME,
    SMIME_CAPABILITIES,
    TIMESTAMP_TOKEN,  # id-aa-signatureTimeStampToken: the one unsigned attribute
)

SHA256 = "2.16.840.1.101.3.4.2.1"
ECDSA_SHA256 = "1.2.840.10045.4.3.2"
ALLOWED_ATTRIBUTES = {CONTENT_TYPE, MESSAGE_DIGEST, SIGNING_TIME, SMIME_CAPABILITIES}


_ECDSA = ec.ECDSA(hashes.SHA256())  # made once: every signature is checked with it


class CmsProblem(Exception):
    def __init__(self, code: str, message: str):
        self.code = code
        self.message = message
        super().__init__(message)


@dataclass
class SignatureFacts:
    """What a signature says once it checked out: who signed (certificate) and when they claimed to."""

    signer: x509.Certificate
    signer_sha256: str
    certificates: list[x509.Certificate] = field(default_factory=list)
    signing_time: dt.datetime | None = None
    signature_value: bytes = b""
    token: bytes | None = None  # the RFC 3161 time-stamp token over signature_value, if any (steps.step_time)


class CertCache:
    """Certificates (and CRLs) parsed once, by the SHA-256 of their DER (least recently used dropped first)."""

    def __init__(self, limit: int = 256):
        self.parsed: OrderedDict[bytes, tuple[x509.Certificate, str]] = OrderedDict()
        self.limit = limit
        self._issuers: dict[str, bytes] = {}  # certificate SHA-256 -> its issuer name's DER
        self._crls: dict[bytes, bool] = {}  # CRL SHA-256 -> cryptography reads it

    def load(self, der: bytes) -> tuple[x509.Certificate, str]:
        digest = hashlib.sha256(der).digest()
        hit = self.parsed.get(digest)
        if hit is not None:
            self.parsed.move_to_end(digest)
            return hit
        try:
            cert = x509.load_der_x509_certificate(der)
            cert.issuer, cert.subject, cert.public_key(), cert.extensions  # noqa: B018 - parsed lazily: touch now
        except Exception:
            raise CmsProblem("cms.structure", "a certificate inside the signature cannot be read") from None
        entry = (cert, digest.hex())
        self.parsed[digest] = entry
        if len(self.parsed) > self.limit:
            self.parsed.popitem(last=False)
        return entry

    def check_crl(self, der: bytes) -> None:
        """A CRL inside the signature must be one cryptography reads (its contents: step 9, when used)."""
        digest = hashlib.sha256(der).digest()
        if digest not in self._crls:
            try:
                crl = x509.load_der_x509_crl(der)
                crl.issuer, crl.extensions, list(crl)  # noqa: B018 - parsed lazily: touch now
                ok = True
            except Exception:
                ok = False
            if len(self._crls) > self.limit:
                self._crls.clear()
            self._crls[digest] = ok
        if not self._crls[digest]:
            raise CmsProblem("cms.structure", "a CRL inside the signature cannot be read")

    def issuer_der(self, entry: tuple[x509.Certificate, str]) -> bytes:
        """The DER of a loaded certificate's issuer name (kept: every signature under a CA asks it)."""
        found = self._issuers.get(entry[1])
        if found is None:
            if len(self._issuers) > self.limit:
                self._issuers.clear()
            found = self._issuers[entry[1]] = entry[0].issuer.public_bytes()
        return found


def check_signature(record: bytes, p7s: bytes, cache: CertCache) -> SignatureFacts:
    """Check one detached signature over ``record``; raises :class:`CmsProblem` naming what is wrong."""
    try:
        info = cmsder.read_content_info(p7s)
    except Exception as exc:  # the Rust reader raises ValueError, and others on odd input
        raise CmsProblem("cms.structure", f"the signature file is not valid CMS ({type(exc).__name__})") from None
    return _check(record, info, cache)


def _check(record: bytes, info: cmsder.ContentInfo, cache: CertCache) -> SignatureFacts:
    if info.content_type.dotted_string != ID_SIGNED_DATA:
        raise CmsProblem("cms.structure", "the signature file is not a CMS SignedData")
    sd = info.content
    if [a.algorithm.dotted_string for a in sd.digest_algorithms.as_list()] != [SHA256]:
        raise CmsProblem("cms.structure", "the signature does not use SHA-256 alone")
    encap = sd.encap_content_info
    if encap.content_type.dotted_string != ID_DATA or encap.content is not None:
        raise CmsProblem("cms.structure", "the signature is not a detached signature over data")
    signers = sd.signer_infos.as_list()
    if len(signers) != 1:
        raise CmsProblem("cms.structure", f"the signature has {len(signers)} signers instead of one")
    si = signers[0]
    if si.digest_algorithm.algorithm.dotted_string != SHA256:
        raise CmsProblem("cms.structure", "the signer's digest is not SHA-256")
    if si.signature_algorithm.algorithm.dotted_string != ECDSA_SHA256 or si.signature_algorithm.parameters is not None:
        raise CmsProblem("cms.structure", "unexpected signature algorithm (not ECDSA with SHA-256)")
    if sd.certificates is None:
        raise CmsProblem("cms.structure", "the signature carries no certificates")
    certs: list[tuple[x509.Certificate, str]] = []
    for choice in sd.certificates:
        if choice.tag_bytes != cmsder.SEQUENCE_TAG:
            raise CmsProblem("cms.structure", "the signature carries a certificate of an unexpected kind")
        certs.append(cache.load(cmsder.der(choice)))
    for crl in sd.crls if sd.crls is not None else []:
        if crl.tag_bytes != cmsder.SEQUENCE_TAG:
            raise CmsProblem("cms.structure", "the signature carries revocation information of an unexpected kind")
        cache.check_crl(cmsder.der(crl))
    serial = si.sid.serial_number
    issuer_der = cmsder.der(si.sid.issuer)
    matching = [c for c in certs if c[0].serial_number == serial and cache.issuer_der(c) == issuer_der]
    if not matching:
        raise CmsProblem("cms.structure", "the signer's certificate is not in the signature")
    if len({digest for _, digest in matching}) > 1:
        # OpenSSL takes the first, pyHanko the last: the signature would name two different signers.
        raise CmsProblem("cms.structure", "two different certificates in the signature match its signer's issuer "
                         "and serial number: readers could take either")
    signer = matching[0]
    if si.signed_attrs is None:
        raise CmsProblem("cms.attributes", "the signature has no signed attributes")
    found: dict[str, Any] = {}
    for attr in si.signed_attrs:
        oid = attr.type.dotted_string
        if oid in found:
            raise CmsProblem("cms.attributes", f"the signed attribute {oid} appears twice: the signature could be "
                             "read as signing two different things")
        values = attr.values.as_list()
        if len(values) != 1:
            raise CmsProblem("cms.attributes", f"the signed attribute {oid} has {len(values)} values instead of one")
        if oid not in ALLOWED_ATTRIBUTES:
            raise CmsProblem("cms.attributes", f"the signature has an unexpected signed attribute {oid}")
        try:
            found[oid] = cmsder.attribute_value(oid, values[0])
        except Exception:
            raise CmsProblem("cms.structure", f"the signed attribute {oid} is not of its type") from None
    for oid, name in ((CONTENT_TYPE, "contentType"), (MESSAGE_DIGEST, "messageDigest"),
                      (SIGNING_TIME, "signingTime")):
        if oid not in found:
            raise CmsProblem("cms.attributes", f"the signature lacks the signed attribute {name}")
    if found[CONTENT_TYPE] != ID_DATA:
        raise CmsProblem("cms.attributes", "the signed content type is not 'data'")
    if found[MESSAGE_DIGEST] != hashlib.sha256(record).digest():
        raise CmsProblem("cms.digest", "the record's bytes do not match the digest the signature covers: "
                         "the record was changed after it was signed")
    when = found[SIGNING_TIME]
    signed = cmsder.signed_attrs_der(si)  # RFC 5652 5.4: signed as SET OF, the bytes as read
    key = signer[0].public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise CmsProblem("cms.structure", "the signer's key is not an ECDSA key")
    try:
        key.verify(si.signature, signed, _ECDSA)
    except InvalidSignature:
        raise CmsProblem("cms.signature", "the signature value does not verify with the signer's certificate: "
                         "the signature was forged or damaged") from None
    return SignatureFacts(signer[0], signer[1], [c for c, _ in certs], when.astimezone(dt.UTC),
                          si.signature, _token(si))


def _token(si: cmsder.SignerInfo) -> bytes | None:
    """The one time-stamp token among the unsigned attributes (its bytes; step 6 reads them); anything else
    there is refused."""
    if si.unsigned_attrs is None:
        return None
    token = None
    for attr in si.unsigned_attrs:
        oid = attr.type.dotted_string
        if oid != TIMESTAMP_TOKEN:
            raise CmsProblem("cms.attributes", f"the signature has an unexpected unsigned attribute {oid}")
        values = attr.values.as_list()
        if token is not None or len(values) != 1:
            raise CmsProblem("cms.attributes", "the signature carries more than one time-stamp token: readers "
                             "could take either time")
        token = cmsder.der(values[0])
    return token
