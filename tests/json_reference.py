"""The reference for the JSON fast roads: how documents were read before msgspec.

The first half is formats/jsonio.py's reader as it was (``json.loads`` with hooks, behind a fast
path of plain ``json.loads`` and re-encoding), the second ``parse_record``, ``parse_entry`` and
``parse_manifest`` as they were, on top of it: every document through ``shape.fields`` and the
format's own tables. The tables and formats/shape's checkers are shared with the package (they are
the specification, and still what names every refusal); what changed is the road in front of them.
tests/test_json_fastpath.py holds today's readers to this one: the same document, or the same
refusal (code and message). Not used by the package.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import rfc8785

from agreements_kit.errors import AgreementsError, InvalidFormat, LedgerError, RecordError
from agreements_kit.formats import shape
from agreements_kit.formats.ledger import _BASE, EVENT_FIELDS, FORMAT_VERSION, LEGACY_EVENTS, MAX_LINE, LedgerEntry
from agreements_kit.formats.ledger import _check_crl_numbers as _ledger_crl_numbers
from agreements_kit.formats.manifest import _DOCUMENT, _FIELDS, Manifest
from agreements_kit.formats.manifest import FORMAT as MANIFEST_FORMAT
from agreements_kit.formats.manifest import FORMAT_VERSION as MANIFEST_VERSION
from agreements_kit.formats.manifest import MAX_BYTES as MANIFEST_MAX_BYTES
from agreements_kit.formats.record import (
    _ESIGN,
    _SIGNATURE,
    _SIGNERS,
    _VOID,
    CANONICAL_FORM,
    CLIENT_ROLES,
    FORMAT,
    LEGACY_VERSION,
    MAX_BYTES,
    ROLES,
    VOID_ROLES,
    SigningRecord,
    _time,
)

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

    Plain ``json.loads`` (the C decoder, no hooks) is enough when re-encoding the value gives back
    exactly ``data``: the canonical encoding of a parsed object names each key once, so equal bytes
    had no key twice; a plain value (see :func:`_plain`) holds no float, so no NaN, Infinity or
    1e400; and the nesting is checked on the way. Everything :func:`parse` would refuse fails one of
    these, and then the full path runs and names the reason. ``canonical_form`` None asks for the
    compact form here (only as a shortcut: other bytes go the full way and are accepted there).
    """
    try:
        value = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):  # not UTF-8 or not JSON, a BOM, a huge number: the full path says
        return None
    if not _plain(value, max_depth):
        return None
    if canonical_form == "pretty":
        encoded = canonical_json(value)
    else:
        try:
            encoded = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape
            return None
    if encoded != data:
        return None
    if canonical_form != "pretty":
        _LAST_COMPACT[:] = [value, data]  # see check_canonical
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


def _jcs_fast(value: Any) -> bytes | None:
    """RFC 8785 bytes through the C JSON encoder, for the values where both agree; None where they may not.

    Held equal to the ``rfc8785`` package by a differential property test (tests/test_formats.py)."""
    if not _plain(value):
        return None
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape: rfc8785 decides
        return None


# ----------------------------------------------------------------------------- the parsers


def parse_record(data: bytes, where: str) -> SigningRecord:
    """Parse a record strictly; raises :class:`InvalidFormat` (``RecordError``) with a code on any deviation."""
    try:
        value = parse(data, where, max_bytes=MAX_BYTES, max_depth=4)
        if not isinstance(value, dict):
            raise RecordError("not a signing record (not a JSON object)", path=where, code="format.bad-type")
        if value.get("format") != FORMAT:
            raise RecordError("not an agreements-kit signing record", path=where, code="format.unknown-format")
        version = value.get("format_version")
        if type(version) is not int or version not in CANONICAL_FORM:
            raise RecordError(f"unsupported record format version {str(version)[:20]!r}", path=where,
                              code="format.version")
        check_canonical(value, data, where, CANONICAL_FORM[version])
        kind = value.get("kind")
        checked = shape.fields(value, where, _VOID if kind == "void" else _SIGNATURE)
        role = checked["signer"].get("role") if isinstance(checked["signer"], dict) else None
        allowed = VOID_ROLES if kind == "void" else ROLES
        if role not in allowed:
            raise RecordError(f"a {'void' if kind == 'void' else 'signature'} record cannot have the signer role "
                              f"{str(role)[:20]!r}", path=where, code="format.unknown-kind")
        if "staff_account" in (checked.get("identity") or {}) and (version == LEGACY_VERSION or
                                                                   role not in CLIENT_ROLES):
            raise RecordError("'identity.staff_account' belongs only in a client's or guardian's record of "
                              "format version 2", path=where, code="format.unknown-key")
        if version == LEGACY_VERSION and role == "administrator":
            raise RecordError("format version 1 has no administrator role", path=where, code="format.unknown-kind")
        _SIGNERS[str(role)](checked["signer"], "signer", where)
        if kind == "signature":
            if role in CLIENT_ROLES:
                _ESIGN(checked["esign"], "esign", where)
            elif checked["esign"] is not None:
                raise RecordError("'esign' must be null in a therapist's record", path=where, code="format.bad-value")
    except RecordError:
        raise
    except AgreementsError as exc:  # InvalidFormat from the shared checkers: re-raise as this format's error
        raise RecordError(exc.message, path=where, code=exc.code) from None
    return SigningRecord(
        raw=data, data=checked, version=int(version), kind="void" if kind == "void" else str(role),
        agreement_id=checked["agreement_id"], sequence=checked["sequence"], signed_at=_time(checked["signed_at"]),
        document_sha256=checked["document"]["sha256"], manifest_sha256=checked["manifest"]["sha256"],
        certificate_sha256=checked["certificate"]["sha256"], ledger_head=checked["ledger_head"], role=str(role),
        name=checked["signer"]["name"])



def parse_entry(line: bytes, where: str, number: int) -> LedgerEntry:
    """Parse one ledger line strictly; raises :class:`LedgerError` with a code and the line number."""
    at = f"{where}:{number}"
    try:
        value = parse(line, at, max_bytes=MAX_LINE, max_depth=3)
        if not isinstance(value, dict):
            raise LedgerError("not a ledger entry (not a JSON object)", path=where, line=number,
                              code="format.bad-type")
        version = value.get("format_version", 1)
        if version not in (1, FORMAT_VERSION) or isinstance(version, bool):
            raise LedgerError(f"unsupported ledger format version {str(version)[:20]!r}", path=where, line=number,
                              code="format.version")
        check_canonical(value, line, at, "rfc8785" if version == FORMAT_VERSION else "compact")
        event = value.get("event")
        if version == 1 and event not in LEGACY_EVENTS:
            raise LedgerError(f"legacy ledger lines have no event {str(event)[:20]!r}", path=where, line=number,
                              code="format.unknown-kind")
        required, optional = EVENT_FIELDS.get(str(event), ({}, {}))
        base = dict(_BASE)
        if version == FORMAT_VERSION:
            base["format_version"] = shape.const(FORMAT_VERSION)
        checked = shape.fields(value, at, {**base, **required}, optional)
        if event == "crl":
            _ledger_crl_numbers(checked, at)
    except LedgerError:
        raise
    except AgreementsError as exc:
        raise LedgerError(exc.message, path=where, line=number, code=exc.code) from None
    return LedgerEntry(line, checked, number, int(version))


def parse_manifest(data: bytes, where: str, *, embedded: bool = False) -> Manifest:
    """Parse ``manifest.json`` (``embedded=False``: it must carry ``document``) or the PDF's copy (it must not)."""
    try:
        value = parse(data, where, max_bytes=MANIFEST_MAX_BYTES, max_depth=5, canonical_form="pretty")
        if isinstance(value, dict) and value.get("format") != MANIFEST_FORMAT:
            raise InvalidFormat("not an agreements-kit manifest", path=where, code="format.unknown-format")
        if isinstance(value, dict) and value.get("format_version") != MANIFEST_VERSION:
            raise InvalidFormat(f"unsupported manifest format version {str(value.get('format_version'))[:20]!r}",
                                path=where, code="format.version")
        checked = shape.fields(value, where, _FIELDS, {} if embedded else {"document": _DOCUMENT})
        if not embedded and "document" not in checked:
            raise InvalidFormat("missing key 'document' (the PDF's SHA-256)", path=where, code="format.missing-key")
    except InvalidFormat:
        raise
    except AgreementsError as exc:  # pragma: no cover - the checkers raise InvalidFormat only
        raise InvalidFormat(exc.message, path=where, code=exc.code) from None
    return Manifest(data, checked, canonical=True)
