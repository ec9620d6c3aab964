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
