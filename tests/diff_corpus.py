"""A generated corpus for the differential tests (tests/test_differential.py).

Signatures: one practice PKI made with :class:`agreements_kit.signing.pki.PKI` (root,
intake CA, two therapists, one-time client and guardian certificates), a second
practice with the *same names* and other keys (a forger's look-alike), CRL sets
published by ``PKI.revoke`` at chosen times, and certificates made by hand where the
PKI cannot make them (no EKU, a CA as signer, an RSA key...). Records are signed with
``agreements_kit.signing.cms.sign_detached`` and, for every shape that cannot make, by
:func:`make_cms`, a small DER builder of detached CMS SignedData whose every field can
be chosen (attributes, their order, signers, certificates, algorithms).

PDFs: :func:`pdf_mutations` derives damaged and extended PDFs from a rendered one.

Nothing here judges a signature; the test runs the three judges.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import shutil
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agreements_kit.signing.cms import sign_detached
from agreements_kit.signing.pki import PKI, load_key

UTC = dt.UTC
T = dt.datetime(2025, 3, 14, 12, 0, tzinfo=UTC)  # the checked time of most cases (whole seconds: -attime)
MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
PRACTICE = "Differential Practice"
PASS = b"diff-practice-pass"  # the root's
INTAKE_PASS = b"diff-intake-pass"
CLINICIAN_PASS = b"diff-clinician-ca-pass"
KEY_PASS = b"diff-clinician-pass"
AGREEMENT = "agr-diff-0001"

ID_DATA = "1.2.840.113549.1.7.1"
ID_SIGNED_DATA = "1.2.840.113549.1.7.2"
CONTENT_TYPE = "1.2.840.113549.1.9.3"
MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
SIGNING_TIME = "1.2.840.113549.1.9.5"
SMIME_CAPABILITIES = "1.2.840.113549.1.9.15"
SHA256 = "2.16.840.1.101.3.4.2.1"
SHA512 = "2.16.840.1.101.3.4.2.3"
ECDSA_SHA256 = "1.2.840.10045.4.3.2"
ECDSA_SHA512 = "1.2.840.10045.4.3.4"
EC_PUBLIC_KEY = "1.2.840.10045.2.1"
RSA_SHA256 = "1.2.840.113549.1.1.11"
TST_INFO = "1.2.840.113549.1.9.16.1.4"
PRIVATE_OID = "1.3.6.1.4.1.55555.1"  # an attribute type nobody defined


# =============================================================================== DER, by hand

def tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(body)]) + body + content


def seq(*parts: bytes) -> bytes:
    return tlv(0x30, b"".join(parts))


def set_of(parts: list[bytes], der_order: bool = True) -> bytes:
    return tlv(0x31, b"".join(sorted(parts) if der_order else parts))


def oid(dotted: str) -> bytes:
    return core.ObjectIdentifier(dotted).dump()


def integer(n: int) -> bytes:
    return core.Integer(n).dump()


def octets(data: bytes) -> bytes:
    return tlv(0x04, data)


def alg(dotted: str, null_params: bool = False) -> bytes:
    return seq(oid(dotted), b"\x05\x00" if null_params else b"")


def utc_time(when: dt.datetime) -> bytes:
    return core.UTCTime(when).dump()


@dataclass
class Node:
    """One TLV of a DER (or BER) encoding: a tag and either children or primitive content."""

    tag: int
    start: int
    header: int  # offset of the content
    end: int
    children: list[Node] | None  # None for primitive


def parse_tlv(data: bytes, start: int = 0, end: int | None = None) -> list[Node]:
    """The TLVs of ``data[start:end]`` (definite lengths, one-byte tags: what DER CMS uses)."""
    end = len(data) if end is None else end
    out = []
    i = start
    while i < end:
        tag = data[i]
        length = data[i + 1]
        j = i + 2
        if length & 0x80:
            k = length & 0x7F
            length = int.from_bytes(data[j:j + k], "big")
            j += k
        stop = j + length
        if stop > end:
            raise ValueError("TLV runs past its parent")
        kids = parse_tlv(data, j, stop) if tag & 0x20 else None
        out.append(Node(tag, i, j, stop, kids))
        i = stop
    return out


def reencode(data: bytes, indefinite: Callable[[tuple[int, ...], Node], bool], long_form: bool = False) -> bytes:
    """``data`` again with the constructed TLVs that ``indefinite(path, node)`` picks in BER indefinite length
    (``80 .. 00 00``), and with ``long_form`` every other length in a needlessly long form (BER, not DER)."""
    def emit(nodes: list[Node], path: tuple[int, ...]) -> bytes:
        out = b""
        for n, node in enumerate(nodes):
            here = (*path, n)
            content = data[node.header:node.end] if node.children is None else emit(node.children, here)
            if node.children is not None and indefinite(here, node):
                out += bytes([node.tag, 0x80]) + content + b"\x00\x00"
            elif long_form:
                out += bytes([node.tag, 0x84]) + len(content).to_bytes(4, "big") + content
            else:
                out += tlv(node.tag, content)
        return out
    return emit(parse_tlv(data), ())


# Where a byte of a DER ContentInfo(SignedData) lies, by the path of TLV indexes that holds it.
_SD = (0, 1, 0)
REGIONS: list[tuple[tuple[int, ...], str]] = [
    ((0, 0), "content-type"),
    ((*_SD, 0), "version"),
    ((*_SD, 1), "digest-algorithms"),
    ((*_SD, 2), "encap-content-info"),
    ((*_SD, 3), "certificates"),
    ((*_SD, 4, 0, 0), "signer.version"),
    ((*_SD, 4, 0, 1), "signer.sid"),
    ((*_SD, 4, 0, 2), "signer.digest-algorithm"),
    ((*_SD, 4, 0, 3), "signer.signed-attrs"),
    ((*_SD, 4, 0, 4), "signer.signature-algorithm"),
    ((*_SD, 4, 0, 5), "signer.signature"),
]


def innermost(data: bytes, offset: int) -> tuple[tuple[int, ...], Node, str]:
    """The path and TLV holding byte ``offset`` most closely, and which part of it: tag, length or content."""
    nodes, found = parse_tlv(data), None
    path: tuple[int, ...] = ()
    while True:
        for n, node in enumerate(nodes):
            if node.start <= offset < node.end:
                path, found = (*path, n), node
                break
        else:
            break
        if found.children is None or offset < found.header:
            break
        nodes = found.children
    assert found is not None
    part = "tag" if offset == found.start else "length" if offset < found.header else "content"
    return path, found, part


def flip_policy(p7s: bytes, offset: int, mask: int, signer_der: bytes) -> str:
    """The POLICY key a one-bit flip of a valid signature falls under ("" when the judges must agree).

    By what the byte is, not where it happens to lie, since certificate sizes vary from run to run."""
    region = region_of(p7s, offset)
    path, node, part = innermost(p7s, offset)
    if region == "digest-algorithms":
        return "unsigned-digest-set"
    flipped = _flip(p7s, offset, mask)
    still_oid = node.tag == 0x06 and part == "content" and _valid_oid(flipped[node.header:node.end])
    if region == "encap-content-info" and still_oid:
        return "econtent-type-read"
    if region == "signer.signature-algorithm" and still_oid:
        return "signature-alg-read"
    if region == "signer.sid" and part == "content" and node.tag in (0x0C, 0x13) and mask == 0x20 \
            and chr(p7s[offset]).isalpha():
        return "sid-name-case"
    sid = (*_SD, 4, 0, 1)
    if region == "signer.sid" and part == "tag" and mask == 0x20 and path[:len(sid) + 1] == (*sid, 0) \
            and len(path) in (len(sid) + 1, len(sid) + 2):
        return "sid-constructed-bit"  # the issuer Name (SEQUENCE OF) or one of its RDNs (SET OF) made primitive
    if region == "signer.digest-algorithm" and part == "tag" and node.tag == 0x05:
        return "algorithm-parameters"  # the NULL parameters' tag
    if region == "signer.version" and part == "tag":
        return "version-tag"
    certs = (*_SD, 3)
    if (len(path) == len(certs) + 2 and path[:len(certs)] == certs and path[-1] == 2 and node.tag == 0x03
            and part == "content" and offset == node.header):
        unused = p7s[offset] ^ mask
        if not 0 < unused < 8 or p7s[node.end - 1] & ((1 << unused) - 1):
            return ""  # the bits it calls unused are not zero: not a re-encoding, and every reader refuses
        holder = _node_at(parse_tlv(p7s), path[:-1])
        signer = p7s[holder.start:holder.end] == signer_der
        return "signer-cert-bitstring-padding" if signer else "ca-cert-bitstring-padding"
    return ""


def _valid_oid(content: bytes) -> bool:
    """An OBJECT IDENTIFIER's content is well formed: no sub-identifier padded with 0x80, the last one ended."""
    if not content or content[-1] & 0x80:
        return False
    return all(not (b == 0x80 and (i == 0 or not content[i - 1] & 0x80)) for i, b in enumerate(content))


def _node_at(nodes: list[Node], path: tuple[int, ...]) -> Node:
    node = nodes[path[0]]
    for i in path[1:]:
        assert node.children is not None
        node = node.children[i]
    return node


def region_of(p7s: bytes, offset: int) -> str:
    """The named field of a CMS ContentInfo that byte ``offset`` belongs to ("header" for the framing)."""
    best, best_len = "header", 0

    def walk(nodes: list[Node], path: tuple[int, ...]) -> None:
        nonlocal best, best_len
        for n, node in enumerate(nodes):
            here = (*path, n)
            if node.start <= offset < node.end:
                for prefix, name in REGIONS:
                    if here[:len(prefix)] == prefix and len(prefix) > best_len:
                        best, best_len = name, len(prefix)
                if node.children is not None:
                    walk(node.children, here)
    walk(parse_tlv(p7s), ())
    return best


# =============================================================================== CMS, by hand

@dataclass
class Signer:
    """One SignerInfo for :func:`make_cms`; every field may be set to something wrong."""

    cert: x509.Certificate
    key: Any  # ec or rsa private key
    digest: str = SHA256
    signature_alg: str | None = None  # default: ECDSA or RSA with the digest
    attrs: list[bytes] | None = None  # DER attributes; None: contentType, signingTime, messageDigest
    der_order: bool = True  # False: the attribute SET in the given (unsorted) order
    sid: str = "issuer-serial"  # or "ski"
    signing_time: dt.datetime = T
    unsigned: list[bytes] | None = None
    signed_bytes: Callable[[bytes], bytes] | None = None  # what is really signed, from the attrs' DER


def attribute(type_oid: str, *values: bytes) -> bytes:
    return seq(oid(type_oid), set_of(list(values)))


def standard_attrs(record: bytes, when: dt.datetime = T, digest: str = SHA256) -> list[bytes]:
    h = hashlib.sha512(record).digest() if digest == SHA512 else hashlib.sha256(record).digest()
    return [attribute(CONTENT_TYPE, oid(ID_DATA)), attribute(SIGNING_TIME, utc_time(when)),
            attribute(MESSAGE_DIGEST, octets(h))]


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _sign(key: Any, data: bytes, digest: str) -> bytes:
    h = hashes.SHA512() if digest == SHA512 else hashes.SHA256()
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), h)
    return key.sign(data, ec.ECDSA(h))


def signer_info(record: bytes, s: Signer) -> bytes:
    attrs = s.attrs if s.attrs is not None else standard_attrs(record, s.signing_time, s.digest)
    if s.sid == "ski":
        ski = s.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        sid, version = tlv(0x80, ski), 3
    else:
        sid, version = seq(s.cert.issuer.public_bytes(), integer(s.cert.serial_number)), 1
    if s.attrs == []:  # no signed attributes: the signature is over the content itself
        signed_attrs, to_sign = b"", record
    else:
        attr_set = set_of(attrs, s.der_order)
        signed_attrs, to_sign = b"\xa0" + attr_set[1:], attr_set
    if s.signed_bytes is not None:
        to_sign = s.signed_bytes(to_sign)
    rsa_key = isinstance(s.key, rsa.RSAPrivateKey)
    sig_alg = s.signature_alg or (RSA_SHA256 if rsa_key else ECDSA_SHA512 if s.digest == SHA512 else ECDSA_SHA256)
    unsigned = tlv(0xA1, b"".join(s.unsigned)) if s.unsigned else b""
    return seq(integer(version), sid, alg(s.digest), signed_attrs, alg(sig_alg, null_params=rsa_key),
               octets(_sign(s.key, to_sign, s.digest)), unsigned)


def make_cms(record: bytes, signers: list[Signer], certs: list[x509.Certificate], *,
             digest_algs: list[str] | None = None, econtent_type: str = ID_DATA, attached: bool = False,
             raw_certs: list[bytes] | None = None) -> bytes:
    """A DER ContentInfo(SignedData) over ``record`` (detached unless ``attached``)."""
    digests = digest_algs if digest_algs is not None else sorted({s.digest for s in signers})
    encap = seq(oid(econtent_type), tlv(0xA0, octets(record)) if attached else b"")
    cert_ders = raw_certs if raw_certs is not None else [_der(c) for c in certs]
    cert_set = tlv(0xA0, b"".join(cert_ders)) if cert_ders else b""
    version = 3 if any(s.sid == "ski" for s in signers) else 1
    sd = seq(integer(version), set_of([alg(d) for d in digests]), encap, cert_set,
             set_of([signer_info(record, s) for s in signers], der_order=False))
    return seq(oid(ID_SIGNED_DATA), tlv(0xA0, sd))


# =============================================================================== the PKI

@dataclass
class Party:
    cert: x509.Certificate
    key: Any
    chain: list[x509.Certificate]  # the intermediates a signature carries


@dataclass
class World:
    """Everything the signature corpus is made from (see the module docstring)."""

    folder: Path
    root: x509.Certificate
    root_key: ec.EllipticCurvePrivateKey
    intake: x509.Certificate
    intake_key: ec.EllipticCurvePrivateKey
    parties: dict[str, Party]
    roots: dict[str, x509.Certificate]  # trust roots by name: "main", "other"
    crls: dict[str, bytes]  # CRL sets (PEM, as crl.pem) by name

    def pem(self, name: str) -> bytes:
        return self.roots[name].public_bytes(serialization.Encoding.PEM)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _subject(common: str, unit: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, PRACTICE),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit)])


KU_SIGN = dict(digital_signature=True, content_commitment=True, key_encipherment=False, data_encipherment=False,
               key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False)
KU_CA = {**KU_SIGN, "digital_signature": False, "content_commitment": False, "key_cert_sign": True,
         "crl_sign": True}


def hand_cert(subject: x509.Name, public_key: Any, issuer: x509.Certificate, issuer_key: Any, *,
              not_before: dt.datetime = T - HOUR, not_after: dt.datetime = T + 30 * 24 * HOUR,
              ca: bool | None = False, path_length: int | None = None, ku: dict[str, bool] | None = KU_SIGN,
              ku_critical: bool = True, eku: list[x509.ObjectIdentifier] | None = None,
              self_signed: bool = False, even_signature: bool = False) -> x509.Certificate:
    """A certificate with every extension chosen (None: left out); EKU defaults to emailProtection.

    ``even_signature``: signed again until the signature's last byte is even, so that its BIT STRING can
    claim one unused bit (a re-encoding that changes no signed byte)."""
    eku = [ExtendedKeyUsageOID.EMAIL_PROTECTION] if eku is None else eku
    b = (x509.CertificateBuilder().subject_name(subject)
         .issuer_name(subject if self_signed else issuer.subject).public_key(public_key)
         .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))
    if not self_signed:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                            critical=False)
    if ca is not None:
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
    if ku is not None:
        b = b.add_extension(x509.KeyUsage(**ku), critical=ku_critical)
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    while True:
        cert = b.sign(issuer_key, hashes.SHA256())
        if not even_signature or cert.signature[-1] % 2 == 0:
            return cert


def _crl(issuer: x509.Certificate, key: Any, number: int, when: dt.datetime,
         revoked: tuple[tuple[int, dt.datetime], ...] = ()) -> bytes:
    b = (x509.CertificateRevocationListBuilder().issuer_name(issuer.subject).last_update(when)
         .next_update(when + dt.timedelta(days=3650))
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
         .add_extension(x509.CRLNumber(number), critical=False))
    for serial, at in revoked:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(serial)
                                      .revocation_date(at).build())
    return b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _practice(folder: Path) -> tuple[PKI, dict[str, Party], Any, Any]:
    pki = PKI(folder / "pki")
    pki.create(PRACTICE, PASS, INTAKE_PASS, CLINICIAN_PASS, now=T - HOUR)
    root_key = load_key(pki.root_key, PASS, "root CA")
    intake_key = load_key(pki.intake_key, INTAKE_PASS, "intake CA")
    parties = {}
    for tid, name in (("lee", "Dr. Robin Lee"), ("ortiz", "Sam Ortiz")):
        cert = pki.issue_clinician(tid, name, PRACTICE, CLINICIAN_PASS, KEY_PASS, now=T - HOUR)
        # the clinician CA issues therapists' certificates and travels in their signatures
        parties[tid] = Party(cert, load_key(pki.therapist_key(tid), KEY_PASS, tid), [pki.clinician_ca()])
    for role, name in (("client", "Jane Q. Doe"), ("guardian", "John Doe")):
        cert, key = pki.one_time_client(name, PRACTICE, intake_key, T, AGREEMENT, role)
        parties[role] = Party(cert, key, [pki.intake()])
    return pki, parties, root_key, intake_key


def build_world(folder: Path) -> World:
    pki, parties, root_key, intake_key = _practice(folder / "main")
    root, intake = pki.root(), pki.intake()
    other_pki, other, other_root_key, other_intake_key = _practice(folder / "other")
    crls = {"base": pki.crl.read_bytes(), "other": other_pki.crl.read_bytes()}

    def revoked_set(name: str, cert: x509.Certificate, when: dt.datetime, passphrase: bytes = CLINICIAN_PASS) -> None:
        shutil.copytree(folder / "main", folder / name)
        copy = PKI(folder / name / "pki")
        copy.revoke(cert, passphrase, now=when)  # a therapist by the clinician CA, a CA by the root
        crls[name] = copy.crl.read_bytes()

    ortiz = parties["ortiz"].cert
    revoked_set("ortiz-before", ortiz, T - 10 * MINUTE)
    revoked_set("ortiz-at", ortiz, T)
    revoked_set("ortiz-after", ortiz, T + HOUR)
    revoked_set("intake-before", intake, T - 10 * MINUTE, PASS)
    # The clinician CA's own CRL, as the practice issues it, for the hand-made sets below (each CA its own).
    clinicians = _crl(pki.clinician_ca(), load_key(pki.clinician_key, CLINICIAN_PASS, "clinician CA"), 1, T - HOUR)
    # The intake CA's own CRL revoking the client's one-time certificate (PKI.revoke never does this).
    crls["client-before"] = (_crl(root, root_key, 2, T - 10 * MINUTE)
                             + _crl(intake, intake_key, 2, T - 10 * MINUTE,
                                    ((parties["client"].cert.serial_number, T - 10 * MINUTE),))
                             + clinicians)
    # Only the root's CRL: nothing to check a client's certificate against.
    crls["root-only"] = _crl(root, root_key, 2, T - 10 * MINUTE)
    # The intake CA's CRL signed by the look-alike's intake key (same issuer name, another key).
    crls["intake-forged"] = (_crl(root, root_key, 2, T - 10 * MINUTE)
                             + _crl(intake, other_intake_key, 2, T - 10 * MINUTE) + clinicians)
    # A CRL set issued after the checked time, revoking nothing.
    crls["issued-later"] = (_crl(root, root_key, 2, T + HOUR) + _crl(intake, intake_key, 2, T + HOUR)
                            + _crl(pki.clinician_ca(), load_key(pki.clinician_key, CLINICIAN_PASS, "clinician CA"), 2,
                                   T + HOUR))

    def add(name: str, cert: x509.Certificate, key: Any, chain: list[x509.Certificate]) -> None:
        parties[name] = Party(cert, key, chain)

    for name in ("lee", "client"):
        add(f"other-{name}", other[name].cert, other[name].key, other[name].chain)
    k = _key()
    add("lee-short", hand_cert(_subject("Dr. Robin Lee", "therapist"), k.public_key(), root, root_key,
                               not_before=T - 2 * HOUR, not_after=T + HOUR), k, [])
    k = _key()
    add("no-eku", hand_cert(_subject("No EKU", "therapist"), k.public_key(), root, root_key, eku=[]), k, [])
    k = _key()
    add("client-auth-eku", hand_cert(_subject("Client Auth", "therapist"), k.public_key(), root, root_key,
                                     eku=[ExtendedKeyUsageOID.CLIENT_AUTH]), k, [])
    k = _key()
    add("no-ku", hand_cert(_subject("No KU", "therapist"), k.public_key(), root, root_key, ku=None), k, [])
    k = _key()
    add("ku-noncritical", hand_cert(_subject("KU not critical", "therapist"), k.public_key(), root, root_key,
                                    ku_critical=False), k, [])
    k = _key()
    add("ku-encipher-only", hand_cert(_subject("KU encipherment", "therapist"), k.public_key(), root, root_key,
                                      ku={**KU_SIGN, "digital_signature": False, "content_commitment": False,
                                          "key_encipherment": True}), k, [])
    k = _key()
    add("ca-leaf", hand_cert(_subject("CA as signer", "therapist"), k.public_key(), root, root_key, ca=True,
                             path_length=0, ku={**KU_CA, "digital_signature": True, "content_commitment": True}),
        k, [])
    k = _key()
    add("no-basic-constraints", hand_cert(_subject("No BC", "therapist"), k.public_key(), root, root_key, ca=None),
        k, [])
    rk = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    add("rsa", hand_cert(_subject("RSA Signer", "therapist"), rk.public_key(), root, root_key), rk, [])
    # A leaf whose "CA" is a plain leaf (no CA basic constraints) issued by the root.
    fake_ca_key = _key()
    fake_ca = hand_cert(_subject("Not A CA", "agreements-kit intake"), fake_ca_key.public_key(), root, root_key)
    k = _key()
    add("under-leaf", hand_cert(_subject("Under a leaf", "client"), k.public_key(), fake_ca, fake_ca_key), k,
        [fake_ca])
    # A CA without keyCertSign.
    weak_ca_key = _key()
    weak_ca = hand_cert(_subject("No keyCertSign", "agreements-kit intake"), weak_ca_key.public_key(), root,
                        root_key, ca=True, path_length=0, ku={**KU_CA, "key_cert_sign": False}, eku=[])
    k = _key()
    add("under-no-certsign", hand_cert(_subject("Under no certsign", "client"), k.public_key(), weak_ca,
                                       weak_ca_key), k, [weak_ca])
    # Too deep: root (pathlen 1) -> intake (pathlen 0) -> sub-CA -> leaf.
    sub_key = _key()
    sub = hand_cert(_subject("Sub CA", "agreements-kit intake"), sub_key.public_key(), intake, intake_key, ca=True,
                    path_length=None, ku=KU_CA, eku=[])
    k = _key()
    add("too-deep", hand_cert(_subject("Too deep", "client"), k.public_key(), sub, sub_key), k, [sub, intake])
    # An intermediate that expired before the checked time.
    old_key = _key()
    old_ca = hand_cert(_subject("Expired CA", "agreements-kit intake"), old_key.public_key(), root, root_key,
                       ca=True, path_length=0, ku=KU_CA, eku=[], not_before=T - 48 * HOUR, not_after=T - HOUR)
    k = _key()
    add("under-expired-ca", hand_cert(_subject("Under expired CA", "client"), k.public_key(), old_ca, old_key,
                                      not_before=T - 48 * HOUR, not_after=T + 48 * HOUR), k, [old_ca])
    # A look-alike of Dr. Lee's certificate: the same issuer name and serial number, another key, signed by
    # the look-alike practice's root (which has the same name as ours).
    lee = parties["lee"].cert
    k = _key()
    twin = (x509.CertificateBuilder().subject_name(lee.subject).issuer_name(lee.issuer).public_key(k.public_key())
            .serial_number(lee.serial_number).not_valid_before(T - HOUR).not_valid_after(T + 24 * HOUR)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(**KU_SIGN), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .sign(other_root_key, hashes.SHA256()))
    add("twin", twin, k, [])
    # A client under a CA like the intake CA, both with even signatures (see hand_cert).
    even_ca_key = _key()
    even_ca = hand_cert(_subject("Even Intake CA", "agreements-kit intake"), even_ca_key.public_key(), root,
                        root_key, ca=True, path_length=0, ku=KU_CA, eku=[], even_signature=True)
    k = _key()
    add("even-client", hand_cert(_subject("Even Client", "client"), k.public_key(), even_ca, even_ca_key,
                                 even_signature=True), k, [even_ca])
    crls["base"] += _crl(even_ca, even_ca_key, 1, T - HOUR)
    # A CA whose EKU is emailProtection alone (an S/MIME-style CA; our PKI's CAs carry no EKU).
    email_ca_key = _key()
    email_ca = hand_cert(_subject("Email CA", "agreements-kit intake"), email_ca_key.public_key(), root, root_key,
                         ca=True, path_length=0, ku=KU_CA)
    k = _key()
    add("under-email-eku-ca", hand_cert(_subject("Under email CA", "client"), k.public_key(), email_ca,
                                        email_ca_key), k, [email_ca])
    crls["base"] += _crl(email_ca, email_ca_key, 1, T - HOUR)
    # A self-signed signer.
    k = _key()
    add("self-signed", hand_cert(_subject("Self signed", "therapist"), k.public_key(), root, k, self_signed=True),
        k, [])
    return World(folder, root, root_key, intake, intake_key, parties, {"main": root, "other": other_pki.root()},
                 crls)


# =============================================================================== the signature corpus

@dataclass
class Case:
    name: str
    family: str
    record: bytes
    p7s: bytes
    at: dt.datetime = T
    crls: str = "base"
    root: str = "main"
    policy: str = ""  # a key of the test's POLICY table when the judges are meant to differ
    signer: str = ""  # the party whose certificate the record names (step 5 compares it with the signer's)
    carry: list[str] = field(default_factory=list)  # CA certificates every judge is also given (OpenSSL -certfile)


RECORDS = [
    b'{"format":"agreements-kit/record","format_version":2,"kind":"client","name":"Jane Q. Doe"}',
    b'{\n  "kind": "therapist",\n  "name": "Dr. Robin Lee"\n}\n',
    b"line one\r\nline two\r\n\r\n",  # CRLF: -binary must keep it
    bytes(range(256)),
    b"x",
]


def _flip(data: bytes, offset: int, mask: int) -> bytes:
    out = bytearray(data)
    out[offset] ^= mask
    return bytes(out)


def signature_cases(w: World, flip_step: int = 7, flip_cap: int = 260) -> list[Case]:
    P = w.parties
    cases: list[Case] = []
    lee, client = P["lee"], P["client"]

    def add(name: str, family: str, record: bytes, p7s: bytes, signer: str, **kw: Any) -> None:
        cases.append(Case(name, family, record, p7s, signer=signer, **kw))

    def lib(record: bytes, who: str) -> bytes:
        p = P[who]
        return sign_detached(record, p.cert, p.key, p.chain)

    def built(record: bytes, who: str, certs: list[x509.Certificate] | None = None, **kw: Any) -> bytes:
        p = P[who]
        opts = {k: kw.pop(k) for k in list(kw) if k in Signer.__dataclass_fields__}
        return make_cms(record, [Signer(p.cert, p.key, **opts)], [p.cert, *p.chain] if certs is None else certs,
                        **kw)

    rec = RECORDS[0]
    # ---- valid signatures, by the library and by hand, for each kind of signer
    for i, record in enumerate(RECORDS):
        for who in ("lee", "client", "guardian", "ortiz"):
            add(f"valid/{who}/record{i}", "valid", record, lib(record, who), who)
    for who in ("lee", "client"):
        V = f"valid-built/{who}"
        add(V, "valid", rec, built(rec, who), who)
        add(f"{V}/smime-capabilities", "valid", rec,
            built(rec, who, attrs=[*standard_attrs(rec), attribute(SMIME_CAPABILITIES, seq())]), who)
        add(f"attrs/{who}/unsigned-attribute", "attrs", rec,
            built(rec, who, unsigned=[attribute(PRIVATE_OID, tlv(0x0C, b"note"))]), who, policy="only-token-unsigned")
        add(f"{V}/extra-unrelated-certs", "valid", rec,
            built(rec, who, certs=[P[who].cert, *P[who].chain, P["other-lee"].cert, w.roots["other"]]), who)
        add(f"{V}/root-included", "valid", rec, built(rec, who, certs=[P[who].cert, *P[who].chain, w.root]), who)
        add(f"{V}/certs-reversed", "valid", rec, built(rec, who, certs=[P[who].cert, *P[who].chain][::-1]), who)
        add(f"{V}/signer-cert-twice", "valid", rec,
            built(rec, who, certs=[P[who].cert, *P[who].chain, P[who].cert]), who)
        add(f"{V}/attributes-not-der-order", "valid", rec,
            built(rec, who, attrs=sorted(standard_attrs(rec), reverse=True), der_order=False), who)
        add(f"{V}/signing-time-generalized", "valid", rec,
            built(rec, who, attrs=[attribute(CONTENT_TYPE, oid(ID_DATA)),
                                   attribute(SIGNING_TIME, core.GeneralizedTime(T).dump()),
                                   attribute(MESSAGE_DIGEST, octets(hashlib.sha256(rec).digest()))]), who)

    # ---- the record changed
    client_p7s = lib(rec, "client")
    for off in range(0, len(rec), max(1, len(rec) // 9)):
        add(f"record-flip/{off}", "record-flip", _flip(rec, off, 0x01), client_p7s, "client")
    add("record/appended-newline", "record-flip", rec + b"\n", client_p7s, "client")
    add("record/truncated", "record-flip", rec[:-1], client_p7s, "client")
    add("record/empty", "record-flip", b"", client_p7s, "client")
    add("record/crlf-converted", "record-flip", RECORDS[2].replace(b"\r\n", b"\n"), lib(RECORDS[2], "lee"), "lee")

    # ---- p7s bytes flipped, systematically, for a client (two certificates) and a therapist
    for who, record in (("client", rec), ("lee", RECORDS[1])):
        p7s = lib(record, who)
        signer_der = _der(P[who].cert)
        for n, off in enumerate(list(range(0, len(p7s), flip_step))[:flip_cap]):
            mask = 1 << (n % 8)
            add(f"p7s-flip/{who}/{off}^{mask:#04x} [{region_of(p7s, off)}]", "p7s-flip", record,
                _flip(p7s, off, mask), who, policy=flip_policy(p7s, off, mask, signer_der))
        for cut in sorted({0, 1, 2, 10, len(p7s) // 3, len(p7s) // 2, len(p7s) - 80, len(p7s) - 2, len(p7s) - 1}):
            add(f"p7s-truncated/{who}/{cut}", "p7s-truncated", record, p7s[:cut], who)
        for tail, extra in (("zeros", b"\x00\x00"), ("garbage", b"garbage"), ("twice", p7s)):
            add(f"p7s-trailing/{who}/{tail}", "p7s-trailing", record, p7s + extra, who, policy="trailing-bytes")

    # ---- one chosen bit, where the systematic flips land only by chance
    for who in ("lee", "client"):
        p7s = lib(rec, who)
        nodes = parse_tlv(p7s)
        sd = _node_at(nodes, _SD)
        si = _node_at(nodes, (*_SD, 4, 0))
        certs = _node_at(nodes, (*_SD, 3))
        assert sd.children and si.children and certs.children
        sig_alg_oid = si.children[4].children[0]  # type: ignore[index]
        add(f"bit/{who}/signature-alg-oid-last-byte", "bit", rec, _flip(p7s, sig_alg_oid.end - 1, 0x04), who,
            policy="signature-alg-read")
        econtent_oid = sd.children[2].children[0]  # type: ignore[index]
        add(f"bit/{who}/econtent-type-oid-last-byte", "bit", rec, _flip(p7s, econtent_oid.end - 1, 0x02), who,
            policy="econtent-type-read")
        issuer = si.children[1].children[0]  # type: ignore[index]
        letter = next(i for i in range(issuer.header, issuer.end) if chr(p7s[i]).isalpha()
                      and region_of(p7s, i) == "signer.sid" and innermost(p7s, i)[1].tag in (0x0C, 0x13))
        add(f"bit/{who}/sid-issuer-letter-case", "bit", rec, _flip(p7s, letter, 0x20), who, policy="sid-name-case")
        add(f"bit/{who}/sid-issuer-rdn-primitive", "bit", rec,
            _flip(p7s, issuer.children[0].start, 0x20), who, policy="sid-constructed-bit")  # type: ignore[index]
        add(f"bit/{who}/sid-issuer-name-primitive", "bit", rec, _flip(p7s, issuer.start, 0x20), who,
            policy="sid-constructed-bit")
        atv = issuer.children[0].children[0]  # type: ignore[index]
        add(f"bit/{who}/sid-issuer-attribute-primitive", "bit", rec, _flip(p7s, atv.start, 0x20), who)
        for k, cert_node in enumerate(certs.children):
            bits = cert_node.children[2]  # type: ignore[index]
            add(f"bit/{who}/cert{k}-signature-unused-bits", "bit", rec, _flip(p7s, bits.header, 0x01), who,
                policy=flip_policy(p7s, bits.header, 0x01, _der(P[who].cert)))
        for name, version in (("signed-data", sd.children[0]), ("signer", si.children[0])):
            for mask in (0x02, 0x04):
                add(f"bit/{who}/{name}-version-{p7s[version.header] ^ mask}", "bit", rec,
                    _flip(p7s, version.header, mask), who, policy=flip_policy(p7s, version.header, mask, b""))
            add(f"bit/{who}/{name}-version-tag", "bit", rec, _flip(p7s, version.start, 0x10), who,
                policy=flip_policy(p7s, version.start, 0x10, b""))
        params = si.children[2].children[1]  # type: ignore[index]
        add(f"bit/{who}/digest-null-parameters-tag", "bit", rec, _flip(p7s, params.start, 0x40), who,
            policy=flip_policy(p7s, params.start, 0x40, b""))
        digest_set = sd.children[1]
        digest_oid = digest_set.children[0].children[0]  # type: ignore[index]
        add(f"bit/{who}/digest-set-oid-changed", "bit", rec, _flip(p7s, digest_oid.end - 1, 0x02), who,
            policy="unsigned-digest-set")
    # certificates whose signatures end in an even byte: one unused bit is a re-encoding (see hand_cert)
    even = P["even-client"]
    p7s = lib(rec, "even-client")
    add("valid/even-client", "valid", rec, p7s, "even-client")
    for k, cert_node in enumerate(_node_at(parse_tlv(p7s), (*_SD, 3)).children or []):
        bits = cert_node.children[2]  # type: ignore[index]
        policy = flip_policy(p7s, bits.header, 0x01, _der(even.cert))
        assert policy, "even-client's certificates have even signatures"
        add(f"bit/even-client/cert{k}-signature-unused-bits", "bit", rec, _flip(p7s, bits.header, 0x01),
            "even-client", policy=policy)

    # ---- signed attributes
    d = hashlib.sha256(rec).digest()
    other_d = hashlib.sha256(b"another record").digest()
    ct, st, md = attribute(CONTENT_TYPE, oid(ID_DATA)), attribute(SIGNING_TIME, utc_time(T)), \
        attribute(MESSAGE_DIGEST, octets(d))
    for who in ("lee", "client"):
        A = f"attrs/{who}"
        add(f"{A}/two-message-digests", "attrs", rec,
            built(rec, who, attrs=[ct, st, md, attribute(MESSAGE_DIGEST, octets(other_d))]), who)
        add(f"{A}/two-equal-message-digests", "attrs", rec,
            built(rec, who, attrs=[ct, st, md, md], der_order=False), who)
        add(f"{A}/message-digest-two-values", "attrs", rec,
            built(rec, who, attrs=[ct, st, attribute(MESSAGE_DIGEST, octets(d), octets(other_d))]), who)
        add(f"{A}/wrong-message-digest", "attrs", rec,
            built(rec, who, attrs=[ct, st, attribute(MESSAGE_DIGEST, octets(other_d))]), who)
        add(f"{A}/short-message-digest", "attrs", rec,
            built(rec, who, attrs=[ct, st, attribute(MESSAGE_DIGEST, octets(d[:31]))]), who)
        add(f"{A}/no-message-digest", "attrs", rec, built(rec, who, attrs=[ct, st]), who)
        add(f"{A}/no-signing-time", "attrs", rec, built(rec, who, attrs=[ct, md]), who,
            policy="signing-time-required")
        add(f"{A}/two-signing-times", "attrs", rec,
            built(rec, who, attrs=[ct, st, attribute(SIGNING_TIME, utc_time(T + MINUTE)), md]), who,
            policy="attribute-once")
        add(f"{A}/signing-time-not-a-time", "attrs", rec,
            built(rec, who, attrs=[ct, attribute(SIGNING_TIME, tlv(0x0C, b"yesterday")), md]), who,
            policy="signing-time-a-time")
        add(f"{A}/no-content-type", "attrs", rec, built(rec, who, attrs=[st, md]), who)
        add(f"{A}/content-type-signed-data", "attrs", rec,
            built(rec, who, attrs=[attribute(CONTENT_TYPE, oid(ID_SIGNED_DATA)), st, md]), who,
            policy="content-type-data")
        add(f"{A}/private-attribute", "attrs", rec,
            built(rec, who, attrs=[*standard_attrs(rec), attribute(PRIVATE_OID, tlv(0x0C, b"hello"))]), who,
            policy="only-known-attributes")
        add(f"{A}/no-signed-attributes", "attrs", rec, built(rec, who, attrs=[]), who,
            policy="signed-attrs-required")
        add(f"{A}/signed-as-der-sent-unsorted", "attrs", rec,
            built(rec, who, attrs=sorted(standard_attrs(rec), reverse=True), der_order=False,
                  signed_bytes=lambda b: set_of(sorted(standard_attrs(rec)))), who)
        add(f"{A}/signed-with-implicit-tag", "attrs", rec, built(rec, who, signed_bytes=lambda b: b"\xa0" + b[1:]),
            who)
        add(f"{A}/signed-without-tag", "attrs", rec,
            built(rec, who, signed_bytes=lambda b: b[2:] if b[1] < 0x80 else b[2 + (b[1] & 0x7F):]), who)

    # ---- signers
    add("signers/two-valid", "signers", rec,
        make_cms(rec, [Signer(lee.cert, lee.key), Signer(client.cert, client.key)],
                 [lee.cert, *lee.chain, client.cert, *client.chain]), "lee", policy="one-signer")
    add("signers/second-forged", "signers", rec,
        make_cms(rec, [Signer(lee.cert, lee.key), Signer(client.cert, P["other-client"].key)],
                 [lee.cert, *lee.chain, client.cert, *client.chain]), "lee")
    add("signers/second-untrusted", "signers", rec,
        make_cms(rec, [Signer(lee.cert, lee.key), Signer(P["other-lee"].cert, P["other-lee"].key)],
                 [lee.cert, *lee.chain, P["other-lee"].cert, *P["other-lee"].chain]), "lee")
    add("signers/none", "signers", rec, make_cms(rec, [], [lee.cert], digest_algs=[SHA256]), "lee")
    add("signers/same-twice", "signers", rec,
        make_cms(rec, [Signer(lee.cert, lee.key), Signer(lee.cert, lee.key, signing_time=T + MINUTE)],
                 [lee.cert, *lee.chain]), "lee", policy="one-signer")
    add("signers/by-ski", "signers", rec, built(rec, "lee", sid="ski"), "lee", policy="issuer-serial-sid")
    add("signers/by-ski-client", "signers", rec, built(rec, "client", sid="ski"), "client",
        policy="issuer-serial-sid")

    # ---- certificates
    add("certs/signer-removed", "certs", rec, built(rec, "client", certs=list(client.chain)), "client")
    add("certs/none", "certs", rec, built(rec, "lee", certs=[]), "lee")
    add("certs/intermediate-removed", "certs", rec, built(rec, "client", certs=[client.cert]), "client")
    add("certs/intermediate-removed-lib", "certs", rec, sign_detached(rec, client.cert, client.key, []), "client")
    add("certs/intermediate-given-outside", "certs", rec, built(rec, "client", certs=[client.cert]), "client",
        carry=["intake"])
    add("certs/intermediate-from-other-root", "certs", rec,
        built(rec, "client", certs=[client.cert, *P["other-client"].chain]), "client")
    add("certs/other-root-therapist", "certs", rec, lib(rec, "other-lee"), "other-lee")
    add("certs/other-root-client", "certs", rec, lib(rec, "other-client"), "other-client")
    add("certs/other-root-trusted", "certs", rec, lib(rec, "other-lee"), "other-lee", root="other", crls="other")
    add("certs/main-under-other-root", "certs", rec, lib(rec, "lee"), "lee", root="other", crls="other")
    # A look-alike with the signer's issuer name and serial number, made with another key.
    twin = P["twin"].cert
    add("certs/twin-first-real-signs", "certs", rec, built(rec, "lee", certs=[twin, lee.cert, *lee.chain]), "lee",
        policy="ambiguous-signer-twin-first")
    add("certs/twin-last-real-signs", "certs", rec, built(rec, "lee", certs=[lee.cert, twin, *lee.chain]), "lee",
        policy="ambiguous-signer-twin-last")
    add("certs/twin-signs", "certs", rec, make_cms(rec, [Signer(twin, P["twin"].key)], [twin, lee.cert, *lee.chain]),
        "twin")
    add("certs/twin-alone-signs", "certs", rec, built(rec, "twin"), "twin")
    add("certs/garbage-cert", "certs", rec, built(rec, "lee", raw_certs=[_der(lee.cert), seq(integer(1))]), "lee")

    # ---- validity at the checked time
    for who, times in (("client", [T - 10 * MINUTE, T + 2 * 24 * HOUR, T + 24 * HOUR - MINUTE]),
                       ("lee-short", [T + 2 * HOUR, T + HOUR - MINUTE, T - 3 * HOUR])):
        p7s = lib(rec, who)
        for at in times:
            add(f"time/{who}/at{at:%Y%m%dT%H%M}", "time", rec, p7s, who, at=at)
    add("time/under-expired-ca", "time", rec, lib(rec, "under-expired-ca"), "under-expired-ca")
    add("time/before-root", "time", rec, lib(rec, "lee"), "lee", at=T - 2 * HOUR)

    # ---- revocation
    ortiz = lib(rec, "ortiz")
    for crl in ("base", "ortiz-before", "ortiz-at", "ortiz-after", "other", "issued-later", "root-only"):
        policy = {"ortiz-after": "revoked-after-signing", "issued-later": "crl-issued-later",
                  "ortiz-at": "revoked-at-signing-time"}.get(crl, "")
        add(f"crl/{crl}/ortiz", "crl", rec, ortiz, "ortiz", crls=crl, policy=policy)
    for crl in ("base", "ortiz-before", "intake-before", "client-before", "root-only", "intake-forged", "other",
                "issued-later"):
        policy = "crl-issued-later" if crl == "issued-later" else ""
        add(f"crl/{crl}/client", "crl", rec, lib(rec, "client"), "client", crls=crl, policy=policy)
    for crl in ("root-only", "intake-forged", "client-before", "intake-before"):
        add(f"crl/{crl}/lee", "crl", rec, lib(rec, "lee"), "lee", crls=crl)

    # ---- path policy (certificates made by hand)
    policy_of = {"no-eku": "email-protection-eku", "client-auth-eku": "email-protection-eku",
                 "no-ku": "key-usage-present", "ku-noncritical": "key-usage-critical",
                 "ku-encipher-only": "key-usage-signature", "ca-leaf": "leaf-not-ca", "rsa": "ecdsa-only",
                 "under-email-eku-ca": "ca-eku-client-auth"}
    for who in ("no-eku", "client-auth-eku", "no-ku", "ku-noncritical", "ku-encipher-only", "ca-leaf",
                "under-email-eku-ca",
                "no-basic-constraints", "under-leaf", "under-no-certsign", "too-deep", "self-signed", "rsa"):
        p = P[who]
        p7s = make_cms(rec, [Signer(p.cert, p.key)], [p.cert, *p.chain]) if who == "rsa" else lib(rec, who)
        add(f"path/{who}", "path", rec, p7s, who, policy=policy_of.get(who, ""))

    # ---- algorithms
    add("alg/sha512", "alg", rec, built(rec, "lee", digest=SHA512), "lee", policy="ecdsa-sha256-only")
    add("alg/sha512-client", "alg", rec, built(rec, "client", digest=SHA512), "client", policy="ecdsa-sha256-only")
    add("alg/extra-digest-algorithm", "alg", rec, built(rec, "lee", digest_algs=[SHA256, SHA512]), "lee",
        policy="ecdsa-sha256-only")
    add("alg/no-digest-algorithms", "alg", rec, built(rec, "lee", digest_algs=[]), "lee",
        policy="unsigned-digest-set")
    add("alg/ec-public-key-as-signature-alg", "alg", rec, built(rec, "lee", signature_alg=EC_PUBLIC_KEY), "lee",
        policy="signature-alg-read")
    add("alg/rsa-oid-on-ecdsa-signature", "alg", rec, built(rec, "lee", signature_alg=RSA_SHA256), "lee",
        policy="signature-alg-read")

    # ---- content
    add("content/attached", "content", rec, built(rec, "lee", attached=True), "lee", policy="detached-only")
    add("content/attached-other", "content", rec,
        make_cms(b"other content", [Signer(lee.cert, lee.key)], [lee.cert], attached=True), "lee")
    add("content/tst-info", "content", rec,
        built(rec, "lee", econtent_type=TST_INFO, attrs=[attribute(CONTENT_TYPE, oid(TST_INFO)), st, md]), "lee",
        policy="data-only")

    # ---- BER re-encodings of a valid signature
    signed_attrs, cert_set, signer_infos = (*_SD, 4, 0, 3), (*_SD, 3), (*_SD, 4)

    def under(prefix: tuple[int, ...], path: tuple[int, ...]) -> bool:
        return path[:len(prefix)] == prefix and len(path) > len(prefix)

    for who in ("lee", "client"):
        p7s = lib(rec, who)
        B = f"ber/{who}"
        add(f"{B}/outer-indefinite", "ber", rec, reencode(p7s, lambda path, n: len(path) <= 2), who,
            policy="der-only")
        add(f"{B}/indefinite-outside-signer-info-and-certs", "ber", rec,
            reencode(p7s, lambda path, n: not under(signer_infos, path) and not under(cert_set, path)), who,
            policy="der-only")
        add(f"{B}/indefinite-in-signer-info", "ber", rec,
            reencode(p7s, lambda path, n: under(signer_infos, path) and not under(signed_attrs, path)
                     and path != signed_attrs), who, policy="ber-in-signer-info")
        add(f"{B}/indefinite-attrs", "ber", rec, reencode(p7s, lambda path, n: under(signed_attrs, path)), who)
        add(f"{B}/indefinite-everywhere", "ber", rec, reencode(p7s, lambda path, n: True), who)
        add(f"{B}/long-lengths", "ber", rec, reencode(p7s, lambda path, n: False, long_form=True), who)
    return cases


# =============================================================================== PDFs

@dataclass
class PdfCase:
    name: str
    pdf: bytes
    expected_ok: bool | None = None  # None: whatever the reference reader says
    hidden: bool = False  # a second manifest nothing refers to: the reference shows one, ours refuses
    unread: bool = False  # stored in a way the scan does not read (and the renderer never writes): ours refuses


def _streams(pdf: bytes) -> Iterator[re.Match[bytes]]:
    return re.finditer(rb"(\d+) 0 obj\s*<<(.*?)>>\s*stream\r?\n", pdf, re.S)


def manifest_stream(pdf: bytes, manifest: bytes) -> tuple[int, int, int, bytes]:
    """(object number, data start, data end, dictionary) of the stream that holds ``manifest``."""
    for m in _streams(pdf):
        length = re.search(rb"/Length (\d+)", m.group(2))
        if length is None:
            continue
        start = m.end()
        data = pdf[start:start + int(length.group(1))]
        try:
            content = zlib.decompress(data)
        except zlib.error:
            content = data
        if content == manifest:
            return int(m.group(1)), start, start + len(data), m.group(2)
    raise AssertionError("the rendered PDF holds no stream with the manifest")


def incremental_update(pdf: bytes, objects: dict[int, bytes]) -> bytes:
    """``pdf`` with an incremental update (ISO 32000-1 7.5.6) that replaces or adds ``objects``, indexed, like
    the rendered file, by a cross-reference stream (7.5.8) whose /Prev is the previous one."""
    last = list(re.finditer(rb"<<(/Type /XRef.*?)>>\s*stream", pdf, re.S))[-1].group(1)
    size = int(_find(rb"/Size (\d+)", last))
    root = _find(rb"/Root (\d+ \d+ R)", last)
    ident = re.search(rb"/ID\s*(\[[^\]]*\])", last)
    prev = int(_find(rb"startxref\s+(\d+)", pdf[pdf.rfind(b"startxref"):]))
    out = bytearray(pdf if pdf.endswith(b"\n") else pdf + b"\n")
    offsets = {}
    for num, body in sorted(objects.items()):
        offsets[num] = len(out)
        out += b"%d 0 obj\n" % num + body + b"\nendobj\n"
    xref_num = max([size, *(n + 1 for n in offsets)])
    offsets[xref_num] = len(out)
    rows = b"".join(bytes([1]) + offsets[n].to_bytes(4, "big") + b"\x00\x00" for n in sorted(offsets))
    index = b" ".join(b"%d 1" % n for n in sorted(offsets))
    out += (b"%d 0 obj\n<</Type /XRef/Index [%s]/W [1 4 2]/Size %d/Root %s/Prev %d" % (
        xref_num, index, xref_num + 1, root, prev) + (b"/ID " + ident.group(1) if ident else b"")
        + b"/Length %d>>\nstream\n" % len(rows) + rows + b"\nendstream\nendobj\n")
    out += b"startxref\n%d\n%%%%EOF\n" % offsets[xref_num]
    return bytes(out)


def reindex(pdf: bytes) -> bytes:
    """``pdf``, whose objects were edited in place (so moved), with a complete new cross-reference stream
    appended: objects stored directly are found where they now are, those in object streams kept."""
    m = re.search(rb"(\d+) 0 obj\s*<<(/Type /XRef.*?)>>\s*stream\r?\n", pdf, re.S)
    assert m is not None, "the rendered PDF has a cross-reference stream"
    d = m.group(2)
    widths = [int(x) for x in _find(rb"/W \[([\d ]+)\]", d).split()]
    index = [int(x) for x in _find(rb"/Index \[([\d ]+)\]", d).split()]
    rows = zlib.decompress(pdf[m.end():m.end() + int(_find(rb"/Length (\d+)", d))])
    entries: dict[int, tuple[int, int, int]] = {}
    at = 0
    for first, count in zip(index[::2], index[1::2], strict=True):
        for num in range(first, first + count):
            fields = []
            for w in widths:
                fields.append(int.from_bytes(rows[at:at + w], "big"))
                at += w
            entries[num] = (fields[0], fields[1], fields[2])
    size = int(_find(rb"/Size (\d+)", d))
    out = bytearray(pdf if pdf.endswith(b"\n") else pdf + b"\n")
    table = b""
    for num in range(size):
        kind, f2, f3 = entries.get(num, (0, 0, 0))
        if kind == 1:
            where = [x.start(1) for x in re.finditer(rb"(?:^|[\r\n])(%d 0 obj)" % num, pdf)]
            kind, f2, f3 = (1, where[0], 0) if where else (0, 0, 0)
        table += bytes([kind]) + f2.to_bytes(4, "big") + f3.to_bytes(2, "big")
    table += bytes([1]) + len(out).to_bytes(4, "big") + b"\x00\x00"  # the new stream itself
    keep = b"".join(x.group(0) for x in re.finditer(rb"/(?:Root|Info) \d+ \d+ R|/ID\s*\[[^\]]*\]", d))
    start = len(out)
    out += (b"%d 0 obj\n<</Type /XRef/Index [0 %d]/W [1 4 2]/Size %d%s/Length %d>>\nstream\n" % (
        size, size + 1, size + 1, keep, len(table)) + table + b"\nendstream\nendobj\n")
    out += b"startxref\n%d\n%%%%EOF\n" % start
    return bytes(out)


def _find(pattern: bytes, data: bytes) -> bytes:
    """Group 1 of the first match of ``pattern`` (which must match)."""
    m = re.search(pattern, data, re.S)
    assert m is not None, pattern
    return m.group(1)


def _stream_obj(dictionary: bytes, data: bytes) -> bytes:
    return b"<<" + dictionary + b">>\nstream\n" + data + b"\nendstream"


def pdf_mutations(pdf: bytes, manifest: bytes) -> list[PdfCase]:
    """The rendered PDF and variants: attachment changed, a second manifest added, filters, truncation.

    ``expected_ok`` is the verifier's answer to "exactly one manifest, equal to ``manifest``", where it is
    known by construction; None leaves it to the reference reader (damaged files)."""
    num, start, end, dictionary = manifest_stream(pdf, manifest)
    size = int(_find(rb"/Size (\d+)", list(re.finditer(rb"<<(/Type /XRef.*?)>>", pdf, re.S))[-1].group(1)))
    spare = size + 10  # an object number free in every variant (reindex adds object ``size``)
    m = re.search(rb'"sha256": "([0-9a-f])', manifest)
    assert m is not None
    # one hex digit of a hash changed: the same length, still JSON, still a manifest, another one
    changed = manifest[:m.start(1)] + (b"0" if m.group(1) != b"0" else b"1") + manifest[m.end(1):]
    compressed = pdf[start:end]

    def length(d: bytes, n: int | bytes) -> bytes:
        return re.sub(rb"/Length \d+", b"/Length " + (n if isinstance(n, bytes) else b"%d" % n), d)

    def filtered(d: bytes, flt: bytes) -> bytes:
        return re.sub(rb"/Filter\s*/FlateDecode", flt, d)

    def with_stream(new_dict: bytes, data: bytes) -> bytes:
        """The PDF with the manifest stream's dictionary and data replaced in place, cross-reference rebuilt."""
        obj_start = pdf.rfind(b"%d 0 obj" % num, 0, start)
        tail_at = pdf.find(b"endobj", end) + len(b"endobj")
        body = b"%d 0 obj\n" % num + _stream_obj(new_dict, data) + b"\nendobj"
        return reindex(pdf[:obj_start] + body + pdf[tail_at:])

    def second(d: bytes, data: bytes, extra: dict[int, bytes] | None = None) -> bytes:
        """An incremental update adding an unreferenced embedded-file stream."""
        return incremental_update(pdf, {spare: _stream_obj(b"/Type /EmbeddedFile " + d, data), **(extra or {})})

    hexed, hex_changed = manifest.hex().encode() + b">", changed.hex().encode() + b">"
    flate_changed = zlib.compress(changed)
    twice = zlib.compress(zlib.compress(manifest))
    plain = filtered(length(dictionary, len(manifest)), b"")
    cases = [
        PdfCase("rendered", pdf, True),
        PdfCase("reindexed-unchanged", reindex(pdf), True),
        PdfCase("empty-incremental-update", incremental_update(pdf, {}), True),
        # the one attachment, changed or stored otherwise
        PdfCase("attachment-bytes-changed", with_stream(length(dictionary, len(flate_changed)), flate_changed),
                False),
        PdfCase("attachment-compressed-byte-flipped", pdf[:start + 20] + bytes([pdf[start + 20] ^ 0x10])
                + pdf[start + 21:], False),
        PdfCase("attachment-uncompressed", with_stream(plain, manifest), True),
        PdfCase("attachment-uncompressed-changed", with_stream(plain, changed), False),
        PdfCase("attachment-ascii-hex", with_stream(length(filtered(dictionary, b"/Filter /ASCIIHexDecode"),
                                                           len(hexed)), hexed), True, unread=True),
        PdfCase("attachment-ascii-hex-changed",
                with_stream(length(filtered(dictionary, b"/Filter /ASCIIHexDecode"), len(hex_changed)),
                            hex_changed), False),
        PdfCase("attachment-filter-array", with_stream(filtered(dictionary, b"/Filter [/FlateDecode]"), compressed),
                True),
        PdfCase("attachment-filter-array-spaced",
                with_stream(filtered(dictionary, b"/Filter [ /FlateDecode ]"), compressed), True),
        PdfCase("attachment-flate-twice",
                with_stream(length(filtered(dictionary, b"/Filter [/FlateDecode /FlateDecode]"), len(twice)),
                            twice), True, unread=True),
        PdfCase("attachment-indirect-length",
                incremental_update(with_stream(length(dictionary, b"%d 0 R" % spare), compressed),
                                   {spare: b"%d" % len(compressed)}), True, unread=True),
        # a second manifest-bearing stream, added by an incremental update (nothing refers to it)
        PdfCase("second-manifest-update", second(b"/Filter /FlateDecode /Length %d" % len(flate_changed),
                                                 flate_changed), False, True),
        PdfCase("second-identical-manifest-update",
                second(b"/Filter /FlateDecode /Length %d" % len(compressed), compressed), False, True),
        PdfCase("second-manifest-uncompressed-update", second(b"/Length %d" % len(changed), changed), False, True),
        PdfCase("second-manifest-ascii-hex-update",
                second(b"/Filter /ASCIIHexDecode /Length %d" % len(hex_changed), hex_changed), False, True),
        PdfCase("second-manifest-indirect-length-update",
                second(b"/Filter /FlateDecode /Length %d 0 R" % (spare + 1), flate_changed,
                       {spare + 1: b"%d" % len(flate_changed)}), False, True),
        # the manifest object itself replaced by an update: readers show the new one, the old bytes remain
        PdfCase("manifest-replaced-by-update",
                incremental_update(pdf, {num: _stream_obj(length(dictionary, len(flate_changed)), flate_changed)}),
                False),
        # damage
        PdfCase("length-too-long", with_stream(length(dictionary, len(compressed) + 5), compressed)),
        PdfCase("length-too-short", with_stream(length(dictionary, len(compressed) - 5), compressed)),
        PdfCase("empty", b"", False),
        PdfCase("not-a-pdf", b"hello world\n", False),
    ]
    for cut in sorted({len(pdf) // 4, len(pdf) // 2, start + 5, end + 3, len(pdf) - 30, len(pdf) - 1}):
        cases.append(PdfCase(f"truncated-at-{cut}", pdf[:cut]))
    return cases


__all__ = ["Case", "PdfCase", "World", "build_world", "signature_cases", "pdf_mutations", "T"]
