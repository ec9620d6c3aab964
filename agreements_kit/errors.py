"""One error hierarchy for everything a user can get wrong.

Every error a person can cause (bad YAML, an unknown therapist, an output folder
that already exists) is an :class:`AgreementsError`. The CLI prints its message on
one line and exits with ``exit_code``; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

from pathlib import Path


class AgreementsError(Exception):
    """Base class: a problem the user can act on, described in one line."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None):
        self.message = message
        self.path = Path(path) if path is not None else None
        self.line = line
        super().__init__(self.__str__())

    def location(self) -> str:
        if self.path is None:
            return ""
        if self.line is None:
            return f"{self.path}"
        return f"{self.path}:{self.line}"

    def __str__(self) -> str:
        where = self.location()
        return f"{where}: {self.message}" if where else self.message


class LibraryError(AgreementsError):
    """The clause library is malformed or inconsistent."""


class LibraryProblems(LibraryError):
    """Several problems found while loading a library.

    Loading checks everything before giving up, so ``agreements lint`` can list
    every problem at once; other commands print the first and a count.
    """

    def __init__(self, problems: list[LibraryError]):
        self.problems = problems
        first = problems[0]
        more = len(problems) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''}; run 'agreements lint')" if more else ""
        super().__init__(first.message + suffix, path=first.path, line=first.line)


class SpecError(AgreementsError):
    """An agreement spec (command-line values or spec file) is invalid."""


class PracticeError(AgreementsError):
    """The practice folder is missing or its settings are invalid."""


class RenderError(AgreementsError):
    """Rendering the agreement failed (template, PDF or output folder)."""


class LintFailure(AgreementsError):
    """``agreements lint`` found problems; exit code 1 like any linter."""

    exit_code = 1
