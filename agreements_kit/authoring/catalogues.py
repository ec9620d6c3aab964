"""Message catalogues: one YAML file per language, message names to text.

The agreement pages' words (templates/strings/), the intake pages' (templates/web/strings/)
and the receipt's (templates/receipt/) are catalogues of this one kind, read and checked
here: another language is a new file, held to English's (the same names, the same
``{placeholders}``), and each problem names its file (and line, where it has one). A
file is read again when it changes (the cache key is its path and modification time).
"""

from __future__ import annotations

import string
from functools import lru_cache
from pathlib import Path

from agreements_kit.authoring import yamlfile
from agreements_kit.errors import AgreementsError, LibraryError


def placeholders(text: str) -> set[str]:
    """The ``{name}`` placeholders of a message."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@lru_cache(maxsize=64)
def _read(path: str, mtime: int) -> tuple[dict[str, str], dict[str, int]] | tuple[str, int]:
    """The messages and their lines, or (problem, line): kept per file version, whatever reads it."""
    try:
        data = yamlfile.load(Path(path), LibraryError)
    except LibraryError as exc:
        return exc.message, exc.line or 1
    if not isinstance(data, yamlfile.LineDict):
        return "a message catalogue must be a mapping of message names to text", 1
    for key, value in data.items():
        if not isinstance(key, str) or not isinstance(value, str):
            return f"message '{key}' must be text", data.line_of(key) or 1
    return dict(data), {key: data.line_of(key) or 1 for key in data}


def read(path: Path, error: type[AgreementsError] = LibraryError) -> tuple[dict[str, str], dict[str, int]]:
    """A catalogue's messages and the line of each (``error`` for a file that is not one)."""
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        raise error("the message catalogue is missing", path=path) from None
    found = _read(str(path), mtime)
    if isinstance(found[0], str):
        raise error(found[0], path=path, line=int(found[1]))
    return found


def checked(path: Path, english: Path, error: type[AgreementsError] = LibraryError) -> dict[str, str]:
    """The messages of ``path``, checked against the English catalogue: the same names, the same placeholders."""
    found, lines = read(path, error)
    reference, _ = read(english, error)
    for key in reference:
        if key not in found:
            raise error(f"message '{key}' is missing ({english.name} has it)", path=path)
    for key, text in found.items():
        if key not in reference:
            raise error(f"message '{key}' is not one {english.name} has", path=path, line=lines[key])
        if placeholders(text) != placeholders(reference[key]):
            raise error(f"message '{key}' must use the placeholders {sorted(placeholders(reference[key]))}",
                        path=path, line=lines[key])
    return found
