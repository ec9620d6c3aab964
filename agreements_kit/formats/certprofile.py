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
    """SHA-256 over the certificate's DER: what records and the ledger name a certificate by."""
    return cert.fingerprint(hashes.SHA256()).hex()


NAME_BYTES = 64  # what cryptography allows in a name attribute: 64 bytes of UTF-8 (not characters)


def name_text(text: str, limit: int = NAME_BYTES) -> str:
    """``text`` cut to fit a certificate's name attribute: at most ``limit`` bytes of UTF-8, never inside a
    character. What the PKI writes as a one-time certificate's common name, and what verifiers compare
    the signer's name with (an ASCII name: its first 64 characters; "María..." fewer)."""
    cut = text.encode("utf-8")[:limit]
    return cut.decode("utf-8", errors="ignore")  # a character cut in two at the end is dropped


def common_name(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


def unit(cert: x509.Certificate) -> str:
    """The subject's organizational unit: what the certificate is for, in this profile."""
    attrs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    return str(attrs[0].value) if attrs else ""


def iso(t: dt.datetime) -> str:
    """A time as records and the ledger write it: UTC, whole seconds, ``Z``."""
    return t.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
