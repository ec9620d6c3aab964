"""Checking one detached CMS signature over one record, two ways.

- ``check_fast``: our own path for audits of whole archives. It reads the
  SignedData with a minimal strict DER reader and checks, with ``cryptography``: a single signer,
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
from collections import OrderedDict
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agreements_kit.verification.trust import Trust

@dataclass
class CmsFacts:
    intact: bool
    problem: str | None = None
    signer: x509.Certificate | None = None
    certificates: list[x509.Certificate] = field(default_factory=list)
    signing_time: dt.datetime | None = None


class CertCache:
    """Parsed certificates (by DER, least recently used dropped first) and verified issuer links.

    Across an archive the intake CA and the therapists' certificates repeat in every
    signature: each is parsed once and its link to its issuer verified once. One-time
    client certificates pass through without evicting those for long.
    """

    def __init__(self, limit: int = 512):
        self.parsed: OrderedDict[bytes, x509.Certificate] = OrderedDict()
        self.der_of: dict[int, bytes] = {}  # id of a cached certificate -> its DER
        self.names: dict[bytes, str] = {}
        self.issuers: dict[tuple[bytes | None, int], bool] = {}
        self.verified: set[tuple[bytes, bytes]] = set()
        self.limit = limit

    def load(self, der: bytes) -> x509.Certificate:
        """Parse a certificate (cached). Any parse failure is a ValueError, whatever ``cryptography`` raised."""
        cert = self.parsed.get(der)
        if cert is not None:
            self.parsed.move_to_end(der)
            return cert
        try:
            cert = x509.load_der_x509_certificate(der)
            # cryptography parses lazily: touch what the checks use, so damage shows here.
            cert.issuer, cert.subject, cert.public_key(), cert.extensions  # noqa: B018
        except Exception as exc:
            raise ValueError(f"a certificate in the signature cannot be read ({type(exc).__name__})") from None
        self.keep(cert, der)
        return cert

    def common_name(self, cert: x509.Certificate) -> str:
        """The subject's CN, remembered for cached certificates."""
        key = self.der_of.get(id(cert))
        name = self.names.get(key) if key is not None else None
        if name is None:
            attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            name = str(attrs[0].value) if attrs else ""
            if key is not None:
                self.names[key] = name
        return name

    def unit(self, cert: x509.Certificate) -> str:
        """The subject's organizational unit (what the certificate is for, in our PKI)."""
        attrs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
        return str(attrs[0].value) if attrs else ""

    def can_issue(self, cert: x509.Certificate, below: int) -> bool:
        """A CA certificate allowed to sign certificates, with ``below`` CAs under it in the chain."""
        key = (self.der_of.get(id(cert)), below)
        if key[0] is not None and key in self.issuers:
            return self.issuers[key]
        try:
            bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
            ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
            ok = bc.ca and ku.key_cert_sign and (bc.path_length is None or below <= bc.path_length)
        except x509.ExtensionNotFound:
            ok = False
        if key[0] is not None:
            self.issuers[key] = ok
        return ok

    def keep(self, cert: x509.Certificate, der: bytes | None = None) -> x509.Certificate:
        """Register a certificate (the trust root, or one just parsed) so its links can be cached."""
        from cryptography.hazmat.primitives import serialization

        der = der if der is not None else cert.public_bytes(serialization.Encoding.DER)
        self.parsed[der] = cert
        self.der_of[id(cert)] = der
        while len(self.parsed) > self.limit:
            old_der, old = self.parsed.popitem(last=False)
            self.der_of.pop(id(old), None)
            self.names.pop(old_der, None)
            for below in range(3):
                self.issuers.pop((old_der, below), None)
        return cert

    def issued_by(self, child: x509.Certificate, issuer: x509.Certificate) -> bool:
        key = (self.der_of.get(id(child)), self.der_of.get(id(issuer)))
        if key in self.verified:
            return True
        try:
            child.verify_directly_issued_by(issuer)
        except (InvalidSignature, ValueError, TypeError):
            return False
        if key[0] is not None and key[1] is not None:
            if len(self.verified) > 4 * self.limit:
                self.verified.clear()
            self.verified.add(key)
        return True




def _signed_data(p7s: bytes):
    from asn1crypto import cms as acms

    info = acms.ContentInfo.load(p7s)
    if info["content_type"].native != "signed_data":
        raise ValueError("not a CMS SignedData")
    return info["content"]


def _oid(dotted: str) -> bytes:
    """DER contents of an OBJECT IDENTIFIER, to compare OIDs without decoding them."""
    parts = [int(x) for x in dotted.split(".")]
    out = bytearray([40 * parts[0] + parts[1]])
    for part in parts[2:]:
        chunk = [part & 0x7F]
        part >>= 7
        while part:
            chunk.append(0x80 | (part & 0x7F))
            part >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


_SIGNED_DATA = _oid("1.2.840.113549.1.7.2")
_DATA = _oid("1.2.840.113549.1.7.1")
_CONTENT_TYPE = _oid("1.2.840.113549.1.9.3")
_MESSAGE_DIGEST = _oid("1.2.840.113549.1.9.4")
_SIGNING_TIME = _oid("1.2.840.113549.1.9.5")
_SHA256 = _oid("2.16.840.1.101.3.4.2.1")
_ECDSA_SHA256 = _oid("1.2.840.10045.4.3.2")


class _DER:
    """A minimal, strict DER reader: definite lengths only, every length within bounds.

    asn1crypto decodes far more than an audit needs and dominated its time; this
    reads only the fields checked below. pyHanko (through asn1crypto) remains the
    reference: the tests run both, and OpenSSL, over the tamper corpus.
    """

    def __init__(self, data: bytes):
        self.data = data

    def tlv(self, pos: int, end: int) -> tuple[int, int, int]:
        """(tag, value start, value end) of the element at ``pos``."""
        if pos + 2 > end:
            raise ValueError("truncated DER")
        tag, first = self.data[pos], self.data[pos + 1]
        if tag & 0x1F == 0x1F:
            raise ValueError("multi-byte tags are not used in CMS")
        pos += 2
        if first < 0x80:
            length = first
        else:
            n = first & 0x7F
            if n == 0 or n > 4 or pos + n > end:
                raise ValueError("bad DER length")
            length = int.from_bytes(self.data[pos:pos + n], "big")
            pos += n
        if pos + length > end:
            raise ValueError("DER length beyond the data")
        return tag, pos, pos + length

    def children(self, start: int, end: int) -> list[tuple[int, int, int, int]]:
        """(tag, element start, value start, value end) of each element in [start, end)."""
        out = []
        pos = start
        while pos < end:
            tag, vs, ve = self.tlv(pos, end)
            out.append((tag, pos, vs, ve))
            pos = ve
        return out

    def value(self, element: tuple[int, int, int, int]) -> bytes:
        return self.data[element[2]:element[3]]

    def whole(self, element: tuple[int, int, int, int]) -> bytes:
        return self.data[element[1]:element[3]]


def _time(tag: int, raw: bytes) -> dt.datetime:
    """UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ), as DER requires them."""
    text = raw.decode("ascii")
    if tag == 0x17 and len(text) == 13:
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif tag != 0x18 or len(text) != 15:
        raise ValueError("signing time is not a DER time")
    if text[-1] != "Z" or not text[:-1].isdigit():
        raise ValueError("signing time is not a DER time")
    return dt.datetime(int(text[0:4]), int(text[4:6]), int(text[6:8]), int(text[8:10]), int(text[10:12]),
                       int(text[12:14]), tzinfo=dt.timezone.utc)


def check_fast(record: bytes, p7s: bytes, cache: CertCache | None = None) -> CmsFacts:
    """Is the detached signature ``p7s`` over ``record`` intact, and by which certificate?"""
    cache = cache or CertCache()
    der = _DER(p7s)
    try:
        tag, vs, ve = der.tlv(0, len(p7s))
        if tag != 0x30 or ve != len(p7s):
            raise ValueError("not a single DER SEQUENCE")
        info = der.children(vs, ve)
        if len(info) != 2 or info[0][0] != 0x06 or der.value(info[0]) != _SIGNED_DATA or info[1][0] != 0xA0:
            return CmsFacts(False, "the signature file is not CMS SignedData")
        sd_tag, sd_vs, sd_ve = der.tlv(info[1][2], info[1][3])
        if sd_tag != 0x30:
            raise ValueError("SignedData is not a SEQUENCE")
        parts = der.children(sd_vs, sd_ve)
        if len(parts) < 4 or parts[0][0] != 0x02 or parts[1][0] != 0x31 or parts[2][0] != 0x30:
            raise ValueError("malformed SignedData")
        if len(der.value(parts[0])) != 1 or der.value(parts[0])[0] > 5:
            raise ValueError("unsupported SignedData version")  # not signed; OpenSSL and pyHanko accept 0 to 5
        encap = der.children(parts[2][2], parts[2][3])
        if len(encap) != 1:
            return CmsFacts(False, "the signature is not detached: it carries content of its own")
        if encap[0][0] != 0x06 or der.value(encap[0]) != _DATA:
            return CmsFacts(False, "the signed content type is not 'data'")
        certs: list[x509.Certificate] = []
        rest = parts[3:]
        if rest and rest[0][0] == 0xA0:
            entries = der.children(rest[0][2], rest[0][3])
            if any(c[0] != 0x30 for c in entries):
                raise ValueError("the certificate set holds something other than certificates")
            certs = [cache.load(der.whole(c)) for c in entries]
            rest = rest[1:]
        if rest and rest[0][0] == 0xA1:  # CRLs: not used
            rest = rest[1:]
        if len(rest) != 1 or rest[0][0] != 0x31:
            raise ValueError("malformed signerInfos")
        infos = der.children(rest[0][2], rest[0][3])
        if len(infos) != 1:
            return CmsFacts(False, f"the signature has {len(infos)} signers instead of one", certificates=certs)
        if infos[0][0] != 0x30:
            raise ValueError("the SignerInfo is not a SEQUENCE")
        si = der.children(infos[0][2], infos[0][3])
        if len(si) < 6 or si[0][0] != 0x02 or len(der.value(si[0])) != 1:
            raise ValueError("malformed SignerInfo version")
        if si[1][0] != 0x30:
            return CmsFacts(False, "the signer is not identified by issuer and serial number", certificates=certs)
        if si[2][0] != 0x30 or si[4][0] != 0x30:
            raise ValueError("malformed AlgorithmIdentifier")
        sid = der.children(si[1][2], si[1][3])
        if len(sid) != 2 or sid[0][0] != 0x30 or sid[1][0] != 0x02:
            raise ValueError("malformed issuerAndSerialNumber")
        issuer_der = der.whole(sid[0])
        serial = int.from_bytes(der.value(sid[1]), "big", signed=True)
        signer = next((c for c in certs if c.serial_number == serial
                       and c.issuer.public_bytes() == issuer_der), None)
        if signer is None:
            return CmsFacts(False, "the signer's certificate is not in the signature", certificates=certs)
        digest_alg = der.children(si[2][2], si[2][3])
        if not digest_alg or digest_alg[0][0] != 0x06 or der.value(digest_alg[0]) != _SHA256:
            return CmsFacts(False, "the signature does not use SHA-256", signer=signer, certificates=certs)
        if si[3][0] != 0xA0:
            return CmsFacts(False, "the signature has no signed attributes", signer=signer, certificates=certs)
        content_type = digest = signing_time = None
        for attr in der.children(si[3][2], si[3][3]):
            oid, values = der.children(attr[2], attr[3])
            first = der.children(values[2], values[3])[0]
            kind = der.value(oid)
            if kind == _MESSAGE_DIGEST and first[0] == 0x04:
                digest = der.value(first)
            elif kind == _CONTENT_TYPE and first[0] == 0x06:
                content_type = der.value(first)
            elif kind == _SIGNING_TIME:
                signing_time = _time(first[0], der.value(first))
        if content_type != _DATA:
            return CmsFacts(False, "the signed content type is not 'data'", signer, certs, signing_time)
        if digest != hashlib.sha256(record).digest():
            return CmsFacts(False, "the record's bytes do not match the digest the signature covers: "
                            "the record was changed after it was signed", signer, certs, signing_time)
        sig_alg = der.children(si[4][2], si[4][3])
        if not sig_alg or sig_alg[0][0] != 0x06 or der.value(sig_alg[0]) != _ECDSA_SHA256 or si[5][0] != 0x04:
            return CmsFacts(False, "unexpected signature algorithm (not ECDSA with SHA-256)", signer, certs,
                            signing_time)
        signed = b"\x31" + der.whole(si[3])[1:]  # RFC 5652 5.4: the attributes are signed as a SET OF
        key = signer.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            return CmsFacts(False, "the signer's key is not an ECDSA key", signer, certs, signing_time)
        try:
            key.verify(der.value(si[5]), signed, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return CmsFacts(False, "the signature value does not verify with the signer's certificate",
                            signer, certs, signing_time)
        return CmsFacts(True, None, signer, certs, signing_time)
    except (ValueError, TypeError, IndexError, UnicodeDecodeError) as exc:
        return CmsFacts(False, f"the signature file is not valid CMS ({exc})")
    except Exception as exc:  # anything else from a damaged file: never intact, never a crash
        return CmsFacts(False, f"the signature file is damaged ({type(exc).__name__})")


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
    # "require": consult the given CRLs for every certificate (hard-fail only checks certificates
    # that name a CRL distribution point, and ours name none: the CRL is published beside the root).
    # retroactive_revinfo: a CRL issued after the signature still counts, so a revocation after
    # the signing time leaves the signature valid and one before it does not.
    context = ValidationContext(trust_roots=[root], crls=crls, allow_fetching=False, moment=moment,
                                revocation_mode="require" if crls else "soft-fail", retroactive_revinfo=True)
    try:
        sd = _signed_data(p7s)
        status = asyncio.run(async_validate_detached_cms(record, sd, signer_validation_context=context))
    except Exception as exc:  # pyHanko raises many kinds on malformed input
        return PyHankoResult(False, False, False, False, False, f"pyHanko could not process it: {exc}")
    return PyHankoResult(bool(status.intact), bool(status.valid), bool(status.trusted), bool(status.revoked),
                         bool(status.bottom_line), status.summary())
