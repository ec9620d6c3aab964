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
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import rfc8785

from agreements_kit.errors import InvalidFormat

MAX_DEPTH = 8
BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")


def canonical_json(data: Any) -> bytes:
    """The ``pretty`` canonical form: sorted keys, two-space indent, UTF-8, final newline."""
    return (json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


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


def check_canonical(value: Any, data: bytes, where: str, canonical_form: str) -> None:
    """``data`` must be exactly the ``canonical_form`` bytes of ``value`` (InvalidFormat otherwise)."""
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


def _plain(value: Any) -> bool:
    """Whether RFC 8785 and the C encoder write ``value`` alike: no floats, integers JavaScript holds
    exactly, keys within the Basic Multilingual Plane (RFC 8785 sorts keys by UTF-16 code units,
    Python by code points: the two orders differ only beyond it)."""
    if isinstance(value, dict):
        return all(max(map(ord, k), default=0) < 0x10000 and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return True
    if isinstance(value, int):
        return -_SAFE_INT < value < _SAFE_INT
    return False


def _jcs_fast(value: Any) -> bytes | None:
    """RFC 8785 bytes through the C JSON encoder, for the values where both agree; None where they may not.

    Held equal to the ``rfc8785`` package by a differential property test (tests/test_formats.py)."""
    if not _plain(value):
        return None
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape: rfc8785 decides
        return None
