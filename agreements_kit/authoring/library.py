"""The clause library: versioned YAML clauses, loaded and checked in one place.

A library is a folder::

    library.yaml            name, version, areas, jurisdictions, source commitments
    <area>.yaml             the clauses of one area, in agreement order
    jurisdictions/*.yaml    jurisdiction variants that replace a clause's text

Loading checks everything a clinician could get wrong before anything is rendered
(unknown or missing keys, wrong types, duplicate ids, bodies that use undeclared
variables, declared variables never used, variants of unknown clauses, clauses that
require unknown clauses, variable ranges that make no sense) and reports each problem
with its file and line. The format is documented in ``docs/clause-library.md``.

A clause's text can depend on the law: a jurisdiction file holds variants that replace
it in one state, for every profession or only for the professions a variant names (a
duty that binds psychologists but not counsellors). Variants cite the statute or case
they reflect and say when they were reviewed; ``agreements lint`` holds them to that.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from jinja2 import TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment

from agreements_kit.authoring import yamlfile
from agreements_kit.authoring.professions import PROFESSION_VALUE, PROFESSIONS
from agreements_kit.authoring.yamlfile import LineDict, LineList
from agreements_kit.errors import LibraryError, LibraryProblems
from agreements_kit.formats.text import check_name

#: Names every clause body may use without declaring them, and their attributes.
BUILTINS: dict[str, frozenset[str]] = {
    "client": frozenset({"name"}),
    "therapist": frozenset({"id", "name", "credentials"}),
    "practice": frozenset({"name", "phone", "address", "email"}),
    "agreement": frozenset({"id", "date", "jurisdiction", "jurisdiction_name"}),
}

# string: free text; name: a person or service, held to the rules of a person's name; phone: a number to call.
VARIABLE_TYPES = {"string": str, "integer": int, "boolean": bool, "name": str, "phone": str}
# Largest bound an integer variable may declare: beyond it a value is a typo, not a number of hours or days.
MAX_BOUND = 100_000
# A phone number as people write it: digits, spaces, ( ) . - and a leading +; 3 (988) to 15 digits (E.164).
PHONE_RE = re.compile(r"^\+?[0-9(][0-9 ().-]*[0-9]$")
# Who a name variable may have to differ from (the person covering for the therapist is not the therapist).
OTHER_THAN = ("therapist",)

ID_RE = re.compile(r"^[a-z][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)*$")
VAR_RE = re.compile(r"^[a-z][a-z0-9_]*$")
JURISDICTION_RE = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")
# A page template is one of the agreement* files of the template folder, which the manifest's template hash covers.
PAGE_RE = re.compile(r"^agreement[a-z0-9-]*\.html\.j2$")


@dataclass(frozen=True)
class Variable:
    """A typed value a clause body needs, filled per practice or per agreement.

    An integer has a range (``min``, ``max``) and may name its ``unit`` ("hours"), so a
    negative notice period is refused where it is typed; a ``name`` may have to be
    someone ``other_than`` the therapist (nobody covers for themselves)."""

    name: str
    type: str
    description: str
    default: Any = None
    has_default: bool = False
    min: int | None = None
    max: int | None = None
    unit: str | None = None
    other_than: str | None = None
    max_length: int | None = None
    line: int = field(default=0, compare=False)  # of its declaration, for lint's messages

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.type, "description": self.description}
        if self.has_default:
            d["default"] = self.default
        # Only when declared: clauses whose variables have none keep their earlier hashes.
        for key in ("min", "max", "unit", "other_than", "max_length"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        return d

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not a good value of this variable (type, range, form), or None."""
        problem = type_problem(self.type, value)
        if problem:
            return problem
        unit = f" {self.unit}" if self.unit else ""
        if self.type == "integer":
            if self.min is not None and value < self.min:
                return f"must be at least {self.min}{unit}, not {value}"
            if self.max is not None and value > self.max:
                return f"must be at most {self.max}{unit}, not {value}"
        if isinstance(value, str) and self.max_length is not None and len(value) > self.max_length:
            return f"must be at most {self.max_length} characters long"
        if self.type == "name":
            name_problem = check_name(value)
            if name_problem:
                return f"must name a person or service: {name_problem}"
        if self.type == "phone":
            digits = sum(ch.isdigit() for ch in value)
            if not PHONE_RE.match(value.strip()) or not 3 <= digits <= 15:
                return f"must be a phone number such as (406) 555-0142 or +1 406 555 0142, not {value!r}"
        return None


@dataclass(frozen=True)
class Clause:
    """One commitment text. ``jurisdiction`` is set when a variant was applied."""

    id: str
    version: int
    title: str
    area: str
    body: str
    summary: str
    variables: dict[str, Variable]
    initials: bool
    covers: tuple[str, ...]
    path: Path
    line: int
    jurisdiction: str | None = None
    variant_version: int | None = None
    note: str | None = None
    # Clauses this one cannot stand without (privacy promises its exceptions): a render without them is refused.
    requires: tuple[str, ...] = ()
    # The law the text reflects, and when someone last checked it against the law (lint warns after review_by).
    citations: tuple[str, ...] = ()
    reviewed_on: dt.date | None = None
    review_by: dt.date | None = None
    # The professions the variant applied was written for; empty for a text that binds every profession.
    professions: tuple[str, ...] = ()

    def canonical(self) -> dict[str, Any]:
        """The content that defines this clause, as plain JSON-able data."""
        d: dict[str, Any] = {
            "id": self.id,
            "version": self.version,
            "title": self.title,
            "area": self.area,
            "body": self.body,
            "summary": self.summary,
            "variables": {n: v.as_dict() for n, v in sorted(self.variables.items())},
            "initials": self.initials,
            "covers": list(self.covers),
        }
        if self.jurisdiction is not None:
            d["jurisdiction"] = self.jurisdiction
            d["variant_version"] = self.variant_version
        # Citations are printed in the agreement's appendix, so they are part of what was agreed to; only
        # when present, so that clauses without them (other documents) keep their earlier hashes.
        if self.citations:
            d["citations"] = list(self.citations)
        if self.professions:
            d["professions"] = list(self.professions)
        return d

    def sha256(self) -> str:
        """SHA-256 of the canonical JSON (sorted keys, no spaces, UTF-8).

        The manifest records it so an auditor can tell that the text agreed to is
        exactly this version of this clause, whatever happened to the YAML layout.
        """
        data = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(data.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Variant:
    """Jurisdiction-specific text that replaces a clause's title, body and summary."""

    clause: str
    jurisdiction: str
    version: int
    summary: str
    body: str
    path: Path
    line: int
    title: str | None = None
    variables: dict[str, Variable] | None = None
    note: str | None = None
    professions: tuple[str, ...] = ()  # empty: every profession (the jurisdiction-wide text)
    requires: tuple[str, ...] = ()  # added to the clause's own
    citations: tuple[str, ...] = ()
    reviewed_on: dt.date | None = None
    review_by: dt.date | None = None


@dataclass(frozen=True)
class Area:
    id: str
    title: str


@dataclass(frozen=True)
class Commitment:
    """One promise of the source agreement, in this project's words."""

    id: str
    paragraph: int
    text: str
    line: int = field(default=0, compare=False)


@dataclass
class Library:
    root: Path
    name: str
    version: int
    title: str
    language: str
    default_jurisdiction: str
    jurisdictions: dict[str, str]
    areas: list[Area]
    source_title: str
    source_origin: str
    commitments: list[Commitment]
    clauses: dict[str, Clause] = field(default_factory=dict)
    # (jurisdiction, clause id): the variant for every profession there.
    variants: dict[tuple[str, str], Variant] = field(default_factory=dict)
    # (jurisdiction, clause id, profession): a variant written for some professions only; it wins over the above.
    profession_variants: dict[tuple[str, str, str], Variant] = field(default_factory=dict)
    # The page template that lays the document out (library.yaml 'page'): a library of another
    # kind of document (the consent to electronic records) has its own heading, intro and signatures.
    page: str = "agreement.html.j2"

    def variant(self, clause_id: str, jurisdiction: str | None = None,
                profession: str | None = None) -> Variant | None:
        """The variant that applies: the one for this profession there, else the one for every profession."""
        jurisdiction = jurisdiction or self.default_jurisdiction
        found = self.profession_variants.get((jurisdiction, clause_id, profession)) if profession else None
        return found or self.variants.get((jurisdiction, clause_id))

    def clause(self, clause_id: str, jurisdiction: str | None = None, profession: str | None = None) -> Clause:
        """The clause as it applies in ``jurisdiction`` for a therapist of ``profession`` (its variant, if any)."""
        base = self.clauses[clause_id]
        variant = self.variant(clause_id, jurisdiction, profession)
        if variant is None:
            return base
        return replace(
            base,
            title=variant.title or base.title,
            body=variant.body,
            summary=variant.summary,
            variables=variant.variables if variant.variables is not None else base.variables,
            path=variant.path,
            line=variant.line,
            jurisdiction=variant.jurisdiction,
            variant_version=variant.version,
            note=variant.note,
            requires=tuple(dict.fromkeys(base.requires + variant.requires)),
            citations=variant.citations,
            reviewed_on=variant.reviewed_on,
            review_by=variant.review_by,
            professions=variant.professions,
        )

    def all_variants(self) -> list[Variant]:
        """Every variant, jurisdiction-wide and per profession, in file order."""
        found = {id(v): v for v in [*self.variants.values(), *self.profession_variants.values()]}
        return sorted(found.values(), key=lambda v: (v.path.name, v.line))

    def variables(self) -> dict[str, Variable]:
        """Every variable any clause or variant declares (types agree; checked at load)."""
        found: dict[str, Variable] = {}
        for c in self.clauses.values():
            found.update({k: v for k, v in c.variables.items() if k not in found})
        for v in self.all_variants():
            found.update({k: x for k, x in (v.variables or {}).items() if k not in found})
        return found


# --------------------------------------------------------------------------- loading


class _Checker:
    """Collects problems so that one load reports all of them."""

    def __init__(self) -> None:
        self.problems: list[LibraryError] = []
        # Variables whose declaration was refused: their uses are not reported again as undeclared.
        self.refused: set[str] = set()

    def add(self, message: str, path: Path, line: int | None) -> None:
        self.problems.append(LibraryError(message, path=path, line=line))

    def mapping(self, value: Any, what: str, path: Path, line: int) -> LineDict | None:
        if not isinstance(value, LineDict):
            self.add(f"{what} must be a mapping, not {_kind(value)}", path, line)
            return None
        return value

    def keys(self, d: LineDict, required: set[str], optional: set[str], what: str, path: Path) -> bool:
        ok = True
        for key in d:
            if key not in required and key not in optional:
                allowed = ", ".join(sorted(required | optional))
                self.add(f"unknown key '{key}' in {what} (allowed: {allowed})", path, d.line_of(key))
                ok = False
        for key in sorted(required - set(d)):
            self.add(f"missing key '{key}' in {what}", path, d.line)
            ok = False
        return ok

    def typed(self, d: LineDict, key: str, kind: type, what: str, path: Path) -> bool:
        value = d.get(key)
        if kind is int:
            good = isinstance(value, int) and not isinstance(value, bool)
        elif kind is str:
            good = isinstance(value, str) and value.strip() != ""
        else:
            good = isinstance(value, kind)
        if not good:
            expected = {int: "an integer", str: "a non-empty string", bool: "true or false", list: "a list"}[kind]
            self.add(f"'{key}' of {what} must be {expected}, not {_kind(value)}", path, d.line_of(key))
        return good


def _kind(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, str):
        return "an empty string" if not value.strip() else "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


_ENV = SandboxedEnvironment(autoescape=True)


def _parse_variables(ck: _Checker, raw: Any, what: str, path: Path, line: int) -> dict[str, Variable]:
    if raw is None:
        return {}
    d = ck.mapping(raw, f"'variables' of {what}", path, line)
    if d is None:
        return {}
    out: dict[str, Variable] = {}
    for name, spec in d.items():
        vline = d.line_of(name)
        if not isinstance(name, str) or not VAR_RE.match(name) or name in BUILTINS or name == PROFESSION_VALUE:
            ck.add(f"variable name '{name}' of {what} must be lowercase letters, digits and '_' "
                   f"and not one of {', '.join(sorted([*BUILTINS, PROFESSION_VALUE]))}", path, vline)
            continue
        vd = ck.mapping(spec, f"variable '{name}' of {what}", path, vline)
        if vd is None:
            continue
        vwhat = f"variable '{name}' of {what}"
        if not ck.keys(vd, {"type", "description"}, {"default", "min", "max", "unit", "other_than", "max_length"},
                       vwhat, path):
            continue
        if vd["type"] not in VARIABLE_TYPES:
            ck.add(f"'type' of {vwhat} must be one of {', '.join(VARIABLE_TYPES)}, not '{vd['type']}'",
                   path, vd.line_of("type"))
            continue
        if not ck.typed(vd, "description", str, vwhat, path):
            continue
        var = _declaration(ck, vd, name, vwhat, path)
        if var is None:
            ck.refused.add(name)
            continue
        if var.has_default:
            problem = var.problem(var.default)
            if problem:
                ck.add(f"'default' of {vwhat} {problem}", path, vd.line_of("default"))
                ck.refused.add(name)
                continue
        out[name] = var
    return out


def _declaration(ck: _Checker, vd: LineDict, name: str, what: str, path: Path) -> Variable | None:
    """A variable's range, unit and rules, checked against its type; None (problems added) if they do not fit."""
    kind = vd["type"]
    allowed = {"integer": {"min", "max", "unit"}, "string": {"max_length"}, "name": {"max_length", "other_than"},
               "phone": set(), "boolean": set()}[kind]
    ok = True
    for key in ("min", "max", "unit", "other_than", "max_length"):
        if key in vd and key not in allowed:
            ck.add(f"'{key}' does not apply to {what}, {'an' if kind == 'integer' else 'a'} {kind}", path,
                   vd.line_of(key))
            ok = False
    if kind == "integer":
        # A missing range is lint's to report (libraries made before ranges existed still load).
        for key in ("min", "max"):
            if key in vd and (isinstance(vd[key], bool) or not isinstance(vd[key], int) or abs(vd[key]) > MAX_BOUND):
                ck.add(f"'{key}' of {what} must be an integer between -{MAX_BOUND} and {MAX_BOUND}", path,
                       vd.line_of(key))
                ok = False
        if ok and "min" in vd and "max" in vd and vd["min"] > vd["max"]:
            ck.add(f"'min' of {what} ({vd['min']}) is above its 'max' ({vd['max']})", path, vd.line_of("min"))
            ok = False
    if "unit" in vd and not (isinstance(vd["unit"], str) and re.fullmatch(r"[a-z][a-z -]{0,29}", vd["unit"])):
        ck.add(f"'unit' of {what} must be a short lowercase word such as hours", path, vd.line_of("unit"))
        ok = False
    if "other_than" in vd and vd["other_than"] not in OTHER_THAN:
        ck.add(f"'other_than' of {what} must be one of: {', '.join(OTHER_THAN)}", path, vd.line_of("other_than"))
        ok = False
    if "max_length" in vd and (isinstance(vd["max_length"], bool) or not isinstance(vd["max_length"], int)
                               or not 1 <= vd["max_length"] <= 2000):
        ck.add(f"'max_length' of {what} must be an integer from 1 to 2000", path, vd.line_of("max_length"))
        ok = False
    if not ok:
        return None
    return Variable(name, kind, vd["description"], vd.get("default"), "default" in vd, min=vd.get("min"),
                    max=vd.get("max"), unit=vd.get("unit"), other_than=vd.get("other_than"),
                    max_length=vd.get("max_length"), line=vd.line)


def type_problem(type_name: str, value: Any) -> str | None:
    """Why ``value`` is not of the variable type ``type_name``, or None if it is."""
    if type_name == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif type_name == "boolean":
        ok = isinstance(value, bool)
    else:  # string, name, phone: text
        ok = isinstance(value, str)
    article = "an" if type_name == "integer" else "a"
    noun = {"name": "name (text)", "phone": "phone number (text)"}.get(type_name, type_name)
    return None if ok else f"must be {article} {noun}, not {_kind(value)}"


def _check_body(ck: _Checker, body: str, variables: dict[str, Variable], what: str, path: Path, line: int) -> None:
    """A body may use the built-ins and its declared variables, and must use every one it declares."""
    try:
        ast = _ENV.parse(body)
    except TemplateSyntaxError as exc:
        ck.add(f"template error in body of {what}: {exc.message}", path, line + (exc.lineno or 1))
        return
    used = meta.find_undeclared_variables(ast)
    for name in sorted(used - set(variables) - set(BUILTINS) - ck.refused):
        ck.add(f"body of {what} uses undeclared variable '{name}'", path, line)
    for name in sorted(set(variables) - used):
        ck.add(f"variable '{name}' of {what} is declared but never used in its body", path, line)
    # find_all yields only the node types asked for; its annotation widens a tuple of them to Expr.
    found = cast(Iterator[nodes.Getattr | nodes.Getitem], ast.find_all((nodes.Getattr, nodes.Getitem)))
    for node in found:
        if not (isinstance(node.node, nodes.Name) and node.node.name in BUILTINS):
            continue
        base = node.node.name
        allowed = ", ".join(sorted(BUILTINS[base]))
        if isinstance(node, nodes.Getattr):
            attr = node.attr
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            attr = node.arg.value
        else:
            ck.add(f"body of {what} indexes '{base}' with a computed key; use {base}.NAME (allowed: {allowed})",
                   path, line + node.lineno)
            continue
        if attr not in BUILTINS[base]:
            ck.add(f"body of {what} uses '{base}.{attr}' (allowed: {allowed})", path, line + node.lineno)


def load_library(root: str | Path, language: str | None = None) -> Library:
    """Load and check the library in folder ``root``; raise on any problem.

    ``language`` (``es``): the library in that language, from its ``translations/LANG/``
    folder (:mod:`agreements_kit.authoring.translation`); None: its own language."""
    lib = _load_base(Path(root))
    if language is None or language == lib.language:
        return lib
    from agreements_kit.authoring.translation import translate  # it builds on this module

    return translate(lib, language)


def _load_base(root: Path) -> Library:
    if not root.is_dir():
        raise LibraryError("clause library folder not found", path=root)
    ck = _Checker()
    lib = _load_index(ck, root)
    if lib is None:
        raise LibraryProblems(ck.problems)
    area_ids = [a.id for a in lib.areas]
    by_area: dict[str, list[Clause]] = {a: [] for a in area_ids}
    seen_areas: dict[str, Path] = {}
    for path in sorted(root.glob("*.yaml")):
        if path.name == "library.yaml":
            continue
        for clause in _load_area_file(ck, path, lib, seen_areas):
            if clause.id in lib.clauses:
                other = lib.clauses[clause.id]
                ck.add(f"duplicate clause id '{clause.id}' (first at {other.path.name}:{other.line})",
                       path, clause.line)
                continue
            lib.clauses[clause.id] = clause
            by_area[clause.area].append(clause)
    # Agreement order: areas in library order, clauses in file order.
    lib.clauses = {c.id: c for a in area_ids for c in by_area[a]}
    for area in area_ids:
        if area not in seen_areas:
            ck.add(f"area '{area}' has no clause file ({area}.yaml)", root / "library.yaml", None)
    jdir = root / "jurisdictions"
    if jdir.is_dir():
        for path in sorted(jdir.glob("*.yaml")):
            for variant in _load_variant_file(ck, path, lib):
                _add_variant(ck, lib, variant)
    _check_cross(ck, lib)
    if ck.problems:
        raise LibraryProblems(ck.problems)
    return lib


def _add_variant(ck: _Checker, lib: Library, variant: Variant) -> None:
    """File a variant under its jurisdiction (and professions); one text per clause, place and profession."""
    table: dict[Any, Variant] = lib.profession_variants if variant.professions else lib.variants
    for profession in variant.professions or (None,):
        key = (variant.jurisdiction, variant.clause) if profession is None else \
            (variant.jurisdiction, variant.clause, profession)
        first = table.get(key)
        if first is not None:
            who = f" and {profession}" if profession else ""
            ck.add(f"duplicate variant of '{variant.clause}' for {variant.jurisdiction}{who} (first at "
                   f"{first.path.name}:{first.line})", variant.path, variant.line)
            continue
        table[key] = variant


def _load_index(ck: _Checker, root: Path) -> Library | None:
    path = root / "library.yaml"
    if not path.is_file():
        ck.add("library.yaml not found in the clause library folder", root, None)
        return None
    d = ck.mapping(yamlfile.load(path, LibraryError), "library.yaml", path, 1)
    if d is None:
        return None
    req = {"library", "version", "title", "language", "default_jurisdiction", "jurisdictions", "areas", "source"}
    if not ck.keys(d, req, {"page"}, "library.yaml", path):
        return None
    ok = all([ck.typed(d, "library", str, "the library", path), ck.typed(d, "version", int, "the library", path),
              ck.typed(d, "title", str, "the library", path), ck.typed(d, "language", str, "the library", path),
              ck.typed(d, "default_jurisdiction", str, "the library", path)])
    jur = ck.mapping(d["jurisdictions"], "'jurisdictions'", path, d.line_of("jurisdictions")) or LineDict()
    jurisdictions: dict[str, str] = {}
    for code, name in jur.items():
        if not isinstance(code, str) or not JURISDICTION_RE.match(code) or not isinstance(name, str):
            ck.add(f"jurisdiction '{code}' must look like US or US-NY and have a name", path, jur.line_of(code))
            ok = False
        else:
            jurisdictions[code] = name
    if "page" in d and (not isinstance(d["page"], str) or not PAGE_RE.match(d["page"])):
        ck.add("'page' must name a page template such as agreement-esign.html.j2 (agreement, then lowercase "
               "letters, digits or '-', then .html.j2)", path, d.line_of("page"))
        ok = False
    if ok and d["default_jurisdiction"] not in jurisdictions:
        ck.add(f"default_jurisdiction '{d['default_jurisdiction']}' is not in 'jurisdictions'", path,
               d.line_of("default_jurisdiction"))
        ok = False
    areas: list[Area] = []
    raw_areas = d["areas"]
    if not isinstance(raw_areas, LineList) or not raw_areas:
        ck.add("'areas' must be a non-empty list", path, d.line_of("areas"))
        ok = False
    else:
        for i, a in enumerate(raw_areas):
            ad = ck.mapping(a, "an area", path, raw_areas.line_of(i))
            if ad is None or not ck.keys(ad, {"id", "title"}, set(), "an area", path):
                ok = False
                continue
            if not (ck.typed(ad, "id", str, "an area", path) and ck.typed(ad, "title", str, "an area", path)):
                ok = False
                continue
            if not ID_RE.match(ad["id"]) or "." in ad["id"]:
                ck.add(f"area id '{ad['id']}' must be lowercase letters, digits and '-'", path, ad.line_of("id"))
                ok = False
            elif any(x.id == ad["id"] for x in areas):
                ck.add(f"duplicate area id '{ad['id']}'", path, ad.line_of("id"))
                ok = False
            else:
                areas.append(Area(ad["id"], ad["title"]))
    commitments: list[Commitment] = []
    src = ck.mapping(d["source"], "'source'", path, d.line_of("source"))
    title = origin = ""
    if src is None or not ck.keys(src, {"title", "origin", "commitments"}, set(), "'source'", path):
        ok = False
    else:
        title, origin = src["title"], src["origin"]
        raw = src["commitments"]
        if not isinstance(raw, LineList) or not raw:
            ck.add("'commitments' of 'source' must be a non-empty list", path, src.line_of("commitments"))
            ok = False
        else:
            for i, c in enumerate(raw):
                cd = ck.mapping(c, "a commitment", path, raw.line_of(i))
                if cd is None or not ck.keys(cd, {"id", "paragraph", "text"}, set(), "a commitment", path):
                    ok = False
                    continue
                if not (ck.typed(cd, "id", str, "a commitment", path)
                        and ck.typed(cd, "paragraph", int, "a commitment", path)
                        and ck.typed(cd, "text", str, "a commitment", path)):
                    ok = False
                    continue
                if any(x.id == cd["id"] for x in commitments):
                    ck.add(f"duplicate commitment id '{cd['id']}'", path, cd.line_of("id"))
                    ok = False
                    continue
                commitments.append(Commitment(cd["id"], cd["paragraph"], cd["text"], cd.line))
    if not ok:
        return None
    return Library(root=root, name=d["library"], version=d["version"], title=d["title"], language=d["language"],
                   default_jurisdiction=d["default_jurisdiction"], jurisdictions=jurisdictions, areas=areas,
                   source_title=title, source_origin=origin, commitments=commitments,
                   page=d.get("page", "agreement.html.j2"))


_LAW_KEYS = {"citations", "reviewed_on", "review_by"}
_CLAUSE_REQUIRED = {"id", "version", "title", "initials", "covers", "summary", "body"}
_CLAUSE_OPTIONAL = {"variables", "requires"} | _LAW_KEYS


@dataclass(frozen=True)
class _Law:
    citations: tuple[str, ...] = ()
    reviewed_on: dt.date | None = None
    review_by: dt.date | None = None


def _law(ck: _Checker, d: LineDict, what: str, path: Path) -> _Law | None:
    """The citations and review dates of a clause or variant, when well formed (lint says when missing)."""
    ok = True
    citations: tuple[str, ...] = ()
    if "citations" in d:
        raw = d["citations"]
        if not isinstance(raw, list) or not raw or not all(isinstance(x, str) and x.strip() for x in raw):
            ck.add(f"'citations' of {what} must be a non-empty list of statutes or cases, such as "
                   "\"Cal. Civ. Code 43.92\"", path, d.line_of("citations"))
            ok = False
        else:
            citations = tuple(" ".join(x.split()) for x in raw)
    dates: dict[str, dt.date | None] = {"reviewed_on": None, "review_by": None}
    for key in dates:
        if key in d:
            value = d[key]
            if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
                ck.add(f"'{key}' of {what} must be a date such as 2026-12-01, not {_kind(value)}", path,
                       d.line_of(key))
                ok = False
            else:
                dates[key] = value
    if dates["reviewed_on"] and dates["review_by"] and dates["review_by"] <= dates["reviewed_on"]:
        ck.add(f"'review_by' of {what} must come after its 'reviewed_on'", path, d.line_of("review_by"))
        ok = False
    return _Law(citations, dates["reviewed_on"], dates["review_by"]) if ok else None


def _requires(ck: _Checker, d: LineDict, what: str, path: Path) -> tuple[str, ...] | None:
    if "requires" not in d:
        return ()
    raw = d["requires"]
    if not isinstance(raw, list) or not raw or not all(isinstance(x, str) and ID_RE.match(x) for x in raw):
        ck.add(f"'requires' of {what} must be a non-empty list of clause ids", path, d.line_of("requires"))
        return None
    return tuple(raw)


def _load_area_file(ck: _Checker, path: Path, lib: Library, seen: dict[str, Path]) -> list[Clause]:
    d = ck.mapping(yamlfile.load(path, LibraryError), "a clause file", path, 1)
    if d is None or not ck.keys(d, {"area", "clauses"}, set(), "a clause file", path):
        return []
    area = d["area"]
    if area not in {a.id for a in lib.areas}:
        ck.add(f"unknown area '{area}' (library.yaml declares: {', '.join(a.id for a in lib.areas)})",
               path, d.line_of("area"))
        return []
    if area in seen:
        ck.add(f"area '{area}' is already defined in {seen[area].name}", path, d.line_of("area"))
        return []
    seen[area] = path
    raw = d["clauses"]
    if not isinstance(raw, LineList):
        ck.add("'clauses' must be a list", path, d.line_of("clauses"))
        return []
    out = []
    for i, c in enumerate(raw):
        cd = ck.mapping(c, "a clause", path, raw.line_of(i))
        if cd is None:
            continue
        what = f"clause '{cd.get('id')}'" if isinstance(cd.get("id"), str) else "a clause"
        if not ck.keys(cd, _CLAUSE_REQUIRED, _CLAUSE_OPTIONAL, what, path):
            continue
        ok = all([ck.typed(cd, "id", str, what, path), ck.typed(cd, "version", int, what, path),
                  ck.typed(cd, "title", str, what, path), ck.typed(cd, "initials", bool, what, path),
                  ck.typed(cd, "summary", str, what, path), ck.typed(cd, "body", str, what, path)])
        if not ok:
            continue
        cid = cd["id"]
        if not ID_RE.match(cid) or not cid.startswith(area + "."):
            ck.add(f"clause id '{cid}' must be lowercase and start with '{area}.'", path, cd.line_of("id"))
            continue
        if cd["version"] < 1:
            ck.add(f"'version' of {what} must be 1 or more", path, cd.line_of("version"))
            continue
        covers = cd["covers"]
        if not isinstance(covers, list) or not covers or not all(isinstance(x, str) for x in covers):
            ck.add(f"'covers' of {what} must be a non-empty list of commitment ids", path, cd.line_of("covers"))
            continue
        law, requires = _law(ck, cd, what, path), _requires(ck, cd, what, path)
        if law is None or requires is None:
            continue
        variables = _parse_variables(ck, cd.get("variables"), what, path, cd.line_of("variables"))
        _check_body(ck, cd["body"], variables, what, path, cd.line_of("body"))
        out.append(Clause(id=cid, version=cd["version"], title=cd["title"].strip(), area=area, body=cd["body"],
                          summary=" ".join(cd["summary"].split()), variables=variables,
                          initials=cd["initials"], covers=tuple(covers), path=path, line=cd.line,
                          requires=requires, citations=law.citations, reviewed_on=law.reviewed_on,
                          review_by=law.review_by))
    return out


_VARIANT_REQUIRED = {"clause", "version", "summary", "body"}
_VARIANT_OPTIONAL = {"title", "variables", "note", "professions", "requires"} | _LAW_KEYS


def _load_variant_file(ck: _Checker, path: Path, lib: Library) -> list[Variant]:
    d = ck.mapping(yamlfile.load(path, LibraryError), "a jurisdiction file", path, 1)
    if d is None or not ck.keys(d, {"jurisdiction", "variants"}, set(), "a jurisdiction file", path):
        return []
    jur = d["jurisdiction"]
    if jur not in lib.jurisdictions:
        ck.add(f"unknown jurisdiction '{jur}' (library.yaml declares: {', '.join(lib.jurisdictions)})",
               path, d.line_of("jurisdiction"))
        return []
    raw = d["variants"]
    if not isinstance(raw, LineList):
        ck.add("'variants' must be a list", path, d.line_of("variants"))
        return []
    out = []
    for i, v in enumerate(raw):
        vd = ck.mapping(v, "a variant", path, raw.line_of(i))
        if vd is None:
            continue
        what = f"the {jur} variant of '{vd.get('clause')}'"
        professions = vd.get("professions")
        if isinstance(professions, list) and all(isinstance(x, str) for x in professions):
            what += f" for {', '.join(professions)}"
        if not ck.keys(vd, _VARIANT_REQUIRED, _VARIANT_OPTIONAL, what, path):
            continue
        ok = all([ck.typed(vd, "clause", str, what, path), ck.typed(vd, "version", int, what, path),
                  ck.typed(vd, "summary", str, what, path), ck.typed(vd, "body", str, what, path)]
                 + [ck.typed(vd, k, str, what, path) for k in ("title", "note") if k in vd])
        if not ok:
            continue
        base = lib.clauses.get(vd["clause"])
        if base is None:
            ck.add(f"variant for unknown clause '{vd['clause']}'", path, vd.line_of("clause"))
            continue
        if professions is not None and (not isinstance(professions, list) or not professions
                                        or not all(x in PROFESSIONS for x in professions)
                                        or len(set(professions)) != len(professions)):
            ck.add(f"'professions' of {what} must list profession codes, each once ({', '.join(PROFESSIONS)})",
                   path, vd.line_of("professions"))
            continue
        law, requires = _law(ck, vd, what, path), _requires(ck, vd, what, path)
        if law is None or requires is None:
            continue
        variables = (_parse_variables(ck, vd["variables"], what, path, vd.line_of("variables"))
                     if "variables" in vd else None)
        _check_body(ck, vd["body"], base.variables if variables is None else variables, what, path,
                    vd.line_of("body"))
        out.append(Variant(clause=vd["clause"], jurisdiction=jur, version=vd["version"],
                           summary=" ".join(vd["summary"].split()), body=vd["body"], path=path, line=vd.line,
                           title=vd.get("title"), variables=variables, note=vd.get("note"),
                           professions=tuple(professions or ()), requires=requires, citations=law.citations,
                           reviewed_on=law.reviewed_on, review_by=law.review_by))
    return out


def _check_cross(ck: _Checker, lib: Library) -> None:
    """Checks that need the whole library: coverage and consistent variable types."""
    known = {c.id for c in lib.commitments}
    covered: set[str] = set()
    for clause in lib.clauses.values():
        for cid in clause.covers:
            if cid not in known:
                ck.add(f"clause '{clause.id}' covers unknown commitment '{cid}'", clause.path, clause.line)
            covered.add(cid)
    for c in lib.commitments:
        if c.id not in covered:
            ck.add(f"source commitment '{c.id}' is covered by no clause", lib.root / "library.yaml", c.line)
    for clause in lib.clauses.values():
        _check_requires(ck, lib, clause.id, clause.requires, f"clause '{clause.id}'", clause.path, clause.line)
    for variant in lib.all_variants():
        _check_requires(ck, lib, variant.clause, variant.requires,
                        f"the {variant.jurisdiction} variant of '{variant.clause}'", variant.path, variant.line)
    types: dict[str, tuple[str, Path, int]] = {}
    decls = [(c.variables, c.path, c.line) for c in lib.clauses.values()]
    decls += [(v.variables or {}, v.path, v.line) for v in lib.all_variants()]
    for variables, path, line in decls:
        for name, var in variables.items():
            first = types.setdefault(name, (var.type, path, line))
            if first[0] != var.type:
                ck.add(f"variable '{name}' is {var.type} here but {first[0]} at {first[1].name}:{first[2]}",
                       path, line)


def _check_requires(ck: _Checker, lib: Library, clause_id: str, requires: tuple[str, ...], what: str, path: Path,
                    line: int) -> None:
    """Each clause a clause requires exists in the library (else no agreement could include it)."""
    for required in requires:
        if required == clause_id:
            ck.add(f"{what} requires itself", path, line)
        elif required not in lib.clauses:
            ck.add(f"{what} requires clause '{required}', which the library does not have", path, line)
