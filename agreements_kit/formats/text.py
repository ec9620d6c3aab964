"""Checks for text that people type: names and free-text values.

Values are never evaluated: Jinja2 autoescapes them and treats them as data, so
``{{ 7*7 }}`` in a value prints as those characters. Names are held to a stricter
rule because they identify a person on a legal document: no markup or template
characters, and no invisible or direction-changing characters that would let
the printed name differ from what a reader sees (for example U+202E, which
displays "Jane" + U+202E + "eoD" as "JaneDoe" reversed).
"""

from __future__ import annotations

import unicodedata

MAX_NAME = 200
MAX_TEXT = 2000

# Bidirectional embedding, override and isolate controls, and the implicit marks.
_BIDI = {chr(c) for c in (0x200E, 0x200F, 0x061C, *range(0x202A, 0x202F), *range(0x2066, 0x206A))}
_NAME_FORBIDDEN = set("<>{}[]|\\`$%#@=;")


def _invisible(ch: str) -> str | None:
    if ch in _BIDI:
        return f"a text-direction control character (U+{ord(ch):04X})"
    cat = unicodedata.category(ch)
    if cat in ("Cc", "Cf", "Co", "Cs", "Cn") and ch not in "\n\t":
        return f"an invisible or control character (U+{ord(ch):04X})"
    return None


def check_text(value: str, max_len: int = MAX_TEXT) -> str | None:
    """Why a free-text value is unacceptable, or None. Markup is allowed (shown literally)."""
    if len(value) > max_len:
        return f"is longer than {max_len} characters"
    for ch in value:
        problem = _invisible(ch)
        if problem:
            return f"contains {problem}"
    return None


def check_name(value: str) -> str | None:
    """Why a person's name is unacceptable, or None."""
    stripped = value.strip()
    if not stripped:
        return "name is empty"
    if len(stripped) > MAX_NAME:
        return f"name is longer than {MAX_NAME} characters"
    for ch in stripped:
        problem = _invisible(ch)
        if problem or ch in "\n\t":
            return f"name contains {problem or 'a line break or tab'}"
        if ch in _NAME_FORBIDDEN:
            return f"name contains '{ch}', which is not part of a person's name"
    if not any(unicodedata.category(ch).startswith("L") for ch in stripped):
        return "name has no letters"
    for word in stripped.split():
        scripts = {_script(ch) for ch in word if unicodedata.category(ch).startswith("L")}
        if len(scripts & _CONFUSABLE) > 1:
            return (f"name mixes {' and '.join(sorted(s.title() for s in scripts & _CONFUSABLE))} letters in one word "
                    "(look-alike letters, such as a Cyrillic 'а' in 'Jane', make one name look like another)")
    return None


# Scripts whose letters look alike; a word mixing two of them is a spoofing tell (UTS #39's "mixed script").
_CONFUSABLE = {"LATIN", "CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE", "COPTIC"}


def _script(ch: str) -> str:
    """The script of a letter, from its Unicode name ("LATIN SMALL LETTER A" -> "LATIN")."""
    return unicodedata.name(ch, "UNKNOWN").split(" ", 1)[0]


def nfc(value: str) -> str:
    """A name as it is stored and signed: Unicode NFC, spaces collapsed."""
    return " ".join(unicodedata.normalize("NFC", value).split())


def same_name(a: str, b: str) -> bool:
    """Whether two spellings name the same person: Unicode-normalized, case and spacing ignored."""
    def norm(name: str) -> str:
        return " ".join(unicodedata.normalize("NFC", name).casefold().split())

    return norm(a) == norm(b)
