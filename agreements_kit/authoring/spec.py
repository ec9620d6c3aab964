"""Agreement specs: what one agreement is for, from the command line or a file.

A spec names the client, the therapist, and optionally the agreement id, date,
jurisdiction, clause selection and clause variable values. It is checked here for
form only (names, id, date); whether the therapist, clauses and variables exist
is checked against the practice and library in :mod:`agreements_kit.authoring.agreement`.

Spec files, for batches::

    # one agreement (YAML mapping) or several (YAML list of mappings)
    client: Jane Q. Doe
    therapist: lee
    id: agr-0001            # optional
    date: 2026-11-27        # optional
    jurisdiction: US-NY     # optional
    language: es            # optional: the library's translation to use (default: its own language)
    clauses: [...]          # optional: a subset of clause ids
    variables: {cancel_notice_hours: 48}

or a CSV file with a header row: client, therapist, id, date, jurisdiction, and
language, one column per variable (an empty cell leaves the variable unset).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agreements_kit.authoring import yamlfile
from agreements_kit.authoring.yamlfile import LineDict, LineList
from agreements_kit.errors import SpecError
from agreements_kit.formats.ids import ID_RE, LANGUAGE_RE
from agreements_kit.formats.record import RELATIONS
from agreements_kit.formats.text import check_name, check_text, nfc, same_name

_SPEC_KEYS = {"client", "therapist", "id", "date", "jurisdiction", "clauses", "variables", "guardian", "relation",
              "language"}
_CSV_FIXED = ("client", "therapist", "id", "date", "jurisdiction", "guardian", "relation", "language")


@dataclass
class Spec:
    """What one agreement is for. ``origin`` says where it came from, for messages."""

    client: str
    therapist: str
    id: str
    date: dt.date
    jurisdiction: str | None = None
    clauses: list[str] | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    # True for values typed as text (command line, CSV) that may be converted to the variable's type.
    text_values: bool = False
    origin: str = "command line"
    # Where each field was given (file:line), for messages about one field.
    origins: dict[str, str] = field(default_factory=dict)
    # A minor's (or represented adult's) agreement names who signs for them, and how they are related.
    guardian: str | None = None
    relation: str | None = None
    # The language to write it in (a translation of the library, "es"); None: the library's own.
    language: str | None = None

    def where(self, key: str) -> str:
        return self.origins.get(key, self.origin)


def new_id() -> str:
    """A fresh agreement id: 'agr-' and 16 random hex digits (64 bits)."""
    return f"agr-{secrets.token_hex(8)}"


def check_id(value: Any, origin: str) -> str:
    if not isinstance(value, str) or not ID_RE.match(value):
        raise SpecError(f"{origin}: agreement id {value!r} may only use letters, digits, '-' and '_' "
                        "(3 to 64 characters, starting with a letter or digit)")
    return value


def parse_date(value: Any, origin: str) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise SpecError(f"{origin}: date {str(value)!r} is not a date in the form YYYY-MM-DD") from None


def _check_person(value: Any, what: str, origin: str) -> str:
    if not isinstance(value, str):
        raise SpecError(f"{origin}: {what} name must be text")
    problem = check_name(value)
    if problem:
        raise SpecError(f"{origin}: {what} {problem}")
    return nfc(value)  # names are stored and signed in Unicode NFC


def make_spec(*, client: Any, therapist: Any, id: Any = None, date: Any = None, jurisdiction: Any = None,
              clauses: Any = None, variables: dict[str, Any] | None = None, text_values: bool = False,
              origin: str = "command line", origins: dict[str, str] | None = None, guardian: Any = None,
              relation: Any = None, language: Any = None) -> Spec:
    """Check the form of every field and build a Spec (filling a new id and today's date)."""
    origins = origins or {}

    def at(key: str) -> str:
        return origins.get(key, origin)

    client = _check_person(client, "client", at("client"))
    if guardian in (None, "") and relation not in (None, ""):
        raise SpecError(f"{at('relation')}: a relation is given but no guardian (--guardian NAME)")
    if guardian not in (None, ""):
        guardian = _check_person(guardian, "guardian", at("guardian"))
        if relation not in RELATIONS:
            raise SpecError(f"{at('relation')}: the guardian's relation must be one of: {', '.join(RELATIONS)}")
        if same_name(guardian, client):
            raise SpecError(f"{at('guardian')}: the guardian must be someone other than the client")
    else:
        guardian = relation = None
    if not isinstance(therapist, str) or not therapist.strip():
        raise SpecError(f"{at('therapist')}: therapist must be a therapist id from practice.yaml")
    agreement_id = check_id(id, at("id")) if id not in (None, "") else new_id()
    # An agreement is dated by the practice's local calendar day, so a naive date.today() is meant.
    when = parse_date(date, at("date")) if date not in (None, "") else dt.date.today()  # noqa: DTZ011
    if jurisdiction in ("",):
        jurisdiction = None
    if jurisdiction is not None and not isinstance(jurisdiction, str):
        raise SpecError(f"{at('jurisdiction')}: jurisdiction must be a code such as US-NY")
    if clauses is not None and (not isinstance(clauses, list) or not all(isinstance(c, str) for c in clauses)):
        raise SpecError(f"{at('clauses')}: clauses must be a list of clause ids")
    if language in ("",):
        language = None
    if language is not None and (not isinstance(language, str) or not LANGUAGE_RE.match(language)):
        raise SpecError(f"{at('language')}: language must be a language code such as en or es, not {language!r}")
    values = dict(variables or {})
    for name, value in values.items():
        if isinstance(value, str):
            problem = check_text(value)
            if problem:
                raise SpecError(f"{at('variables.' + str(name))}: value of variable '{name}' {problem}")
    return Spec(client=client, therapist=therapist.strip(), id=agreement_id, date=when,
                jurisdiction=jurisdiction, clauses=clauses, variables=values, text_values=text_values,
                origin=origin, origins=origins, guardian=guardian, relation=relation,
                language=language)


def parse_set(items: list[str]) -> dict[str, str]:
    """``--set name=value`` options as a mapping (values stay text until typed)."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise SpecError(f"--set {item!r}: expected name=value")
        if name in out:
            raise SpecError(f"--set {name}: given twice")
        out[name] = value
    return out


def load_spec_file(path: str | Path) -> list[Spec]:
    """Every spec in a YAML or CSV file, checked; the first problem raises."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return _load_csv(path)
    data = yamlfile.load(path, SpecError)
    items: list[tuple[Any, int]] = (
        [(item, data.line_of(i)) for i, item in enumerate(data)] if isinstance(data, LineList) else [(data, 1)]
    )
    if not items:
        raise SpecError("the spec file lists no agreements", path=path, line=1)
    specs = []
    for item, line in items:
        if not isinstance(item, LineDict):
            raise SpecError("each agreement spec must be a mapping", path=path, line=line)
        for key in item:
            if key not in _SPEC_KEYS:
                raise SpecError(f"unknown key '{key}' (allowed: {', '.join(sorted(_SPEC_KEYS))})",
                                path=path, line=item.line_of(key))
        for key in ("client", "therapist"):
            if key not in item:
                raise SpecError(f"missing key '{key}'", path=path, line=item.line)
        variables = item.get("variables") or {}
        if not isinstance(variables, dict):
            raise SpecError("'variables' must be a mapping of name: value", path=path, line=item.line_of("variables"))
        origins = {key: f"{path}:{item.line_of(key)}" for key in item}
        if isinstance(variables, LineDict):
            origins.update({f"variables.{k}": f"{path}:{variables.line_of(k)}" for k in variables})
        specs.append(make_spec(client=item["client"], therapist=item["therapist"], id=item.get("id"),
                               date=item.get("date"), jurisdiction=item.get("jurisdiction"),
                               clauses=item.get("clauses"), variables=dict(variables),
                               origin=f"{path}:{item.line}", origins=origins, guardian=item.get("guardian"),
                               relation=item.get("relation"), language=item.get("language")))
    return specs


def _load_csv(path: Path) -> list[Spec]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SpecError("file not found", path=path) from None
    except (UnicodeDecodeError, OSError) as exc:
        raise SpecError(f"cannot read as UTF-8 text: {exc}", path=path) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    for required in ("client", "therapist"):
        if required not in header:
            raise SpecError(f"CSV header has no '{required}' column", path=path, line=1)
    specs = []
    for row in reader:
        line = reader.line_num
        if None in row:
            raise SpecError("row has more cells than the header", path=path, line=line)
        if not any((v or "").strip() for v in row.values()):
            continue
        variables = {k: v for k, v in row.items() if k not in _CSV_FIXED and v not in (None, "")}
        specs.append(make_spec(client=row["client"], therapist=row["therapist"], id=row.get("id"),
                               date=row.get("date"), jurisdiction=row.get("jurisdiction"), variables=variables,
                               text_values=True, origin=f"{path}:{line}", guardian=row.get("guardian"),
                               relation=row.get("relation"), language=row.get("language")))
    if not specs:
        raise SpecError("the CSV file lists no agreements", path=path)
    return specs
