"""Every strict parser of agreements_kit.formats, fed random and mutated input (hypothesis).

The promise of the formats layer: whatever the bytes, a parser returns a document or
raises ``InvalidFormat`` (the PDF scan: a list or None), never another exception, in
time and memory bounded by the input's size; it accepts a document only when the bytes
are exactly the canonical form of what they say, so that no edit of a real record,
manifest or ledger line can read as a different document in bytes a canonical writer
would not have produced. Valid documents round-trip. Folders are read without following
links or opening FIFOs and devices, and without reading oversize files. At the command
line, ``agreements verify`` turns all of it into exit 1 (not valid) or 2 (cannot check)
with no traceback.

The real documents come from the practice test_schemas builds (one per session).
Example counts are modest; time bounds are hypothesis deadlines, memory bounds
tracemalloc peaks.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import stat
import tempfile
import tracemalloc
import zlib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_schemas import GUARDED, HALF, LEGACY, SIGNED, VOIDED, shared_practice

from agreements_kit.cli.commands import main
from agreements_kit.errors import InvalidFormat, LedgerError, RecordError
from agreements_kit.formats import crlset, folder, jsonio, pdfattach
from agreements_kit.formats.crlset import parse_crl_set
from agreements_kit.formats.folder import read_folder
from agreements_kit.formats.ledger import parse_entry
from agreements_kit.formats.manifest import parse_manifest
from agreements_kit.formats.pdfattach import embedded_manifest, scan_manifests
from agreements_kit.formats.record import parse_record

FAST = settings(max_examples=150, deadline=dt.timedelta(seconds=2),
                suppress_health_check=[HealthCheck.function_scoped_fixture])
SLOW = settings(max_examples=40, deadline=dt.timedelta(seconds=10),
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
MB = 1024 * 1024


# --------------------------------------------------------------------------- the real documents


class Real:
    """Bytes of real documents, read once from the shared practice and the legacy vectors."""

    def __init__(self, root: Path) -> None:
        signed = root / "signed"
        self.root = root
        self.records = {f"{p.parent.name}/{p.name}": p.read_bytes()
                        for base in (signed, LEGACY) for p in sorted(base.glob("*/[0-9][0-9]-*.json"))}
        self.manifests = {p.parent.name: p.read_bytes() for base in (signed, LEGACY)
                          for p in sorted(base.glob("*/manifest.json"))}
        self.pdf = (signed / SIGNED / "agreement.pdf").read_bytes()
        self.embedded = embedded_manifest(self.pdf)
        self.lines = [line for base in (signed, LEGACY)
                      for line in (base / "ledger.jsonl").read_bytes().split(b"\n")[:-1]]
        self.crl_pem = (root / "pki" / "crl.pem").read_bytes()
        assert self.embedded is not None
        assert {parse_record(raw, n).kind for n, raw in self.records.items()} == {"client", "guardian", "therapist",
                                                                                 "void"}


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> Real:
    return Real(shared_practice(tmp_path_factory))


def encode_record(data: dict) -> bytes:
    return jsonio.canonical_json(data) if data["format_version"] == 1 else jsonio.jcs(data)


def encode_line(data: dict) -> bytes:
    return jsonio.jcs(data) if "format_version" in data else jsonio.compact_json(data)


# Each parser, by format: parse(bytes) -> document, and the canonical writer of a parsed document.
PARSERS = {
    "record": (lambda b: parse_record(b, "01-client.json"), lambda doc: encode_record(doc.data)),
    "manifest": (lambda b: parse_manifest(b, "manifest.json"), lambda doc: jsonio.canonical_json(doc.data)),
    "embedded": (lambda b: parse_manifest(b, "embedded", embedded=True), lambda doc: jsonio.canonical_json(doc.data)),
    "ledger": (lambda b: parse_entry(b, "ledger.jsonl", 7), lambda doc: encode_line(doc.data)),
}


def outcome(kind: str, data: bytes) -> Any:
    """The parsed document, or the InvalidFormat raised; any other exception fails the test."""
    parse, _ = PARSERS[kind]
    try:
        return parse(data)
    except InvalidFormat as exc:
        error = exc
    assert error.code.startswith("format."), error.code
    assert error.message
    return error


def originals(real: Real, kind: str) -> list[bytes]:
    if kind == "record":
        return list(real.records.values())
    if kind == "manifest":
        return list(real.manifests.values())
    if kind == "embedded":
        return [real.embedded]
    return real.lines


# --------------------------------------------------------------------------- jsonio

# Integral floats of 2**53 or more are left out: RFC 8785 writes 2.0**53 as 9007199254740992, which reads back
# as an integer that RFC 8785 (the rfc8785 package) refuses to write. No format holds floats, except manifest
# variables (the "pretty" form, where they round-trip).
json_scalars = (st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1)
                | st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: abs(f) < 2**53 or
                                                                          not f.is_integer())
                | st.text(max_size=12))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=16)
FORMS = (None, "pretty", "compact", "rfc8785")


@FAST
@given(data=st.binary(max_size=2048), form=st.sampled_from(FORMS))
@example(data=b"1" * 5000, form=None)  # more digits than Python converts: a ValueError inside json
@example(data=b"1e400", form=None)  # Infinity in disguise
@example(data=b'"\\ud800"', form="rfc8785")  # a lone surrogate has no UTF-8 form
@example(data=b"[" * 100_000, form=None)
@example(data=b"\xef\xbb\xbf{}", form=None)
def test_jsonio_random_bytes(data: bytes, form: str | None) -> None:
    code = "format.none"
    try:
        jsonio.parse(data, "x.json", max_bytes=1 << 20, canonical_form=form)
    except InvalidFormat as exc:
        code = exc.code
    assert code.startswith("format.")


@FAST
@given(value=json_values, form=st.sampled_from(FORMS[1:]))
def test_jsonio_canonical_round_trip(value: Any, form: str) -> None:
    data = jsonio.CANONICAL[form](value)
    parsed = jsonio.parse(data, "x.json", max_bytes=1 << 20, max_depth=64, canonical_form=form)
    assert parsed == value
    assert jsonio.CANONICAL[form](parsed) == data


@FAST
@given(value=json_values, form=st.sampled_from(FORMS[1:]), indent=st.sampled_from([None, 0, 1, 2, 4]),
       ascii_only=st.booleans(), sort=st.booleans(), spaced=st.booleans(), newline=st.booleans())
def test_jsonio_other_layouts_are_refused(value: Any, form: str, indent, ascii_only: bool, sort: bool,
                                          spaced: bool, newline: bool) -> None:
    """Any other writer's bytes are accepted only when they happen to be the canonical bytes."""
    text = json.dumps(value, indent=indent, ensure_ascii=ascii_only, sort_keys=sort,
                      separators=(", ", ": ") if spaced else (",", ":"))
    data = (text + ("\n" if newline else "")).encode("utf-8")
    canonical = jsonio.CANONICAL[form](value)
    try:
        parsed = jsonio.parse(data, "x.json", max_bytes=1 << 20, max_depth=64, canonical_form=form)
    except InvalidFormat as exc:
        code = exc.code
    else:
        code = "accepted"
        assert jsonio.CANONICAL[form](parsed) == data
    assert code == ("accepted" if data == canonical else "format.not-canonical")


@FAST
@given(text=st.text(max_size=200), encoding=st.sampled_from(["utf-16", "utf-32", "utf-16-be", "utf-16-le",
                                                             "latin-1", "cp1252", "utf-8-sig"]))
def test_jsonio_other_encodings_are_refused(text: str, encoding: str) -> None:
    """A JSON string in another encoding: refused, unless those bytes are also plain UTF-8 of the same text."""
    document = json.dumps({"name": text}, ensure_ascii=False)
    try:
        data = document.encode(encoding)
    except UnicodeEncodeError:
        return
    try:
        value = jsonio.parse(data, "x.json", max_bytes=1 << 20)
    except InvalidFormat as exc:
        code = exc.code
    else:
        code = "accepted"
        # Accepted bytes are UTF-8 without a BOM (cp1252 "\u00c3\u00a9" is UTF-8 "\u00e9": another text, read as such).
        assert not data.startswith(jsonio.BOMS) and value == json.loads(data.decode("utf-8"))
    if data == document.encode("utf-8"):
        assert code == "accepted"
    assert code in ("accepted", "format.encoding", "format.not-json")


@FAST
@given(keys=st.lists(st.text(max_size=5), min_size=1, max_size=5), repeat=st.integers(0, 4),
       depth=st.integers(0, 3))
def test_jsonio_duplicate_keys_are_refused(keys: list[str], repeat: int, depth: int) -> None:
    members = [(k, i) for i, k in enumerate(keys)]
    members.insert(repeat % (len(members) + 1), (keys[repeat % len(keys)], "again"))
    inner = "{" + ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in members) + "}"
    for _ in range(depth):
        inner = '{"wrap":' + inner + "}"
    with pytest.raises(InvalidFormat) as info:
        jsonio.parse(inner.encode("utf-8"), "x.json", max_bytes=1 << 20)
    assert info.value.code == "format.duplicate-key"


@pytest.mark.parametrize("depth", [9, 1000, 10**5])
def test_jsonio_deep_nesting(depth: int) -> None:
    for data in (b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth, b"[" * depth):
        with pytest.raises(InvalidFormat) as info:
            jsonio.parse(data, "x.json", max_bytes=16 * MB)
        assert info.value.code in ("format.too-deep", "format.not-json"), info.value.code
    with pytest.raises(InvalidFormat) as info:
        jsonio.parse(b"[" * depth + b"]" * depth, "x.json", max_bytes=1000)
    assert info.value.code == ("format.too-large" if depth > 500 else "format.too-deep")


# --------------------------------------------------------------------------- records, manifests, ledger lines


@FAST
@given(data=st.binary(max_size=1024), kind=st.sampled_from(sorted(PARSERS)))
def test_documents_random_bytes(data: bytes, kind: str) -> None:
    result = outcome(kind, data)
    assert isinstance(result, InvalidFormat)
    if kind == "record":
        assert isinstance(result, RecordError)
    if kind == "ledger":
        assert isinstance(result, LedgerError)


@FAST
@given(value=json_values, kind=st.sampled_from(sorted(PARSERS)), form=st.sampled_from(FORMS[1:]))
def test_documents_random_json(value: Any, kind: str, form: str) -> None:
    """Random JSON, written canonically: refused (no random document is a valid one), and only as a format error."""
    assert isinstance(outcome(kind, jsonio.CANONICAL[form](value)), InvalidFormat)


@FAST
@given(data=st.data(), kind=st.sampled_from(sorted(PARSERS)))
def test_documents_random_json_shaped_like_real(real: Real, data, kind: str) -> None:
    """A real document with one member's value replaced by random JSON: parsed only if canonical, never crashing."""
    original = data.draw(st.sampled_from(originals(real, kind)))
    doc = json.loads(original)
    path: list[Any] = []
    node: Any = doc
    while isinstance(node, (dict, list)) and node and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(node) if isinstance(node, dict) else list(range(len(node)))))
        path.append(key)
        node = node[key]
    if not path:
        return
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = data.draw(json_values)
    writer = {"record": encode_record, "ledger": encode_line}.get(kind, jsonio.canonical_json)
    try:
        mutated = writer(doc)
    except (ValueError, KeyError, TypeError):  # no canonical form, or format_version itself replaced
        mutated = jsonio.jcs(doc)
    check_mutation(kind, original, mutated)


def check_mutation(kind: str, original: bytes, mutated: bytes) -> None:
    """The property: accepted bytes are the canonical form of what they say, and no other bytes say the
    original's content."""
    parse, write = PARSERS[kind]
    before = parse(original)
    after = outcome(kind, mutated)
    if isinstance(after, InvalidFormat):
        return
    assert write(after) == mutated, "accepted bytes that are not the canonical form of their content"
    if after.data == before.data:
        assert mutated == original, "the same document accepted in two byte forms"


@st.composite
def byte_edits(draw, original: bytes) -> bytes:
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "duplicate"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[at] = draw(st.sampled_from(b'"{}[],:\\ \n0019aAz\x00\x7f\xc3\xff'))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8)
                               | st.sampled_from([b" ", b"\n", b",", b'"', b"\\u0041"]))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 8))]
        else:
            size = draw(st.integers(1, 40))
            data[at:at] = data[at:at + size]
    return bytes(data)


@FAST
@given(data=st.data(), kind=st.sampled_from(sorted(PARSERS)))
def test_documents_byte_edits(real: Real, data, kind: str) -> None:
    """Bits flipped, bytes set, inserted, deleted, spans duplicated: never a different document in
    non-canonical bytes, never another exception."""
    original = data.draw(st.sampled_from(originals(real, kind)))
    check_mutation(kind, original, data.draw(byte_edits(original)))


def structural(original: bytes, how: str, key_at: int) -> tuple[bytes, set[str]]:
    """A named mutation of a real document's bytes, and the codes the parser may answer it with."""
    doc = json.loads(original)
    keys = sorted(doc)
    key = keys[key_at % len(keys)]
    if how == "duplicate-key":
        return original.replace(b"{", b"{" + json.dumps(key).encode() + b":" + json.dumps(doc[key]).encode() + b",",
                                1), {"format.duplicate-key"}
    if how == "duplicate-key-nested":
        inner = next((k for k in keys if isinstance(doc[k], dict) and doc[k]), None)
        if inner is None:
            return structural(original, "duplicate-key", key_at)
        first = sorted(doc[inner])[0]
        marker = json.dumps(inner).encode() + b":{"
        at = original.index(marker) if marker in original else original.index(json.dumps(inner).encode() + b": {")
        at = original.index(b"{", at) + 1
        return (original[:at] + json.dumps(first).encode() + b":" + json.dumps(doc[inner][first]).encode() + b","
                + original[at:]), {"format.duplicate-key"}
    if how == "bom":
        return b"\xef\xbb\xbf" + original, {"format.encoding"}
    if how in ("utf-16", "utf-32"):
        return original.decode("utf-8").encode(how), {"format.encoding"}
    if how == "utf-16-le":
        return original.decode("utf-8").encode(how), {"format.encoding", "format.not-json"}
    if how.startswith("indent-"):
        return (json.dumps(doc, indent=int(how[7:]), sort_keys=True, ensure_ascii=False) + "\n").encode(), \
            {"format.not-canonical"}
    if how == "compact":
        return jsonio.compact_json(doc), {"format.not-canonical"}
    if how == "rfc8785":
        return jsonio.jcs(doc), {"format.not-canonical"}
    if how == "pretty":
        return jsonio.canonical_json(doc), {"format.not-canonical"}
    if how == "unsorted":
        return json.dumps(dict(reversed(list(doc.items()))), separators=(",", ":")).encode(), \
            {"format.not-canonical"}
    if how == "ascii-escapes":
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).replace(
            "a", "\\u0061", 1).encode(), {"format.not-canonical"}
    if how == "crlf":
        return original.replace(b"\n", b"\r\n") + (b"" if original.endswith(b"\n") else b"\r\n"), \
            {"format.not-canonical"}
    if how == "trailing-newline":
        return original[:-1] if original.endswith(b"\n") else original + b"\n", {"format.not-canonical"}
    if how == "deep":
        doc[key] = "DEEP"
        text = jsonio.canonical_json(doc) if original.endswith(b"\n") else jsonio.jcs(doc)
        nest = b"[" * 10**5 + b"]" * 10**5
        return text.replace(b'"DEEP"', nest, 1), {"format.too-large", "format.too-deep"}
    raise AssertionError(how)


STRUCTURAL = ["duplicate-key", "duplicate-key-nested", "bom", "utf-16", "utf-32", "utf-16-le", "indent-1",
              "indent-4", "compact", "rfc8785", "pretty", "unsorted", "ascii-escapes", "crlf", "trailing-newline",
              "deep"]


@FAST
@given(data=st.data(), kind=st.sampled_from(sorted(PARSERS)), how=st.sampled_from(STRUCTURAL),
       key_at=st.integers(0, 40))
def test_documents_structural_mutations(real: Real, data, kind: str, how: str, key_at: int) -> None:
    """A key given twice, a BOM, UTF-16/32, another layout, deep nesting: refused with the code that names it
    (another layout only when it differs from the canonical one: a v1 record rewritten 'pretty' is itself)."""
    original = data.draw(st.sampled_from(originals(real, kind)))
    mutated, codes = structural(original, how, key_at)
    if mutated == original:
        assert not isinstance(outcome(kind, mutated), InvalidFormat)
        return
    result = outcome(kind, mutated)
    assert isinstance(result, InvalidFormat), f"{kind} accepted after '{how}'"
    assert result.code in codes, (how, result.code, result.message)


@pytest.mark.parametrize("kind", sorted(PARSERS))
def test_documents_round_trip(real: Real, kind: str) -> None:
    parse, write = PARSERS[kind]
    for original in originals(real, kind):
        doc = parse(original)
        assert write(doc) == original
        assert parse(write(doc)).data == doc.data


def test_record_times_and_ids_are_real(real: Real) -> None:
    """Regression: times the regex admits but the calendar does not, other scripts' digits, and a final newline
    raised ValueError or were accepted; now each is a format error."""
    doc = json.loads(real.records[f"{SIGNED}/01-client.json"])
    for when in ("2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T00:00:60Z",
                 "0000-01-01T00:00:00Z", "\u0662\u0660\u0662\u0666-01-01T00:00:00Z"):
        assert outcome("record", jsonio.jcs(dict(doc, signed_at=when))).code == "format.bad-value", when
    for version in ([2], {"v": 2}, True, "2"):  # a list or an object was a TypeError (unhashable)
        assert outcome("record", jsonio.jcs(dict(doc, format_version=version))).code == "format.version", version
    assert jsonio.jcs(dict(doc, format_version=2.0)) == jsonio.jcs(doc)  # RFC 8785 writes 2.0 as 2
    assert outcome("record", jsonio.canonical_json(dict(doc, format_version=1.0))).code == "format.version"
    line = json.loads(next(x for x in real.lines if b'"event":"render"' in x and b"format_version" in x))
    for aid in ("agr-x\n", "\u0661\u0662\u0663", "../x", "ab"):
        assert outcome("ledger", jsonio.jcs(dict(line, agreement_id=aid))).code == "format.bad-value", aid
    assert outcome("ledger", jsonio.jcs(dict(line, time="2026-02-29T00:00:00Z"))).code == "format.bad-value"
    manifest = json.loads(real.manifests[SIGNED])
    manifest["agreement"]["date"] = "2026-99-99"
    assert outcome("manifest", jsonio.canonical_json(manifest)).code == "format.bad-value"
    manifest["agreement"]["date"], manifest["agreement"]["id"] = "2026-01-31", "agr-x\n"
    assert outcome("manifest", jsonio.canonical_json(manifest)).code == "format.bad-value"


# --------------------------------------------------------------------------- CRL sets


def pem(der: bytes) -> bytes:
    return b"-----BEGIN X509 CRL-----\n" + base64.encodebytes(der) + b"-----END X509 CRL-----\n"


def blocks_of(crl_pem: bytes) -> list[bytes]:
    return re.findall(rb"-----BEGIN X509 CRL-----\n.*?-----END X509 CRL-----\n", crl_pem, re.S)


def der_of(block: bytes) -> bytes:
    return x509.load_pem_x509_crl(block).public_bytes(serialization.Encoding.DER)


@cache
def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def make_crl(issuer: x509.Name, number: int | None, revoked: int = 0) -> bytes:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    builder = (x509.CertificateRevocationListBuilder().issuer_name(issuer).last_update(now)
               .next_update(now + dt.timedelta(days=30)))
    if number is not None:
        builder = builder.add_extension(x509.CRLNumber(number), critical=False)
    for serial in range(1, revoked + 1):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now)
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False).build())
    return builder.sign(_key(), hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


@cache
def other_crl() -> bytes:
    """A CRL with revoked entries (each with an extension), made once: ECDSA signatures differ each time, and
    hypothesis must see the same bytes when it replays an example."""
    return make_crl(x509.Name.from_rfc4514_string("CN=Other CA"), 1, revoked=3)


def crl_outcome(data: bytes) -> Any:
    try:
        return parse_crl_set(data, "crl.pem")
    except InvalidFormat as exc:
        error = exc
    assert error.code.startswith("format."), error.code
    return error


def test_crl_set_real_and_named_faults(real: Real) -> None:
    crls = parse_crl_set(real.crl_pem, "crl.pem")
    # the root's, the intake CA's and the clinician CA's CRLs, each numbered on its own (all 1 at first)
    assert set(crls.numbers.values()) == {1} and len(crls.crls) == 3 and len(crls.digests()) == 3
    again = parse_crl_set(b"".join(reversed(blocks_of(real.crl_pem))), "crl.pem")
    assert again.digests() == crls.digests() and again.numbers == crls.numbers
    root_block, intake_block, _clinician_block = blocks_of(real.crl_pem)
    issuers = [c.issuer for c in crls.crls]
    faults = {
        "format.duplicate-crl": real.crl_pem + root_block,
        "format.not-pem": real.crl_pem + b"hello\n",
        "format.bad-crl": root_block + make_crl(issuers[1], None),
        "format.too-large": real.crl_pem + b"\n" * crlset.MAX_BYTES,
    }
    for code, data in faults.items():
        assert crl_outcome(data).code == code, code
    # Different numbers for different issuers are no fault: each CA numbers (and re-issues) its own CRL.
    mixed = parse_crl_set(root_block + make_crl(issuers[1], 2), "crl.pem")
    assert sorted(mixed.numbers.values()) == [1, 2] and mixed.number == 3
    assert crl_outcome(b"").code == "format.not-pem"
    # Regression: a CRL whose extension is given twice raised cryptography's DuplicateExtension.
    der = der_of(root_block)
    assert crl_outcome(pem(_doubled_extension(der)) + intake_block).code == "format.bad-crl"
    # And a CRL number (extension 2.5.29.20, value INTEGER 1) whose content is an OCTET STRING instead.
    number = b"\x06\x03\x55\x1d\x14\x04\x03\x02\x01\x01"
    assert der.count(number) == 1
    bad_number = der.replace(number, number[:-3] + b"\x04\x01\x01")
    assert crl_outcome(pem(bad_number) + intake_block).code == "format.bad-crl"


def _doubled_extension(der: bytes) -> bytes:
    """``der`` (a CRL) with its last extension given twice (asn1crypto re-encodes; the signature no longer
    matches, which parsing does not look at)."""
    from asn1crypto import crl as asn1_crl

    crl = asn1_crl.CertificateList.load(der)
    tbs = crl["tbs_cert_list"]
    extensions = list(tbs["crl_extensions"])
    tbs["crl_extensions"] = asn1_crl.TBSCertListExtensions([*extensions, extensions[-1]])
    crl["tbs_cert_list"] = asn1_crl.TbsCertList.load(tbs.dump(force=True))
    return crl.dump(force=True)


@SLOW
@given(data=st.data())
def test_crl_set_mutations(real: Real, data) -> None:
    """CRLs with damaged DER (re-wrapped as PEM), edited PEM text, and random blocks: a CRL set or a format
    error, never cryptography's own exceptions."""
    blocks = [*blocks_of(real.crl_pem), other_crl()]
    pick = data.draw(st.sampled_from(blocks))
    how = data.draw(st.sampled_from(["der", "pem", "random-der", "random-base64"]))
    if how == "der":
        mutated = pem(data.draw(byte_edits(der_of(pick))))
    elif how == "pem":
        mutated = data.draw(byte_edits(pick))
    elif how == "random-der":
        mutated = pem(b"\x30\x82" + data.draw(st.binary(max_size=600)))
    else:
        mutated = (b"-----BEGIN X509 CRL-----\n" + base64.encodebytes(data.draw(st.binary(max_size=300)))
                   + b"-----END X509 CRL-----\n")
    others = [b for b in blocks if b is not pick]
    rest = data.draw(st.lists(st.sampled_from(others), max_size=2))
    result = crl_outcome(mutated + b"".join(rest))
    if not isinstance(result, InvalidFormat):
        assert len({c.issuer for c in result.crls}) == len(result.crls)
        result.digests()


@FAST
@given(data=st.binary(max_size=2048))
def test_crl_set_random_bytes(data: bytes) -> None:
    assert isinstance(crl_outcome(data), InvalidFormat)


# --------------------------------------------------------------------------- folders

SECRET = b"SECRET-OUTSIDE-THE-FOLDER"
NAMES = ["agreement.pdf", "manifest.json", "completion.pdf", "01-client.json", "01-client.json.p7s", "01-client.png",
         "02-therapist.json", "02-therapist.json.p7s", "03-void.json.p7s", "01-guardian.json", "02-guardian.png",
         "notes.txt", ".hidden", ".01-client.json.pending", "01-client.json.p7s.bak", "x.json.p7s",
         "\u0660\u0661-client.json", "01-client.json\n", "1-client.json", "001-client.json", "01-CLIENT.json"]
ENTRY_KINDS = ["file", "empty", "oversize", "link-file", "link-dir", "dangling", "fifo", "dir", "socket"]
if os.geteuid() == 0:  # a character device (like /dev/zero, which never ends) needs the privilege to make one
    ENTRY_KINDS.append("chardev")
random_names = st.text(st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)), min_size=1,
                       max_size=12).filter(lambda n: n not in (".", ".."))
entries_strategy = st.dictionaries(st.sampled_from(NAMES) | random_names,
                                   st.tuples(st.sampled_from(ENTRY_KINDS), st.binary(max_size=64)), max_size=10)
RECORD = re.compile(r"[0-9]{2}-(client|guardian|therapist|void)\.json")
PNG = re.compile(r"[0-9]{2}-(client|guardian)\.png")


def make_entry(path: Path, kind: str, content: bytes, outside: Path) -> None:
    if kind in ("file", "empty"):
        path.write_bytes(content if kind == "file" else b"")
    elif kind == "oversize":
        with open(path, "wb") as fh:
            fh.truncate(65 * MB)  # sparse: larger than every limit, costs no disk
    elif kind == "link-file":
        path.symlink_to(outside / "secret")
    elif kind == "link-dir":
        path.symlink_to(outside)
    elif kind == "dangling":
        path.symlink_to(outside / "nothing-here")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        path.mkdir()
    elif kind == "socket":
        os.mknod(path, stat.S_IFSOCK | 0o600)
    elif kind == "chardev":
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero
    else:
        raise AssertionError(kind)


def read_verdict(kind: str, content: bytes, limit: int) -> bytes | str:
    """What reading an entry gives: its bytes, or the code of the problem."""
    if kind in ("link-file", "link-dir", "dangling"):
        return "format.link"
    if kind in ("fifo", "dir", "chardev"):
        return "format.not-regular"
    if kind == "socket":
        return "format.unreadable"
    if kind == "oversize":
        return "format.too-large"
    data = content if kind == "file" else b""
    return "format.too-large" if len(data) > limit else data


def model(entries: dict[str, tuple[str, bytes]], read_pdf: bool) -> dict[str, Any]:
    """What read_folder must return for these entries (docs of formats/folder.py, as a model)."""
    out: dict[str, Any] = {"manifest": None, "pdf": None, "records": {}, "pngs": {}, "completion": False,
                           "problems": []}
    names = set(entries)
    readable_records = set()
    for name in sorted(names):
        kind, content = entries[name]
        if name.startswith("."):
            if not name.endswith(".pending"):
                out["problems"].append((name, "layout.unexpected-file"))
            continue
        if name == "completion.pdf" or (name == "agreement.pdf" and not read_pdf):
            if kind in ("file", "empty", "oversize"):
                if name == "completion.pdf":
                    out["completion"] = True
                else:
                    out["pdf"] = b""
            else:
                out["problems"].append((name, "format.not-regular"))
            continue
        if name in ("manifest.json", "agreement.pdf") or RECORD.fullmatch(name) or PNG.fullmatch(name):
            got = read_verdict(kind, content, folder.limit_for(name))
            if isinstance(got, str):
                out["problems"].append((name, got))
            elif name == "manifest.json":
                out["manifest"] = got
            elif name == "agreement.pdf":
                out["pdf"] = got
            elif PNG.fullmatch(name):
                out["pngs"][name] = got
            else:
                readable_records.add(name)
                out["records"][name] = [got, None]
            continue
        if name.endswith(".json.p7s") and RECORD.fullmatch(name[:-4]):
            continue
        out["problems"].append((name, "layout.unexpected-file"))
    for name in sorted(readable_records):
        sig = name + ".p7s"
        if sig in names:
            got = read_verdict(*entries[sig], folder.limit_for(sig))
            if isinstance(got, str):
                out["problems"].append((sig, got))
            else:
                out["records"][name][1] = got
    for name in sorted(names):
        if name.endswith(".json.p7s") and name[:-4] not in names:
            out["problems"].append((name, "layout.orphan-signature"))
    out["problems"].sort()
    return out


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("folders")
    (base / "outside").mkdir()
    (base / "outside" / "secret").write_bytes(SECRET)
    return base


@SLOW
@given(entries=entries_strategy, read_pdf=st.booleans())
@example(entries={"manifest.json": ("fifo", b""), "01-client.json": ("chardev" if "chardev" in ENTRY_KINDS
                                                                     else "fifo", b""),
                  "agreement.pdf": ("oversize", b""), "01-client.json.p7s": ("link-file", b"")}, read_pdf=True)
def test_read_folder_model(sandbox: Path, entries: dict[str, tuple[str, bytes]], read_pdf: bool) -> None:
    """Random folders (files, links in and out, FIFOs, devices, sockets, sub-folders, sparse oversize files):
    read_folder returns exactly what the layout rules say, reads nothing through a link, never blocks on a
    FIFO or device, and reads no oversize file."""
    where = Path(tempfile.mkdtemp(dir=sandbox))
    try:
        for name, (kind, content) in entries.items():
            make_entry(where / name, kind, content, sandbox / "outside")
        got = read_folder(str(where), read_pdf=read_pdf)
        want = model(entries, read_pdf)
        assert sorted((n, c) for n, c, _ in got.problems) == want["problems"]
        assert got.manifest == want["manifest"]
        assert got.pdf == want["pdf"]
        assert got.pngs == want["pngs"]
        assert got.has_completion == want["completion"]
        assert {r.name: [r.raw, r.p7s] for r in got.records} == want["records"]
        for r in got.records:
            assert (r.sequence, r.kind) == (int(r.name[:2]), r.name[3:-5])
        everything = [got.manifest, got.pdf, *got.pngs.values(), *(r.raw for r in got.records),
                      *(r.p7s for r in got.records)]
        assert not any(SECRET in blob for blob in everything if blob), "read through a symbolic link"
        assert all(sentence.startswith(name) for name, _, sentence in got.problems)
    finally:
        shutil.rmtree(where)


def test_read_folder_the_folder_itself(sandbox: Path) -> None:
    target = sandbox / "real-folder"
    target.mkdir(exist_ok=True)
    link = sandbox / "link-to-folder"
    if not link.is_symlink():
        link.symlink_to(target)
    file = sandbox / "a-file"
    file.write_bytes(b"x")
    fifo = sandbox / "a-fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    for path, code in ((link, "format.not-regular"), (file, "format.not-regular"), (fifo, "format.not-regular"),
                       (sandbox / "missing", "format.missing")):
        with pytest.raises(InvalidFormat) as info:
            read_folder(str(path))
        assert info.value.code == code
    crowded = sandbox / "crowded"
    crowded.mkdir(exist_ok=True)
    for i in range(folder.MAX_ENTRIES + 1):
        (crowded / f"f{i}").touch()
    with pytest.raises(InvalidFormat) as info:
        read_folder(str(crowded))
    assert info.value.code == "format.too-large"


# --------------------------------------------------------------------------- the PDF scan


def frame(body: bytes) -> bytes:
    """``body`` between a PDF header and a trailer, so that the scan reads it (it refuses a file that is not
    framed as a complete PDF)."""
    return b"%PDF-1.7\n" + body + b"\nstartxref\n0\n%%EOF\n"


def scan_outcome(pdf: bytes) -> list[bytes] | None:
    result = scan_manifests(pdf)
    assert result is None or (isinstance(result, list) and all(isinstance(x, bytes) for x in result))
    return result


def test_scan_real_pdf(real: Real) -> None:
    assert scan_outcome(real.pdf) == [real.embedded]
    parse_manifest(real.embedded, "embedded", embedded=True)


@FAST
@given(data=st.binary(max_size=4096) | st.lists(st.sampled_from([
    b"1 0 obj", b" <<", b">>", b"/Length 0", b"/Length 5", b"/Length 99999999999999", b"/Length 3 0 R",
    b"/Filter /FlateDecode", b"/Filter [/DCTDecode]", b" stream\n", b"stream\r\n", b"\nendstream", b"endobj\n",
    zlib.compress(pdfattach.MANIFEST_MARK), b"x\x9c", b"\x00\xff", b" "]), max_size=40).map(b"".join),
    framed=st.booleans())
@example(data=b"1 0 obj <</Length " + b"9" * 5000 + b">> stream\nxx\nendstream", framed=True)  # was: ValueError
def test_scan_random_bytes(data: bytes, framed: bool) -> None:
    """Random bytes, and random sequences of PDF tokens, framed as a PDF or not: a list or None."""
    found = scan_outcome(frame(data) if framed else data)
    if not framed and not data.startswith(b"%PDF-"):
        assert found is None


@FAST
@given(data=st.data())
def test_scan_edited_pdf(real: Real, data) -> None:
    """The real PDF edited: a list (the manifest itself only if its stream is intact) or None."""
    mutated = data.draw(byte_edits(real.pdf))
    found = scan_outcome(mutated)
    if found:
        for content in found:
            assert pdfattach.MANIFEST_MARK in content


def _stream(content: bytes) -> bytes:
    packed = zlib.compress(content)
    return b"1 0 obj <</Filter /FlateDecode /Length %d>> stream\n%s\nendstream endobj\n" % (len(packed), packed)


@FAST
@given(data=st.data())
def test_scan_memo_answers_as_inflating(real: Real, data) -> None:
    """The scan remembers streams it inflated and found plain: warm or cold, it answers the same, for the
    real PDF, the real PDF edited, and a PDF whose repeats of one stream exhaust the inflation budget."""
    cases = [real.pdf, data.draw(byte_edits(real.pdf)),
             frame(_stream(b" " * (4 * MB - 1)) * 5),  # four fit the 16 MB budget, the fifth does not
             frame(_stream(b"plain") * 3 + _stream(pdfattach.MANIFEST_MARK) * 2)]
    for pdf in cases:
        pdfattach._PLAIN.clear()
        cold = scan_outcome(pdf)
        assert scan_outcome(pdf) == cold  # warm: every plain stream of this very PDF remembered
    assert scan_outcome(cases[2]) is None
    assert scan_outcome(cases[3]) == [pdfattach.MANIFEST_MARK] * 2


def _many_bombs() -> bytes:
    bomb = zlib.compress(pdfattach.MANIFEST_MARK + b" " * (4 * MB - 100), 9)
    one = b"1 0 obj <</Filter /FlateDecode /Length %d>> stream\n%s\nendstream endobj\n" % (len(bomb), bomb)
    return one * (10 * MB // len(one))


def _one_bomb() -> bytes:
    """One 10 MB stream whose first 64 KB inflate to 64 MB (the rest is never reached)."""
    bomb = zlib.compress(b"\0" * (64 * MB), 9)
    bomb += os.urandom(10 * MB - len(bomb))
    return b"1 0 obj <</Filter /FlateDecode /Length %d>> stream\n%s\nendstream endobj\n" % (len(bomb), bomb)


HOSTILE = {
    "empty-streams": lambda: b"<</Length 0>> stream\nendstream " * (10 * MB // 30),
    "empty-streams-one-obj": lambda: b"1 0 obj " + b"<</Length 0>> stream\n\nendstream\n" * (10 * MB // 32),
    "streams-without-length": lambda: b">> stream\n" * (MB),
    "word-stream": lambda: b"stream\n" * (10 * MB // 7),
    "long-length": lambda: b"1 0 obj <</Length " + b"9" * (10 * MB) + b">> stream\n",
    "spaces": lambda: b">>" + b" " * (10 * MB) + b"stream\n",
    "many-bombs": _many_bombs,
    "one-bomb": _one_bomb,
    "random": lambda: os.urandom(10 * MB),
}


@cache
def hostile(name: str) -> bytes:
    data = frame(HOSTILE[name]())
    assert 9 * MB < len(data) < 12 * MB, (name, len(data))
    return data


@settings(max_examples=3 * len(HOSTILE), deadline=dt.timedelta(seconds=15),
          suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(HOSTILE)))
def test_scan_hostile_time(name: str) -> None:
    """10 MB built to be slow (every dictionary scanned from the file's start, inflation bombs): bounded time.
    (Before the fix, 1.2 MB of empty streams took 40 s.)"""
    scan_outcome(hostile(name))


# --------------------------------------------------------------------------- bounded memory


def peak_of(fn, *args) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with contextlib.suppress(InvalidFormat):
            fn(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("name", ["many-bombs", "one-bomb", "random", "long-length", "spaces",
                                  "streams-without-length"])
def test_scan_hostile_memory(name: str) -> None:
    """The inputs built to exhaust memory (inflation bombs, one huge stream): the scan inflates at most 16 MB in
    all. (The ones built to exhaust time make only small objects; tracemalloc would make them slow.)"""
    data = hostile(name)
    assert peak_of(scan_manifests, data) < 48 * MB, name


def test_parsers_hostile_memory(real: Real, sandbox: Path) -> None:
    """10 MB of hostile input to every parser: refused on its size, at no cost. Inputs just under a format's
    limit: bounded by a small multiple of that limit (the canonical re-encoding is the largest part)."""
    ten = b"[" * (10 * MB)
    ten_pem = b"-----BEGIN X509 CRL-----\n" + b"A" * (10 * MB)
    for parse, data in ((lambda d: parse_record(d, "r"), ten), (lambda d: parse_manifest(d, "m"), ten),
                        (lambda d: parse_entry(d, "l", 1), ten), (lambda d: parse_crl_set(d, "crl.pem"), ten_pem),
                        (lambda d: jsonio.parse(d, "x", max_bytes=MB), ten)):
        assert peak_of(parse, data) < MB // 4
    under = [  # (the format's limit, parser, input just under it)
        (MB, lambda d: parse_manifest(d, "m"), b"[" + b"1," * (MB // 2 - 2) + b"1]"),
        (MB, lambda d: parse_manifest(d, "m"), b'{"' + b'":1,"'.join(b"%07d" % i for i in range(MB // 14)) + b'":1}'),
        (MB, lambda d: jsonio.parse(d, "x", max_bytes=MB), b'"' + b"\\u0041" * (MB // 6) + b'"'),
        (64 * 1024, lambda d: parse_record(d, "r"), b"[" + b"1," * (32 * 1024 - 2) + b"1]"),
        (64 * 1024, lambda d: parse_entry(d, "l", 1), b'{"a":"' + b"x" * (60 * 1024) + b'"}'),
        (crlset.MAX_BYTES, lambda d: parse_crl_set(d, "crl.pem"),
         b"-----BEGIN X509 CRL-----\n" + b"QUFB\n" * (crlset.MAX_BYTES // 6) + b"-----END X509 CRL-----\n"),
        (MB // 8, pdfattach.manifest_from_damaged_pdf, b"stream\nx\x9c" * (MB // 9)),  # no copy per match
    ]
    for i, (limit, parse, data) in enumerate(under):
        assert len(data) <= max(limit, MB), i
        assert peak_of(parse, data) < 64 * limit, i  # a 1 MB manifest: about 40 MB (its canonical re-encoding)
    big = Path(tempfile.mkdtemp(dir=sandbox))
    (big / "manifest.json").write_bytes(b"x" * (10 * MB))
    (big / "01-client.json").write_bytes(b"x" * (10 * MB))
    assert peak_of(read_folder, str(big)) < 2 * MB
    shutil.rmtree(big)


def test_damaged_pdf_reader_is_bounded() -> None:
    """manifest_from_damaged_pdf (used for a PDF that pyHanko rejects): no RecursionError, no copy per match."""
    deep = zlib.compress(b'{"format": "agreements-kit/manifest", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    assert pdfattach.manifest_from_damaged_pdf(b"1 0 obj <<>> stream\n" + deep + b"\nendstream") is None
    assert pdfattach.manifest_from_damaged_pdf(hostile("word-stream")) is None


# --------------------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def cli_practice(real: Real, tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("formats-cli") / "practice"
    shutil.copytree(real.root, dest, symlinks=True)
    return dest


def verify(*args: Any):
    env = {"AGREEMENTS_PRACTICE": None, "AGREEMENTS_TRUST": None, "AGREEMENTS_TRUST_SHA256": None}
    return CliRunner().invoke(main, ["verify", *map(str, args)], env=env, catch_exceptions=False)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=3000), which=st.sampled_from([f"{SIGNED}/01-client.json", f"{SIGNED}/02-therapist.json",
                                                             f"{VOIDED}/02-void.json", f"{GUARDED}/01-guardian.json",
                                                             f"{HALF}/manifest.json"]))
def test_cli_verify_random_record(cli_practice: Path, data: bytes, which: str) -> None:
    """A record (or manifest) replaced by random bytes: exit 1, the failing check named, no traceback."""
    path = cli_practice / "signed" / which
    original = path.read_bytes()
    os.chmod(path, 0o600)
    path.write_bytes(data)
    try:
        res = verify(path.parent, "--trust", cli_practice / "pki" / "root.pem")
    finally:
        path.write_bytes(original)
    assert res.exit_code == 1, (res.exit_code, res.stdout, res.stderr)
    assert "Traceback" not in res.stdout + res.stderr
    assert res.stdout.startswith(f"not valid: {path.parent.name}: "), res.stdout
    assert re.search(r"FAIL +\d+ (records|manifest|folder)", res.stdout), res.stdout


def test_cli_verify_untouched_is_valid(cli_practice: Path) -> None:
    res = verify(cli_practice / "signed" / SIGNED, "--trust", cli_practice / "pki" / "root.pem")
    assert res.exit_code == 0, res.stdout + res.stderr


@settings(max_examples=10, deadline=None)
@given(trust=st.binary(max_size=500))
def test_cli_verify_unusable_trust(cli_practice: Path, tmp_path_factory, trust: bytes) -> None:
    """A trust root that is random bytes: exit 2 with one line on stderr, nothing on stdout."""
    path = Path(tempfile.mkdtemp(dir=cli_practice)) / "root.pem"
    path.write_bytes(trust)
    res = verify(cli_practice / "signed" / SIGNED, "--trust", path)
    one_line_refusal(res)


def one_line_refusal(res) -> None:
    assert res.exit_code == 2, (res.exit_code, res.stdout, res.stderr)
    assert "Traceback" not in res.stdout + res.stderr
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr


def test_cli_verify_unusable_arguments(cli_practice: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    folder_path = cli_practice / "signed" / SIGNED
    for args in ([tmp_path / "missing", "--trust", cli_practice / "pki" / "root.pem"],
                 [folder_path, "--trust", fifo],
                 [folder_path, "--trust", tmp_path / "no-root.pem"],
                 [folder_path, "--trust", folder_path / "01-client.json"],
                 [folder_path, "--trust", cli_practice / "pki" / "root.pem", "--crl", folder_path / "manifest.json"],
                 [folder_path, "--trust-sha256", "not-hex"]):
        one_line_refusal(verify(*args))


def test_cli_verify_subprocess_random_record(cli_practice: Path, run_bin, tmp_path: Path) -> None:
    """The installed console script, as an auditor runs it: random bytes in a record, exit 1, no traceback."""
    copy = tmp_path / "agreement"
    shutil.copytree(cli_practice / "signed" / SIGNED, copy)
    os.chmod(copy / "01-client.json", 0o600)
    (copy / "01-client.json").write_bytes(os.urandom(700))
    res = run_bin("verify", copy, "--no-ledger", "--trust", cli_practice / "pki" / "root.pem")
    assert res.exit_code == 1, (res.exit_code, res.stdout, res.stderr)
    assert "Traceback" not in res.stdout + res.stderr
    assert "FAIL" in res.stdout and "[01-client.json]" in res.stdout


# ----------------------------------------------------------------------------- the RFC 8785 fast path

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**60), max_value=2**60) | st.text(max_size=12)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(_json_values)
def test_the_rfc8785_fast_path_agrees_with_the_rfc8785_package(value):
    """Our own code on the canonical-bytes check (C encoder where it writes RFC 8785) against the reference."""
    import rfc8785

    from agreements_kit.formats.jsonio import _jcs_fast

    fast = _jcs_fast(value)
    if fast is None:
        return  # the reference decides these
    assert fast == bytes(rfc8785.dumps(value))
