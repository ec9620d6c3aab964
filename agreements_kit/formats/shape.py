"""Checking the shape of parsed JSON: exact keys, exact types, bounded strings.

Every format module describes its documents with these small checkers, so that
"unknown key", "missing key" and "wrong type" are said the same way everywhere,
with the path of the offending member (``signer.role``) and a code.

The same tables also give a fast road (:class:`FastShape`): each checker made here records what
it checks, and a table of them becomes a msgspec type (TypedDict, Literal, constrained str and
int, in C) that decodes only values every checker of the table accepts as they are. It can only
vouch: whatever it does not decode, or its few checks in Python refuse, goes through the
checkers, which name the fault. There is no second schema to keep in step: both read the table.
"""

from __future__ import annotations

import datetime as dt
import itertools
import operator
import re
import weakref
from collections.abc import Callable
from typing import Annotated, Any, Literal, NotRequired, TypedDict

import msgspec

from agreements_kit.errors import InvalidFormat
from agreements_kit.formats import jsonio

Checker = Callable[[Any, str, str], Any]

# What each checker made here checks, for FastShape: ("string", max_len, pattern, choices), ("const",
# expected), ("integer", low, high), ("nullable", inner), ("mapping_of", values, max_items), ("list_of",
# items, max_items), ("obj", required, optional), or the name of a checker defined below. Weak keys: some
# callers make checkers per call.
_WHAT: weakref.WeakKeyDictionary[Checker, tuple[Any, ...]] = weakref.WeakKeyDictionary()


def _says(check: Checker, *what: Any) -> Checker:
    _WHAT[check] = what
    return check

# ASCII digits only (``\d`` would match any script's digits) and ``\Z`` (``$`` matches before a final newline).
SHA256_RE = re.compile(r"^[0-9a-f]{64}\Z")
TIME_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z\Z")
DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def fail(message: str, where: str, code: str) -> InvalidFormat:
    return InvalidFormat(message, path=where, code=code)


def string(max_len: int = 2000, pattern: re.Pattern[str] | None = None, choices: tuple[str, ...] = ()) -> Checker:
    def check(value: Any, member: str, where: str) -> str:
        if not isinstance(value, str):
            raise fail(f"'{member}' must be a string", where, "format.bad-type")
        if len(value) > max_len:
            raise fail(f"'{member}' is longer than {max_len} characters", where, "format.bad-value")
        if pattern is not None and not pattern.fullmatch(value):
            raise fail(f"'{member}' is not of the expected form", where, "format.bad-value")
        if choices and value not in choices:
            raise fail(f"'{member}' must be one of {', '.join(choices)}, not {value[:40]!r}", where,
                       "format.unknown-kind")
        return value
    return _says(check, "string", max_len, pattern, choices)


def const(expected: Any) -> Checker:
    def check(value: Any, member: str, where: str) -> Any:
        if type(value) is not type(expected) or value != expected:
            raise fail(f"'{member}' must be {expected!r}", where, "format.bad-value")
        return value
    return _says(check, "const", expected)


def integer(low: int, high: int) -> Checker:
    def check(value: Any, member: str, where: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise fail(f"'{member}' must be a whole number", where, "format.bad-type")
        if not low <= value <= high:
            raise fail(f"'{member}' must be between {low} and {high}", where, "format.bad-value")
        return value
    return _says(check, "integer", low, high)


def boolean(value: Any, member: str, where: str) -> bool:
    if not isinstance(value, bool):
        raise fail(f"'{member}' must be true or false", where, "format.bad-type")
    return value


def true(value: Any, member: str, where: str) -> bool:
    if value is not True:
        raise fail(f"'{member}' must be true", where, "format.bad-value")
    return True


def nullable(inner: Checker) -> Checker:
    def check(value: Any, member: str, where: str) -> Any:
        return None if value is None else inner(value, member, where)
    return _says(check, "nullable", inner)


def mapping_of(values: Checker, max_items: int = 200) -> Checker:
    def check(value: Any, member: str, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise fail(f"'{member}' must be an object", where, "format.bad-type")
        if len(value) > max_items:
            raise fail(f"'{member}' has more than {max_items} members", where, "format.bad-value")
        return {k: values(v, f"{member}.{k}", where) for k, v in value.items()}
    return _says(check, "mapping_of", values, max_items)


def list_of(items: Checker, max_items: int = 500) -> Checker:
    def check(value: Any, member: str, where: str) -> list[Any]:
        if not isinstance(value, list):
            raise fail(f"'{member}' must be a list", where, "format.bad-type")
        if len(value) > max_items:
            raise fail(f"'{member}' has more than {max_items} items", where, "format.bad-value")
        return [items(v, f"{member}[{i}]", where) for i, v in enumerate(value)]
    return _says(check, "list_of", items, max_items)


def anything(value: Any, member: str, where: str) -> Any:
    return value


def obj(required: dict[str, Checker], optional: dict[str, Checker] | None = None) -> Checker:
    """An object with exactly these keys (``optional`` ones may be absent)."""
    optional = optional or {}

    def check(value: Any, member: str, where: str) -> dict[str, Any]:
        return fields(value, where, required, optional, member)
    return _says(check, "obj", required, optional)


def fields(value: Any, where: str, required: dict[str, Checker], optional: dict[str, Checker] | None = None,
           member: str = "") -> dict[str, Any]:
    optional = optional or {}
    label = f"'{member}'" if member else "the document"
    if not isinstance(value, dict):
        raise fail(f"{label} must be a JSON object", where, "format.bad-type")
    prefix = f"{member}." if member else ""
    for key in value:
        if key not in required and key not in optional:
            raise fail(f"unknown key '{prefix}{str(key)[:40]}': this format has no such member", where,
                       "format.unknown-key")
    for key in required:
        if key not in value:
            raise fail(f"missing key '{prefix}{key}'", where, "format.missing-key")
    out: dict[str, Any] = {}
    for key, item in value.items():
        out[key] = (required.get(key) or optional[key])(item, prefix + key, where)
    return out


_SHA256_TEXT = string(64, SHA256_RE)


def sha256(value: Any, member: str, where: str) -> str:
    return _SHA256_TEXT(value, member, where)  # type: ignore[no-any-return]


_TIME_TEXT = string(20, TIME_RE)


def parse_time(text: str) -> dt.datetime:
    """The UTC datetime of a text already matched by ``TIME_RE``: what ``strptime(text, TIME_FORMAT)``
    gives, without its cost (ValueError for a time that does not exist: month 13, February 30,
    hour 24, second 60, year 0)."""
    return dt.datetime(int(text[0:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]), int(text[14:16]),
                       int(text[17:19]), tzinfo=dt.UTC)


def timestamp(value: Any, member: str, where: str) -> str:
    """A UTC time, ``2026-01-31T09:30:00Z``, that exists (no month 13, no February 30, no second 60)."""
    text: str = _TIME_TEXT(value, member, where)
    try:
        parse_time(text)
    except ValueError:
        raise fail(f"'{member}' is not a real time", where, "format.bad-value") from None
    return text


_DATE_TEXT = string(10, DATE_RE)


def date(value: Any, member: str, where: str) -> str:
    """A calendar date, ``2026-01-31``, that exists."""
    text: str = _DATE_TEXT(value, member, where)
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        raise fail(f"'{member}' is not a real date", where, "format.bad-value") from None
    return text


for _check in (boolean, true, anything, sha256, timestamp, date):
    _says(_check, _check.__name__)


# ----------------------------------------------------------------------------- the fast road

_Post = Callable[[Any], bool] | None
_SAFE = 2**53 - 1  # integers beyond are no plain value (jsonio._plain): the full path reads them
_names = itertools.count()
_LITERAL: Any = Literal  # types made at run time, from the tables
_TYPED_DICT: Any = TypedDict


# The times and dates timestamp and date accept, as one pattern each (for FastShape, which may refuse more):
# years 0001-9999, real months, hours, minutes and seconds, days 1-28 of any month, 29-30 of any month but
# February, 31 of the months that have it. February 29 is left to the checkers (leap years).
_DAY = (r"(?!0000)[0-9]{4}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)"
        r"|(?:0[13578]|1[02])-31)")
REAL_DATE_RE = re.compile(rf"^{_DAY}\Z")
REAL_TIME_RE = re.compile(rf"^{_DAY}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z\Z")
_SHA256_LENGTH: Any = Annotated[str, msgspec.Meta(min_length=64, max_length=64)]  # and _hex (see _object)


def _hex(text: str) -> bool:
    """Whether every character of ``text`` is a lowercase hex digit (what SHA256_RE asks of each, its length
    aside): ASCII, and nothing left once the digits are taken out (several times faster than a regex)."""
    return text.isascii() and not text.encode("ascii").translate(None, b"0123456789abcdef")
_REAL_TIME = string(20, REAL_TIME_RE)  # FastShape's types for timestamp and date: never used to check
_REAL_DATE = string(10, REAL_DATE_RE)


def _is_sha256(check: Checker) -> bool:
    return _WHAT.get(check) in (("sha256",), ("string", 64, SHA256_RE, ()))


_VALUES = object()  # the end of a path in _object's hexes: the values of a mapping, joined


def _getter(path: tuple[Any, ...]) -> Callable[[Any], Any]:
    if path[0] is _VALUES:
        return lambda value: "".join(value.values())
    head = operator.itemgetter(path[0])
    if len(path) == 1:
        return head
    rest = _getter(path[1:])
    return lambda value: rest(head(value))


def _all(post: Callable[[Any], bool], values: Callable[[Any], Any]) -> Callable[[Any], bool]:
    return lambda value: all(map(post, values(value)))


class FastShape:
    """The fast road of ``fields(value, where, required, optional)`` over JSON bytes.

    :meth:`read` gives the value only when the bytes are exactly the canonical form of it (see
    jsonio.decode_canonical) and ``fields`` would return an equal value (the same keys in the same
    order, the same types) for it; None otherwise, and the caller then parses and checks the usual
    way, which accepts or names the fault. The table becomes a msgspec type: an ``obj`` a TypedDict
    (an unknown key is dropped, so the bytes then differ), a string a str of at most ``max_len``
    characters matching the whole pattern, or a Literal of the choices; an integer an int within its
    bounds and within the plain range; ``true`` Literal[True]; a time or date a str matching
    REAL_TIME_RE or REAL_DATE_RE (real ones only). What msgspec cannot say is checked in Python after
    decoding: that SHA-256 texts are lowercase hex (see _object), and, for any other checker (and
    ``anything``), that the value is plain (jsonio._plain, to the depth left) and the checker
    returns it unchanged. Containers deeper than ``max_depth`` are never typed (jsonio.parse's depth).
    """

    def __init__(self, required: dict[str, Checker], optional: dict[str, Checker] | None = None, *,
                 max_depth: int) -> None:
        if max_depth < 1:
            raise ValueError("a document is an object: max_depth must be at least 1")
        self.max_depth = max_depth
        kind, self.post = self._object(required, optional or {}, 1)
        self.decoder = jsonio.decoder(kind)

    def read(self, data: bytes, form: str) -> dict[str, Any] | None:
        """The value of ``data`` in canonical form ``form`` (``compact``, ``rfc8785``, ``pretty``), or None."""
        quick = jsonio.decode_canonical(data, self.decoder, form)
        if quick is None or (self.post is not None and not self.post(quick[0])):
            return None
        return quick[0]  # type: ignore[no-any-return]

    def _object(self, required: dict[str, Checker], optional: dict[str, Checker], level: int,
                within: tuple[str, ...] = (), hexes: list[tuple[Any, ...]] | None = None) -> tuple[Any, _Post]:
        """An object's TypedDict and check in Python. Its required SHA-256 members (and mappings of them), and
        those of the required objects in it, are typed by length only and checked together: each is 64
        characters long, so their concatenation is all lowercase hex exactly when each one is (one call of
        _hex instead of a regex for each). An object inside a required object leaves that to the
        outermost: ``hexes`` collects the paths (``within`` is the path of this object)."""
        own = hexes is None
        paths: list[tuple[Any, ...]] = [] if hexes is None else hexes
        members: dict[str, Any] = {}
        musts: list[tuple[str, Callable[[Any], bool]]] = []
        mays: list[tuple[str, Callable[[Any], bool]]] = []
        for key, check in {**optional, **required}.items():  # a key in both is required (see fields)
            what = _WHAT.get(check, ("other",))
            kind: Any
            inner: _Post
            if key in required and _is_sha256(check):
                kind, inner = _SHA256_LENGTH, None
                paths.append((*within, key))
            elif key in required and what[0] == "mapping_of" and _is_sha256(what[1]) and level + 1 <= self.max_depth:
                kind, inner = Annotated[dict[str, _SHA256_LENGTH], msgspec.Meta(max_length=what[2])], None
                paths.append((*within, key, _VALUES))
            elif key in required and what[0] == "obj" and level + 1 <= self.max_depth:
                kind, inner = self._object(what[1], what[2], level + 1, (*within, key), paths)
            else:
                kind, inner = self._type(check, level + 1)
            members[key] = kind if key in required else NotRequired[kind]
            if inner is not None:
                (musts if key in required else mays).append((key, inner))
        typed = _TYPED_DICT(f"Shape{next(_names)}", members)
        tops = [path[0] for path in paths if len(path) == 1 and path[0] is not _VALUES] if own else []
        top = operator.itemgetter(*tops) if len(tops) > 1 else None  # a tuple of them
        getters = [_getter(path) for path in paths if len(path) > 1 or top is None] if own else []

        def post(value: dict[str, Any]) -> bool:
            if top is not None and not _hex("".join(top(value))):
                return False
            if getters and not _hex("".join([get(value) for get in getters])):
                return False
            for key, member in musts:
                if not member(value[key]):
                    return False
            return all(key not in value or member(value[key]) for key, member in mays)
        return typed, (post if top or getters or musts or mays else None)

    def _type(self, check: Checker, level: int) -> tuple[Any, _Post]:
        """The msgspec type of a member at ``level`` (a container there is nested ``level`` deep), and its
        check in Python (None: the type says it all)."""
        what = _WHAT.get(check, ("other",))
        name = what[0]
        container = name in ("obj", "mapping_of", "list_of")
        if container and level > self.max_depth:
            name = "other"
        if name == "string":
            _, max_len, pattern, choices = what
            if pattern is not None and pattern.flags != re.UNICODE:
                return self._other(check, level)
            if choices:
                ok = tuple(c for c in choices if len(c) <= max_len and (pattern is None or pattern.fullmatch(c)))
                return (_LITERAL[ok], None) if ok else self._other(check, level)
            whole = None if pattern is None else rf"\A(?:{pattern.pattern})\Z"  # msgspec searches; fields matches all
            return Annotated[str, msgspec.Meta(max_length=max_len, pattern=whole)], None
        if name == "const":
            expected = what[1]
            if type(expected) is str or (type(expected) is int and -_SAFE <= expected <= _SAFE):
                return _LITERAL[expected], None
        elif name == "integer":
            low, high = max(what[1], -_SAFE), min(what[2], _SAFE)
            if low <= high:
                return Annotated[int, msgspec.Meta(ge=low, le=high)], None
        elif name == "boolean":
            return bool, None
        elif name == "true":
            return _LITERAL[True], None
        elif name == "sha256":
            return _SHA256_LENGTH, _hex
        elif name == "timestamp":
            return self._type(_REAL_TIME, level)
        elif name == "date":
            return self._type(_REAL_DATE, level)
        elif name == "nullable":
            kind, post = self._type(what[1], level)
            inner = post
            return kind | None, (None if inner is None else (lambda value: value is None or inner(value)))
        elif name == "mapping_of":
            if _is_sha256(what[1]):  # as in _object: each 64 characters long, all of them hex
                return (Annotated[dict[str, _SHA256_LENGTH], msgspec.Meta(max_length=what[2])],
                        lambda value: _hex("".join(value.values())))
            kind, post = self._type(what[1], level + 1)
            return (Annotated[dict[str, kind], msgspec.Meta(max_length=what[2])],  # type: ignore[valid-type]
                    None if post is None else _all(post, dict.values))
        elif name == "list_of":
            if _is_sha256(what[1]):
                return (Annotated[list[_SHA256_LENGTH], msgspec.Meta(max_length=what[2])],
                        lambda value: _hex("".join(value)))
            kind, post = self._type(what[1], level + 1)
            return (Annotated[list[kind], msgspec.Meta(max_length=what[2])],  # type: ignore[valid-type]
                    None if post is None else _all(post, iter))
        elif name == "obj":
            return self._object(what[1], what[2], level)
        return self._other(check, level)

    def _other(self, check: Checker, level: int) -> tuple[Any, _Post]:
        """Any value, then: plain to the depth left, and returned unchanged by ``check`` (``anything``, a
        format's own checker, or a container nested too deep)."""
        max_depth = self.max_depth

        def post(value: Any) -> bool:
            if not jsonio.plain(value, max_depth, level):
                return False
            try:
                return check(value, "", "") is value
            except Exception:  # noqa: BLE001 - whatever it is, fields will say it
                return False
        return Any, post
