"""``agreements lint``: every loading check, plus the rules a text must meet to be signed.

Beyond what loading checks (a library that fails those cannot render at all), lint
holds every clause and variant to what a client and a health lawyer need:

- reading: each summary and each body at or below grade 8 (Flesch-Kincaid, textstat),
  no sentence longer than 20 words, and each whole agreement, in every jurisdiction and
  for every profession a variant names, at or below grade 7 (consent forms should
  read at a 6th to 8th grade level);
- strength: a summary uses only modal verbs its body uses, negated ones ("will not")
  as kinds of their own, and its body's strongest (saying "must" where the body says
  "may" misleads, and "we will share" where it says "we will not share");
- law: a variant cites its statute or case and carries ``reviewed_on`` and
  ``review_by``; so does the general text of a clause that has variants. A review
  date in the past is a warning, not a failure: the text was right when checked.

A translation (``translations/LANG/``) is loaded with its checks (same ids, versions and
commitments as the base), then each text is held to its language's reading measure
(Spanish: Fernandez Huerta reading ease at least 70) and the 20-word sentence limit.

Problems fail the lint (exit 1); warnings are printed and do not.

Profession variants: where a jurisdiction has texts for some professions, each is linted,
and so is the jurisdiction's text for the professions no variant names. Rendering then
needs the therapist's ``profession`` in practice.yaml: a therapist without one is refused
(exit 2, naming their line in practice.yaml) for an agreement in that jurisdiction that
includes such a clause, whatever their credentials say.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agreements_kit.authoring import readability, translation
from agreements_kit.authoring.library import Clause, Library, Variable, Variant, load_library
from agreements_kit.errors import LibraryError, LibraryProblems

MAX_GRADE = 8.0  # a summary's or body's reading grade
MAX_AGREEMENT_GRADE = 7.0  # a whole agreement's
MAX_SENTENCE_WORDS = 20
# Spanish: Fernandez Huerta reading ease at least 70 ("fairly easy", about grade 6 to 7), for each summary,
# body and whole agreement. Chosen over Szigriszt-Pazos because its bands are read as grade levels.
MIN_EASE = {"es": 70.0}


@dataclass(frozen=True)
class Grade:
    where: str
    label: str
    grade: float
    limit: float = MAX_GRADE
    language: str = "en"  # en: a Flesch-Kincaid grade (at most limit); es: a Fernandez Huerta ease (at least)

    @property
    def ok(self) -> bool:
        return self.grade >= self.limit if self.language in MIN_EASE else self.grade <= self.limit

    @property
    def measure(self) -> str:
        return readability.SCORES.get(self.language, readability.SCORES["en"])[0]


@dataclass
class LintReport:
    max_grade: float
    problems: list[LibraryError] = field(default_factory=list)
    warnings: list[LibraryError] = field(default_factory=list)
    grades: list[Grade] = field(default_factory=list)
    # The reading scores of the library's translations, each by its language's measure.
    translated: list[Grade] = field(default_factory=list)

    @property
    def too_hard(self) -> list[Grade]:
        return [g for g in [*self.grades, *self.translated] if not g.ok]

    @property
    def count(self) -> int:
        return len(self.problems) + len(self.too_hard)

    @property
    def ok(self) -> bool:
        return self.count == 0


def reading_grade(text: str) -> float:
    """A text's Flesch-Kincaid grade, read as :mod:`readability` reads clause text."""
    return readability.grade(readability.plain_text(text))


def lint_library(root: str | Path, max_grade: float = MAX_GRADE, *, max_agreement_grade: float = MAX_AGREEMENT_GRADE,
                 today: dt.date | None = None) -> LintReport:
    """Lint the library in folder ``root`` (the therapists' library, or a document library)."""
    report = LintReport(max_grade)
    try:
        lib = load_library(root)
    except LibraryProblems as exc:
        report.problems = exc.problems
        return report
    except LibraryError as exc:
        report.problems = [exc]
        return report
    today = today or dt.date.today()  # noqa: DTZ011 - a review is due by the practice's calendar day
    for c in lib.clauses.values():
        _text(report, lib, c.summary, c.body, c.variables, f"clause '{c.id}'", c.id, c.path, c.line, max_grade)
    for v in lib.all_variants():
        base = lib.clauses[v.clause]
        what = _variant_name(v)
        _text(report, lib, v.summary, v.body, base.variables if v.variables is None else v.variables, what,
              f"{v.clause} ({v.jurisdiction}{', ' + ', '.join(v.professions) if v.professions else ''})",
              v.path, v.line, max_grade, declares=v.variables is not None)
    _law(report, lib, today)
    _agreements(report, lib, max_agreement_grade)
    for language in translation.languages(lib.root):
        _translation(report, lib, language)
    return report


def _translation(report: LintReport, base: Library, language: str) -> None:
    """A translation: its loading checks, then each text held to its language's reading rules."""
    try:
        lib = translation.translate(base, language)
    except LibraryProblems as exc:
        report.problems += exc.problems
        return
    except LibraryError as exc:
        report.problems.append(exc)
        return
    limit = MIN_EASE.get(language)
    if limit is None:
        # A language is a data change: it renders at once; lint says it cannot grade it until it learns how.
        report.warnings.append(LibraryError(
            f"no reading measure for the language '{language}' (lint grades: en, {', '.join(MIN_EASE)}); its "
            "texts were checked for form, not for reading level", path=lib.root / translation.TRANSLATIONS / language,
            code="lint.language"))
        return
    texts: list[tuple[str, str, str, dict[str, Variable], Path, int]] = [
        (f"clause '{c.id}' ({language})", c.summary, c.body, c.variables, c.path, c.line) for c in lib.clauses.values()]
    for v in lib.all_variants():
        variables = lib.clauses[v.clause].variables if v.variables is None else v.variables
        texts.append((f"{_variant_name(v)} ({language})", v.summary, v.body, variables, v.path, v.line))
    for what, summary, body, variables, path, line in texts:
        plain = readability.plain_text(body, _samples(variables))
        summary_plain = readability.plain_text(summary)
        for part, text in (("summary", summary_plain), ("body", plain)):
            report.translated.append(Grade(f"{path}:{line}", f"{part} of {what}", readability.score(text, language),
                                           limit, language))
            for words, sentence in readability.long_sentences(text, MAX_SENTENCE_WORDS):
                report.problems.append(LibraryError(
                    f"a sentence of {words} words in the {part} of {what} (at most {MAX_SENTENCE_WORDS}): "
                    f"\"{_start(sentence)}\"", path=path, line=line))
    where = f"{lib.root / translation.TRANSLATIONS / language / 'library.yaml'}:1"
    for jurisdiction, profession in combinations(lib):
        label = f"the whole agreement ({jurisdiction}{', ' + profession if profession else ''}, {language})"
        report.translated.append(Grade(where, label, readability.score(agreement_text(lib, jurisdiction, profession),
                                                                   language), limit, language))


def _variant_name(v: Variant) -> str:
    professions = f" for {', '.join(v.professions)}" if v.professions else ""
    return f"the {v.jurisdiction} variant of '{v.clause}'{professions}"


def _samples(variables: dict[str, Variable]) -> dict[str, str]:
    """What each variable is read as when grading: its default, or a short word."""
    return {name: (str(v.default) if v.has_default and not isinstance(v.default, bool) else "it")
            for name, v in variables.items()}


def _text(report: LintReport, lib: Library, summary: str, body: str, variables: dict[str, Variable], what: str,
          label: str, path: Path, line: int, max_grade: float, declares: bool = True) -> None:
    where = f"{path}:{line}"
    for var in variables.values() if declares else ():  # a variant using its clause's declarations: checked there
        for key in ("min", "max"):
            if var.type == "integer" and getattr(var, key) is None:
                report.problems.append(LibraryError(
                    f"variable '{var.name}' of {what} is an integer and must declare '{key}' (its range)",
                    path=path, line=var.line or line, code="lint.range"))
    plain = readability.plain_text(body, _samples(variables))
    report.grades.append(Grade(where, f"summary of {label}", reading_grade(summary), max_grade))
    report.grades.append(Grade(where, f"body of {label}", readability.grade(plain), max_grade))
    for part, text in (("summary", readability.plain_text(summary)), ("body", plain)):
        for words, sentence in readability.long_sentences(text, MAX_SENTENCE_WORDS):
            report.problems.append(LibraryError(
                f"a sentence of {words} words in the {part} of {what} (at most {MAX_SENTENCE_WORDS}): "
                f"\"{_start(sentence)}\"", path=path, line=line))
    mismatch = readability.modal_mismatch(summary, plain)
    if mismatch:
        report.problems.append(LibraryError(f"{what}: {mismatch}", path=path, line=line, code="lint.strength"))


def _start(sentence: str, words: int = 8) -> str:
    parts = sentence.split()
    return " ".join(parts[:words]) + (" ..." if len(parts) > words else "")


def _law(report: LintReport, lib: Library, today: dt.date) -> None:
    """Citations and review dates: required of variants and of the clauses they vary."""
    varied = {v.clause for v in lib.all_variants()}
    items: list[tuple[str, Any, Path, int]] = [
        (f"clause '{c.id}' (its general text; it has jurisdiction variants)", c, c.path, c.line)
        for c in lib.clauses.values() if c.id in varied or c.citations]
    items += [(_variant_name(v), v, v.path, v.line) for v in lib.all_variants()]
    for what, item, path, line in items:
        if not item.citations:
            report.problems.append(LibraryError(
                f"{what} cites no statute or case: add 'citations' (the law its text reflects)", path=path,
                line=line, code="lint.citation"))
        missing = [k for k in ("reviewed_on", "review_by") if getattr(item, k) is None]
        if missing:
            report.problems.append(LibraryError(
                f"{what} has no {' or '.join(repr(k) for k in missing)}: say when its text was checked against "
                "the law, and by when it must be checked again", path=path, line=line, code="lint.review"))
        elif item.review_by < today:
            report.warnings.append(LibraryError(
                f"{what} was due for legal review by {item.review_by.isoformat()} (last reviewed "
                f"{item.reviewed_on.isoformat()}): check it against the law, then update 'reviewed_on' and "
                "'review_by'", path=path, line=line, code="lint.review-due"))


def agreement_text(lib: Library, jurisdiction: str, profession: str | None) -> str:
    """The summaries and bodies of a whole agreement with every clause, as a reader meets them."""
    parts = []
    for cid in lib.clauses:
        clause: Clause = lib.clause(cid, jurisdiction, profession)
        parts.append(readability.plain_text(clause.summary))
        parts.append(readability.plain_text(clause.body, _samples(clause.variables)))
    return "\n".join(parts)


def combinations(lib: Library) -> list[tuple[str, str | None]]:
    """Each (jurisdiction, profession) whose agreement reads differently: no profession, and each one a
    variant of that jurisdiction is written for."""
    out: list[tuple[str, str | None]] = []
    for jurisdiction in lib.jurisdictions:
        out.append((jurisdiction, None))
        out += sorted({(j, p) for (j, _, p) in lib.profession_variants if j == jurisdiction})
    return out


def _agreements(report: LintReport, lib: Library, limit: float) -> None:
    where = f"{lib.root / 'library.yaml'}:1"
    for jurisdiction, profession in combinations(lib):
        label = f"the whole agreement ({jurisdiction}{', ' + profession if profession else ''})"
        report.grades.append(Grade(where, label, readability.grade(agreement_text(lib, jurisdiction, profession)),
                                   limit))
