"""An agreement: one spec resolved against a practice and a clause library.

Everything that can be wrong with the combination (unknown therapist, clause or
jurisdiction; missing, unknown or wrong-typed variable) is found here, before any
file is written. The result holds exactly the values that go into the template
and the manifest.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from agreements_kit.authoring.library import Clause, Library, type_problem
from agreements_kit.authoring.practice import Practice, Therapist
from agreements_kit.authoring.spec import Spec
from agreements_kit.errors import SpecError

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

    def context(self) -> dict[str, Any]:
        """The built-in names every clause body and the page template may use."""
        return {
            "client": {"name": self.client_name},
            "therapist": {"id": self.therapist.id, "name": self.therapist.name,
                          "credentials": self.therapist.credentials},
            "practice": {"name": self.practice.name, "phone": self.practice.phone,
                         "address": self.practice.address, "email": self.practice.email},
            "agreement": {"id": self.id, "date": self.date.isoformat(), "jurisdiction": self.jurisdiction,
                          "jurisdiction_name": self.jurisdiction_name},
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
    clauses = tuple(library.clause(cid, jurisdiction) for cid in ids)

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
        if name not in declared:
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
        problem = type_problem(var.type, value)
        if problem:
            raise SpecError(f"{location}: variable '{name}' {problem}")
        values[name] = value
    return Agreement(id=spec.id, date=spec.date, client_name=spec.client, therapist=therapist, practice=practice,
                     jurisdiction=jurisdiction, jurisdiction_name=library.jurisdictions[jurisdiction],
                     library=library, clauses=clauses, values=values,
                     guardian={"name": spec.guardian, "relation": spec.relation or ""} if spec.guardian else None)
