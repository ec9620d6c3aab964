"""The reference for verification/cms.py's reader: how it read a signature before, with asn1crypto.

This is verification/cms.py as it was before it read signatures with cryptography's
declarative ASN.1 (Rust, strict DER): every field parsed with asn1crypto, and (with
``_signed_data_in_full = eager``, as tests/test_fastpaths.py sets it) every part through
``.native``, as an eager strict decoder would. test_fastpaths holds today's reader to
accepting nothing this one refused, over thousands of damaged signatures. Not used by
the package.
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

from agreements_kit.verification.timestamps import SignerInfoParts, signer_info_parts

ID_DATA = "1.2.840.113549.1.7.1"
ID_SIGNED_DATA = "1.2.840.113549.1.7.2"
CONTENT_TYPE = "1.2.840.113549.1.9.3"
MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
SIGNING_TIME = "1.2.840.113549.1.9.5"
SHA256 = "2.16.840.1.101.3.4.2.1"
ECDSA_SHA256 = "1.2.840.10045.4.3.2"
ALLOWED_ATTRIBUTES = {CONTENT_TYPE, MESSAGE_DIGEST, SIGNING_TIME, "1.2.840.113549.1.9.15"}  # + smimeCapabilities
TIMESTAMP_TOKEN = "1.2.840.113549.1.9.16.2.14"  # id-aa-signatureTimeStampToken: the one unsigned attribute


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
    token_parts: SignerInfoParts | None = None  # its SignerInfo, read while the token was parsed here


class CertCache:
    """Certificates parsed once, by the SHA-256 of their DER (least recently used dropped first)."""

    def __init__(self, limit: int = 256):
        self.parsed: OrderedDict[bytes, tuple[x509.Certificate, str]] = OrderedDict()
        self.limit = limit
        # (asn1crypto type, exact DER) of subtrees already parsed in full without error (see _full).
        self.parsed_der: OrderedDict[tuple[type, bytes], None] = OrderedDict()
        self._issuers: dict[str, bytes] = {}  # certificate SHA-256 -> its issuer name's DER

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

    def issuer_der(self, entry: tuple[x509.Certificate, str]) -> bytes:
        """The DER of a loaded certificate's issuer name (kept: every signature under a CA asks it)."""
        found = self._issuers.get(entry[1])
        if found is None:
            if len(self._issuers) > self.limit:
                self._issuers.clear()
            found = self._issuers[entry[1]] = entry[0].issuer.public_bytes()
        return found


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def check_signature(record: bytes, p7s: bytes, cache: CertCache) -> SignatureFacts:
    """Check one detached signature over ``record``; raises :class:`CmsProblem` naming what is wrong."""
    from asn1crypto import cms as acms
    from asn1crypto import core

    try:
        return _check(record, p7s, cache, acms, core)
    except CmsProblem:
        raise
    except Exception as exc:  # asn1crypto parses lazily and raises many kinds on damaged input
        raise CmsProblem("cms.structure", f"the signature file is not valid CMS ({type(exc).__name__})") from None


def _check(record: bytes, p7s: bytes, cache: CertCache, acms: Any, core: Any) -> SignatureFacts:
    info = acms.ContentInfo.load(p7s, strict=True)
    if info["content_type"].dotted != ID_SIGNED_DATA:
        raise CmsProblem("cms.structure", "the signature file is not a CMS SignedData")
    sd = info["content"]
    # asn1crypto parses lazily: parse every field now (the certificates are cryptography's, below), so
    # an element with a wrong tag anywhere, even in a field nothing reads, is refused as a DER decoder would.
    _signed_data_in_full(sd, cache, acms, core, token=False)
    if [a["algorithm"].dotted for a in sd["digest_algorithms"]] != [SHA256]:
        raise CmsProblem("cms.structure", "the signature does not use SHA-256 alone")
    encap = sd["encap_content_info"]
    if encap["content_type"].dotted != ID_DATA or not isinstance(encap["content"], core.Void):
        raise CmsProblem("cms.structure", "the signature is not a detached signature over data")
    signers = list(sd["signer_infos"])
    if len(signers) != 1:
        raise CmsProblem("cms.structure", f"the signature has {len(signers)} signers instead of one")
    si = signers[0]
    if si["sid"].name != "issuer_and_serial_number":
        raise CmsProblem("cms.structure", "the signer is not identified by issuer and serial number")
    if si["digest_algorithm"]["algorithm"].dotted != SHA256:
        raise CmsProblem("cms.structure", "the signer's digest is not SHA-256")
    if si["signature_algorithm"]["algorithm"].dotted != ECDSA_SHA256:
        raise CmsProblem("cms.structure", "unexpected signature algorithm (not ECDSA with SHA-256)")
    certs: list[tuple[x509.Certificate, str]] = []
    chosen = sd["certificates"]
    if isinstance(chosen, core.Void):
        raise CmsProblem("cms.structure", "the signature carries no certificates")
    for choice in chosen:
        if choice.name != "certificate":
            raise CmsProblem("cms.structure", "the signature carries a certificate of an unexpected kind")
        certs.append(cache.load(choice.chosen.dump()))
    sid = si["sid"].chosen
    serial = sid["serial_number"].native
    issuer_der = sid["issuer"].dump()
    matching = [c for c in certs if c[0].serial_number == serial and cache.issuer_der(c) == issuer_der]
    if not matching:
        raise CmsProblem("cms.structure", "the signer's certificate is not in the signature")
    if len({digest for _, digest in matching}) > 1:
        # OpenSSL takes the first, pyHanko the last: the signature would name two different signers.
        raise CmsProblem("cms.structure", "two different certificates in the signature match its signer's issuer "
                         "and serial number: readers could take either")
    signer = matching[0]
    attrs = si["signed_attrs"]
    if isinstance(attrs, core.Void):
        raise CmsProblem("cms.attributes", "the signature has no signed attributes")
    found: dict[str, Any] = {}
    for attr in attrs:
        oid = attr["type"].dotted
        if oid in found:
            raise CmsProblem("cms.attributes", f"the signed attribute {oid} appears twice: the signature could be "
                             "read as signing two different things")
        values = list(attr["values"])
        if len(values) != 1:
            raise CmsProblem("cms.attributes", f"the signed attribute {oid} has {len(values)} values instead of one")
        if oid not in ALLOWED_ATTRIBUTES:
            raise CmsProblem("cms.attributes", f"the signature has an unexpected signed attribute {oid}")
        found[oid] = values[0]
    for oid, name in ((CONTENT_TYPE, "contentType"), (MESSAGE_DIGEST, "messageDigest"),
                      (SIGNING_TIME, "signingTime")):
        if oid not in found:
            raise CmsProblem("cms.attributes", f"the signature lacks the signed attribute {name}")
    if found[CONTENT_TYPE].dotted != ID_DATA:
        raise CmsProblem("cms.attributes", "the signed content type is not 'data'")
    if found[MESSAGE_DIGEST].native != hashlib.sha256(record).digest():
        raise CmsProblem("cms.digest", "the record's bytes do not match the digest the signature covers: "
                         "the record was changed after it was signed")
    when = found[SIGNING_TIME].native
    if not isinstance(when, dt.datetime):
        raise CmsProblem("cms.attributes", "the signature's signing time is not a time")
    signed = b"\x31" + _der_length(len(attrs.contents)) + attrs.contents  # RFC 5652 5.4: signed as SET OF
    key = signer[0].public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise CmsProblem("cms.structure", "the signer's key is not an ECDSA key")
    try:
        key.verify(si["signature"].native, signed, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise CmsProblem("cms.signature", "the signature value does not verify with the signer's certificate: "
                         "the signature was forged or damaged") from None
    token, parts = _token(si, core)
    return SignatureFacts(signer[0], signer[1], [c for c, _ in certs], when.astimezone(dt.UTC),
                          si["signature"].native, token, parts)


def _token(si: Any, core: Any) -> tuple[bytes | None, SignerInfoParts | None]:
    """The one time-stamp token among the unsigned attributes, and its SignerInfo's parts (already parsed in
    full here); anything else there is refused."""
    unsigned = si["unsigned_attrs"]
    if isinstance(unsigned, core.Void):
        return None, None
    token = parts = None
    for attr in unsigned:
        oid = attr["type"].dotted
        if oid != TIMESTAMP_TOKEN:
            raise CmsProblem("cms.attributes", f"the signature has an unexpected unsigned attribute {oid}")
        if token is not None or len(attr["values"]) != 1:
            raise CmsProblem("cms.attributes", "the signature carries more than one time-stamp token: readers "
                             "could take either time")
        value = attr["values"][0]
        token = value.dump()
        try:
            parts = signer_info_parts(value)
        except Exception:  # not a token's shape: step 6 reads it again and says what is wrong
            parts = None
    return token, parts


# ----------------------------------------------------------------------------- parsing in full
#
# What ``sd[part].native`` did for every part but the certificates, field by field: ``.native``
# of a node parses it and everything below it by its type, so the same type and the same bytes
# always give the same outcome. A subtree that parsed without error once is therefore not parsed
# again when it recurs (same type, byte-identical); everything else is parsed as before. Only the
# containers on the way down to those subtrees are walked here, each level parsed by asn1crypto.


def _full(node: Any, cache: CertCache) -> None:
    """``node.native`` (parse in full, raising on any damage), once per type and exact bytes."""
    key = (node.__class__, node.dump())
    seen = cache.parsed_der
    if key in seen:
        seen.move_to_end(key)
        return
    node.native  # noqa: B018 - parsed for its errors
    seen[key] = None
    if len(seen) > 4 * cache.limit:
        seen.popitem(last=False)


def _fields(node: Any, extras: bool = True) -> list[tuple[str, Any]]:
    """A Sequence's children (name, value), parsed one level: its fields, then any element after them.

    Elements after the last field are what ``.native`` would build too (by their universal tag,
    or refused when they have none): they are returned under their index, as ``.native`` names them.
    """
    out = [(name, node[name]) for name, *_ in node._fields]
    if extras:
        out += [(str(i), node._lazy_child(i)) for i in range(len(out), len(node))]
    return out


def _signed_data_in_full(sd: Any, cache: CertCache, acms: Any, core: Any, *, token: bool) -> None:
    # The signature's own SignedData: its fields, as before (a token's: everything, as its .native did).
    for name, value in _fields(sd, extras=token):
        if name == "certificates" and not token:
            continue  # the signature's own certificates are cryptography's (CertCache.load)
        if name == "signer_infos":
            for si in value:
                _signer_info_in_full(si, cache, acms, core)
        elif name == "encap_content_info" and token:
            value.native  # noqa: B018 - a token's TSTInfo: new bytes every time
        else:
            _full(value, cache)


def _signer_info_in_full(si: Any, cache: CertCache, acms: Any, core: Any) -> None:
    for name, value in _fields(si):
        if name == "sid":
            chosen = value.chosen
            if isinstance(chosen, acms.IssuerAndSerialNumber):
                for part, item in _fields(chosen):
                    if part == "issuer":
                        _full(item, cache)
                    else:
                        item.native  # noqa: B018
            else:
                chosen.native  # noqa: B018
        elif name == "signature":
            value.native  # noqa: B018
        elif name in ("signed_attrs", "unsigned_attrs"):
            if isinstance(value, core.Void):
                continue
            for attr in value:
                if name == "unsigned_attrs" and attr["type"].dotted == TIMESTAMP_TOKEN:
                    _token_attribute_in_full(attr, cache, acms, core)
                else:
                    _full(attr, cache)
        else:
            _full(value, cache)


def _token_attribute_in_full(attr: Any, cache: CertCache, acms: Any, core: Any) -> None:
    for part, item in _fields(attr):
        if part != "values":
            item.native  # noqa: B018
    for info in attr["values"]:
        if not isinstance(info, acms.ContentInfo):
            info.native  # noqa: B018
            continue
        for part, item in _fields(info):
            if part == "content" and isinstance(item, acms.SignedData):
                _signed_data_in_full(item, cache, acms, core, token=True)
            else:
                item.native  # noqa: B018
