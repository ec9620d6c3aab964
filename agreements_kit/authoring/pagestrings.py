"""The fixed words of an agreement's page (headings, labels, captions), per language.

They live in ``templates/strings/PAGE.LANG.yaml``, PAGE being the page template's name
without ``.html.j2`` (``agreement``, ``agreement-client``, ``agreement-esign``), one file
per language, each with the same message names and ``{placeholders}`` as its English; a
language is a new file, no code. A page with no strings of its own uses ``agreement``'s.
The files are named ``agreement*`` so the manifest's template hash covers them:
changing a caption changes the hash, as changing the page template does. Messages are
formatted here, with the agreement's values, so the page template only prints them
(autoescaped). Dates are written by Babel in the language's locale.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from agreements_kit import resources
from agreements_kit.authoring import catalogues
from agreements_kit.errors import LibraryError

FOLDER = "strings"
BASE = "en"


PAGE = "agreement"  # the therapists' page (agreement.html.j2), and the strings of a page without its own


def page_name(template: str) -> str:
    """The strings' name of a page template: ``agreement-client.html.j2`` -> ``agreement-client``."""
    return template.removesuffix(".html.j2")


def _find(template_dir: Path, page: str, language: str) -> Path | None:
    for folder in dict.fromkeys((template_dir, resources.templates_dir())):
        path = folder / FOLDER / f"{page}.{language}.yaml"
        if path.is_file():
            return path
    return None


def strings_path(template_dir: Path, language: str, page: str = PAGE) -> Path:
    """The page strings of ``language``: the practice's template folder's, else the built-in ones.

    A page with no English strings of its own (a practice's page template written without
    them) uses the therapists' page's, so it still renders."""
    if page != PAGE and _find(template_dir, page, BASE) is None:
        page = PAGE
    path = _find(template_dir, page, language)
    if path is None:
        raise LibraryError(f"the page {page}.html.j2 has no words in '{language}': add {FOLDER}/{page}.{language}.yaml "
                           f"to the templates folder (the same messages as {page}.{BASE}.yaml)",
                           path=template_dir / FOLDER, code="usage.language")
    return path


def messages(template_dir: Path, language: str, page: str = PAGE) -> dict[str, str]:
    """The messages of ``language``, checked against English: same names, same placeholders."""
    return catalogues.checked(strings_path(template_dir, language, page), strings_path(template_dir, BASE, page))


def date_text(date: dt.date, language: str, style: str) -> str:
    """``date`` as the language writes it (Babel's ``long``: "3 de diciembre de 2026"); ``iso``: 2026-12-03."""
    if style == "iso":
        return date.isoformat()
    from babel.dates import format_date

    return format_date(date, format=style, locale=language)


def page_strings(template_dir: Path, language: str, values: dict[str, Any], date: dt.date,
                 page: str = PAGE) -> dict[str, str]:
    """Every message of the page, formatted with ``values`` ({practice}, {client}...) and the date."""
    found = messages(template_dir, language, page)
    fields = dict(values, date=date_text(date, language, found.get("date_style", "iso")))

    def fill(text: str) -> str:
        # A placeholder the agreement does not fill ({number}: each clause's) is left for the template.
        return text.format(**{k: fields.get(k, "{" + k + "}") for k in catalogues.placeholders(text)})

    return {key: fill(text) for key, text in found.items()}
