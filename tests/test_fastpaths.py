"""The verifier's fast paths, each held equal to the slower code it stands in for.

An audit checks every agreement with the same strict readers as ``verify``; to make it
affordable some of them take shortcuts that must change nothing they accept or refuse:

- ``formats/jsonio``: ``parse`` first tries plain ``json.loads`` and accepts only when
  re-encoding gives back the very bytes (else the full, hooked path runs and names the
  fault); ``canonical_json`` writes the pretty form itself instead of through the
  standard library's pure-Python pretty printer;
- ``formats/manifest``: ``embedded_bytes`` cuts ``document`` out of the canonical text;
- ``verification/cms``: the signature is read by cryptography's strict DER reader
  (formats/cmsder) instead of asn1crypto; held here, on a time-stamped signature from a
  real local TSA process and thousands of damaged copies of it, to accepting nothing
  asn1crypto's eager parse of every part (tests/cms_reference.py) refused, signature and
  token together (tests/test_token_fastpath.py holds the token checker's own short road).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from agreements_kit.errors import InvalidFormat
from agreements_kit.formats import jsonio
from agreements_kit.formats.manifest import Manifest
from agreements_kit.localtsa import create, start
from agreements_kit.signing.cms import sign_detached
from agreements_kit.signing.timestamp import Timestamper, timestamp_signature
from agreements_kit.verification import cms

# ----------------------------------------------------------------------------- JSON

_keys = st.text(st.characters(codec="utf-8"), max_size=8)
_scalars = st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.text(st.characters(codec="utf-8"),
                                                                               max_size=12)
_values = st.recursive(_scalars | st.floats(allow_nan=True, allow_infinity=True),
                       lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4),
                       max_leaves=25)


def _stdlib_pretty(value: Any) -> bytes:
    return (json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


@settings(max_examples=400, deadline=None)
@given(_values)
def test_pretty_printer_writes_what_the_standard_library_writes(value: Any) -> None:
    assert jsonio.canonical_json(value) == _stdlib_pretty(value)


def _outcome(data: bytes, form: str | None, depth: int) -> tuple[str, Any]:
    try:
        return "ok", jsonio.parse(data, "x.json", max_bytes=1 << 20, max_depth=depth, canonical_form=form)
    except InvalidFormat as exc:
        return "refused", exc.code


def _slow_outcome(monkeypatch: pytest.MonkeyPatch, data: bytes, form: str | None, depth: int) -> tuple[str, Any]:
    with monkeypatch.context() as m:
        m.setattr(jsonio, "_parse_plain", lambda *a: None)
        return _outcome(data, form, depth)


def _layouts(value: Any) -> list[bytes]:
    out = [jsonio.canonical_json(value)]
    for kw in ({"separators": (",", ":"), "sort_keys": True}, {"separators": (",", ":")}, {"indent": 2},
               {"sort_keys": True}, {"ensure_ascii": True, "sort_keys": True, "separators": (",", ":")}):
        with contextlib.suppress(UnicodeEncodeError):
            out.append(json.dumps(value, ensure_ascii=kw.pop("ensure_ascii", False), **kw).encode("utf-8"))
    return out


@settings(max_examples=300, deadline=None)
@given(_values, st.sampled_from([None, "compact", "rfc8785", "pretty"]), st.integers(1, 4))
def test_fast_parse_accepts_and_refuses_exactly_what_the_full_parse_does(value: Any, form: str | None, depth: int
                                                                        ) -> None:
    mp = pytest.MonkeyPatch()
    try:
        for data in _layouts(value):
            for candidate in (data, data[:-1], data + b" ", b'{"a":1,"a":2}', b"\xef\xbb\xbf" + data):
                fast, slow = _outcome(candidate, form, depth), _slow_outcome(mp, candidate, form, depth)
                assert fast == slow or (fast[0] == slow[0] == "ok" and _same(fast[1], slow[1])), candidate
    finally:
        mp.undo()


def _same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (1, 1.0 and True are == in Python)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True) and type(a) is type(b)


def test_check_canonical_of_another_value_is_not_taken_from_the_last_parse() -> None:
    data = b'{"a":1}'
    jsonio.parse(data, "x", max_bytes=100)
    with pytest.raises(InvalidFormat) as err:
        jsonio.check_canonical({"a": 2}, data, "x", "rfc8785")
    assert err.value.code == "format.not-canonical"


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=5), _values)
def test_embedded_manifest_bytes_are_the_canonical_form_without_document(rest: dict[str, Any], document: Any
                                                                       ) -> None:
    value = {"agreement": {"id": "x"}, **{k: v for k, v in rest.items() if k != "document"}, "document": document}
    raw = jsonio.canonical_json(value)
    expected = jsonio.canonical_json({k: v for k, v in value.items() if k != "document"})
    assert Manifest(raw, value, canonical=True).embedded_bytes() == expected
    assert Manifest(raw, value).embedded_bytes() == expected


# ----------------------------------------------------------------------------- CMS


def _eager(sd: Any, cache: Any, acms: Any, core: Any, *, token: bool) -> None:
    """What the asn1crypto reader did first: every part but the certificates, through asn1crypto's .native."""
    for part in ("version", "digest_algorithms", "encap_content_info", "crls", "signer_infos"):
        sd[part].native  # noqa: B018


@pytest.fixture(scope="module")
def stamped(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes, bytes]:
    """A record, its detached signature time-stamped by a real local TSA process, and the TSA's root (PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Fast path signer")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .sign(key, hashes.SHA256()))
    record = b'{"format":"agreements-kit/record","note":"fast path"}'
    folder = create(Path(tmp_path_factory.mktemp("tsa")) / "tsa")
    with start(folder.path) as tsa:
        p7s, _token = timestamp_signature(sign_detached(record, cert, key), Timestamper((tsa.url,)))
    return record, p7s, (folder.path / "tsa-root.pem").read_bytes()


EAGER_BUDGET = 2  # seconds for one eager parse (the reference), by SIGALRM


class _OverBudget(BaseException):
    """Not an Exception: the code under test catches those, and must not swallow this."""


def _bounded(fn: Any) -> tuple[Any, ...] | None:
    """fn() within EAGER_BUDGET seconds, else None."""
    import signal

    def expired(signum: int, frame: Any) -> None:
        raise _OverBudget

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(EAGER_BUDGET)
    try:
        return fn()  # type: ignore[no-any-return]
    except _OverBudget:
        return None
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _sig_outcome(reader: Any, record: bytes, p7s: bytes, cache: Any, tsa_root: bytes) -> tuple[Any, ...]:
    """A signature through one reader, then its token through the one token checker (step 6): either
    reader's acceptance means nothing if what it let through is then refused."""
    from agreements_kit.verification.timestamps import TokenChecker, TokenProblem

    try:
        f = reader.check_signature(record, p7s, cache)
    except reader.CmsProblem as exc:
        return ("refused", exc.code)
    if f.token is not None:
        try:
            TokenChecker([x509.load_pem_x509_certificate(tsa_root)]).check(f.token, f.signature_value)
        except TokenProblem as exc:
            return ("refused", exc.code)
    return ("ok", f.signer_sha256, f.token, f.signature_value, f.signing_time)


def _new_outcomes(record: bytes, cases: list[bytes], tsa_root: bytes) -> list[tuple[Any, ...]]:
    """Every case through today's reader (in a child process), one cache shared as in an audit."""
    import sys

    assert "pyhanko" not in sys.modules
    cache = cms.CertCache()
    return [_sig_outcome(cms, record, c, cache, tsa_root) for c in cases]


def _reference_outcomes(record: bytes, cases: list[bytes], tsa_root: bytes) -> list[tuple[Any, ...] | None]:
    """Every case through the asn1crypto reader, eager (in a child process), each within EAGER_BUDGET."""
    import cms_reference as ref

    ref._signed_data_in_full = _eager  # type: ignore[assignment]
    cache = ref.CertCache()
    return [_bounded(lambda c=c: _sig_outcome(ref, record, c, cache, tsa_root)) for c in cases]


def test_strict_der_reader_accepts_nothing_the_asn1crypto_reader_refused(stamped: tuple[bytes, bytes, bytes]
                                                                         ) -> None:
    record, p7s, tsa_root = stamped
    cases = [p7s, p7s + b"\x00", *(p7s[:n] for n in range(0, len(p7s), 61))]
    for i in range(len(p7s)):
        for mask in ((0x01, 0x80) if i % 2 else (0x20,)):
            damaged = bytearray(p7s)
            damaged[i] ^= mask
            cases.append(bytes(damaged))
    # Both run in a fresh interpreter, as `agreements verify` does: importing pyHanko (other test
    # modules do) registers more asn1crypto attribute types, which changes what a token's damaged
    # inner attributes parse as; and within the whole suite asn1crypto's eager parse slowed to
    # seconds per case.
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_tests_on_path) as pool:
        new = pool.submit(_new_outcomes, record, cases, tsa_root).result(timeout=600)
        reference = pool.submit(_reference_outcomes, record, cases, tsa_root).result(timeout=600)
    # A few damaged inputs take the eager parse over its budget; the new reader answers those at once.
    slow = [i for i, o in enumerate(reference) if o is None]
    assert len(slow) <= 5, f"{len(slow)} damaged inputs took the eager parse over {EAGER_BUDGET} s"
    assert all(new[i][0] != "ok" for i in slow), "an input the eager parse chokes on was accepted"
    looser = [i for i, (a, b) in enumerate(zip(new, reference, strict=True))
              if b is not None and a[0] == "ok" and a != b]
    assert not looser, [(i, new[i][:1], reference[i][:2]) for i in looser[:10]]
    # Stricter only where the reference misread: where it accepted a damaged signature as the very one signed
    # (same signer, token, value and time: damage in bytes nothing signs or reads), the new reader accepts it
    # too. What it refuses and the reference took is a different reading (a token's attribute tag damaged,
    # asn1crypto accepts the signature as one without a token): refusing that is the point of reading DER.
    stricter = [i for i, (a, b) in enumerate(zip(new, reference, strict=True))
                if b is not None and b[0] == "ok" and a[0] != "ok"]
    assert all(reference[i] != reference[0] for i in stricter), [(i, new[i][:2]) for i in stricter[:10]]
    accepted = sum(o[0] == "ok" for o in new)
    assert new[0][0] == "ok" and new[0][2] is not None, "the undamaged signature carries its token and passes"
    assert 10 < accepted < len(cases) - 300, (accepted, len(cases))  # both outcomes are well represented


def _tests_on_path() -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))


# ----------------------------------------------------------------------------- a leaf under a known intake CA

ANCHOR_PASS = {"passphrase": b"anchor root passphrase", "intake_passphrase": b"anchor intake passphrase",
               "clinician_passphrase": b"anchor clinician passphrase"}


@pytest.fixture(scope="module")
def intake_pki(tmp_path_factory):
    from agreements_kit.signing.pki import PKI, load_key
    from agreements_kit.signing.setup import init_practice

    root = tmp_path_factory.mktemp("anchored") / "practice"
    init_practice(root, name="Anchored Practice", jurisdiction="US", phone="(212) 555-0100",
                  therapists={"lee": ("Dr. Robin Lee", "PhD", "psychologist")}, **ANCHOR_PASS)
    pki = PKI(root / "pki")
    return (pki, load_key(pki.intake_key, ANCHOR_PASS["intake_passphrase"], "intake CA"),
            load_key(pki.root_key, ANCHOR_PASS["passphrase"], "root"))


def _made_leaf(kind: str, intake: x509.Certificate, intake_key, root: x509.Certificate, root_key,
               start: dt.datetime, end: dt.datetime) -> x509.Certificate:
    """A client's one-time certificate as the PKI makes it, or with one thing changed (``kind``)."""
    key = ec.generate_private_key(ec.SECP256R1())
    issuer, signer = (root, root_key) if kind == "issued-by-root" else (intake, intake_key)
    if kind == "another-key-same-name":
        signer = ec.generate_private_key(ec.SECP256R1())
    eku = {"no-eku": None, "server-auth": [ExtendedKeyUsageOID.SERVER_AUTH]}.get(kind,
                                                                            [ExtendedKeyUsageOID.EMAIL_PROTECTION])
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Jane Q. Doe"),
                                        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "client")]))
               .issuer_name(issuer.subject if kind != "wrong-issuer-name" else root.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(end)
               .add_extension(x509.BasicConstraints(ca=kind == "ca-true", path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
                              critical=False))
    if kind != "no-key-usage":
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=True, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=kind == "key-cert-sign", crl_sign=False, encipher_only=False,
            decipher_only=False), critical=True)
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if kind != "no-san":
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.UniformResourceIdentifier("urn:agreements-kit:agreement:agr-anchor:client")]), critical=False)
    if kind == "unknown-critical-extension":
        builder = builder.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"),
                                                                   b"\x05\x00"), critical=True)
    return builder.sign(signer, hashes.SHA256())


LEAF_KINDS = ["as-made", "no-san", "no-eku", "server-auth", "no-key-usage", "key-cert-sign", "ca-true",
              "unknown-critical-extension", "another-key-same-name", "wrong-issuer-name", "issued-by-root"]


def _path_outcome(validator, leaf: x509.Certificate, others: list[x509.Certificate], at: dt.datetime) -> tuple:
    from agreements_kit.formats.certprofile import fingerprint
    from agreements_kit.verification.chain import ChainProblem

    try:
        return ("valid", [fingerprint(c) for c in validator.validate(leaf, fingerprint(leaf), others, at)])
    except ChainProblem as exc:
        return ("refused", exc.code)


def test_a_leaf_under_a_known_intake_ca_gets_the_full_paths_answer(intake_pki):
    """The anchored road (the intake CA kept as a trust anchor once a full path went through it) gives the
    full check's answer for one-time leaves of every kind, at times inside, before and after each validity
    (the leaf's, the intake CA's, the root's), and it is taken for the valid ones."""
    from agreements_kit.verification.chain import PathValidator

    pki, intake_key, root_key = intake_pki
    intake, root = pki.intake(), pki.root()
    signed = intake.not_valid_before_utc + dt.timedelta(days=30)
    full, fast = PathValidator(root), PathValidator(root)
    full.anchored = False
    first = _made_leaf("as-made", intake, intake_key, root, root_key, signed, signed + dt.timedelta(hours=1))
    others = [root, intake]
    assert _path_outcome(fast, first, [*others, first], signed)[0] == "valid" and fast.known  # the CA is now known
    ends = {"leaf": (signed, signed + dt.timedelta(hours=1)),
            "past the intake CA": (intake.not_valid_after_utc - dt.timedelta(days=1),
                                   intake.not_valid_after_utc + dt.timedelta(days=400)),
            "before the intake CA": (intake.not_valid_before_utc - dt.timedelta(days=2),
                                     intake.not_valid_before_utc + dt.timedelta(days=1))}
    compared = anchored = 0
    for kind in LEAF_KINDS:
        for label, (begin, end) in ends.items():
            leaf = _made_leaf(kind, intake, intake_key, root, root_key, begin, end)
            edges = [begin, end, begin - dt.timedelta(seconds=1), end + dt.timedelta(seconds=1),
                     begin + (end - begin) / 2, intake.not_valid_after_utc, intake.not_valid_after_utc +
                     dt.timedelta(seconds=1), intake.not_valid_before_utc - dt.timedelta(seconds=1),
                     root.not_valid_after_utc + dt.timedelta(seconds=1)]
            for at in edges:
                chain = [*others, leaf]
                want, got = _path_outcome(full, leaf, chain, at), _path_outcome(fast, leaf, chain, at)
                assert got == want, (kind, label, at, want, got)
                compared += 1
                fast.cache.clear()  # each answer from the road under test, not from the cache of paths
                if want[0] == "valid" and len(want[1]) == 3:  # through the intake CA (not issued by the root)
                    assert fast._under_known_ca(leaf, [intake], (fingerprint_of(intake),), at) is not None
                    anchored += 1
    assert compared == len(LEAF_KINDS) * len(ends) * 9 and anchored > 10


def fingerprint_of(cert: x509.Certificate) -> str:
    from agreements_kit.formats.certprofile import fingerprint

    return fingerprint(cert)


def test_a_known_intake_ca_outliving_its_root_is_no_anchor_past_the_roots_end(intake_pki):
    """A CA valid beyond its root's end (made here: the practice's are not) gives a leaf checked after the
    root's end the full check's answer: the root's validity is checked on the anchored road too."""
    from agreements_kit.verification.chain import PathValidator

    pki, _, root_key = intake_pki
    intake, root = pki.intake(), pki.root()
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder().subject_name(x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, "Outliving Intake CA"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "agreements-kit intake")]))
        .issuer_name(root.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(intake.not_valid_before_utc)
        .not_valid_after(root.not_valid_after_utc + dt.timedelta(days=400)))
    for ext in intake.extensions:
        if isinstance(ext.value, x509.SubjectKeyIdentifier):
            builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        elif isinstance(ext.value, x509.AuthorityKeyIdentifier):
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False)
        else:
            builder = builder.add_extension(ext.value, ext.critical)
    ca = builder.sign(root_key, hashes.SHA256())
    full, fast = PathValidator(root), PathValidator(root)
    full.anchored = False
    early = intake.not_valid_before_utc + dt.timedelta(days=1)
    first = _made_leaf("as-made", ca, key, root, root_key, early, early + dt.timedelta(hours=1))
    assert _path_outcome(fast, first, [root, ca, first], early)[0] == "valid" and fast.known
    late = _made_leaf("as-made", ca, key, root, root_key, root.not_valid_after_utc - dt.timedelta(days=1),
                      root.not_valid_after_utc + dt.timedelta(days=10))
    for at in (root.not_valid_after_utc, root.not_valid_after_utc + dt.timedelta(seconds=1),
               root.not_valid_after_utc + dt.timedelta(days=5)):
        chain = [root, ca, late]
        assert _path_outcome(fast, late, chain, at) == _path_outcome(full, late, chain, at), at
        fast.cache.clear()
