"""Long-term evidence inside each signature: the whole certificate chain and the CRLs in force at signing.

A verifier years later may have nothing from the practice but its published root
fingerprint. So every detached CMS signature the practice makes carries, in the
SignedData's own fields (RFC 5652 5.1), what is needed to judge it:

- ``certificates``: the signer's certificate, its intermediate (the intake CA for a
  client or guardian) and the practice root, each once;
- ``crls``: the CRL set (``pki/crl.pem``) in force at signing: the root's and the intake
  CA's CRL, whose number and hashes the ledger records.

Both fields lie outside what the signer signed (the SignerInfo's signed attributes) and
outside the time-stamp token (over the signature value), so adding them changes neither:
the SignerInfo keeps its exact bytes, which :func:`add_evidence` checks before it returns.
OpenSSL reads both: ``openssl cms -verify -crl_check`` uses the embedded CRLs. The TSA's
chain travels inside the time-stamp token itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from asn1crypto import cms, core
from asn1crypto import crl as acrl
from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agreements_kit.errors import InvalidFormat, PKIError, SigningError


def add_evidence(p7s: bytes, certificates: Sequence[x509.Certificate],
                 crls: Sequence[x509.CertificateRevocationList]) -> bytes:
    """``p7s`` with ``certificates`` (those it lacks) and ``crls`` added to its SignedData.

    The SignerInfo (signed attributes, signature, unsigned time-stamp token) keeps its
    exact bytes; a signature that already carries CRLs is refused (evidence is added once).
    """
    try:
        info = cms.ContentInfo.load(p7s)
        signed = info["content"]
        if info["content_type"].native != "signed_data":
            raise ValueError("not SignedData")
        signer_infos = signed["signer_infos"].dump()
        present = signed["certificates"]
        choices = [] if isinstance(present, core.Void) else list(present)
        have = {c.chosen.dump() for c in choices if c.name == "certificate"}
        existing_crls = signed["crls"]
    except Exception:
        raise InvalidFormat("not a CMS signature", code="format.cms") from None
    if not isinstance(existing_crls, core.Void) and len(existing_crls):
        raise SigningError("the signature already carries CRLs", code="conflict.evidence")
    for cert in certificates:
        der = cert.public_bytes(serialization.Encoding.DER)
        if der not in have:
            choices.append(cms.CertificateChoices(name="certificate", value=ax509.Certificate.load(der)))
            have.add(der)
    # A new SET OF is written in DER order (X.690 11.6), as OpenSSL writes the signer's own: strict DER
    # readers (cryptography's PKCS#7 loader warns, and means to refuse) want it sorted.
    signed["certificates"] = cms.CertificateSet(choices)
    if crls:
        signed["crls"] = cms.RevocationInfoChoices([
            cms.RevocationInfoChoice(name="crl", value=acrl.CertificateList.load(
                c.public_bytes(serialization.Encoding.DER))) for c in crls])
    out: bytes = info.dump(force=False)
    if cms.ContentInfo.load(out)["content"]["signer_infos"].dump() != signer_infos:
        raise SigningError("adding the evidence would change the signer's part of the signature", code="usage.evidence")
    return out


def signer_certificate(p7s: bytes) -> x509.Certificate:
    """The certificate of the SignerInfo (by issuer and serial) among the signature's certificates."""
    try:
        signed = cms.ContentInfo.load(p7s)["content"]
        sid = signed["signer_infos"][0]["sid"].chosen
        for choice in signed["certificates"]:
            cert = choice.chosen
            if cert.serial_number == sid["serial_number"].native and cert.issuer.dump() == sid["issuer"].dump():
                return x509.load_der_x509_certificate(cert.dump())
    except Exception:
        pass
    raise InvalidFormat("the signature does not carry its signer's certificate", code="format.cms")


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except Exception:
        return False
    return True


def path_to_root(leaf: x509.Certificate, cas: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    """The CA certificates from ``leaf``'s issuer up to a self-signed root, as far as ``cas`` reach."""
    out: list[x509.Certificate] = []
    current = leaf
    for _ in range(len(cas)):
        parent = next((c for c in cas if c.subject == current.issuer and c not in out and _issued_by(current, c)),
                      None)
        if parent is None:
            break
        out.append(parent)
        if parent.subject == parent.issuer:
            break
        current = parent
    return out


def practice_evidence(pki_dir: Path) -> tuple[list[x509.Certificate], list[x509.CertificateRevocationList]]:
    """The practice's CA certificates (root, intake CA, clinician CA) and its CRL set in force now."""
    from agreements_kit.signing.pki import PKI

    pki = PKI(pki_dir)
    if not pki.crl.is_file():
        raise PKIError(f"the CRL set {pki.crl} is missing: a signature must carry the revocation status in force "
                       "when it is made; restore it from the practice's published copy")
    cas = [pki.root()]
    if pki.intake_cert.is_file():
        cas.append(pki.intake())
    if pki.has_clinician_ca():
        cas.append(pki.clinician_ca())
    return cas, pki.crls()


def embed_practice_evidence(p7s: bytes, pki_dir: Path) -> bytes:
    """``p7s`` with its signer's whole chain up to the practice root and the CRL set in force now.

    What signing's ``_commit`` calls after ``_stamp``."""
    cas, crls = practice_evidence(pki_dir)
    return add_evidence(p7s, path_to_root(signer_certificate(p7s), cas), crls)
