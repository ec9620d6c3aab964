"""Can the installed fonts draw this text? Checked before rendering.

An archival PDF/A file that shows a client's name as empty boxes is worse than
no file: it claims to be a faithful, self-contained copy and is not. WeasyPrint
takes its fonts from fontconfig and falls back, character by character, to any
installed font that has the glyph; so a character is drawable exactly when some
installed font covers it. ``fc-list`` (part of fontconfig, which Pango depends
on) prints each font's coverage in one call, read once per process.

This check names the value a person typed (the client's name, a variable) so the
refusal says what to change; ``pdf.py`` checks the laid-out pages as well, which
also covers the clause library's own text.
"""

from __future__ import annotations

import bisect
import subprocess
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

from agreements_kit.errors import MissingGlyphError

# Characters that are never drawn as glyphs: line breaks and tabs (laid out, not drawn).
_NOT_DRAWN = frozenset("\n\r\t")


@lru_cache(maxsize=1)
def _coverage() -> tuple[list[int], list[int]]:
    """Sorted, merged [start, end] code point ranges that some installed font covers."""
    try:
        out = subprocess.run(["fc-list", "--format", "%{charset}\n"], capture_output=True, text=True,
                             check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise MissingGlyphError(f"cannot list the installed fonts with fc-list ({exc}); "
                                "install fontconfig (scripts/bootstrap)") from None
    ranges: list[tuple[int, int]] = []
    for token in out.split():
        first, _, last = token.partition("-")
        ranges.append((int(first, 16), int(last or first, 16)))
    ranges.sort()
    starts: list[int] = []
    ends: list[int] = []
    for low, high in ranges:
        if ends and low <= ends[-1] + 1:
            ends[-1] = max(ends[-1], high)
        else:
            starts.append(low)
            ends.append(high)
    return starts, ends


def _default_ignorable(char: str) -> bool:
    """Format characters (a zero-width joiner in a Persian or Indic name) and variation selectors:
    Pango lays them out as empty glyphs, whether or not a font lists them."""
    cp = ord(char)
    return unicodedata.category(char) == "Cf" or 0xFE00 <= cp <= 0xFE0F or 0xE0100 <= cp <= 0xE01EF


def covered(char: str) -> bool:
    """True when some installed font has a glyph for ``char`` (or it is never drawn)."""
    if char in _NOT_DRAWN or _default_ignorable(char):
        return True
    starts, ends = _coverage()
    i = bisect.bisect_right(starts, ord(char)) - 1
    return i >= 0 and ord(char) <= ends[i]


def uncovered(text: str) -> list[str]:
    """The distinct characters of ``text`` no installed font can draw, in order of appearance."""
    return [c for c in dict.fromkeys(text) if not covered(c)]


def describe(char: str) -> str:
    """'U+E000 (a private-use character)', 'U+4E2D (CJK UNIFIED IDEOGRAPH-4E2D)'."""
    name = unicodedata.name(char, "")
    if not name:
        category = unicodedata.category(char)
        name = {"Co": "a private-use character", "Cn": "an unassigned code point",
                "Cs": "a lone surrogate"}.get(category, f"Unicode category {category}")
    return f"U+{ord(char):04X} ({name})"


def check_values(values: Iterable[tuple[str, str]]) -> None:
    """Refuse the first (label, text) whose text has a character no installed font draws."""
    for label, text in values:
        missing = uncovered(text)
        if missing:
            raise MissingGlyphError(
                f"{label} contains {describe(missing[0])}, which no installed font can draw; the PDF/A copy "
                "would show an empty box. Spell it without that character, or install a font that has it "
                "(README: 'Fonts and print quality')", chars=missing)
