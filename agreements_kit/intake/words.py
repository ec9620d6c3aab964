"""The intake pages' fixed words, per language: ``templates/web/strings/LANG.yaml``.

Each language is one file with the same message names and ``{placeholders}`` as
English (``en.yaml``), checked when it is loaded (a missing, extra or differently
filled message is refused with its file and line), so a third language is a new file
and no code. A client's pages are in the language staff chose for the intake
(``agreements intake open --language``, the /staff form), else in the first document's
own language (its manifest's), else English. A language is offered only when it has
both page words and an ESIGN disclosure (``templates/esign-disclosure.LANG.txt``): the
client accepts the disclosure in the words the pages are written in.

Messages are text: values filled in are escaped, and ``**words**`` is the one mark-up
(shown strong), so a translation carries no HTML.
"""

from __future__ import annotations

import re
from pathlib import Path

from markupsafe import Markup, escape

from agreements_kit.authoring import catalogues
from agreements_kit.errors import AgreementsError, LibraryError
from agreements_kit.formats.ids import LANGUAGE_RE, primary_language
from agreements_kit.formats.record import disclosure_languages, intent_statement
from agreements_kit.resources import templates_dir

BASE = "en"
STRONG_RE = re.compile(r"\*\*(.+?)\*\*")


def strings_dir() -> Path:
    return templates_dir() / "web" / "strings"


def languages() -> list[str]:
    """The languages intake pages can be shown in: page words, a disclosure and an intent statement in each
    (a language missing one would fail only after the client consented)."""
    found = {p.stem for p in strings_dir().glob("*.yaml") if LANGUAGE_RE.match(p.stem)}
    return sorted(lang for lang in found & set(disclosure_languages()) if _has_intent(lang))


def _has_intent(language: str) -> bool:
    try:
        intent_statement(language)
    except AgreementsError:
        return False
    return True


def language_name(code: str) -> str:
    """A language as staff choose it: its English name and its own (``Spanish (español)``), by Babel."""
    from babel import Locale

    found = Locale.parse(code)
    english, own = found.get_display_name("en") or code, found.get_display_name(code) or code
    return english if english == own else f"{english} ({own})"


def check_language(language: str) -> str:
    """``language`` (its primary subtag) if the pages can be shown in it; LibraryError (usage) otherwise."""
    chosen = primary_language(language)
    if chosen not in languages():
        raise LibraryError(f"the intake pages are not written in '{language}': they are in "
                           f"{', '.join(languages())} (templates/web/strings/LANG.yaml and "
                           "templates/esign-disclosure.LANG.txt)", code="usage.language")
    return chosen


def choose(asked: str | None, agreement_language: str | None) -> str:
    """The pages' language: the one asked for, else the agreement's when the pages have it, else English."""
    if asked:
        return check_language(asked)
    found = primary_language(agreement_language)
    return found if found in languages() else BASE


def messages(language: str) -> dict[str, str]:
    """The messages of ``language``, checked against English: the same names, the same placeholders."""
    path = strings_dir() / f"{language}.yaml"
    if not path.is_file():
        raise LibraryError(f"the intake pages have no words in '{path.stem}'", path=path, code="usage.language")
    return catalogues.checked(path, strings_dir() / f"{BASE}.yaml")


class Words:
    """One language's messages, as pages print them: ``t("privacy", idle_minutes=15)``."""

    def __init__(self, language: str):
        self.language = language
        self.messages = messages(language)
        self.locale = self.messages.get("locale", language)

    def text(self, key: str, **values: object) -> str:
        """A message as plain text (for a value passed on to another message or a header)."""
        return self.messages[key].format(**values).replace("**", "")

    def __call__(self, key: str, **values: object) -> Markup:
        marked = STRONG_RE.sub(lambda m: f"<strong>{m.group(1)}</strong>", str(escape(self.messages[key])))
        return Markup(marked).format(**values)  # Markup.format escapes each value


def words(language: str) -> Words:
    """The messages of ``language`` (read again only when their file changed)."""
    return Words(language)


def date_time(iso: str, words_of: Words) -> str:
    """A record's time (``2026-11-27T10:00:00Z``) as the language writes it, in UTC (Babel)."""
    import datetime as dt

    from babel.dates import format_datetime

    when = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return f"{format_datetime(when, format='medium', locale=words_of.locale, tzinfo=dt.UTC)} UTC"
