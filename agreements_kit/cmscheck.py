"""Checking one detached CMS signature over one record, two ways.

- ``check_fast``: our own path for audits of whole archives. It parses the
  SignedData with asn1crypto and checks, with ``cryptography``: a single signer,
  SHA-256, content type ``data``, the ``messageDigest`` attribute against the
  record's SHA-256, and the ECDSA signature over the DER of the signed
  attributes. One ECDSA verification per signature; certificate parsing is
  cached.
- ``check_pyhanko``: pyHanko's ``async_validate_detached_cms`` with
  pyhanko-certvalidator, trust anchored at the practice root, CRLs in hard-fail
  mode, evaluated at the signing time. ``agreements verify`` uses it; the tests
  run both, and OpenSSL, over the same tamper corpus and require them to agree.

Chain, validity and revocation are judged in :mod:`agreements_kit.verify` with
named reasons; this module answers "is this signature intact, and by which
certificate?".
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from dataclasses import dataclass, field

from asn1crypto import cms as acms
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from .trust import Trust

_SIG_HASH = {"sha256_ecdsa": hashes.SHA256(), "ecdsa": hashes.SHA256()}


@dataclass
class CmsFacts:
    intact: bool
    problem: str | None = None
    signer: x509.Certificate | None = None
    certificates: list[x509.Certificate] = field(default_factory=list)
    signing_time: dt.datetime | None = None


class CertCache:
    """DER -> parsed certificate, and verified (child, issuer) pairs, shared across signatures."""

    def __init__(self, limit: int = 256):
        self.parsed: dict[bytes, x509.Certificate] = {}
        self.verified: set[tuple[bytes, bytes]] = set()
        self.limit = limit

    def load(self, der: bytes) -> x509.Certificate:
        cert = self.parsed.get(der)
        if cert is None:
            cert = x509.load_der_x509_certificate(der)
            if len(self.parsed) < self.limit:
                self.parsed[der] = cert
        return cert

    def issued_by(self, child: x509.Certificate, issuer: x509.Certificate) -> bool:
        key = (child.fingerprint(hashes.SHA256()), issuer.fingerprint(hashes.SHA256()))
        if key in self.verified:
            return True
        try:
            child.verify_directly_issued_by(issuer)
        except (InvalidSignature, ValueError, TypeError):
            return False
        if child.extensions and _is_ca(child):  # only CA links repeat; leaves are single-use
            self.verified.add(key)
        return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _signed_data(p7s: bytes) -> acms.SignedData:
    info = acms.ContentInfo.load(p7s)
    if info["content_type"].native != "signed_data":
        raise ValueError("not a CMS SignedData")
    return info["content"]


def check_fast(record: bytes, p7s: bytes, cache: CertCache | None = None) -> CmsFacts:
    cache = cache or CertCache()
    try:
        sd = _signed_data(p7s)
        if sd["encap_content_info"]["content"].native is not None:
            return CmsFacts(False, "the signature is not detached: it carries content of its own")
        infos = sd["signer_infos"]
        if len(infos) != 1:
            return CmsFacts(False, f"the signature has {len(infos)} signers instead of one")
        si = infos[0]
        certs = [cache.load(c.chosen.dump()) for c in sd["certificates"] if c.name == "certificate"]
        sid = si["sid"]
        if sid.name != "issuer_and_serial_number":
            return CmsFacts(False, "the signer is not identified by issuer and serial number", certificates=certs)
        serial = sid.chosen["serial_number"].native
        issuer_der = sid.chosen["issuer"].dump()
        signer = next((c for c in certs if c.serial_number == serial
                       and c.issuer.public_bytes() == issuer_der), None)
        if signer is None:
            return CmsFacts(False, "the signer's certificate is not in the signature", certificates=certs)
        if si["digest_algorithm"]["algorithm"].native != "sha256":
            return CmsFacts(False, "the signature does not use SHA-256", signer=signer, certificates=certs)
        attrs = si["signed_attrs"]
        if not attrs:
            return CmsFacts(False, "the signature has no signed attributes", signer=signer, certificates=certs)
        values = {a["type"].native: a["values"] for a in attrs}
        signing_time = None
        if "signing_time" in values:
            signing_time = values["signing_time"][0].native
        if values.get("content_type") is None or values["content_type"][0].native != "data":
            return CmsFacts(False, "the signed content type is not 'data'", signer, certs, signing_time)
        digest = values.get("message_digest")
        if digest is None or digest[0].native != hashlib.sha256(record).digest():
            return CmsFacts(False, "the record's bytes do not match the digest the signature covers: "
                            "the record was changed after it was signed", signer, certs, signing_time)
        algo = si["signature_algorithm"]["algorithm"].native
        if algo not in _SIG_HASH:
            return CmsFacts(False, f"unexpected signature algorithm {algo}", signer, certs, signing_time)
        signed = attrs.dump()
        signed = b"\x31" + signed[1:]  # RFC 5652 5.4: the signature covers the attributes as a SET OF
        key = signer.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            return CmsFacts(False, "the signer's key is not an ECDSA key", signer, certs, signing_time)
        try:
            key.verify(si["signature"].native, signed, ec.ECDSA(_SIG_HASH[algo]))
        except InvalidSignature:
            return CmsFacts(False, "the signature value does not verify with the signer's certificate",
                            signer, certs, signing_time)
        return CmsFacts(True, None, signer, certs, signing_time)
    except (ValueError, TypeError, KeyError) as exc:
        return CmsFacts(False, f"the signature file is not valid CMS ({type(exc).__name__})")


@dataclass
class PyHankoResult:
    intact: bool
    valid: bool
    trusted: bool
    revoked: bool
    bottom_line: bool
    summary: str


def check_pyhanko(record: bytes, p7s: bytes, trust: Trust, moment: dt.datetime) -> PyHankoResult:
    """pyHanko's judgement of one signature, at the signing time, CRLs hard-fail."""
    from asn1crypto import crl as acrl, x509 as ax509
    from cryptography.hazmat.primitives import serialization
    from pyhanko.sign.validation.generic_cms import async_validate_detached_cms
    from pyhanko_certvalidator import ValidationContext

    root = ax509.Certificate.load(trust.root_der)
    crls = [acrl.CertificateList.load(c.public_bytes(serialization.Encoding.DER)) for c in trust.crls]
    context = ValidationContext(trust_roots=[root], crls=crls, allow_fetching=False, moment=moment,
                                revocation_mode="hard-fail" if crls else "soft-fail")
    try:
        sd = _signed_data(p7s)
        status = asyncio.run(async_validate_detached_cms(record, sd, signer_validation_context=context))
    except Exception as exc:  # pyHanko raises many kinds on malformed input
        return PyHankoResult(False, False, False, False, False, f"pyHanko could not process it: {exc}")
    return PyHankoResult(bool(status.intact), bool(status.valid), bool(status.trusted), bool(status.revoked),
                         bool(status.bottom_line), status.summary())
