"""The JSON fast roads, held to the readers they replaced (tests/json_reference.py).

- ``jsonio.decode_canonical`` vouches for bytes only when msgspec's encoder gives them back from
  what msgspec's decoder made of them. That is enough only if msgspec's encoder writes what the
  standard library's does: every character (all of Unicode, as strings and as sorted keys),
  compact and pretty, and any value holding no float.
- ``jsonio.parse`` (its fast path now msgspec) accepts and refuses exactly what the old reader
  did, with the same value and the same code and message, over generated and mutated bytes.
- ``shape.FastShape`` (msgspec types made from the shape tables) behind parse_record,
  parse_entry and parse_manifest: over real documents and every kind of damage to them (a byte
  changed, a key given twice, keys reordered, another layout, a number as a float, 2**53, unicode
  escapes, members replaced by values at and past every limit, then re-encoded canonically so the
  shape checks are reached), the same document or the same refusal as the old parsers; and the
  fast road really is taken for the real documents.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import json_reference as ref
import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_schemas import LEGACY, shared_practice

from agreements_kit.errors import InvalidFormat
from agreements_kit.formats import jsonio, ledger, manifest, record, shape

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                             HealthCheck.too_slow])
ENCODER = msgspec.json.Encoder(order="sorted")


def same(a: Any, b: Any) -> bool:
    """Equal, of the same types all the way down, dict keys in the same order (1, 1.0 and True are == in Python)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return repr(a) == repr(b)
    return bool(a == b)


def stdlib_compact(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def stdlib_pretty(value: Any) -> bytes:
    return (json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def msgspec_pretty(value: Any) -> bytes:
    return msgspec.json.format(ENCODER.encode(value), indent=2) + b"\n"


# ----------------------------------------------------------------------------- the encoder


def _every_character() -> list[str]:
    return [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]


def test_msgspec_writes_every_character_as_the_standard_library_does() -> None:
    chars = _every_character()
    # One string per character: the two encoders escape characters one by one, and no encoded string
    # holds an unescaped quote, so equal lists are equal strings, each of them.
    assert ENCODER.encode(chars) == stdlib_compact(chars)
    assert msgspec_pretty(chars) == stdlib_pretty(chars)
    # As keys: the same escapes, and sorted alike (by code point).
    keys = dict.fromkeys(reversed(chars), 0)
    assert ENCODER.encode(keys) == stdlib_compact(keys)
    pairs = ["a" + c + "b" for c in chars[:0x3000]] + ['"\\' + c for c in chars[:0x100]]
    assert msgspec_pretty(pairs) == stdlib_pretty(pairs)


@pytest.mark.parametrize("text", ["\ud800", "a\udfffb", "\udbff\udc00"[1:], "x\udc00y"])
def test_msgspec_writes_no_lone_surrogate(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - UnicodeEncodeError, as str.encode raises
        ENCODER.encode([text])
    with pytest.raises(UnicodeEncodeError):
        stdlib_compact([text])


_text = st.text(st.characters(), max_size=10)  # lone surrogates included
_keys = _text | st.sampled_from(["", "a", "A", "\U0001f600", "\uffff", "\ud800", "\u00e9", "\u2028", "a\x00", '"'])
_ints = st.integers(-(2**60), 2**60) | st.sampled_from(
    [2**53, 2**53 - 1, 2**53 + 1, -(2**53), -(2**53) + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30, 0])
_scalars = st.none() | st.booleans() | _ints | _text
_values = st.recursive(_scalars | st.floats(), lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(_keys, inner, max_size=4), max_leaves=20)


def _float_free(value: Any) -> bool:
    if isinstance(value, float):
        return False
    if isinstance(value, dict):
        return all(map(_float_free, value.values()))
    if isinstance(value, list):
        return all(map(_float_free, value))
    return True


@SETTINGS
@given(st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4),
                    max_leaves=25))
def test_msgspec_writes_any_float_free_value_as_the_standard_library_does(value: Any) -> None:
    try:
        expected = stdlib_compact(value)
    except UnicodeEncodeError:  # a lone surrogate: msgspec must not write it either
        with pytest.raises(ValueError):  # noqa: PT011
            ENCODER.encode(value)
        return
    assert ENCODER.encode(value) == expected
    assert msgspec_pretty(value) == stdlib_pretty(value) == jsonio.canonical_json(value)
    if jsonio.plain(value):
        assert jsonio._jcs_fast(value) == ref._jcs_fast(value)


# ----------------------------------------------------------------------------- jsonio.parse


# The one fault of the old reader: with canonical_form "pretty", a string holding a lone surrogate (a \ud800
# escape) made its fast path raise UnicodeEncodeError out of parse (and parse_manifest). Today's reader gives
# what the old one's full path says of the same bytes.
def old_full_path(call: Any) -> Any:
    fast = ref._parse_plain
    ref._parse_plain = lambda *args: None
    try:
        return call()
    finally:
        ref._parse_plain = fast


def _outcome(parse: Any, data: bytes, form: str | None, depth: int, full: bool = False) -> tuple[Any, ...]:
    try:
        return ("ok", parse(data, "x.json", max_bytes=1 << 20, max_depth=depth, canonical_form=form))
    except InvalidFormat as exc:
        return ("refused", type(exc).__name__, exc.code, exc.message, exc.path, exc.line)
    except UnicodeEncodeError:
        if parse is not ref.parse or form != "pretty" or full:
            raise
        return old_full_path(lambda: _outcome(parse, data, form, depth, full=True))


def _layouts(value: Any) -> list[bytes]:
    out = []
    for kw in ({"separators": (",", ":"), "sort_keys": True}, {"separators": (",", ":")}, {"indent": 2},
               {"indent": 2, "sort_keys": True}, {"sort_keys": True}, {"indent": 4, "sort_keys": True},
               {"ensure_ascii": True, "sort_keys": True, "separators": (",", ":")}):
        try:
            out.append(json.dumps(value, ensure_ascii=kw.pop("ensure_ascii", False), **kw).encode("utf-8"))
        except (UnicodeEncodeError, ValueError):
            continue
    return out


def _variants(data: bytes) -> list[bytes]:
    out = [data, data + b"\n", data[:-1], b" " + data, b"\xef\xbb\xbf" + data, data.replace(b":", b": ", 1),
           re.sub(rb"(?<=[:\[,])(\d+)", rb"\1.0", data, count=1), re.sub(rb"(?<=[:\[,])(\d+)", rb"\1e0", data, count=1),
           re.sub(rb"(?<=[:\[,])0(?=[,\]}])", b"-0", data, count=1),
           re.sub(rb"(?<=[:\[,])(\d+)", b"9007199254740992", data, count=1),
           re.sub(rb"(?<=[:\[,])(\d+)", b"9007199254740991", data, count=1),
           re.sub(rb'"([a-z])', lambda m: b'"\\u%04x' % m.group(1)[0], data, count=1),
           re.sub(rb'"([a-z])', lambda m: b'"\\u%04X' % m.group(1)[0], data, count=1)]
    if data.startswith(b"{") and len(data) > 2:
        first = re.match(rb'\{\s*("(?:[^"\\]|\\.)*"\s*:\s*(?:"(?:[^"\\]|\\.)*"|[^,{}\[\]]+))', data)
        if first:
            out.append(b"{" + first.group(1) + b"," + data[1:])  # the first member given twice
    return out


@SETTINGS
@given(_values, st.sampled_from([None, "compact", "rfc8785", "pretty"]), st.integers(1, 5))
@example({"a": [1, {"b": "\U0001f600"}], "\U0001f600": 1, "\uffff": 2}, "rfc8785", 4)
@example({"a": 2**53, "b": -(2**53)}, "rfc8785", 2)
@example({"a": 1.0}, "compact", 2)
@example([[[[[]]]]], None, 4)
@example({"a": "\ud800"}, "pretty", 2)
def test_parse_accepts_and_refuses_exactly_what_the_old_reader_did(value: Any, form: str | None, depth: int) -> None:
    for data in {v for layout in _layouts(value) for v in _variants(layout)}:
        new, old = _outcome(jsonio.parse, data, form, depth), _outcome(ref.parse, data, form, depth)
        assert new[0] == old[0] and (same(new[1], old[1]) if new[0] == "ok" else new == old), data


@SETTINGS
@given(st.binary(max_size=40) | st.sampled_from([b'"\\ud800"', b'"\\udc00\\ud800"', b'{"a":1,"a":1}', b'[1e400]',
                                                 b'NaN', b'[-Infinity]', b'"\xed\xa0\x80"', b'\xff\xfe{\x00}\x00',
                                                 b'1' * 5000, b'[' * 50 + b']' * 50, b'{"\\u0000":0}']),
       st.sampled_from([None, "compact", "rfc8785", "pretty"]))
def test_parse_of_random_bytes_is_the_old_readers(data: bytes, form: str | None) -> None:
    new, old = _outcome(jsonio.parse, data, form, 8), _outcome(ref.parse, data, form, 8)
    assert new[0] == old[0] and (same(new[1], old[1]) if new[0] == "ok" else new == old), data


def _check_after_parse(module: Any, data: bytes, form: str) -> str:
    value = module.parse(data, "x", max_bytes=100)
    try:
        module.check_canonical(value, data, "x", form)
    except InvalidFormat as exc:
        return exc.code
    return "ok"


@pytest.mark.parametrize(("data", "form"), [(b'{"a":1}', "rfc8785"), (b'{"a":[]}', "compact"),
                                            (b'{"\xf0\x9f\x98\x80":1,"\xef\xbf\xbf":2}', "rfc8785"),
                                            (b'{"a":9007199254740993}', "rfc8785"), (b'{"a":"\xf0\x9f\x98\x80"}',
                                                                                      "rfc8785")])
def test_check_canonical_after_parse_is_the_old_readers(data: bytes, form: str) -> None:
    assert _check_after_parse(jsonio, data, form) == _check_after_parse(ref, data, form)


# ----------------------------------------------------------------------------- the real documents


class Docs:
    def __init__(self, root: Path) -> None:
        bases = (root / "signed", LEGACY)
        self.records = [p.read_bytes() for base in bases for p in sorted(base.glob("*/[0-9][0-9]-*.json"))]
        self.manifests = [p.read_bytes() for base in bases for p in sorted(base.glob("*/manifest.json"))]
        self.embedded = [jsonio.canonical_json({k: v for k, v in json.loads(m).items() if k != "document"})
                         for m in self.manifests]
        self.lines = [line for base in bases for line in (base / "ledger.jsonl").read_bytes().split(b"\n")[:-1]]


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Docs:
    return Docs(shared_practice(tmp_path_factory))


PARSERS = {
    "record": (lambda b: record.parse_record(b, "01-client.json"), lambda b: ref.parse_record(b, "01-client.json")),
    "ledger": (lambda b: ledger.parse_entry(b, "ledger.jsonl", 7), lambda b: ref.parse_entry(b, "ledger.jsonl", 7)),
    "manifest": (lambda b: manifest.parse_manifest(b, "manifest.json"),
                 lambda b: ref.parse_manifest(b, "manifest.json")),
    "embedded": (lambda b: manifest.parse_manifest(b, "embedded", embedded=True),
                 lambda b: ref.parse_manifest(b, "embedded", embedded=True)),
}


def _result(parse: Any, data: bytes) -> tuple[Any, ...]:
    try:
        doc = parse(data)
    except InvalidFormat as exc:
        return ("refused", type(exc).__name__, exc.code, exc.message, exc.path, exc.line)
    except UnicodeEncodeError:  # the old reader's one fault (see old_full_path), in parse_manifest
        if parse not in (PARSERS["manifest"][1], PARSERS["embedded"][1]) or ref._parse_plain.__name__ == "<lambda>":
            raise
        return old_full_path(lambda: _result(parse, data))
    return ("ok", type(doc).__name__, {f.name: getattr(doc, f.name) for f in dataclasses.fields(doc)})


def assert_same_outcome(kind: str, data: bytes) -> tuple[Any, ...]:
    new_parse, old_parse = PARSERS[kind]
    new, old = _result(new_parse, data), _result(old_parse, data)
    if new[0] == old[0] == "ok":
        assert new[1] == old[1] and same(new[2], old[2]), data
    else:
        assert new == old, data
    return new


def originals(docs: Docs, kind: str) -> list[bytes]:
    return {"record": docs.records, "ledger": docs.lines, "manifest": docs.manifests, "embedded": docs.embedded}[kind]


FAST = {"record": record._fast, "ledger": ledger._fast, "manifest": manifest._fast_reader(False).read,
        "embedded": manifest._fast_reader(True).read}


@pytest.mark.parametrize("kind", list(PARSERS))
def test_the_fast_road_reads_the_real_documents_as_the_old_parsers(docs: Docs, kind: str) -> None:
    assert len(originals(docs, kind)) >= (1 if kind in ("manifest", "embedded") else 4)
    for data in originals(docs, kind):
        assert assert_same_outcome(kind, data)[0] == "ok"
        if b"-02-29" not in data:  # February 29 is left to the checkers (shape.REAL_DATE_RE)
            fast = FAST[kind]
            assert (fast(data, "pretty") if kind in ("manifest", "embedded") else fast(data)) is not None, data


# Values that sit at the limits the tables draw, and past them.
_HEX = "0123456789abcdef"
_edge_strings = st.sampled_from([
    "", "a", "log", "x" * 5, "x" * 6, "x" * 20, "x" * 21, "x" * 32, "x" * 33, "x" * 40, "x" * 41, "y" * 64, "y" * 65,
    "z" * 200, "z" * 201, "z" * 1000, "z" * 1001, "w" * 2000, "w" * 2001, "0" * 64, "0" * 63, "0" * 65, "A" * 64,
    "f" * 63 + "g", "f" * 63 + "F", "a" * 63 + "\n", "\u0660" * 64, "agr-x", "agr-syn-000001", "ab", "-ab", "agr_x\n",
    "2026-01-31T09:30:00Z", "2026-02-29T09:30:00Z", "2028-02-29T09:30:00Z", "2100-02-29T00:00:00Z",
    "2000-02-29T23:59:59Z", "0000-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "2026-13-01T00:00:00Z",
    "2026-04-31T00:00:00Z", "2026-01-31T24:00:00Z", "2026-01-31T23:60:00Z", "2026-01-31T23:59:60Z",
    "2026-01-31T09:30:00Z\n", "2026-01-31 09:30:00Z", "2026-01-31", "2026-02-30", "2024-02-29", "0000-01-01",
    "client", "guardian", "therapist", "administrator", "void", "signature", "parent", "other", "agreement.pdf",
    "manifest.json", "agreements-kit/signing-record", "agreements-kit/manifest", "agreements-kit/ledger",
    "sign", "archive", "render", "crl", "certificate", "renew", "migrate", "log-key", "issued", "created",
    "staff.one", "Staff", "\U0001f600", "\ud800", "a\x00b", "Ünïcødé",
]) | st.text(st.sampled_from(_HEX), min_size=64, max_size=64) | st.text(max_size=8)
_edge_values = st.recursive(
    st.none() | st.booleans() | _ints | st.sampled_from([1, 2, 99, 100, 0, -1, 10**12, 10**12 + 1, 1 << 40,
                                                         (1 << 40) + 1, 10**6, 10**6 + 1, 1.0, 2.0, 0.5, -0.0,
                                                         1e300, 2.0**53]) | _edge_strings,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys | _edge_strings, inner, max_size=3),
    max_leaves=6)


def _paths(value: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [here]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*here, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*here, i))
    return out


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


def _encodings(kind: str, value: Any, raw: bytes) -> list[bytes]:
    """The document's own canonical form first (the shape checks are reached), then the others."""
    pretty, jcs = jsonio.canonical_json, jsonio.jcs
    forms = [pretty] if kind in ("manifest", "embedded") or raw.startswith(b"{\n") else \
        [jcs] if b'"format_version"' in raw or kind == "record" else [jsonio.compact_json]
    out = []
    for encode in (*forms, pretty, jcs, jsonio.compact_json):
        try:
            out.append(encode(value))
        except (TypeError, ValueError):
            continue
    return out


@st.composite
def damaged(draw: Any, docs: Docs, kind: str) -> bytes:
    raw = draw(st.sampled_from(originals(docs, kind)))
    how = draw(st.sampled_from(["byte", "delete", "insert", "replace", "remove", "add", "reorder", "twice",
                                "layout", "variant"]))
    if how in ("byte", "delete", "insert"):
        at = draw(st.integers(0, len(raw) - 1))
        byte = bytes([draw(st.integers(0, 255))])
        return {"byte": raw[:at] + byte + raw[at + 1:], "delete": raw[:at] + raw[at + 1:],
                "insert": raw[:at] + byte + raw[at:]}[how]
    if how == "variant":
        return draw(st.sampled_from(_variants(raw)))
    value = json.loads(raw)
    path = draw(st.sampled_from(_paths(value)))
    target = _at(value, path[:-1]) if path else None
    if how == "replace" and path:
        target[path[-1]] = draw(_edge_values)
    elif how == "remove" and path and isinstance(target, dict):
        del target[path[-1]]
    elif how == "add":
        holder = _at(value, path)
        if isinstance(holder, dict):
            holder[draw(_edge_strings | st.sampled_from(sorted({k for p in _paths(value) for k in p
                                                                if isinstance(k, str)})))] = draw(_edge_values)
        elif isinstance(holder, list):
            holder.append(draw(_edge_values))
    elif how == "reorder":
        holder = _at(value, path)
        if isinstance(holder, dict):
            items = draw(st.permutations(list(holder.items())))
            holder.clear()
            holder.update(items)
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"),
                          indent=draw(st.sampled_from([None, 2]))).encode("utf-8", "surrogatepass")
    elif how == "twice":
        holder = _at(value, path)
        if isinstance(holder, dict) and holder:
            key = draw(st.sampled_from(list(holder)))
            member = json.dumps(key, ensure_ascii=False) + ":" + json.dumps(holder[key], ensure_ascii=False,
                                                                           separators=(",", ":"))
            text = jsonio.compact_json(value).decode("utf-8")
            if not path:
                return ("{" + member + "," + text[1:]).encode("utf-8")
    elif how == "layout":
        indent = draw(st.sampled_from([None, 1, 2, 4]))
        return json.dumps(value, ensure_ascii=draw(st.booleans()), sort_keys=True, indent=indent).encode("utf-8")
    return draw(st.sampled_from(_encodings(kind, value, raw) or [raw]))


@pytest.mark.parametrize("kind", list(PARSERS))
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_documents_are_read_or_refused_as_the_old_parsers_did(docs: Docs, kind: str, data: Any) -> None:
    assert_same_outcome(kind, data.draw(damaged(docs, kind)))


# ----------------------------------------------------------------------------- shape.FastShape's own patterns


def test_the_real_time_and_date_patterns_accept_only_what_the_checkers_accept() -> None:
    years = ["0000", "0001", "0004", "0100", "0400", "1900", "2000", "2023", "2024", "2026", "2100", "9999"]
    dates = [f"{y}-{m:02d}-{d:02d}" for y in years for m in range(0, 14) for d in range(0, 33)]
    for text in dates:
        real = True
        try:
            shape.date(text, "d", "x")
        except InvalidFormat:
            real = False
        fast = shape.REAL_DATE_RE.fullmatch(text) is not None
        assert not fast or real, text
        assert fast or not real or text.endswith("-02-29"), text  # the fast road leaves only February 29 out
        stamp = text + "T12:00:00Z"
        assert (shape.REAL_TIME_RE.fullmatch(stamp) is not None) == fast, stamp
    for h in range(0, 26):
        for m in range(0, 62):
            for s in range(0, 62):
                stamp = f"2026-01-31T{h:02d}:{m:02d}:{s:02d}Z"
                real = h < 24 and m < 60 and s < 60
                assert (shape.REAL_TIME_RE.fullmatch(stamp) is not None) == real, stamp
                shape.timestamp(stamp, "t", "x") if real else None
    for text in ("2026-01-31T09:30:00Z\n", "2026-01-31T09:30:00z", "\u0662026-01-31T09:30:00Z", "2026-01-31"):
        assert shape.REAL_TIME_RE.fullmatch(text) is None


# Tables drawn at random from every checker shape makes, with values drawn near what each accepts: whenever
# the fast road reads a value, shape.fields accepts it and returns the same.
def _custom(value: Any, member: str, where: str) -> Any:
    if isinstance(value, str) and len(value) > 3:
        raise shape.fail(f"'{member}' is too long", where, "format.bad-value")
    return value


_leaf_checkers = st.sampled_from([shape.boolean, shape.true, shape.anything, shape.sha256, shape.timestamp, shape.date,
                                  _custom]) | st.builds(
    shape.string, st.integers(0, 6), st.sampled_from([None, shape.SHA256_RE, re.compile(r"^[a-c]+\Z"),
                                                      re.compile(r"a"), re.compile(r"(?i)^a+\Z")]),
    st.sampled_from([(), ("a", "bb", "cccccccc"), ("log",)])) | st.builds(
    shape.const, st.sampled_from(["a", 2, True, None, 2**60, 1.5])) | st.builds(
    shape.integer, st.sampled_from([-(2**60), -1, 0, 1]), st.sampled_from([0, 1, 10, 2**53, 2**60]))


def _tables(inner: Any) -> Any:
    members = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), inner, max_size=3)
    return (st.builds(shape.nullable, inner) | st.builds(shape.mapping_of, inner, st.integers(0, 3))
            | st.builds(shape.list_of, inner, st.integers(0, 3)) | st.builds(shape.obj, members, members))


_checkers = st.recursive(_leaf_checkers, _tables, max_leaves=6)
_near = st.recursive(
    st.none() | st.booleans() | st.sampled_from([0, 1, 2, 10, 11, -1, 2**53 - 1, 2**53, 2**60, 1.0, 1.5])
    | _edge_strings | st.sampled_from(["a", "bb", "abc", "cccccccc", "A", "a" * 6, "a" * 7]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "b", "c", "d", "e"]), inner,
                                                                 max_size=4), max_leaves=8)


_times = st.sampled_from(["2026-01-31T09:30:00Z", "2024-02-29T00:00:00Z", "2026-02-29T00:00:00Z",
                          "0000-01-01T00:00:00Z", "2026-01-31T24:00:00Z", "9999-12-31T23:59:59Z"])


def _values_for(check: Any) -> Any:
    """Values mostly accepted by ``check`` (drawn from what it checks), now and then anything near."""
    what = shape._WHAT.get(check, ("other",))
    name = what[0]
    if name == "string":
        max_len, pattern, choices = what[1:]
        base = (st.sampled_from(choices) if choices else st.text(st.sampled_from(_HEX), min_size=64, max_size=64)
                if pattern is shape.SHA256_RE else st.from_regex(pattern, fullmatch=True) if pattern is not None
                else st.text(max_size=max_len + 1))
    elif name == "const":
        base = st.just(what[1])
    elif name == "integer":
        base = st.sampled_from([what[1] - 1, what[2] + 1, what[1], what[2]])
        if what[1] <= what[2]:
            base = base | st.integers(what[1], what[2])
    elif name in ("boolean", "true"):
        base = st.booleans()
    elif name == "sha256":
        base = st.text(st.sampled_from(_HEX), min_size=63, max_size=65)
    elif name == "timestamp":
        base = _times
    elif name == "date":
        base = _times.map(lambda t: t[:10])
    elif name == "nullable":
        base = st.none() | _values_for(what[1])
    elif name == "mapping_of":
        base = st.dictionaries(st.text(max_size=2), _values_for(what[1]), max_size=what[2] + 1)
    elif name == "list_of":
        base = st.lists(_values_for(what[1]), max_size=what[2] + 1)
    elif name == "obj":
        base = _objects_for(what[1], what[2])
    else:
        base = _near
    return st.one_of(base, base, base, _near)


def _objects_for(required: dict[str, Any], optional: dict[str, Any]) -> Any:
    return st.fixed_dictionaries({k: _values_for(c) for k, c in required.items()},
                                 optional={k: _values_for(c) for k, c in optional.items() if k not in required})


@settings(max_examples=1500, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b", "c"]), _checkers, max_size=3),
       st.dictionaries(st.sampled_from(["c", "d"]), _checkers, max_size=2),
       st.integers(1, 4), st.sampled_from(["compact", "rfc8785", "pretty"]), st.data())
def test_fast_shape_vouches_only_for_what_fields_accepts(required: dict[str, Any], optional: dict[str, Any],
                                                         depth: int, form: str, data: Any) -> None:
    fast = shape.FastShape(required, optional, max_depth=depth)
    value = data.draw(_objects_for(required, optional) | _near)
    try:
        encoded = {"compact": jsonio.compact_json, "rfc8785": jsonio.jcs, "pretty": jsonio.canonical_json}[form](value)
    except (TypeError, ValueError):
        return
    read = fast.read(encoded, form)
    if read is None:
        return
    parsed = ref.parse(encoded, "x", max_bytes=1 << 20, max_depth=depth, canonical_form=form)
    assert same(read, parsed)
    assert same(shape.fields(parsed, "x", required, optional), read)


def test_fast_shape_refuses_a_document_too_deep() -> None:
    deep = shape.obj({"b": shape.obj({"c": shape.anything})})
    fast = shape.FastShape({"a": deep}, max_depth=3)
    assert fast.read(b'{"a":{"b":{"c":1}}}', "rfc8785") is not None
    assert fast.read(b'{"a":{"b":{"c":[]}}}', "rfc8785") is None
