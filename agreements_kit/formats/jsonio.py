"""JSON bytes in and out: one strict reader, and the canonical forms documents are written in.

Why strict: OpenSSL checks a signature over bytes, our verifier reads values from
them. If two readers could see two documents in the same bytes (a key given twice,
a byte-order mark, UTF-16, a number written two ways), a forger could show OpenSSL
one thing and us another. So every document is parsed here, and a document is
accepted only when its bytes are exactly the canonical form of what was parsed.

Canonical forms, by format version:

- ``rfc8785``: RFC 8785 JSON Canonicalization Scheme (the ``rfc8785`` package):
  signing records and ledger entries of format version 2.
- ``pretty``: sorted keys, two-space indent, UTF-8, final newline: manifests, and
  signing records of the legacy format version 1.
- ``compact``: sorted keys, no spaces, UTF-8: ledger lines of the legacy version 1.

The fast road (:func:`decode_canonical`): msgspec's C decoder and encoder. It never decides on
its own what a document says: it decodes, re-encodes what it decoded, and vouches only when that
gives back exactly the bytes read, for values the standard library's encoder writes the same way
(:func:`_plain`). Then ``json.loads`` reads the bytes as the same value, whatever msgspec made of
them, and the full path would accept them; everything else goes the full path, which names the
fault. tests/test_json_fastpath.py holds it to the reader it replaced (tests/json_reference.py).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

import msgspec
import rfc8785

from agreements_kit.errors import InvalidFormat

MAX_DEPTH = 8
BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")


def canonical_json(data: Any) -> bytes:
    """The ``pretty`` canonical form: sorted keys, two-space indent, UTF-8, final newline."""
    parts: list[str] = []
    if _pretty(data, "\n", parts):
        parts.append("\n")
        return "".join(parts).encode("utf-8")
    del parts  # a large or unusual document: the standard library's printer, in its bounded memory
    return (json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


_encode_string = json.encoder.encode_basestring  # the C encoder's string form (ensure_ascii=False)
_PRETTY_PARTS = 20_000  # a manifest needs about 300 parts; past this, json.dumps (its memory stays bounded)


def _pretty(value: Any, newline: str, out: list[str]) -> bool:
    """``json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False)`` into ``out``, for what
    ``json.loads`` makes from text without floats (str keys; dict, list, str, int, bool, None): the
    standard library's pretty printer is pure Python and this is several times faster. False, with
    ``out`` partly written, for anything else (the caller then uses json.dumps). Held equal to
    json.dumps by tests/test_fastpaths.py."""
    kind = type(value)
    if kind is str:
        out.append(_encode_string(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif kind is int:
        out.append(int.__repr__(value))
    elif kind is dict:
        if not value:
            out.append("{}")
            return True
        inner = newline + "  "
        first = True
        try:
            keys = sorted(value)
        except TypeError:
            return False
        for key in keys:
            if type(key) is not str:
                return False
            out.append(("{" if first else ",") + inner + _encode_string(key) + ": ")
            first = False
            if len(out) > _PRETTY_PARTS or not _pretty(value[key], inner, out):
                return False
        out.append(newline + "}")
    elif kind is list:
        if not value:
            out.append("[]")
            return True
        inner = newline + "  "
        first = True
        for item in value:
            out.append(("[" if first else ",") + inner)
            first = False
            if len(out) > _PRETTY_PARTS or not _pretty(item, inner, out):
                return False
        out.append(newline + "]")
    else:
        return False  # floats, tuples, subclasses: json.dumps decides
    return True


def canonical(data: dict[str, Any]) -> bytes:
    """Legacy name for :func:`canonical_json` (records of format version 1)."""
    return canonical_json(data)


def compact_json(data: Any) -> bytes:
    """The ``compact`` canonical form of legacy ledger lines."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def jcs(data: Any) -> bytes:
    """RFC 8785 canonical bytes (no final newline)."""
    return bytes(rfc8785.dumps(data))


CANONICAL: dict[str, Callable[[Any], bytes]] = {"pretty": canonical_json, "compact": compact_json, "rfc8785": jcs}


def _pairs(where: str) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise InvalidFormat(f"the key '{key[:40]}' appears twice: two readers could see two different "
                                    "documents", path=where, code="format.duplicate-key")
            out[key] = value
        return out
    return hook


def _constant(where: str) -> Callable[[str], Any]:
    def hook(name: str) -> Any:
        raise InvalidFormat(f"'{name}' is not a JSON number", path=where, code="format.bad-value")
    return hook


def _float(where: str) -> Callable[[str], float]:
    def hook(text: str) -> float:
        value = float(text)
        if math.isinf(value):  # 1e400: Infinity in disguise
            raise InvalidFormat(f"the number {text[:40]} is too large", path=where, code="format.bad-value")
        return value
    return hook


def _depth(value: Any, limit: int, where: str, level: int = 1) -> None:
    if isinstance(value, dict):
        children: Any = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return
    if level > limit:
        raise InvalidFormat(f"nested deeper than {limit} levels", path=where, code="format.too-deep")
    for child in children:
        _depth(child, limit, where, level + 1)


def parse(data: bytes, where: str, *, max_bytes: int, max_depth: int = MAX_DEPTH,
          canonical_form: str | None = None) -> Any:
    """Parse ``data`` strictly; with ``canonical_form``, the bytes must be that form of the result.

    Raises :class:`InvalidFormat` (never anything else) for: too many bytes, a
    byte-order mark, bytes that are not UTF-8 (UTF-16, Latin-1...), malformed JSON,
    a key given twice, NaN or Infinity, nesting past ``max_depth``, and bytes that
    differ from the canonical form.
    """
    if len(data) > max_bytes:
        raise InvalidFormat(f"larger than {max_bytes} bytes", path=where, code="format.too-large")
    quick = _parse_plain(data, max_depth, canonical_form)
    if quick is not None:
        return quick[0]
    if data.startswith(BOMS):
        raise InvalidFormat("starts with a byte-order mark: documents are UTF-8 without one", path=where,
                            code="format.encoding")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidFormat("not UTF-8 text (another encoding, or damaged)", path=where,
                            code="format.encoding") from None
    try:
        value = json.loads(text, object_pairs_hook=_pairs(where), parse_constant=_constant(where),
                           parse_float=_float(where))
    except json.JSONDecodeError as exc:
        raise InvalidFormat(f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})", path=where,
                            line=exc.lineno, code="format.not-json") from None
    except RecursionError:
        raise InvalidFormat(f"nested deeper than {max_depth} levels", path=where, code="format.too-deep") from None
    except ValueError:  # a whole number of more than 4300 digits (sys.get_int_max_str_digits)
        raise InvalidFormat("holds a number with too many digits", path=where, code="format.bad-value") from None
    _depth(value, max_depth, where)
    if canonical_form is not None:
        check_canonical(value, data, where, canonical_form)
    return value


def _parse_plain(data: bytes, max_depth: int, canonical_form: str | None) -> tuple[Any] | None:
    """The fast path of :func:`parse`: ``(value,)`` when the bytes are already in canonical form, else None.

    Decoding and re-encoding (:func:`decode_canonical`) is enough when it gives back exactly
    ``data``: the canonical encoding of a parsed object names each key once, so equal bytes had no
    key twice; a plain value (see :func:`_plain`) holds no float, so no NaN, Infinity or 1e400; and
    the nesting is checked on the way. Everything :func:`parse` would refuse fails one of these, and
    then the full path runs and names the reason. ``canonical_form`` None asks for the compact form
    here (only as a shortcut: other bytes go the full way and are accepted there).
    """
    quick = decode_canonical(data, _ANY, "pretty" if canonical_form == "pretty" else "compact")
    if quick is None or not _plain(quick[0], max_depth):
        return None
    if canonical_form != "pretty":
        _LAST_COMPACT[:] = [quick[0], data]  # see check_canonical
    return quick


def _no_float(text: str) -> Any:
    raise ValueError("a float: the full path decides")  # msgspec reports it as a DecodeError


# Any JSON value, floats refused (the full path reads them). Its dicts, lists, str, int, bool and
# None are what json.loads makes of the same bytes once decode_canonical vouched for them.
_ANY: msgspec.json.Decoder[Any] = msgspec.json.Decoder(float_hook=_no_float)
_ENCODER = msgspec.json.Encoder(order="sorted")  # keys by code point, as sort_keys=True sorts them
_ASTRAL = re.compile(rb"[\xf0-\xff]")  # the lead byte of a character beyond the BMP (or no UTF-8 at all)
_FAILED = (msgspec.MsgspecError, ValueError, TypeError, OverflowError, RecursionError)


def decoder(kind: Any) -> msgspec.json.Decoder[Any]:
    """A msgspec decoder of ``kind`` (a type shape.FastShape made), for :func:`decode_canonical`."""
    return msgspec.json.Decoder(kind, float_hook=_no_float)


def decode_canonical(data: bytes, decoder: msgspec.json.Decoder[Any], form: str) -> tuple[Any] | None:
    """``(value,)`` when ``data`` is exactly the ``form`` bytes of what ``decoder`` makes of it; None when not.

    What it vouches for, and why it is enough: msgspec's encoder writes every value msgspec's decoder
    makes that holds no float (dict, list, str, int, bool, None) exactly as ``json.dumps`` with
    ``ensure_ascii=False`` and sorted keys does (held by tests/test_json_fastpath.py, every character
    included), compact, or ``indent=2`` through ``msgspec.json.format``. So equal bytes are the
    standard library's encoding of the value, and ``json.loads`` reads them back as that very value,
    whatever msgspec made of them (a key given twice, a lone surrogate, a BOM, another layout: then
    the bytes differ, or msgspec refused them). The caller still checks what :func:`_plain` asks of
    the value (a typed decoder, by its types), except for ``rfc8785`` keys beyond the Basic
    Multilingual Plane (sorted otherwise there), which this refuses for any character beyond it.
    """
    try:
        value = decoder.decode(data)
        encoded = _ENCODER.encode(value)
    except _FAILED:
        return None
    if form == "pretty":
        encoded = msgspec.json.format(encoded, indent=2) + b"\n"
    elif form == "rfc8785" and not data.isascii() and _ASTRAL.search(data) is not None:
        return None
    if encoded != data:
        return None
    return (value,)


# The last value parse() returned through its compact fast path, with its bytes: check_canonical of
# exactly these two objects (the value as parse() returned it, unmodified, as parse_entry and
# parse_record pass it straight on) is already answered: data is the compact and RFC 8785 form of it.
_LAST_COMPACT: list[Any] = [None, None]


def check_canonical(value: Any, data: bytes, where: str, canonical_form: str) -> None:
    """``data`` must be exactly the ``canonical_form`` bytes of ``value`` (InvalidFormat otherwise).

    ``value`` must be what :func:`parse` returned for ``data``, unmodified."""
    if canonical_form in ("rfc8785", "compact") and value is _LAST_COMPACT[0] and data is _LAST_COMPACT[1]:
        return
    if canonical_form == "rfc8785" and _jcs_fast(value) == data:
        return
    try:
        expected = CANONICAL[canonical_form](value)
    except (TypeError, ValueError, rfc8785.CanonicalizationError):
        raise InvalidFormat("holds a value that has no canonical form (a number out of range?)", path=where,
                            code="format.not-canonical") from None
    if expected != data:
        raise InvalidFormat(f"its bytes are not the canonical ({canonical_form}) form of its content: it was "
                            "edited by hand or by another program", path=where, code="format.not-canonical")


_SAFE_INT = 2**53


def _plain(value: Any, max_depth: int = 1 << 30, level: int = 1) -> bool:
    """Whether RFC 8785 and the C encoder write ``value`` alike: no floats, integers JavaScript holds
    exactly, keys within the Basic Multilingual Plane (RFC 8785 sorts keys by UTF-16 code units,
    Python by code points: the two orders differ only beyond it); and objects and lists nested at
    most ``max_depth`` levels (as :func:`_depth` counts them). Values are what ``json.loads`` makes."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-_SAFE_INT < value < _SAFE_INT)
    if kind is dict:
        if level > max_depth:
            return False
        for k, v in value.items():
            if not k.isascii() and max(map(ord, k)) >= 0x10000:
                return False
            if type(v) is not str and not _plain(v, max_depth, level + 1):
                return False
        return True
    if kind is list:
        if level > max_depth:
            return False
        return all(_plain(v, max_depth, level + 1) for v in value)
    return False  # a float (json.loads makes nothing else)


plain = _plain  # for shape.FastShape


def _jcs_fast(value: Any) -> bytes | None:
    """RFC 8785 bytes through msgspec's encoder, for the values where it and ``rfc8785`` agree; None where
    they may not.

    Held equal to the ``rfc8785`` package by a differential property test (tests/test_formats.py)."""
    if not _plain(value):
        return None
    try:
        return _ENCODER.encode(value)
    except _FAILED:  # a lone surrogate from a \ud800 escape: rfc8785 decides
        return None
