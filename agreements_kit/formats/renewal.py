"""The renewal record: an archive time-stamp over an agreement folder (in the spirit of RFC 4998, PAdES B-LTA).

A signature's time-stamp token outlives neither its TSA certificate nor its algorithms
by much. ``agreements archive renew`` therefore adds, from time to time, two files to
each agreement folder:

``renewal-NN.json``
    RFC 8785 canonical JSON, no final newline, at most 64 KiB::

        {"agreement_id": "agr-...", "created": "2026-12-03T10:00:00Z",
         "files": {"01-client.json": "<sha-256 hex>", ..., "renewal-01.json": "...", "renewal-01.tsr": "..."},
         "format": "agreements-kit/renewal", "format_version": 1, "hash_algorithm": "sha-256", "sequence": 2}

    ``files`` is the SHA-256 of every file in the folder when the renewal was made,
    earlier renewals included (so each renewal re-protects the ones before it);
    ``created`` is the renewer's clock (the token's time is what counts).

``renewal-NN.tsr``
    An RFC 3161 TimeStampToken (DER ContentInfo) over SHA-256 of the JSON file's bytes,
    at most 64 KiB.

``NN`` is ``sequence``, two ASCII digits from 01. This module parses the JSON strictly
(:func:`parse_renewal`), reads a token's unverified facts (:func:`token_facts`: the
renewer decides whether renewal is due from them; the verifier verifies tokens with
``verification.timestamps``) and holds the ageing policy (:data:`GOOD_UNTIL`), shared by
``archive renew`` and ``audit``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from agreements_kit.errors import InvalidFormat
from agreements_kit.formats import jsonio, shape
from agreements_kit.formats.ids import ID_RE

FORMAT = "agreements-kit/renewal"
FORMAT_VERSION = 1
HASH_ALGORITHM = "sha-256"
MAX_BYTES = 64 * 1024
MAX_FILES = 400  # formats.folder.MAX_ENTRIES: a folder holds no more
MAX_SEQUENCE = 99
NAME_RE = re.compile(r"^renewal-([0-9]{2})\.(json|tsr)\Z")
FILE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}\Z")

# ----------------------------------------------------------------------------- the ageing policy
#
# Until when a time-stamp made with an algorithm is taken to keep its strength, and so
# until when evidence protected by it needs no new archive time-stamp. SHA-1 is never
# accepted. The other dates are the end of the horizon of BSI TR-02102-1 (2024) and
# NIST SP 800-57 Part 1 rev. 5 for 128-bit security ("2031 and beyond"; RSA-2048's
# 112 bits: "through 2030"): a review date, not a prediction. Renewal is due
# RENEW_AHEAD before a date here, and before the protecting TSA certificate expires.
GOOD_UNTIL: dict[str, dt.date | None] = {
    "sha1": None,
    "sha224": dt.date(2030, 12, 31),
    "sha256": dt.date(2031, 12, 31),
    "sha384": dt.date(2031, 12, 31),
    "sha512": dt.date(2031, 12, 31),
    "rsa-2048": dt.date(2030, 12, 31),
    "rsa-3072": dt.date(2031, 12, 31),
    "rsa-4096": dt.date(2031, 12, 31),
    "ecdsa-p256": dt.date(2031, 12, 31),
    "ecdsa-p384": dt.date(2031, 12, 31),
    "ecdsa-p521": dt.date(2031, 12, 31),
    "ed25519": dt.date(2031, 12, 31),
}
RENEW_AHEAD = dt.timedelta(days=365)


def record_name(sequence: int) -> str:
    return f"renewal-{sequence:02d}.json"


def token_name(sequence: int) -> str:
    return f"renewal-{sequence:02d}.tsr"


@dataclass(frozen=True)
class Renewal:
    """A parsed ``renewal-NN.json``."""

    raw: bytes
    agreement_id: str
    sequence: int
    created: dt.datetime
    files: dict[str, str]

    @property
    def name(self) -> str:
        return record_name(self.sequence)


def encode(agreement_id: str, sequence: int, files: dict[str, str], created: str) -> bytes:
    """A new renewal record's bytes (checked by :func:`parse_renewal` before they are returned)."""
    data = jsonio.jcs({"format": FORMAT, "format_version": FORMAT_VERSION, "agreement_id": agreement_id,
                       "sequence": sequence, "hash_algorithm": HASH_ALGORITHM, "created": created,
                       "files": dict(sorted(files.items()))})
    parse_renewal(data, record_name(sequence))
    return data


def _files(value: Any, member: str, where: str) -> dict[str, str]:
    checked: dict[str, str] = shape.mapping_of(shape.sha256, MAX_FILES)(value, member, where)
    for name in checked:
        if not FILE_NAME_RE.match(name):
            raise InvalidFormat(f"'{member}' names {name[:40]!r}, which is no file of an agreement folder",
                                path=where, code="format.bad-value")
    return checked


_FIELDS: dict[str, shape.Checker] = {
    "format": shape.const(FORMAT), "format_version": shape.const(FORMAT_VERSION),
    "agreement_id": shape.string(64, ID_RE), "sequence": shape.integer(1, MAX_SEQUENCE),
    "hash_algorithm": shape.const(HASH_ALGORITHM), "created": shape.timestamp, "files": _files,
}


def parse_renewal(data: bytes, where: str) -> Renewal:
    """Parse ``renewal-NN.json`` strictly: RFC 8785 bytes, exactly its members; InvalidFormat with a code."""
    value = jsonio.parse(data, where, max_bytes=MAX_BYTES, max_depth=2, canonical_form="rfc8785")
    if isinstance(value, dict) and "format_version" in value and value["format_version"] != FORMAT_VERSION:
        raise InvalidFormat(f"unsupported renewal format version {str(value['format_version'])[:20]!r}",
                            path=where, code="format.version")
    checked = shape.fields(value, where, _FIELDS)
    created = dt.datetime.strptime(checked["created"], shape.TIME_FORMAT).replace(tzinfo=dt.UTC)
    return Renewal(data, checked["agreement_id"], checked["sequence"], created, checked["files"])


# ----------------------------------------------------------------------------- tokens, unverified


@dataclass(frozen=True)
class TokenFacts:
    """What a time-stamp token says, read but NOT verified (for deciding when to renew, never for trust)."""

    gen_time: dt.datetime
    certificate: x509.Certificate | None  # the TSA's, if the token carries it
    imprint_algorithm: str  # "sha256", ...


_HASH_NAMES = {"sha1": "sha1", "sha224": "sha224", "sha256": "sha256", "sha384": "sha384", "sha512": "sha512"}


def token_facts(token: bytes, where: str) -> TokenFacts:
    """The genTime, TSA certificate and imprint algorithm of a TimeStampToken (DER); InvalidFormat otherwise."""
    from asn1crypto import cms, tsp

    try:
        info = cms.ContentInfo.load(token)
        signed = info["content"]
        tst = signed["encap_content_info"]["content"].parsed
        if not isinstance(tst, tsp.TSTInfo):
            raise ValueError("not a TSTInfo")
        gen_time = tst["gen_time"].native
        algorithm = str(tst["message_imprint"]["hash_algorithm"]["algorithm"].native)
        sid = signed["signer_infos"][0]["sid"].chosen
        certificate = None
        for choice in signed["certificates"] or []:
            cert = choice.chosen
            if isinstance(sid, cms.IssuerAndSerialNumber) and cert.serial_number == sid["serial_number"].native \
                    and cert.issuer.dump() == sid["issuer"].dump():
                certificate = x509.load_der_x509_certificate(cert.dump())
    except Exception:
        raise InvalidFormat("is not an RFC 3161 time-stamp token", path=where, code="format.tsa-token") from None
    return TokenFacts(gen_time.astimezone(dt.UTC), certificate, _HASH_NAMES.get(algorithm, algorithm))


def key_algorithm(cert: x509.Certificate) -> str:
    """The policy's name of a certificate's key: ``ecdsa-p256``, ``rsa-2048``, ``ed25519``..."""
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {"secp256r1": "ecdsa-p256", "secp384r1": "ecdsa-p384", "secp521r1": "ecdsa-p521"}.get(
            key.curve.name, f"ecdsa-{key.curve.name}")
    if isinstance(key, rsa.RSAPublicKey):
        return f"rsa-{key.key_size}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519"
    return type(key).__name__


def renewal_due(cert: x509.Certificate | None, imprint_algorithm: str, now: dt.datetime) -> str | None:
    """Why the evidence a time-stamp by ``cert`` protects needs a new archive time-stamp now, or None."""
    if cert is None:
        return "its time-stamp token carries no TSA certificate"
    expires = cert.not_valid_after_utc
    if expires <= now:
        return f"the TSA certificate of its newest time-stamp expired on {expires:%Y-%m-%d}"
    if expires - now <= RENEW_AHEAD:
        return f"the TSA certificate of its newest time-stamp expires on {expires:%Y-%m-%d}, within a year"
    signature_hash = cert.signature_hash_algorithm.name if cert.signature_hash_algorithm else "none"
    for algorithm in (imprint_algorithm, key_algorithm(cert), signature_hash):
        if algorithm not in GOOD_UNTIL:
            return f"its newest time-stamp uses {algorithm}, which the ageing policy does not list"
        until = GOOD_UNTIL[algorithm]
        if until is None:
            return f"its newest time-stamp uses {algorithm}, which is never accepted"
        if dt.datetime.combine(until, dt.time(), dt.UTC) - now <= RENEW_AHEAD:
            return f"its newest time-stamp uses {algorithm}, good until {until:%Y-%m-%d} by the ageing policy"
    return None
