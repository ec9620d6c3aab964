"""RFC 3161 signature time-stamps (CAdES-T): a token from a TSA over each signature value.

The token covers SHA-256 of the SignerInfo's signature value and travels in that
SignerInfo's unsigned attribute id-aa-signatureTimeStampToken. Unsigned attributes
are outside what the signer signed, so adding one leaves the signature valid: the
signed attributes and the signature keep their exact bytes (asn1crypto re-encodes
only what was changed). The TSA's time is then the signature's trusted time, and a
TSA failure is an error, never a local clock instead.

:class:`Timestamper` asks the configured TSAs in order (rfc3161-client builds the
query and reads the reply; urllib carries it) and accepts a reply only if it was
granted, echoes our nonce, covers our digest and carries the TSA certificate.
Failures raise :class:`TimestampError` naming each URL:

- ``unavailable.tsa``: no answer (connection refused, timeout, an HTTP error status);
- ``unavailable.tsa-reply``: an answer that is not an RFC 3161 reply at all;
- ``unavailable.tsa-refused``: a reply we cannot use: the TSA rejected the query, or
  its token does not match it (other digest, other nonce, no TSA certificate).
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from asn1crypto import cms, core

from agreements_kit.errors import InvalidFormat, SigningError, TimestampError

TOKEN_ATTRIBUTE = "1.2.840.113549.1.9.16.2.14"  # id-aa-signatureTimeStampToken (RFC 3161 appendix A)
SHA256_OID = "2.16.840.1.101.3.4.2.1"
QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
MAX_REPLY = 1024 * 1024  # a token with a certificate chain is a few KiB


class _Failure(Exception):
    """One TSA's failure: its code and what happened, in words."""

    def __init__(self, code: str, what: str):
        self.code = code
        self.what = what
        super().__init__(what)


@dataclass(frozen=True)
class Timestamper:
    """The practice's TSAs, tried in order until one gives a usable token."""

    urls: tuple[str, ...]
    timeout: float = 10.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "urls", tuple(self.urls))
        if not self.urls:
            raise TimestampError("no TSA URL is configured", code="usage.tsa-url")
        for url in self.urls:
            parts = urllib.parse.urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise TimestampError(f"the TSA URL {url!r} is not an http(s) URL", code="usage.tsa-url")
        if not self.timeout > 0:
            raise TimestampError("the TSA timeout must be a positive number of seconds", code="usage.tsa-timeout")

    def token(self, data: bytes) -> bytes:
        """A TimeStampToken (the CMS ContentInfo, DER) over SHA-256(``data``) from the first TSA that gives one."""
        if not data:
            raise TimestampError("there is nothing to time-stamp (no bytes)", code="usage.tsa-data")
        failures: list[_Failure] = []
        for url in self.urls:
            try:
                return self._ask(url, data)
            except _Failure as failure:
                failures.append(failure)
        codes = {f.code for f in failures}
        code = codes.pop() if len(codes) == 1 else "unavailable.tsa"
        said = "; ".join(f"{url}: {f.what}" for url, f in zip(self.urls, failures, strict=True))
        who = "no TSA gave a" if len(self.urls) > 1 else "the TSA gave no"
        raise TimestampError(f"{who} time-stamp token ({said})", code=code)

    def _ask(self, url: str, data: bytes) -> bytes:
        import rfc3161_client

        request = (rfc3161_client.TimestampRequestBuilder()
                   .data(data)
                   .hash_algorithm(rfc3161_client.HashAlgorithm.SHA256)
                   .cert_request(cert_request=True)
                   .nonce(nonce=True)
                   .build())
        body = self._post(url, request.as_bytes())
        try:
            response = rfc3161_client.decode_timestamp_response(body)
            status = response.status
        except Exception:  # the Rust parser raises several kinds on junk
            raise _Failure("unavailable.tsa-reply", f"its answer is not a time-stamp reply ({len(body)} bytes)") \
                from None
        if status not in (rfc3161_client.PKIStatus.GRANTED, rfc3161_client.PKIStatus.GRANTED_WITH_MODS):
            said = " ".join(response.status_string) if response.status_string else "no reason given"
            raise _Failure("unavailable.tsa-refused", f"it refused the query (status {status}: {said})")
        try:
            info = response.tst_info
            imprint = info.message_imprint
            algorithm, digest, nonce = imprint.hash_algorithm.dotted_string, imprint.message, info.nonce
            certificates = response.signed_data.certificates
            token = response.time_stamp_token()
        except Exception:
            raise _Failure("unavailable.tsa-reply", "its reply is granted but carries no readable token") from None
        if algorithm != SHA256_OID or digest != hashlib.sha256(data).digest():
            raise _Failure("unavailable.tsa-refused", "its token covers other data than the query")
        if nonce != request.nonce:
            raise _Failure("unavailable.tsa-refused", "its token does not echo the query's nonce (a replayed reply?)")
        if not certificates:
            raise _Failure("unavailable.tsa-refused", "its token does not carry the TSA certificate")
        return token

    def _post(self, url: str, query: bytes) -> bytes:
        req = urllib.request.Request(url, data=query, method="POST",
                                     headers={"Content-Type": QUERY_TYPE, "Accept": REPLY_TYPE})
        try:
            with _OPENER.open(req, timeout=self.timeout) as answer:
                body: bytes = answer.read(MAX_REPLY + 1)
        except urllib.error.HTTPError as exc:
            raise _Failure("unavailable.tsa", f"it answered HTTP {exc.code} {exc.reason}") from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            text = getattr(reason, "strerror", None) or str(reason)
            raise _Failure("unavailable.tsa", f"no answer ({text})") from None
        except TimeoutError:
            raise _Failure("unavailable.tsa", f"no answer within {self.timeout:g} s") from None
        except OSError as exc:
            raise _Failure("unavailable.tsa", f"no answer ({exc.strerror or type(exc).__name__})") from None
        if len(body) > MAX_REPLY:
            raise _Failure("unavailable.tsa-reply", f"its answer is larger than {MAX_REPLY} bytes")
        return body


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A TSA answers where it is asked: a redirect (to another host, or a POST turned GET) is an HTTP error."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _signer_info(p7s: bytes) -> tuple[cms.ContentInfo, cms.SignerInfo]:
    """The parsed CMS and its one SignerInfo (only the parts read are parsed: the rest keeps its bytes)."""
    try:
        info = cms.ContentInfo.load(p7s)
        if info["content_type"].native != "signed_data":
            raise ValueError("not SignedData")
        signer_infos = info["content"]["signer_infos"]
        if len(signer_infos) != 1:
            raise InvalidFormat(f"the signature has {len(signer_infos)} signers, not one", code="format.cms")
        signer = signer_infos[0]
        signer["signature"].native  # noqa: B018 - parse now, so damage is found here
    except InvalidFormat:
        raise
    except Exception as exc:
        raise InvalidFormat(f"not a CMS signature ({type(exc).__name__})", code="format.cms") from None
    return info, signer


def signature_value(p7s: bytes) -> bytes:
    """The contents of the SignerInfo's signature OCTET STRING: what a signature time-stamp covers."""
    _, signer = _signer_info(p7s)
    value: bytes = signer["signature"].native
    return value


def add_token(p7s: bytes, token: bytes) -> bytes:
    """``p7s`` with ``token`` as its SignerInfo's unsigned attribute id-aa-signatureTimeStampToken.

    Only the unsigned attributes change; OpenSSL's ``cms -verify`` still accepts it.
    """
    info, signer = _signer_info(p7s)
    try:
        token_info = cms.ContentInfo.load(token)
        if token_info["content_type"].dotted != "1.2.840.113549.1.7.2":
            raise ValueError("not SignedData")
    except Exception:
        raise InvalidFormat("the time-stamp token is not a CMS SignedData", code="format.tsa-token") from None
    unsigned = signer["unsigned_attrs"]
    attributes = [] if isinstance(unsigned, core.Void) or unsigned.native is None else list(unsigned)
    if any(a["type"].dotted == TOKEN_ATTRIBUTE for a in attributes):
        raise SigningError("the signature already has a time-stamp token", code="conflict.timestamped")
    attributes.append(cms.CMSAttribute({"type": TOKEN_ATTRIBUTE, "values": [token_info]}))
    signer["unsigned_attrs"] = cms.CMSAttributes(attributes)
    out: bytes = info.dump()
    return out


def timestamp_signature(p7s: bytes, ts: Timestamper) -> tuple[bytes, bytes]:
    """(``p7s`` with a token over its signature value, the token): the CAdES-T step of signing."""
    token = ts.token(signature_value(p7s))
    return add_token(p7s, token), token
