"""An agreement: one spec resolved against a practice and a clause library.

Everything that can be wrong with the combination (unknown therapist, clause or
jurisdiction; missing, unknown or wrong-typed variable) is found here, before any
file is written. The result holds exactly the values that go into the template
and the manifest.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from agreements_kit.authoring.library import Clause, Library
from agreements_kit.authoring.pagestrings import page_name, page_strings
from agreements_kit.authoring.practice import Practice, Therapist
from agreements_kit.authoring.professions import PROFESSION_VALUE, PROFESSIONS, profession_code
from agreements_kit.authoring.professions import known as known_professions
from agreements_kit.authoring.spec import Spec
from agreements_kit.errors import PracticeError, SpecError
from agreements_kit.formats.text import same_name

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


@dataclass(frozen=True)
class Agreement:
    id: str
    date: dt.date
    client_name: str
    therapist: Therapist
    practice: Practice
    jurisdiction: str
    jurisdiction_name: str
    library: Library
    clauses: tuple[Clause, ...]
    values: dict[str, Any]
    guardian: dict[str, str] | None = None  # {"name", "relation"} when someone signs for the client

    def citations(self) -> list[dict[str, Any]]:
        """The law behind the agreement's texts, clause by clause, for its appendix."""
        return [{"number": n, "title": c.title, "citations": list(c.citations)}
                for n, c in enumerate(self.clauses, start=1) if c.citations]

    def page_strings(self) -> dict[str, str]:
        """The page's headings, labels and captions in the agreement's language, filled in."""
        lib = self.library
        therapist = self.therapist.name + (f", {self.therapist.credentials}" if self.therapist.credentials else "")
        values: dict[str, Any] = {
            "title": lib.title, "id": self.id, "practice": self.practice.name, "client": self.client_name,
            "therapist": therapist, "jurisdiction": self.jurisdiction_name, "source": lib.source_title,
            "origin": lib.source_origin, "library": lib.name, "version": lib.version,
        }
        if self.guardian:
            values["guardian"] = self.guardian["name"]
            values["relation"] = "{relation}"  # the relation's own message, below
        found = page_strings(self.practice.template_dir(), lib.language, values, self.date, page_name(lib.page))
        if self.guardian:
            # The relation in the page's language ("Parent", "Madre o padre"), in every message that names it.
            relation = found.get("relation_" + self.guardian["relation"].replace(" ", "_"),
                                 self.guardian["relation"].capitalize())
            found = {key: text.replace("{relation}", relation) for key, text in found.items()}
            found["relation"] = relation
        return found

    def context(self) -> dict[str, Any]:
        """The built-in names every clause body and the page template may use.

        ``agreement.citations`` is for the page template's appendix only: a clause body
        may not use it (the library's checks allow bodies only the names in BUILTINS), nor
        ``page``, the page's fixed words in the library's language (templates/strings/)."""
        return {
            "page": self.page_strings(),
            "client": {"name": self.client_name},
            "therapist": {"id": self.therapist.id, "name": self.therapist.name,
                          "credentials": self.therapist.credentials},
            "practice": {"name": self.practice.name, "phone": self.practice.phone,
                         "address": self.practice.address, "email": self.practice.email},
            "agreement": {"id": self.id, "date": self.date.isoformat(), "jurisdiction": self.jurisdiction,
                          "jurisdiction_name": self.jurisdiction_name, "citations": self.citations()},
        }


def _convert(text: str, type_name: str) -> Any:
    """Turn a value typed as text (``--set``, CSV) into the variable's type."""
    if type_name == "integer":
        try:
            return int(text.strip())
        except ValueError:
            return text
    if type_name == "boolean":
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        return text
    return text


# Titles that are no part of a person's own name ("Dr. Robin Lee" is Robin Lee).
_TITLES = frozenset({"dr", "mr", "mrs", "ms", "mx", "miss", "prof"})
# Words by which a value names the therapist without their name ("your therapist", "me").
_SELF = frozenset({"therapist", "me", "myself", "i"})


def _fold(text: str) -> str:
    """``text`` as compared: NFC-normalised and case-folded (folding can undo NFC, so normalised again)."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold())


def _names(value: str, therapist: Therapist) -> bool:
    """Whether ``value`` names the therapist: their id, their name or their given name or surname standing
    as a word in it ("Dr. Lee", "Robin"), or a word that means them ("your therapist", "me")."""
    folded = " ".join(_fold(value).split())
    words = set(re.findall(r"\w+", folded))
    name = [w for w in re.findall(r"\w+", _fold(therapist.name)) if w not in _TITLES and len(w) > 1]
    own = {name[0], name[-1]} if name else set()
    return same_name(value, therapist.name) or folded == therapist.id or bool(words & (own | _SELF))


def _profession(therapist: Therapist, practice: Practice) -> str | None:
    """The therapist's profession: from practice.yaml, or, re-rendering from a manifest, as recorded there."""
    if therapist.profession:
        return therapist.profession
    recorded = practice.variables.get(PROFESSION_VALUE)
    return profession_code(recorded) if isinstance(recorded, str) else None


def build(spec: Spec, practice: Practice, library: Library) -> Agreement:
    origin = spec.origin
    therapist = practice.therapists.get(spec.therapist)
    if therapist is None:
        known = ", ".join(sorted(practice.therapists))
        raise SpecError(f"{spec.where('therapist')}: unknown therapist '{spec.therapist}' "
                        f"(practice.yaml lists: {known})")
    jurisdiction = spec.jurisdiction or practice.jurisdiction or library.default_jurisdiction
    if jurisdiction not in library.jurisdictions:
        known = ", ".join(library.jurisdictions)
        where = (f"{practice.settings_path}:{practice.jurisdiction_line}"
                 if not spec.jurisdiction and practice.jurisdiction else spec.where("jurisdiction"))
        raise SpecError(f"{where}: unknown jurisdiction '{jurisdiction}' (the clause library has: {known})")
    ids = list(library.clauses)
    if spec.clauses is not None:
        unknown = [c for c in spec.clauses if c not in library.clauses]
        if unknown:
            raise SpecError(f"{spec.where('clauses')}: unknown clause '{unknown[0]}' ('agreements clauses' lists them)")
        if not spec.clauses:
            raise SpecError(f"{origin}: the clause list is empty")
        chosen = set(spec.clauses)
        ids = [c for c in ids if c in chosen]  # library order, whatever the spec's order
    if spec.language and spec.language != library.language:
        # A spec in another language (re-rendering from a manifest): the library's translation.
        from agreements_kit.authoring.translation import translate

        library = translate(library, spec.language)
    profession = _profession(therapist, practice)
    if profession is None and therapist.line is not None:
        # The text would be the one for "some professions": the client could not tell whether a duty
        # binds their therapist. (A re-render from a manifest, therapist.line None, keeps what was rendered.)
        varied = [cid for cid in ids if any((jurisdiction, cid, p) in library.profession_variants for p in PROFESSIONS)]
        if varied:
            raise PracticeError(f"therapist '{therapist.id}' ({therapist.name}) has no 'profession', and in "
                                f"{jurisdiction} the text of clause '{varied[0]}' depends on it: give one of: "
                                f"{known_professions()}", path=practice.settings_path, line=therapist.line)
    clauses = tuple(library.clause(cid, jurisdiction, profession) for cid in ids)
    for clause in clauses:
        missing = [r for r in clause.requires if r not in ids]
        if missing:
            raise SpecError(f"{spec.where('clauses')}: clause '{clause.id}' cannot stand without clause "
                            f"'{missing[0]}'; include it, or leave out '{clause.id}'", code="usage.requires")

    needed: dict[str, tuple[Any, Clause]] = {}
    for clause in clauses:
        for name, var in clause.variables.items():
            needed.setdefault(name, (var, clause))
    declared = library.variables()
    for name in spec.variables:
        if name not in declared:
            raise SpecError(f"{spec.where('variables.' + name)}: unknown variable '{name}' "
                            "('agreements clauses' lists the variables)")
    for name in practice.variables:
        if name not in declared and name != PROFESSION_VALUE:
            raise SpecError(f"{practice.settings_path}:{practice.variable_lines.get(name, 1)}: "
                            f"unknown variable '{name}' in 'variables'")
    values: dict[str, Any] = {}
    for name, (var, clause) in needed.items():
        location: str | None  # where the value was given; None for a clause's own default
        if name in spec.variables:
            value, location = spec.variables[name], spec.where("variables." + name)
            if spec.text_values and isinstance(value, str):
                value = _convert(value, var.type)
        elif name in practice.variables:
            value = practice.variables[name]
            location = f"{practice.settings_path}:{practice.variable_lines.get(name, 1)}"
        elif var.has_default:
            value, location = var.default, None
        else:
            raise SpecError(f"{origin}: clause '{clause.id}' needs variable '{name}' ({var.description}); "
                            f"give --set {name}=VALUE or set it under 'variables' in practice.yaml")
        problem = var.problem(value)
        if not problem and var.other_than == "therapist" and isinstance(value, str) and _names(value, therapist):
            problem = f"must name someone other than the therapist ({therapist.name}): nobody covers for themselves"
        if problem:
            raise SpecError(f"{location or f'{clause.path}:{clause.line}'}: variable '{name}' {problem}")
        values[name] = value
    if profession:
        # Recorded with the values (the manifest keeps them all), so a re-render picks the same variants.
        values[PROFESSION_VALUE] = profession
    return Agreement(id=spec.id, date=spec.date, client_name=spec.client, therapist=therapist, practice=practice,
                     jurisdiction=jurisdiction, jurisdiction_name=library.jurisdictions[jurisdiction],
                     library=library, clauses=clauses, values=values,
                     guardian={"name": spec.guardian, "relation": spec.relation or ""} if spec.guardian else None)
