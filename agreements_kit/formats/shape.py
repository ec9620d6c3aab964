"""Checking the shape of parsed JSON: exact keys, exact types, bounded strings.

Every format module describes its documents with these small checkers, so that
"unknown key", "missing key" and "wrong type" are said the same way everywhere,
with the path of the offending member (``signer.role``) and a code.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from agreements_kit.errors import InvalidFormat

Checker = Callable[[Any, str, str], Any]

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
    return check


def const(expected: Any) -> Checker:
    def check(value: Any, member: str, where: str) -> Any:
        if type(value) is not type(expected) or value != expected:
            raise fail(f"'{member}' must be {expected!r}", where, "format.bad-value")
        return value
    return check


def integer(low: int, high: int) -> Checker:
    def check(value: Any, member: str, where: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise fail(f"'{member}' must be a whole number", where, "format.bad-type")
        if not low <= value <= high:
            raise fail(f"'{member}' must be between {low} and {high}", where, "format.bad-value")
        return value
    return check


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
    return check


def mapping_of(values: Checker, max_items: int = 200) -> Checker:
    def check(value: Any, member: str, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise fail(f"'{member}' must be an object", where, "format.bad-type")
        if len(value) > max_items:
            raise fail(f"'{member}' has more than {max_items} members", where, "format.bad-value")
        return {k: values(v, f"{member}.{k}", where) for k, v in value.items()}
    return check


def list_of(items: Checker, max_items: int = 500) -> Checker:
    def check(value: Any, member: str, where: str) -> list[Any]:
        if not isinstance(value, list):
            raise fail(f"'{member}' must be a list", where, "format.bad-type")
        if len(value) > max_items:
            raise fail(f"'{member}' has more than {max_items} items", where, "format.bad-value")
        return [items(v, f"{member}[{i}]", where) for i, v in enumerate(value)]
    return check


def anything(value: Any, member: str, where: str) -> Any:
    return value


def obj(required: dict[str, Checker], optional: dict[str, Checker] | None = None) -> Checker:
    """An object with exactly these keys (``optional`` ones may be absent)."""
    optional = optional or {}

    def check(value: Any, member: str, where: str) -> dict[str, Any]:
        return fields(value, where, required, optional, member)
    return check


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


def date(value: Any, member: str, where: str) -> str:
    """A calendar date, ``2026-01-31``, that exists."""
    text: str = string(10, DATE_RE)(value, member, where)
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        raise fail(f"'{member}' is not a real date", where, "format.bad-value") from None
    return text
