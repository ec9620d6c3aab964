"""The kinds of document a client signs: the practice's clause library, and document libraries.

The therapists' agreement is rendered from the practice's clause library
(``practice.yaml`` ``clauses:``, or the default ``clauses/``). Every other kind of
document (today the consent to electronic records and signatures) is a clause library
of its own, in a folder ``documents/NAME/`` inside a clause library folder, whose
``library.yaml`` says ``library: NAME``: the practice's folder first, then the
default one, so a practice may replace a document's text without copying the rest.
Such a document is rendered, signed, archived and verified exactly like an agreement
(its manifest names its library), and a new kind is a new folder: nothing else changes.

A manifest records its library's name, so :func:`library_dir_for` finds the library
a rendered document came from, for showing it to a signer or re-rendering it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from agreements_kit import resources
from agreements_kit.authoring import yamlfile
from agreements_kit.authoring.library import Library, load_library
from agreements_kit.authoring.practice import Practice
from agreements_kit.authoring.professions import PROFESSION_VALUE
from agreements_kit.errors import LibraryError, SpecError

DOCUMENTS = "documents"  # inside a clause library folder: one library folder per other kind of document
ESIGN_DISCLOSURE = "esign-disclosure"
# What the client agrees to in DBT, in the first person; signed in the same visit as the therapists' agreement.
CLIENT_AGREEMENT = "dbt-client-agreement"
# Kinds an intake packet puts before the others: the client consents to electronic records first,
# and the signed consent then covers every document of the visit (clauses/documents/esign-disclosure).
SIGN_FIRST = (ESIGN_DISCLOSURE,)


def document_dirs(practice: Practice) -> dict[str, Path]:
    """Each document library the practice can render, by name: its own first, then the default ones."""
    found: dict[str, Path] = {}
    for base in dict.fromkeys((practice.library_dir(), resources.clauses_dir())):
        folder = base / DOCUMENTS
        if folder.is_dir():
            for sub in sorted(folder.iterdir()):
                if sub.is_dir() and (sub / "library.yaml").is_file():
                    found.setdefault(sub.name, sub)
    return found


def library_dir(practice: Practice, document: str | None) -> Path:
    """The clause library of ``document`` (None: the practice's agreement library); SpecError if unknown."""
    if document is None:
        return practice.library_dir()
    dirs = document_dirs(practice)
    if document not in dirs:
        known = ", ".join(sorted(dirs)) or "none"
        raise SpecError(f"unknown document '{document}' (document libraries: {known}; without --document: the "
                        "therapists' agreement)")
    return dirs[document]


def load_document(practice: Practice, document: str | None) -> tuple[Library, Practice]:
    """The library of ``document`` and the practice to render it with.

    A document library is named by its folder, and must say so (``library: NAME``).
    The practice's ``variables:`` are meant for all its libraries; each document sees
    only the ones its own library declares. A name that no library declares is refused
    whichever is rendered (its line in ``practice.yaml``), so a misspelt variable is caught.
    """
    library = load_library(library_dir(practice, document))
    if document is None:
        # A value meant for another document (the client's agreement's fee) is not a misspelt one.
        unknown = set(practice.variables) - set(library.variables())
        others = unknown & _document_variables(practice) if unknown else set()
        if others:
            practice = dataclasses.replace(
                practice, variables={k: v for k, v in practice.variables.items() if k not in others})
        return library, practice
    if library.name != document:
        raise LibraryError(f"the document library in folder '{document}' is named '{library.name}'; a document "
                           "library's 'library' is its folder's name", path=library.root / "library.yaml")
    declared = library.variables()
    _refuse_undeclared(practice, set(practice.variables) - set(declared))
    return library, dataclasses.replace(
        practice, variables={k: v for k, v in practice.variables.items() if k in declared})


def _refuse_undeclared(practice: Practice, names: set[str]) -> None:
    """SpecError, with its line in ``practice.yaml``, for a name among ``names`` that no library declares.

    A document keeps only the values its own library declares, so without this a misspelt
    one meant for it (``individual_session_fees``) would be dropped and the default used,
    unseen. When the therapists' library itself cannot be loaded, what it declares is not
    known, and the check is left to rendering that library (which reports the problem)."""
    unknown = names - {PROFESSION_VALUE}
    if not unknown:
        return
    try:
        unknown -= set(load_library(practice.library_dir()).variables())
    except LibraryError:
        return
    unknown -= _document_variables(practice)
    if unknown:
        name = min(unknown, key=lambda n: (practice.variable_lines.get(n, 1), n))
        raise SpecError(f"{practice.settings_path}:{practice.variable_lines.get(name, 1)}: unknown variable "
                        f"'{name}' in 'variables' (no clause library declares it; 'agreements clauses' lists "
                        "the variables)")


def _document_variables(practice: Practice) -> set[str]:
    """The variables the practice's document libraries declare. A broken one declares none here: it is
    reported, file and line, when it is itself rendered or linted, not when the agreement is."""
    names: set[str] = set()
    for folder in document_dirs(practice).values():
        try:
            names.update(load_library(folder).variables())
        except LibraryError:
            continue
    return names


def library_dir_for(practice: Practice, manifest: Mapping[str, Any]) -> Path:
    """The clause library a rendered document's manifest names: a document library, or the practice's."""
    name = (manifest.get("library") or {}).get("name")
    return document_dirs(practice).get(str(name), practice.library_dir())


def practice_for(practice: Practice, manifest: Mapping[str, Any]) -> Practice:
    """``practice`` with the clause library of this manifest's document as its library (to show or re-render it)."""
    folder = library_dir_for(practice, manifest)
    return practice if folder == practice.library_dir() else dataclasses.replace(practice, clauses_dir=folder)


def document_title(practice: Practice, manifest: Mapping[str, Any]) -> str:
    """The heading of a rendered document (its library's title), for lists and pages that name it."""
    return _title(str(library_dir_for(practice, manifest) / "library.yaml"))


@lru_cache(maxsize=32)
def _title(path: str) -> str:
    data = yamlfile.load(Path(path), LibraryError)
    title = data.get("title") if isinstance(data, dict) else None
    return title if isinstance(title, str) and title.strip() else "Agreement"


def sign_first(manifest: Mapping[str, Any]) -> bool:
    """Whether a packet puts this document before the others (the consent to electronic records)."""
    return (manifest.get("library") or {}).get("name") in SIGN_FIRST
