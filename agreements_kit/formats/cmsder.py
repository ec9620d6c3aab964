"""The CMS SignedData format (RFC 5652), read strictly as DER by cryptography's declarative ASN.1.

Signatures (ours, and the TSA's inside each time-stamp token) are read here, in one
place, by cryptography's Rust DER reader (``cryptography.hazmat.asn1``): every
element must carry the tag its type has, definite minimal lengths, nothing left over.
After reading, the whole structure is written out again and must give back the very
bytes read: so every part (the signed attributes above all, whose bytes the signature
covers) is exactly its original encoding, and no second reading of the same bytes can
differ. The SETs a signer fills (certificates, CRLs, attributes: all IMPLICIT-tagged)
are read in the order written, as OpenSSL and pyHanko read them; DER's sorting of SET OF
is not required of them. BER (indefinite or long-form lengths) is refused: agreements-kit
writes DER, and so do RFC 3161 TSAs. Fields whose content is someone else's format stay raw (:class:`asn1.TLV`) and
are read by the code that knows it: certificates and CRLs by ``cryptography.x509``,
names compared as DER, attribute values by :func:`attribute_value`, a token's
TSTInfo by rfc3161-client.

What this module does not accept, it refuses with ``ValueError``: it reads only the
shapes agreements-kit and RFC 3161 TSAs write (a SignerInfo identified by issuer and
serial number; algorithm parameters absent or NULL). The verifier turns that into
``cms.structure``.

The reader's answers were held equal to asn1crypto's eager parse, which the verifier
used before, by tests/test_fastpaths.py: it accepts nothing asn1crypto refused.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from cryptography import x509
from cryptography.hazmat import asn1

ID_DATA = "1.2.840.113549.1.7.1"
ID_SIGNED_DATA = "1.2.840.113549.1.7.2"
CONTENT_TYPE = "1.2.840.113549.1.9.3"
MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
SIGNING_TIME = "1.2.840.113549.1.9.5"
SMIME_CAPABILITIES = "1.2.840.113549.1.9.15"
TIMESTAMP_TOKEN = "1.2.840.113549.1.9.16.2.14"  # id-aa-signatureTimeStampToken
SEQUENCE_TAG = b"\x30"


@asn1.sequence
class AlgorithmIdentifier:
    algorithm: x509.ObjectIdentifier
    parameters: asn1.Null | None


@asn1.sequence
class Attribute:
    type: x509.ObjectIdentifier
    values: asn1.SetOf[asn1.TLV]


@asn1.sequence
class IssuerAndSerialNumber:
    issuer: asn1.TLV  # a Name: compared as DER with the certificate's issuer
    serial_number: int


@asn1.sequence
class SignerInfo:
    version: int
    sid: IssuerAndSerialNumber
    digest_algorithm: AlgorithmIdentifier
    signed_attrs: Annotated[list[Attribute] | None, asn1.Implicit(0)]  # SET OF, read in the order written
    signature_algorithm: AlgorithmIdentifier
    signature: bytes
    unsigned_attrs: Annotated[list[Attribute] | None, asn1.Implicit(1)]


@asn1.sequence
class EncapsulatedContentInfo:
    content_type: x509.ObjectIdentifier
    content: Annotated[bytes | None, asn1.Explicit(0)]


@asn1.sequence
class SignedData:
    version: int
    digest_algorithms: asn1.SetOf[AlgorithmIdentifier]
    encap_content_info: EncapsulatedContentInfo
    certificates: Annotated[list[asn1.TLV] | None, asn1.Implicit(0)]  # SET OF CertificateChoices, as written
    crls: Annotated[list[asn1.TLV] | None, asn1.Implicit(1)]  # SET OF RevocationInfoChoice, as written
    signer_infos: asn1.SetOf[SignerInfo]


@asn1.sequence
class ContentInfo:
    content_type: x509.ObjectIdentifier
    content: Annotated[SignedData, asn1.Explicit(0)]


def der_length(n: int) -> bytes:
    """A DER length: short form below 128, else the minimal long form."""
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def der(tlv: asn1.TLV) -> bytes:
    """The DER of a raw element, as it was read (tag, minimal length, contents)."""
    data = bytes(tlv.data)
    return tlv.tag_bytes + der_length(len(data)) + data


def read_content_info(data: bytes) -> ContentInfo:
    """A ContentInfo holding SignedData, read strictly; ``ValueError`` when it is anything else."""
    info = asn1.decode_der(ContentInfo, data)
    if asn1.encode_der(info) != data:
        raise ValueError("the DER does not read back to the same bytes")
    return info


def signed_attrs_der(si: SignerInfo) -> bytes:
    """What the signature covers: the signed attributes tagged SET OF (RFC 5652 5.4), in the order and with
    the bytes they were written in (as OpenSSL verifies them; read_content_info proved the bytes the same)."""
    assert si.signed_attrs is not None
    body = b"".join(asn1.encode_der(a) for a in si.signed_attrs)
    return b"\x31" + der_length(len(body)) + body


@asn1.sequence
class _Capability:  # SMIMECapability ::= SEQUENCE { capabilityID OID, parameters ANY OPTIONAL }: as cryptography writes
    capability: x509.ObjectIdentifier


@asn1.sequence
class _Capabilities:
    items: list[_Capability]


def attribute_value(oid: str, value: asn1.TLV) -> Any:
    """An attribute's one value, by its type: contentType an OID (dotted), messageDigest the bytes,
    signingTime a UTC datetime, smimeCapabilities a list of raw capabilities. ``ValueError`` otherwise."""
    raw = der(value)
    if oid == CONTENT_TYPE:
        return asn1.decode_der(x509.ObjectIdentifier, raw).dotted_string
    if oid == MESSAGE_DIGEST:
        return asn1.decode_der(bytes, raw)
    if oid == SIGNING_TIME:
        if value.tag_bytes == b"\x17":
            moment = asn1.decode_der(asn1.UTCTime, raw).as_datetime()
        elif value.tag_bytes == b"\x18":
            moment = asn1.decode_der(asn1.GeneralizedTime, raw).as_datetime()
        else:
            raise ValueError("the signing time is neither a UTCTime nor a GeneralizedTime")
        if not isinstance(moment, dt.datetime):
            raise ValueError("not a time")
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    if oid == SMIME_CAPABILITIES:
        return asn1.decode_der(_Capabilities, SEQUENCE_TAG + der_length(len(raw)) + raw).items  # SEQUENCE OF, wrapped
    raise ValueError(f"no reader for the attribute {oid}")
