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
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agreements_kit.formats.certprofile import common_name, fingerprint

TOKEN_ATTRIBUTE = "1.2.840.113549.1.9.16.2.14"  # id-aa-signatureTimeStampToken
SHA256_OID = x509.ObjectIdentifier("2.16.840.1.101.3.4.2.1")
TIME_TOLERANCE = dt.timedelta(minutes=5)  # the signer's signed_at and the TSA's time must agree this closely
MAX_CHAIN = 4


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


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def as_response(token: bytes) -> bytes:
    """A TimeStampResp (status granted) around a bare token: the form rfc3161-client reads."""
    body = b"\x30\x03\x02\x01\x00" + token
    return b"\x30" + _der_len(len(body)) + body


class TokenChecker:
    """Checks tokens against the TSA roots the auditor trusts; the TSA chains found are cached."""

    def __init__(self, roots: Sequence[x509.Certificate]):
        self.roots = list(roots)
        self._root_ders = [r.public_bytes(serialization.Encoding.DER) for r in self.roots]
        self._chained: dict[bytes, bool] = {}
        self._verifier = None
        # TSA certificates by their DER: a practice's TSA signs every token with the same one or two.
        self._certs: dict[bytes, tuple[x509.Certificate, str]] = {}

    def _load(self, der: bytes) -> tuple[x509.Certificate, str]:
        hit = self._certs.get(der)
        if hit is None:
            cert = x509.load_der_x509_certificate(der)
            hit = (cert, fingerprint(cert))
            if len(self._certs) >= 64:
                self._certs.clear()
            self._certs[der] = hit
        return hit

    def check(self, token: bytes, signature_value: bytes) -> TrustedTime:
        import rfc3161_client

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
            seconds = (accuracy.seconds or 0) + (accuracy.millis or 0) / 1000 + (accuracy.micros or 0) / 1e6 \
                if accuracy is not None else 0.0
        except Exception as exc:  # the Rust parser raises several kinds on damaged input
            raise TokenProblem("time.token-structure", f"the time-stamp token cannot be read ({type(exc).__name__})") \
                from None
        if algorithm != SHA256_OID or message != hashlib.sha256(signature_value).digest():
            raise TokenProblem("time.token-imprint", "the time-stamp token covers other bytes than this signature: it "
                               "was taken for another signature and moved here")
        at = next((i for i, c in enumerate(certs) if c.serial_number == signer.serial_number
                   and c.issuer == signer.issuer), None)
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
        try:
            self._verify(response, message)
        except rfc3161_client.VerificationError as exc:
            raise TokenProblem("time.token-invalid", f"the time-stamp token does not verify: {exc}") from None
        when = gen_time if gen_time.tzinfo else gen_time.replace(tzinfo=dt.UTC)
        return TrustedTime(when.astimezone(dt.UTC), dt.timedelta(seconds=seconds), leaf, loaded[at][1])

    def _verify(self, response: object, digest: bytes) -> None:
        import rfc3161_client

        if self._verifier is None:
            builder = rfc3161_client.VerifierBuilder()
            for root in self.roots:
                builder = builder.add_root_certificate(root)
            self._verifier = builder.build()  # type: ignore[assignment]
        assert self._verifier is not None
        self._verifier.verify(response, digest)

    def _leads_to_root(self, leaf: x509.Certificate, certs: list[x509.Certificate]) -> bool:
        """Whether issuer links and signatures lead from ``leaf`` to a trusted root (validity: the verifier)."""
        current = leaf
        for _ in range(MAX_CHAIN):
            if current.public_bytes(serialization.Encoding.DER) in self._root_ders:
                return True
            for root in self.roots:
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
