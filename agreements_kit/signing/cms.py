"""Detached CMS (RFC 5652) signatures over record bytes.

``cryptography`` creates them; ``Binary`` is essential: without it the signature
covers a line-ending-converted copy, and OpenSSL (``-binary``) and pyHanko
reject it. The signer's certificate and its intermediate travel inside the
signature, so an auditor needs only the practice root.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7


def sign_detached(data: bytes, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey,
                  intermediates: Sequence[x509.Certificate] = ()) -> bytes:
    """DER-encoded detached CMS SignedData over ``data`` (SHA-256, ECDSA)."""
    builder = pkcs7.PKCS7SignatureBuilder().set_data(data).add_signer(cert, key, hashes.SHA256())
    for extra in intermediates:
        builder = builder.add_certificate(extra)
    return builder.sign(serialization.Encoding.DER,
                        [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary])
