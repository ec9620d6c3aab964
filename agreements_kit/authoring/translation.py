"""A clause library in another language: the same clauses, the same ids, other words.

A library folder may hold ``translations/LANG/`` (``translations/es/``), laid out as the
library itself::

    translations/es/library.yaml            language, title, area titles, jurisdiction names
                                            (and source_title, source_origin: the source's words)
    translations/es/<area>.yaml             each clause of the area: same id, version and covers
    translations/es/jurisdictions/*.yaml    each variant: same clause, version and professions

A translation carries only words (titles, summaries, bodies, and the defaults of text
variables, which are words too); everything else (variables and their ranges, initials,
requires, citations and review dates, the source's commitments) is the base library's.
Each translated clause restates its ``version`` and ``covers``: a translation of an older
version, or one that claims other commitments, is refused with its file and line, so the
commitment coverage checked in the base language holds in every language. Every clause
and variant must be translated, and nothing else may be. A third language is one more
folder: no code changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from agreements_kit.authoring import yamlfile
from agreements_kit.authoring.library import (
    Area,
    Library,
    Variable,
    Variant,
    _check_body,
    _Checker,
    _kind,
)
from agreements_kit.authoring.yamlfile import LineDict, LineList
from agreements_kit.errors import LibraryError, LibraryProblems
from agreements_kit.formats.ids import LANGUAGE_RE

TRANSLATIONS = "translations"  # inside a library folder: one folder per language


def languages(root: Path) -> list[str]:
    """The languages a library is translated into (its base language not included)."""
    folder = root / TRANSLATIONS
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and LANGUAGE_RE.match(p.name))


def translate(lib: Library, language: str) -> Library:
    """``lib`` in ``language``: its translation folder applied and checked; raise on any problem."""
    if language == lib.language:
        return lib
    folder = lib.root / TRANSLATIONS / language
    if not LANGUAGE_RE.match(language) or not (folder / "library.yaml").is_file():
        known = ", ".join([lib.language, *languages(lib.root)])
        raise LibraryError(f"the clause library '{lib.name}' has no translation into '{language}' "
                           f"(it is written in: {known}; a translation is a folder {TRANSLATIONS}/LANG/)",
                           path=lib.root, code="usage.language")
    ck = _Checker()
    out = _index(ck, folder / "library.yaml", lib, language)
    if out is not None:
        _clauses(ck, folder, lib, out)
        _variants(ck, folder, lib, out)
    if ck.problems or out is None:
        raise LibraryProblems(ck.problems)
    return out


def _text(ck: _Checker, d: LineDict, key: str, what: str, path: Path) -> str | None:
    return d[key] if ck.typed(d, key, str, what, path) else None


def _index(ck: _Checker, path: Path, lib: Library, language: str) -> Library | None:
    d = ck.mapping(yamlfile.load(path, LibraryError), "a translation's library.yaml", path, 1)
    if d is None or not ck.keys(d, {"language", "title", "jurisdictions", "areas"}, {"source_title", "source_origin"},
                                "a translation's library.yaml", path):
        return None
    if d["language"] != language:
        ck.add(f"'language' is '{d['language']}' but the folder is {TRANSLATIONS}/{language}", path,
               d.line_of("language"))
        return None
    title = _text(ck, d, "title", "the translation", path)
    jur = ck.mapping(d["jurisdictions"], "'jurisdictions'", path, d.line_of("jurisdictions")) or LineDict()
    names: dict[str, str] = {}
    for code in lib.jurisdictions:
        if not isinstance(jur.get(code), str) or not jur[code].strip():
            ck.add(f"jurisdiction '{code}' has no name in this translation", path, d.line_of("jurisdictions"))
        else:
            names[code] = jur[code]
    for code in jur:
        if code not in lib.jurisdictions:
            ck.add(f"jurisdiction '{code}' is not in the library ({', '.join(lib.jurisdictions)})", path,
                   jur.line_of(code))
    raw = d["areas"]
    titles: dict[str, str] = {}
    if not isinstance(raw, LineList):
        ck.add("'areas' must be a list of {id, title}", path, d.line_of("areas"))
    else:
        for i, item in enumerate(raw):
            ad = ck.mapping(item, "an area", path, raw.line_of(i))
            if ad is None or not ck.keys(ad, {"id", "title"}, set(), "an area", path):
                continue
            if ad["id"] not in {a.id for a in lib.areas}:
                ck.add(f"unknown area '{ad['id']}'", path, ad.line_of("id"))
            elif ck.typed(ad, "title", str, f"area '{ad['id']}'", path):
                titles[ad["id"]] = ad["title"]
        for area in lib.areas:
            if area.id not in titles:
                ck.add(f"area '{area.id}' has no title in this translation", path, d.line_of("areas"))
    source_title = d.get("source_title", lib.source_title)
    source_origin = d.get("source_origin", lib.source_origin)  # "United States federal law": words too
    if title is None or ck.problems:
        return None
    return replace(lib, language=language, title=title, jurisdictions=names,
                   areas=[Area(a.id, titles[a.id]) for a in lib.areas], source_title=source_title,
                   source_origin=source_origin,
                   clauses=dict(lib.clauses), variants=dict(lib.variants),
                   profession_variants=dict(lib.profession_variants))


def _defaults(ck: _Checker, d: LineDict, variables: dict[str, Variable], what: str,
              path: Path) -> dict[str, Variable] | None:
    """The variables with their translated defaults (a default is words: "during office hours")."""
    if "defaults" not in d:
        return variables
    raw = ck.mapping(d["defaults"], f"'defaults' of {what}", path, d.line_of("defaults"))
    if raw is None:
        return None
    out = dict(variables)
    for name, value in raw.items():
        var = variables.get(name)
        if var is None or var.type not in ("string", "name") or not var.has_default:
            ck.add(f"'defaults' of {what} names '{name}', which is not a text variable with a default there",
                   path, raw.line_of(name))
            return None
        problem = var.problem(value)
        if problem:
            ck.add(f"translated default of '{name}' in {what} {problem}", path, raw.line_of(name))
            return None
        out[name] = replace(var, default=value)
    return out


def _same(ck: _Checker, d: LineDict, key: str, expected: Any, what: str, path: Path) -> bool:
    """A field the translation restates (version, covers, professions) is the base library's."""
    value = d.get(key)
    if isinstance(expected, tuple):
        value = tuple(value) if isinstance(value, list) else value
    if value != expected:
        shown = list(expected) if isinstance(expected, tuple) else expected
        ck.add(f"'{key}' of {what} is {_kind(value) if value is None else value!r} but the base library's is "
               f"{shown!r}: translate the current text, with the same {key}", path, d.line_of(key))
        return False
    return True


_CLAUSE_KEYS = {"id", "version", "covers", "title", "summary", "body"}


def _items(ck: _Checker, path: Path, what_file: str, head: str, list_key: str,
           what: str) -> Iterator[tuple[LineDict, LineDict]]:
    """(the file's mapping, each item's mapping) of a translation file ``{head: ..., list_key: [...]}``;
    what is not of that shape is reported, with its file and line, and left out."""
    d = ck.mapping(yamlfile.load(path, LibraryError), what_file, path, 1)
    if d is None or not ck.keys(d, {head, list_key}, set(), what_file, path):
        return
    raw = d[list_key]
    if not isinstance(raw, LineList):
        ck.add(f"'{list_key}' must be a list", path, d.line_of(list_key))
        return
    for i, item in enumerate(raw):
        found = ck.mapping(item, what, path, raw.line_of(i))
        if found is not None:
            yield d, found


def _clauses(ck: _Checker, folder: Path, lib: Library, out: Library) -> None:
    done: dict[str, tuple[Path, int]] = {}
    for path in sorted(folder.glob("*.yaml")):
        if path.name == "library.yaml":
            continue
        for d, cd in _items(ck, path, "a clause file", "area", "clauses", "a clause"):
            cid = cd.get("id")
            what = f"the translation of clause '{cid}'"
            if not ck.keys(cd, _CLAUSE_KEYS, {"defaults"}, what, path):
                continue
            base = lib.clauses.get(cid) if isinstance(cid, str) else None
            if base is None:
                ck.add(f"translation of unknown clause '{cid}'", path, cd.line_of("id"))
                continue
            cid = base.id
            if cid in done:
                ck.add(f"clause '{cid}' is translated twice (first at {done[cid][0].name}:{done[cid][1]})",
                       path, cd.line)
                continue
            done[cid] = (path, cd.line)
            if base.area != d["area"]:
                ck.add(f"clause '{cid}' belongs to area '{base.area}', not '{d['area']}'", path, cd.line_of("id"))
                continue
            ok = all([_same(ck, cd, "version", base.version, what, path),
                      _same(ck, cd, "covers", base.covers, what, path)])
            words = [_text(ck, cd, k, what, path) for k in ("title", "summary", "body")]
            variables = _defaults(ck, cd, base.variables, what, path)
            if not ok or None in words or variables is None:
                continue
            title, summary, body = (w or "" for w in words)
            _check_body(ck, body, base.variables, what, path, cd.line_of("body"))
            out.clauses[cid] = replace(base, title=title.strip(), summary=" ".join(summary.split()), body=body,
                                       variables=variables, path=path, line=cd.line)
    for cid, clause in lib.clauses.items():
        if cid not in done:
            ck.add(f"clause '{cid}' ({clause.path.name}:{clause.line}) has no translation into {out.language}",
                   folder / f"{clause.path.stem}.yaml", None)


_VARIANT_KEYS = {"clause", "version", "summary", "body"}


def _variants(ck: _Checker, folder: Path, lib: Library, out: Library) -> None:
    base_variants = lib.all_variants()
    by_key = {(v.jurisdiction, v.clause, v.professions): v for v in base_variants}
    done: set[tuple[str, str, tuple[str, ...]]] = set()
    jdir = folder / "jurisdictions"
    for path in sorted(jdir.glob("*.yaml")) if jdir.is_dir() else []:
        for d, vd in _items(ck, path, "a jurisdiction file", "jurisdiction", "variants", "a variant"):
            professions = vd.get("professions") or []
            key = (d["jurisdiction"], vd.get("clause"), tuple(professions) if isinstance(professions, list) else ())
            what = (f"the translation of the {key[0]} variant of '{key[1]}'"
                    + (f" for {', '.join(key[2])}" if key[2] else ""))
            if not ck.keys(vd, _VARIANT_KEYS, {"title", "professions", "defaults"}, what, path):
                continue
            base = by_key.get(key)  # type: ignore[arg-type]
            if base is None:
                ck.add(f"{what}: the base library has no such variant (same jurisdiction, clause and "
                       "professions)", path, vd.line)
                continue
            if key in done:
                ck.add(f"{what} is given twice", path, vd.line)
                continue
            done.add(key)  # type: ignore[arg-type]
            if ("title" in vd) != (base.title is not None):
                ck.add(f"{what} must {'have' if base.title else 'not have'} a 'title', as the base variant "
                       f"{'has' if base.title else 'does not'}", path, vd.line)
                continue
            if not _same(ck, vd, "version", base.version, what, path):
                continue
            words = [_text(ck, vd, k, what, path) for k in ("summary", "body")]
            title = _text(ck, vd, "title", what, path) if "title" in vd else None
            declared = base.variables if base.variables is not None else lib.clauses[base.clause].variables
            variables = _defaults(ck, vd, declared, what, path)
            if None in words or ("title" in vd and title is None) or variables is None:
                continue
            _check_body(ck, words[1] or "", declared, what, path, vd.line_of("body"))
            _file(out, base, replace(base, title=title, summary=" ".join((words[0] or "").split()),
                                     body=words[1] or "", path=path, line=vd.line,
                                     variables=variables if base.variables is not None else None))
            if base.variables is None and "defaults" in vd:
                ck.add(f"{what}: 'defaults' apply to a variant that declares its own variables; translate the "
                       "clause's defaults in its own file", path, vd.line_of("defaults"))
    for v in base_variants:
        if (v.jurisdiction, v.clause, v.professions) not in done:
            extra = f" for {', '.join(v.professions)}" if v.professions else ""
            ck.add(f"the {v.jurisdiction} variant of '{v.clause}'{extra} ({v.path.name}:{v.line}) has no "
                   f"translation into {out.language}", jdir / v.path.name, None)


def _file(out: Library, base: Variant, translated: Variant) -> None:
    """Put the translated variant where the base one was filed."""
    for key, v in out.variants.items():
        if v is base:
            out.variants[key] = translated
    for pkey, v in out.profession_variants.items():
        if v is base:
            out.profession_variants[pkey] = translated

