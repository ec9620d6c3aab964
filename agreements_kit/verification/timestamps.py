"""Step: a signature's RFC 3161 time-stamp token (CAdES-T), checked with rfc3161-client.

The token sits in the SignerInfo's unsigned attribute id-aa-signatureTimeStampToken and
covers the SHA-256 of the signature value, so it proves the signature existed at the
TSA's time, whatever the signer's record claims. What is refused, with a code:

- ``time.token-structure``: the token is not an RFC 3161 TimeStampToken;
- ``time.token-imprint``: it covers other bytes than this signature's value (a token
  grafted from another signature, or over the record instead of the signature);
- ``time.no-trusted-tsa``: there is a token, but the auditor trusts no TSA root
  (``--tsa-trust``), so its time proves nothing;
- ``time.untrusted-tsa``: the TSA's certificate does not lead to a trusted TSA root;
- ``time.token-invalid``: the token's own signature, its TSA certificate's validity at
  the token's time, or its critical timeStamping key usage fail (rfc3161-client's
  verifier, which OpenSSL's ``ts -verify`` agrees with: tests/test_tsa.py).

rfc3161-client builds an OpenSSL store and validates the TSA's chain for every token,
though a practice's TSA signs every token with the same one or two certificates. So
the first token under a given set of certificates is verified by rfc3161-client alone;
once it passes, later tokens under exactly those certificates take a shorter road
(:meth:`TokenChecker._known_good`): the token's time inside every chain certificate's
validity, then the one check that is new for each token, its SignerInfo (messageDigest
over the TSTInfo and the signature over the signed attributes, as OpenSSL's
PKCS7_signatureVerify computes them). That road can only accept: whatever it does not
accept goes to rfc3161-client, which gives the answer and its reason. tests/test_fastpaths
holds it to accepting nothing rfc3161-client refuses, over damaged and crafted tokens.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from agreements_kit.formats import cmsder
from agreements_kit.formats.certprofile import common_name, fingerprint
from agreements_kit.verification.cms import CertCache

_ECDSA = ec.ECDSA(hashes.SHA256())  # made once: every signature is checked with it


TOKEN_ATTRIBUTE = "1.2.840.113549.1.9.16.2.14"  # id-aa-signatureTimeStampToken
SHA256_OID = x509.ObjectIdentifier("2.16.840.1.101.3.4.2.1")
TIME_TOLERANCE = dt.timedelta(minutes=5)  # the signer's signed_at and the TSA's time must agree this closely
MAX_CHAIN = 4
MESSAGE_DIGEST = cmsder.MESSAGE_DIGEST


class TokenProblem(Exception):
    def __init__(self, code: str, message: str):
        self.code = code
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class TrustedTime:
    """What a verified token proves: the signature existed at ``time``, by ``tsa``'s word."""

    time: dt.datetime
    accuracy: dt.timedelta
    tsa: x509.Certificate
    tsa_sha256: str

    def source(self) -> str:
        return f"TSA '{common_name(self.tsa)}' (certificate SHA-256 {self.tsa_sha256})"


def as_response(token: bytes) -> bytes:
    """A TimeStampResp (status granted) around a bare token: the form rfc3161-client reads."""
    body = b"\x30\x03\x02\x01\x00" + token
    return b"\x30" + cmsder.der_length(len(body)) + body


class TokenChecker:
    """Checks tokens against the TSA roots the auditor trusts; the TSA chains found are cached."""

    def __init__(self, roots: Sequence[x509.Certificate]):
        self.roots = list(roots)
        self._root_ders = [r.public_bytes(serialization.Encoding.DER) for r in self.roots]
        self._chained: dict[bytes, bool] = {}
        self._verifier = None
        # TSA certificates by their DER: a practice's TSA signs every token with the same one or two.
        self._certs = CertCache(limit=64)
        # Certificate sets (the token's, sorted, and its signer's) a token verified by rfc3161-client was
        # signed under -> when every certificate of its chain is valid (see _known_good).
        self._good: dict[tuple[tuple[bytes, ...], bytes], tuple[dt.datetime, dt.datetime]] = {}
        self.fast = True  # False: every token through rfc3161-client (the differential tests' reference)

    def _load(self, der: bytes) -> tuple[x509.Certificate, str]:
        return self._certs.load(der)  # CmsProblem on a certificate that cannot be read: the token's structure

    def check(self, token: bytes, signature_value: bytes) -> TrustedTime:
        """The time ``token`` proves for ``signature_value`` (its TSA's, at its accuracy)."""
        import rfc3161_client

        if self.fast and self._good:
            known = self._short_road(token, signature_value)
            if known is not None:
                return known
        try:
            response = rfc3161_client.decode_timestamp_response(as_response(token))
            info = response.tst_info
            imprint = info.message_imprint
            algorithm, message = imprint.hash_algorithm, imprint.message
            gen_time = info.gen_time
            ders = list(response.signed_data.certificates)
            loaded = [self._load(c) for c in ders]
            certs = [c for c, _ in loaded]
            signer = next(iter(response.signed_data.signer_infos))
            accuracy = info.accuracy
            seconds = _seconds(accuracy)
        except Exception as exc:  # the Rust parser raises several kinds on damaged input
            raise TokenProblem("time.token-structure", f"the time-stamp token cannot be read ({type(exc).__name__})") \
                from None
        if algorithm != SHA256_OID or message != hashlib.sha256(signature_value).digest():
            raise TokenProblem("time.token-imprint", "the time-stamp token covers other bytes than this signature: it "
                               "was taken for another signature and moved here")
        try:  # the signer's issuer is parsed here, lazily: damage there is the token's structure too
            at = next((i for i, c in enumerate(certs) if c.serial_number == signer.serial_number
                       and c.issuer == signer.issuer), None)
        except Exception as exc:
            raise TokenProblem("time.token-structure", f"the time-stamp token cannot be read ({type(exc).__name__})") \
                from None
        leaf = certs[at] if at is not None else None
        if at is None or leaf is None:
            raise TokenProblem("time.token-structure", "the time-stamp token does not carry its TSA's certificate")
        if not self.roots:
            raise TokenProblem("time.no-trusted-tsa", "the signature has a time-stamp token from "
                               f"'{common_name(leaf)}', but no TSA root is trusted: pass --tsa-trust FILE (the TSA "
                               "roots the practice uses)")
        key = ders[at]
        if key not in self._chained:
            self._chained[key] = self._leads_to_root(leaf, certs)
        if not self._chained[key]:
            raise TokenProblem("time.untrusted-tsa", f"the time-stamp token is from '{common_name(leaf)}' "
                               f"(SHA-256 {fingerprint(leaf)[:16]}...), whose certificate does not lead to a "
                               "trusted TSA root")
        when = gen_time if gen_time.tzinfo else gen_time.replace(tzinfo=dt.UTC)
        certs_key = (tuple(sorted(ders)), key)
        if not (self.fast and self._known_good(certs_key, when, token, leaf)):
            try:
                self._verify(response, message)
            except rfc3161_client.VerificationError as exc:
                raise TokenProblem("time.token-invalid", f"the time-stamp token does not verify: {exc}") from None
            if self.fast:
                self._remember(certs_key, leaf, certs)
        return TrustedTime(when.astimezone(dt.UTC), dt.timedelta(seconds=seconds), leaf, loaded[at][1])

    def _short_road(self, token: bytes, signature_value: bytes) -> TrustedTime | None:
        """The token's time if it is signed under certificates rfc3161-client already verified together and
        checks out by :meth:`_known_good`; None (the full check decides) on anything else. Its SignerInfo and
        certificates are read by formats/cmsder (rfc3161-client's objects cost more to read than the rest);
        its TSTInfo by rfc3161-client, as in the full check."""
        import rfc3161_client

        try:
            sd = cmsder.read_content_info(token).content
            signers = sd.signer_infos.as_list()
            if len(signers) != 1 or not sd.certificates:
                return None
            ders = [cmsder.der(c) for c in sd.certificates]
            sid = signers[0].sid
            issuer = cmsder.der(sid.issuer)
            loaded = [self._load(d) for d in ders]
            at = next((i for i, c in enumerate(loaded) if c[0].serial_number == sid.serial_number
                       and self._certs.issuer_der(c) == issuer), None)
            if at is None:
                return None
            certs_key = (tuple(sorted(ders)), ders[at])
            if certs_key not in self._good:
                return None
            info = rfc3161_client.decode_timestamp_response(as_response(token)).tst_info
            imprint = info.message_imprint
            if imprint.hash_algorithm != SHA256_OID or imprint.message != hashlib.sha256(signature_value).digest():
                return None
            gen_time, accuracy = info.gen_time, info.accuracy
            seconds = _seconds(accuracy)
        except Exception:  # damaged: the full check says what is wrong
            return None
        when = gen_time if gen_time.tzinfo else gen_time.replace(tzinfo=dt.UTC)
        leaf, leaf_sha256 = loaded[at]
        if not self._known_good(certs_key, when, token, leaf, sd):
            return None
        return TrustedTime(when.astimezone(dt.UTC), dt.timedelta(seconds=seconds), leaf, leaf_sha256)

    def _verify(self, response: object, digest: bytes) -> None:
        import rfc3161_client

        if self._verifier is None:
            builder = rfc3161_client.VerifierBuilder()
            for root in self.roots:
                builder = builder.add_root_certificate(root)
            self._verifier = builder.build()  # type: ignore[assignment]
        assert self._verifier is not None
        self._verifier.verify(response, digest)

    def _remember(self, certs_key: tuple[tuple[bytes, ...], bytes], leaf: x509.Certificate,
                  certs: list[x509.Certificate]) -> None:
        """After rfc3161-client verified a token: when its chain (every certificate of the token, and the
        trusted root the leaf leads to) is valid. The window is never wider than OpenSSL's own check."""
        chain = [*certs, *(r for r in self.roots if self._leads_to(leaf, certs, r))]
        start = max(c.not_valid_before_utc for c in chain)
        end = min(c.not_valid_after_utc for c in chain)
        if len(self._good) >= 64:
            self._good.clear()
        self._good[certs_key] = (start, end)

    def _leads_to(self, leaf: x509.Certificate, certs: list[x509.Certificate], root: x509.Certificate) -> bool:
        return self._leads_to_root(leaf, certs, [root])

    def _known_good(self, certs_key: tuple[tuple[bytes, ...], bytes], when: dt.datetime, token: bytes,
                    leaf: x509.Certificate, sd: cmsder.SignedData | None = None) -> bool:
        """Whether ``token`` verifies by the short road: certificates already verified together, its time
        inside their validity, and its own SignerInfo sound. False sends it to rfc3161-client."""
        window = self._good.get(certs_key)
        at = when.replace(microsecond=0)  # OpenSSL checks validity at whole seconds: notBefore <= t < notAfter
        if window is None or not window[0] <= at < window[1]:
            return False
        try:
            parts = signer_info_parts(token) if sd is None else _parts_of(sd)
            return parts is not None and _signer_info_verifies(parts, leaf)
        except Exception:  # anything unexpected in the token: the reference decides
            return False

    def _leads_to_root(self, leaf: x509.Certificate, certs: list[x509.Certificate],
                       roots: list[x509.Certificate] | None = None) -> bool:
        """Whether issuer links and signatures lead from ``leaf`` to a trusted root (validity: the verifier)."""
        roots = self.roots if roots is None else roots
        root_ders = [r.public_bytes(serialization.Encoding.DER) for r in roots] if roots is not self.roots \
            else self._root_ders
        current = leaf
        for _ in range(MAX_CHAIN):
            if current.public_bytes(serialization.Encoding.DER) in root_ders:
                return True
            for root in roots:
                if current.issuer == root.subject and _issued_by(current, root):
                    return True
            parent = next((c for c in certs if c.subject == current.issuer and c is not current
                           and _issued_by(current, c)), None)
            if parent is None:
                return False
            current = parent
        return False


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except Exception:
        return False
    return True



@dataclass(frozen=True)
class SignerInfoParts:
    """What OpenSSL's PKCS7_signatureVerify reads of a token's one SignerInfo, as bytes and OIDs."""

    digest_algorithms: tuple[str, ...]  # the SignedData's (OpenSSL digests the content with these)
    digest_algorithm: str  # the SignerInfo's
    signature_algorithm: str
    signed_attrs: bytes  # the DER the signature covers: the attributes tagged SET OF (RFC 5652 5.4)
    message_digests: tuple[bytes, ...]  # the values of every messageDigest attribute
    tst_info: bytes  # the eContent's octets
    signature: bytes


def _seconds(accuracy: object) -> float:
    """A TSTInfo's accuracy (rfc3161-client's Accuracy, or None) in seconds."""
    if accuracy is None:
        return 0.0
    a: Any = accuracy
    return float((a.seconds or 0) + (a.millis or 0) / 1000 + (a.micros or 0) / 1e6)


def signer_info_parts(token: bytes) -> SignerInfoParts | None:
    """The parts of a token (read strictly by formats/cmsder), or None where it has not exactly one
    SignerInfo with signed attributes and an encapsulated TSTInfo. ``ValueError`` where it is not DER."""
    return _parts_of(cmsder.read_content_info(token).content)


def _parts_of(sd: cmsder.SignedData) -> SignerInfoParts | None:
    signers = sd.signer_infos.as_list()
    content = sd.encap_content_info.content
    if len(signers) != 1 or content is None or signers[0].signed_attrs is None:
        return None
    si = signers[0]
    assert si.signed_attrs is not None
    digests: list[bytes] = []
    for attr in si.signed_attrs:
        oid = attr.type.dotted_string
        values = attr.values.as_list()
        if oid not in _SHORT_ROAD_ATTRIBUTES or len(values) != 1 or not _as_openssl_writes(oid, values[0]):
            return None  # OpenSSL re-encodes what it reads of an attribute's value: only known shapes are sure
        if oid == MESSAGE_DIGEST:
            digests.append(cmsder.attribute_value(MESSAGE_DIGEST, values[0]))
    return SignerInfoParts(tuple(a.algorithm.dotted_string for a in sd.digest_algorithms.as_list()),
                           si.digest_algorithm.algorithm.dotted_string, si.signature_algorithm.algorithm.dotted_string,
                           cmsder.signed_attrs_der(si), tuple(digests), content, si.signature)


# The signed attributes a TSA writes, each with one value: contentType, messageDigest, signingTime, and the ESS
# signingCertificate (v1 or v2). OpenSSL decodes each value and encodes it again before checking the signature;
# a value in any other form might not come back as the same bytes, so a token with anything else takes the full
# road (rfc3161-client, which is OpenSSL).
_SHORT_ROAD_ATTRIBUTES = {cmsder.CONTENT_TYPE, cmsder.MESSAGE_DIGEST, cmsder.SIGNING_TIME,
                          "1.2.840.113549.1.9.16.2.12", "1.2.840.113549.1.9.16.2.47"}


def _as_openssl_writes(oid: str, value: object) -> bool:
    """Whether OpenSSL gives back this attribute value's bytes unchanged: the OID, the digest and the time
    strictly DER (formats/cmsder refuses anything else); the ESS attribute a SEQUENCE, kept as it is."""
    if oid in (cmsder.CONTENT_TYPE, cmsder.MESSAGE_DIGEST, cmsder.SIGNING_TIME):
        cmsder.attribute_value(oid, value)  # type: ignore[arg-type]  # ValueError when not strictly DER
        return True
    return getattr(value, "tag_bytes", None) == cmsder.SEQUENCE_TAG


def _signer_info_verifies(parts: SignerInfoParts, leaf: x509.Certificate) -> bool:
    """The token's one SignerInfo, as OpenSSL's PKCS7_signatureVerify checks it: SHA-256, one messageDigest
    equal to the SHA-256 of the TSTInfo, and the signature over the signed attributes by the TSA
    certificate's key. Only what this function knows is accepted."""
    if parts.digest_algorithms != (SHA256_OID.dotted_string,) or parts.digest_algorithm != SHA256_OID.dotted_string:
        return False
    if parts.message_digests != (hashlib.sha256(parts.tst_info).digest(),):
        return False
    key = leaf.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey) and parts.signature_algorithm == "1.2.840.10045.4.3.2":
            key.verify(parts.signature, parts.signed_attrs, _ECDSA)  # ecdsa-with-SHA256
        elif isinstance(key, rsa.RSAPublicKey) and parts.signature_algorithm in ("1.2.840.113549.1.1.1",
                                                                                "1.2.840.113549.1.1.11"):
            key.verify(parts.signature, parts.signed_attrs, padding.PKCS1v15(), hashes.SHA256())
        else:
            return False
    except InvalidSignature:
        return False
    return True
