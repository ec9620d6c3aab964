"""``agreements lint``: every loading check, plus reading grades of summaries.

Consent forms should read at a 6th to 8th grade level, so each clause's (and each
variant's) plain-language summary is scored with textstat's Flesch-Kincaid grade
and fails above the limit. Loading problems are listed all at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from agreements_kit.authoring.library import load_library
from agreements_kit.errors import LibraryError, LibraryProblems


@dataclass(frozen=True)
class Grade:
    where: str
    label: str
    grade: float


@dataclass
class LintReport:
    max_grade: float
    problems: list[LibraryError] = field(default_factory=list)
    grades: list[Grade] = field(default_factory=list)

    @property
    def too_hard(self) -> list[Grade]:
        return [g for g in self.grades if g.grade > self.max_grade]

    @property
    def count(self) -> int:
        return len(self.problems) + len(self.too_hard)

    @property
    def ok(self) -> bool:
        return self.count == 0


def reading_grade(text: str) -> float:
    import textstat  # imported here: it loads a pronunciation dictionary

    return float(textstat.flesch_kincaid_grade(text))


def lint_library(root: str | Path, max_grade: float = 8.0) -> LintReport:
    report = LintReport(max_grade)
    try:
        lib = load_library(root)
    except LibraryProblems as exc:
        report.problems = exc.problems
        return report
    except LibraryError as exc:
        report.problems = [exc]
        return report
    for c in lib.clauses.values():
        report.grades.append(Grade(f"{c.path}:{c.line}", f"summary of {c.id}", reading_grade(c.summary)))
    for (jur, cid), v in sorted(lib.variants.items()):
        report.grades.append(Grade(f"{v.path}:{v.line}", f"summary of {cid} ({jur})", reading_grade(v.summary)))
    return report
