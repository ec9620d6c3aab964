"""The time-stamp checker's short road, held to accepting nothing rfc3161-client refuses.

``TokenChecker`` verifies the first token under a set of TSA certificates with
rfc3161-client (OpenSSL's PKCS7_verify: chain to a trusted TSA root at the token's time,
TSA purpose, SignerInfo) and later tokens under the same certificates by a shorter road
of its own (validity window, one SignerInfo check). Here every token goes through both:
a checker warmed with a good token under the same certificates (the short road where
it applies) and a checker with ``fast = False`` (rfc3161-client for every token). Their
answers must be the same, code for code, over:

- real tokens from a local TSA process (``openssl ts -reply``), and every one-byte damage
  of one of them;
- tokens made here under certificates with chosen validity (the token's time one second
  before, at, and after each edge of the TSA certificate's and the TSA root's validity),
  with RSA and ECDSA TSA keys, a non-critical or missing timeStamping EKU, a SignerInfo
  with a second messageDigest, another digest algorithm, a signature by another key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import algos, cms, core, tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agreements_kit.localtsa import create, start
from agreements_kit.signing.timestamp import Timestamper
from agreements_kit.verification.timestamps import TokenChecker, TokenProblem

T0 = dt.datetime(2026, 6, 1, 12, 0, 0, tzinfo=dt.UTC)


def _outcome(checker: TokenChecker, token: bytes, value: bytes) -> tuple[Any, ...]:
    try:
        t = checker.check(token, value)
    except TokenProblem as exc:
        return ("refused", exc.code)
    return ("ok", t.time, t.accuracy, t.tsa_sha256)


def _both(roots: list[x509.Certificate], warm: tuple[bytes, bytes] | None, token: bytes, value: bytes
          ) -> tuple[tuple[Any, ...], tuple[Any, ...], TokenChecker]:
    fast = TokenChecker(roots)
    if warm is not None:
        assert _outcome(fast, *warm)[0] == "ok", "the warming token must pass"
    reference = TokenChecker(roots)
    reference.fast = False
    return _outcome(fast, token, value), _outcome(reference, token, value), fast


# ----------------------------------------------------------------------------- real tokens


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[x509.Certificate], list[tuple[bytes, bytes]]]:
    folder = create(Path(tmp_path_factory.mktemp("tsa")) / "tsa")
    root = x509.load_pem_x509_certificate((folder.path / "tsa-root.pem").read_bytes())
    values = [hashlib.sha256(bytes([i])).digest() * 2 for i in range(4)]
    with start(folder.path) as tsa:
        stamper = Timestamper((tsa.url,))
        return [root], [(stamper.token(v), v) for v in values]


def test_real_tokens_take_the_short_road_and_agree(real) -> None:
    roots, tokens = real
    for token, value in tokens[1:]:
        fast, ref, checker = _both(roots, tokens[0], token, value)
        assert fast == ref and fast[0] == "ok"
        assert checker._good, "the second token under the same certificates took the short road"


def test_every_one_byte_damage_of_a_real_token_gets_the_reference_answer(real) -> None:
    roots, tokens = real
    token, value = tokens[1]
    warm = tokens[0]
    fast = TokenChecker(roots)
    assert _outcome(fast, *warm)[0] == "ok"
    reference = TokenChecker(roots)
    reference.fast = False
    accepted, differ = 0, []
    cases = 0
    for i in range(len(token)):
        for mask in (0x01, 0x40, 0x80):
            damaged = bytearray(token)
            damaged[i] ^= mask
            a, b = _outcome(fast, bytes(damaged), value), _outcome(reference, bytes(damaged), value)
            if a != b:
                differ.append((i, mask, a[:2], b[:2]))
            accepted += a[0] == "ok"
            cases += 1
    assert not differ, differ[:5]
    assert 0 < accepted < cases // 4  # most damage is refused; some (in fields nothing signs or reads) is not


def test_a_token_for_other_bytes_is_refused_by_both(real) -> None:
    roots, tokens = real
    fast, ref, _ = _both(roots, tokens[0], tokens[1][0], tokens[2][1])
    assert fast == ref == ("refused", "time.token-imprint")


# ----------------------------------------------------------------------------- made tokens


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(key: Any, not_before: dt.datetime, not_after: dt.datetime) -> x509.Certificate:
    return (x509.CertificateBuilder().subject_name(_name("Made TSA root")).issuer_name(_name("Made TSA root"))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(key, hashes.SHA256()))


def _tsa_cert(key: Any, ca: x509.Certificate, ca_key: Any, not_before: dt.datetime, not_after: dt.datetime,
              eku: str = "critical") -> x509.Certificate:
    b = (x509.CertificateBuilder().subject_name(_name("Made TSA")).issuer_name(ca.subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(not_before).not_valid_after(not_after)
         .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True))
    if eku != "none":
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=eku == "critical")
    return b.sign(ca_key, hashes.SHA256())


def _token(value: bytes, gen_time: dt.datetime, cert: x509.Certificate, key: Any, *, serial: int = 1,
           digest: str = "sha256", second_digest: bool = False, sign_with: Any = None,
           extra: list[tuple[str, bytes]] = ()) -> bytes:  # type: ignore[assignment]
    """A TimeStampToken (ContentInfo) over SHA-256(value), made as a TSA makes one."""
    info = tsp.TSTInfo({
        "version": 1, "policy": "1.3.6.1.4.1.57264.2",
        "message_imprint": {"hash_algorithm": {"algorithm": "sha256"},
                            "hashed_message": hashlib.sha256(value).digest()},
        "serial_number": serial, "gen_time": gen_time, "accuracy": {"seconds": 1}, "ordering": False,
        "nonce": serial * 7919,
    })
    econtent = info.dump()
    cert_der = cert.public_bytes(serialization.Encoding.DER)
    from asn1crypto import x509 as ax509

    acert = ax509.Certificate.load(cert_der)
    attrs = [
        {"type": "content_type", "values": ["tst_info"]},
        {"type": "message_digest", "values": [hashlib.new(digest, econtent).digest()]},
        {"type": "signing_certificate_v2", "values": [{"certs": [{"cert_hash": hashlib.sha256(cert_der).digest()}]}]},
    ]
    if second_digest:
        attrs.append({"type": "message_digest", "values": [b"\x00" * 32]})
    signed_attrs = cms.CMSAttributes(attrs)
    for oid, der in extra:  # a signed attribute of a type the TSA does not write, its value as given
        signed_attrs.append(cms.CMSAttribute({"type": oid, "values": [core.Any.load(der)]}))
    signer = sign_with or key
    if isinstance(signer, ec.EllipticCurvePrivateKey):
        signature = signer.sign(signed_attrs.dump(), ec.ECDSA(getattr(hashes, digest.upper())()))
        sig_alg = f"{digest}_ecdsa"
    else:
        signature = signer.sign(signed_attrs.dump(), padding.PKCS1v15(), getattr(hashes, digest.upper())())
        sig_alg = "rsassa_pkcs1v15"
    signer_info = cms.SignerInfo({
        "version": "v1",
        "sid": cms.SignerIdentifier({"issuer_and_serial_number": cms.IssuerAndSerialNumber({
            "issuer": acert.issuer, "serial_number": acert.serial_number})}),
        "digest_algorithm": algos.DigestAlgorithm({"algorithm": digest}),
        "signed_attrs": signed_attrs,
        "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": sig_alg}),
        "signature": signature,
    })
    sd = cms.SignedData({
        "version": "v3", "digest_algorithms": [algos.DigestAlgorithm({"algorithm": digest})],
        "encap_content_info": {"content_type": "tst_info", "content": core.ParsableOctetString(econtent)},
        "certificates": [acert], "signer_infos": [signer_info],
    })
    return cms.ContentInfo({"content_type": "signed_data", "content": sd}).dump()


@pytest.fixture(scope="module", params=["ecdsa", "rsa"])
def made(request: pytest.FixtureRequest) -> dict[str, Any]:
    def new_key() -> Any:
        return ec.generate_private_key(ec.SECP256R1()) if request.param == "ecdsa" else \
            rsa.generate_private_key(public_exponent=65537, key_size=2048)

    ca_key, key = new_key(), new_key()
    ca = _ca(ca_key, T0 - dt.timedelta(days=400), T0 + dt.timedelta(days=400))
    cert = _tsa_cert(key, ca, ca_key, T0 - dt.timedelta(days=10), T0 + dt.timedelta(days=10))
    return {"ca": ca, "ca_key": ca_key, "key": key, "cert": cert, "new_key": new_key}


VALUE = b"a signature value" * 4


def _agree(m: dict[str, Any], token: bytes, cert: x509.Certificate | None = None, key: Any = None,
           ca: x509.Certificate | None = None) -> tuple[Any, ...]:
    """Both answers for ``token``, the fast checker first warmed under the same certificates."""
    cert, key, ca = cert or m["cert"], key or m["key"], ca or m["ca"]
    warm_time = max(cert.not_valid_before_utc, ca.not_valid_before_utc) + dt.timedelta(seconds=30)
    warm = (_token(b"warm" * 8, warm_time, cert, key, serial=99), b"warm" * 8)
    fast, ref, _ = _both([ca], warm, token, VALUE)
    assert fast == ref
    return fast


def test_made_token_inside_validity_is_accepted_by_both(made) -> None:
    assert _agree(made, _token(VALUE, T0, made["cert"], made["key"]))[0] == "ok"


@pytest.mark.parametrize("edge", ["cert-before", "cert-after"])
@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_token_time_at_the_edges_of_the_tsa_certificates_validity(made, edge: str, offset: int) -> None:
    cert = made["cert"]
    at = cert.not_valid_before_utc if edge == "cert-before" else cert.not_valid_after_utc
    outcome = _agree(made, _token(VALUE, at + dt.timedelta(seconds=offset), cert, made["key"]))
    inside = offset >= 0 if edge == "cert-before" else offset < 0  # OpenSSL: notBefore <= t < notAfter
    assert (outcome[0] == "ok") == inside, outcome


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_token_time_at_the_end_of_the_tsa_roots_validity(made, offset: int) -> None:
    ca_key = made["new_key"]()
    ca = _ca(ca_key, T0 - dt.timedelta(days=30), T0 + dt.timedelta(days=5))
    cert = _tsa_cert(made["key"], ca, ca_key, T0 - dt.timedelta(days=10), T0 + dt.timedelta(days=10))
    outcome = _agree(made, _token(VALUE, ca.not_valid_after_utc + dt.timedelta(seconds=offset), cert, made["key"]),
                     cert=cert, ca=ca)
    assert (outcome[0] == "ok") == (offset < 0), outcome


@pytest.mark.parametrize("eku", ["non-critical", "none"])
def test_tsa_certificate_without_a_critical_timestamping_eku_is_refused_by_both(made, eku: str) -> None:
    cert = _tsa_cert(made["key"], made["ca"], made["ca_key"], T0 - dt.timedelta(days=10), T0 + dt.timedelta(days=10),
                     eku=eku)
    fast, ref, _ = _both([made["ca"]], None, _token(VALUE, T0, cert, made["key"]), VALUE)
    assert fast == ref and fast[0] == "refused"


def test_second_message_digest_another_digest_or_another_key(made) -> None:
    for token in (_token(VALUE, T0, made["cert"], made["key"], second_digest=True),
                  _token(VALUE, T0, made["cert"], made["key"], digest="sha384"),
                  _token(VALUE, T0, made["cert"], made["key"], sign_with=made["new_key"]())):
        _agree(made, token)  # whatever the reference says, the short road says the same
    assert _agree(made, _token(VALUE, T0, made["cert"], made["key"], sign_with=made["new_key"]()))[0] == "refused"


@pytest.mark.parametrize("extra", [("1.2.3.4.5", b"\x02\x02\x00\x05"),  # an INTEGER not in minimal form
                                   ("1.2.3.4.5", b"\x02\x01\x05"),
                                   ("1.2.840.113549.1.9.5", b"\x17\x0d260601120000Z")])  # a second signingTime
def test_a_signed_attribute_the_tsa_does_not_write_takes_the_full_road(made, extra: tuple[str, bytes]) -> None:
    """OpenSSL re-encodes the values it reads before checking the signature: a value written otherwise than it
    would write it verifies as written and not as OpenSSL reads it (found in review)."""
    _agree(made, _token(VALUE, T0, made["cert"], made["key"], extra=[extra]))
