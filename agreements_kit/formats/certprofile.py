"""The practice's certificate profile: what a certificate's subject and SAN say about its role.

Written by the PKI (agreements_kit.signing.pki) and read by verifiers, so it lives
at the bottom: organizational units name what a certificate is for, a one-time
certificate's SAN names the agreement and role it was issued for, and records and
the ledger name certificates by the SHA-256 of their DER and times in one form.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

OU_ROOT = "agreements-kit root"
OU_INTAKE = "agreements-kit intake"
OU_CLINICIANS = "agreements-kit clinicians"  # the clinician CA: issues therapists' (and administrators') certificates
OU_CLIENT = "client"
OU_GUARDIAN = "guardian"
OU_THERAPIST = "therapist"
AGREEMENT_URN = "urn:agreements-kit:agreement:"  # + "ID:ROLE" in a one-time certificate's SAN


def agreement_uri(agreement_id: str, role: str) -> str:
    return f"{AGREEMENT_URN}{agreement_id}:{role}"


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 over the certificate's DER: what records and the ledger name a certificate by.

    Kept by the object's id, as :func:`common_name` keeps names (the same CA certificates recur)."""
    found = _FINGERPRINTS.get(id(cert))
    if found is None or found[0] is not cert:
        if len(_FINGERPRINTS) >= 1024:
            _FINGERPRINTS.clear()
        found = _FINGERPRINTS[id(cert)] = (cert, cert.fingerprint(hashes.SHA256()).hex())
    return found[1]


_FINGERPRINTS: dict[int, tuple[x509.Certificate, str]] = {}


NAME_BYTES = 64  # what cryptography allows in a name attribute: 64 bytes of UTF-8 (not characters)


def name_text(text: str, limit: int = NAME_BYTES) -> str:
    """``text`` cut to fit a certificate's name attribute: at most ``limit`` bytes of UTF-8, never inside a
    character. What the PKI writes as a one-time certificate's common name, and what verifiers compare
    the signer's name with (an ASCII name: its first 64 characters; "María..." fewer)."""
    cut = text.encode("utf-8")[:limit]
    return cut.decode("utf-8", errors="ignore")  # a character cut in two at the end is dropped


# A certificate object's (common name, unit), by the object's id: verification asks about ten times an
# agreement, mostly of the same cached CA and therapist certificate objects. Each entry holds its
# certificate, so no other object can take its id while the entry lives (and a hit checks it is the same).
# Keyed by id, not by the certificate: hashing a certificate costs more than reading its name.
_SUBJECTS: dict[int, tuple[x509.Certificate, str, str]] = {}


def _subject(cert: x509.Certificate) -> tuple[x509.Certificate, str, str]:
    found = _SUBJECTS.get(id(cert))
    if found is None or found[0] is not cert:
        subject = cert.subject
        cns = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        ous = subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
        found = (cert, str(cns[0].value) if cns else "", str(ous[0].value) if ous else "")
        if len(_SUBJECTS) >= 1024:
            _SUBJECTS.clear()
        _SUBJECTS[id(cert)] = found
    return found


def common_name(cert: x509.Certificate) -> str:
    return _subject(cert)[1]


def unit(cert: x509.Certificate) -> str:
    """The subject's organizational unit: what the certificate is for, in this profile."""
    return _subject(cert)[2]


def iso(t: dt.datetime) -> str:
    """A time as records and the ledger write it: UTC, whole seconds, ``Z``."""
    return t.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
