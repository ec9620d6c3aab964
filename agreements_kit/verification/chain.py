"""Step: the signer's certificate path to the trusted root, with ``cryptography.x509.verification``.

Path building and the RFC 5280 rules (CA basic constraints, path length, key
usage keyCertSign, every signature on the path, validity at the given time) are
cryptography's, in Rust. Our leaves are S/MIME-style signing certificates, not web
clients, so the end-entity policy is WebPKI's with two changes: the extended key
usage must include emailProtection (instead of clientAuth), and a subject
alternative name is allowed but not required; key usage must include
digitalSignature and must not include keyCertSign or cRLSign.

Results are cached by the SHA-256 of the leaf and intermediates: across an audit a
therapist's certificate is validated once. The cached path is reused only after
re-checking each certificate's validity at the new time, since the verifier's
outcome for the same certificates depends on time only through their validity.

Every client signature brings a new one-time leaf under the same intake CA, and the
full check verifies the intake CA's certificate against the root again each time. So
once a full path ``leaf, CA, root`` is found, the CA is kept as *known*: a later leaf
under the same CA (the signature carrying that CA and nothing else) is first checked by
the same verifier with the CA as its trust anchor, at the leaf's time, with the CA and
the root valid at that time. A yes there is the full check's yes: what the anchored
check leaves out (the CA's own signature, its CA policy, its place below the root)
depends neither on the leaf nor on the time, and was checked once. CAs or roots with
name, policy or any-policy constraints are never kept (those constrain the leaf from
above). A no, or anything unusual, goes the full way, which says what is wrong.
``tests/test_fastpaths.py`` holds the two equal over made leaves at each edge.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store, VerificationError

from agreements_kit.formats.certprofile import common_name as _cn
from agreements_kit.formats.certprofile import fingerprint as _fingerprint


class ChainProblem(Exception):
    def __init__(self, code: str, message: str):
        self.code = code
        self.message = message
        super().__init__(message)


def _eku(policy: Any, cert: x509.Certificate, eku: x509.ExtendedKeyUsage | None) -> None:
    if eku is None or ExtendedKeyUsageOID.EMAIL_PROTECTION not in eku:
        raise ValueError("the certificate is not meant for signing documents (extended key usage)")


def _ku(policy: Any, cert: x509.Certificate, ku: x509.KeyUsage | None) -> None:
    if ku is None or not ku.digital_signature or ku.key_cert_sign or ku.crl_sign:
        raise ValueError("the certificate is not meant for signatures (key usage)")


_EE = (ExtensionPolicy.webpki_defaults_ee()
       .require_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _eku)
       .require_present(x509.KeyUsage, Criticality.CRITICAL, _ku)
       .may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None))
_CA = ExtensionPolicy.webpki_defaults_ca()


class PathValidator:
    """Validates signer certificates to one trusted root, caching successful paths."""

    def __init__(self, root: x509.Certificate, limit: int = 256):
        self.root = root
        self.store = Store([root])
        self.cache: OrderedDict[tuple[str, ...], list[x509.Certificate]] = OrderedDict()
        self.limit = limit
        self.anchored = True  # False: every path the full way (the differential tests' reference)
        # CA certificate SHA-256 -> (its store as a trust anchor, the path from it to the root), once a full
        # path through it was found (see the module's docstring).
        self.known: dict[str, tuple[Store, list[x509.Certificate]]] = {}

    def validate(self, leaf: x509.Certificate, leaf_sha256: str, others: list[x509.Certificate],
                 at: dt.datetime) -> list[x509.Certificate]:
        """The path (leaf first, root last) valid at ``at``; raises :class:`ChainProblem`."""
        intermediates = [c for c in others if c != leaf and c != self.root]
        # The intermediates are part of the key: a path found once must not vouch for a signature that
        # carries other (damaged, forged) CA certificates beside the same leaf.
        key = (leaf_sha256, *(_fingerprint(c) for c in intermediates))
        path = self.cache.get(key)
        if path is not None:
            self.cache.move_to_end(key)
            late = [c for c in path if not (c.not_valid_before_utc <= at <= c.not_valid_after_utc)]
            if not late:
                return path
        path = self._under_known_ca(leaf, intermediates, key[1:], at) if self.anchored else None
        if path is None:
            verifier = (PolicyBuilder().store(self.store).time(at).max_chain_depth(2)
                        .extension_policies(ca_policy=_CA, ee_policy=_EE).build_client_verifier())
            try:
                path = list(verifier.verify(leaf, intermediates).chain)
            except VerificationError as exc:
                raise _explain(str(exc), leaf, intermediates, self.root, at) from None
            self._remember_ca(path, intermediates, key[1:])
        self.cache[key] = path
        if len(self.cache) > self.limit:
            self.cache.popitem(last=False)
        return path

    def _under_known_ca(self, leaf: x509.Certificate, intermediates: list[x509.Certificate],
                        digests: tuple[str, ...], at: dt.datetime) -> list[x509.Certificate] | None:
        """The path ``leaf, CA, root`` when the leaf checks out with a known CA as its anchor; else None."""
        if len(intermediates) != 1:
            return None
        known = self.known.get(digests[0])
        if known is None:
            return None
        store, above = known
        if not all(c.not_valid_before_utc <= at <= c.not_valid_after_utc for c in above):
            return None
        verifier = (PolicyBuilder().store(store).time(at).max_chain_depth(1)
                    .extension_policies(ca_policy=_CA, ee_policy=_EE).build_client_verifier())
        try:
            chain = verifier.verify(leaf, []).chain
        except VerificationError:
            return None
        if len(chain) != 2 or chain[1] != above[0]:
            return None
        return [leaf, *above]

    def _remember_ca(self, path: list[x509.Certificate], intermediates: list[x509.Certificate],
                     digests: tuple[str, ...]) -> None:
        """After a full path ``leaf, CA, root`` through the one CA the signature carried: keep the CA."""
        if not self.anchored or len(path) != 3 or len(intermediates) != 1 or path[1] != intermediates[0] \
                or path[2] != self.root:
            return
        if any(_constrains(c) for c in path[1:]):
            return
        if len(self.known) >= 16:
            self.known.clear()
        self.known[digests[0]] = (Store([path[1]]), path[1:])


_CONSTRAINTS = (x509.NameConstraints, x509.PolicyConstraints, x509.InhibitAnyPolicy)


def _constrains(cert: x509.Certificate) -> bool:
    """Whether a CA certificate constrains the leaves below it beyond issuing them (then never an anchor)."""
    return any(isinstance(ext.value, _CONSTRAINTS) for ext in cert.extensions)


def _explain(text: str, leaf: x509.Certificate, others: list[x509.Certificate], root: x509.Certificate,
             at: dt.datetime) -> ChainProblem:
    """A sentence an auditor can act on, from cryptography's message (kept at the end for the record)."""
    for cert in [leaf, *others]:
        if not (cert.not_valid_before_utc <= at <= cert.not_valid_after_utc):
            return ChainProblem("validity.expired", f"the certificate '{_cn(cert)}' was not valid at the signing "
                                f"time {at:%Y-%m-%d %H:%M} UTC (valid {cert.not_valid_before_utc:%Y-%m-%d} to "
                                f"{cert.not_valid_after_utc:%Y-%m-%d})")
    if "key usage" in text or "EKU" in text:
        return ChainProblem("chain.usage", f"the certificate of {_cn(leaf)} is not meant for signing documents "
                            f"({text})")
    if "basicConstraints" in text or "keyCertSign" in text or "path length" in text:
        return ChainProblem("chain.not-a-ca", f"a certificate on the path of {_cn(leaf)} is not a certificate "
                            f"authority allowed to issue it: the chain was forged ({text})")
    return ChainProblem("chain.untrusted", f"the certificate of {_cn(leaf)} does not lead to the trusted root "
                        f"'{_cn(root)}' (its issuer is '{leaf.issuer.rfc4514_string()}'; {text})")

