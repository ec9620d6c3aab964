"""One error hierarchy for everything a user can get wrong, each error with a code.

Every error a person can cause (bad YAML, an unknown therapist, an output folder
that already exists, a damaged signing record) is an :class:`AgreementsError`
with a ``code``: a short stable string such as ``format.duplicate-key``. The
code's first part is its *kind* (``usage``, ``format``, ``trust``, ``conflict``,
``denied``, ``not-found``, ``lint``...). The CLI maps kinds to exit codes and the
web app maps them to HTTP statuses, both through the tables at the end of this
module, never by reading the message. Anything that is not an AgreementsError is
a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class AgreementsError(Exception):
    """Base class: a problem the user can act on, described in one line."""

    code = "usage.invalid"

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None,
                 code: str | None = None):
        self.message = message
        self.path = Path(path) if path is not None else None
        self.line = line
        if code is not None:
            self.code = code
        super().__init__(self.__str__())

    @property
    def kind(self) -> str:
        return self.code.split(".", 1)[0]

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.kind, 2)

    @property
    def http_status(self) -> int:
        return HTTP_STATUSES.get(self.kind, 400)

    def location(self) -> str:
        if self.path is None:
            return ""
        if self.line is None:
            return f"{self.path}"
        return f"{self.path}:{self.line}"

    def __str__(self) -> str:
        where = self.location()
        return f"{where}: {self.message}" if where else self.message


# ----------------------------------------------------------------------------- authoring

class LibraryError(AgreementsError):
    """The clause library is malformed or inconsistent."""

    code = "usage.library"


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

    code = "usage.spec"


class PracticeError(AgreementsError):
    """The practice folder is missing or its settings are invalid."""

    code = "usage.practice"


class RenderError(AgreementsError):
    """Rendering the agreement failed (template, PDF or output folder)."""

    code = "usage.render"


class MissingGlyphError(RenderError):
    """Text no installed font can draw: refused, since a PDF/A copy must show what was agreed."""

    code = "usage.missing-glyph"

    def __init__(self, message: str, *, chars: list[str] | None = None, **kwargs):
        self.chars = chars or []
        super().__init__(message, **kwargs)


class LintFailure(AgreementsError):
    """``agreements lint`` found problems; exit code 1 like any linter."""

    code = "lint.failed"


# ----------------------------------------------------------------------------- formats

class InvalidFormat(AgreementsError):
    """A file is not a valid document of its format (the one error of ``agreements_kit.formats``).

    Like sigstore's ``InvalidBundle``: duplicate or unknown keys, wrong types, an
    encoding other than UTF-8, a byte-order mark, nesting too deep, a file too
    large, a link or a non-regular file, bytes that are not the canonical form of
    what they say. ``code`` names which (``format.duplicate-key``, ...); ``path`` and
    ``line`` say where.
    """

    code = "format.invalid"


class RecordError(InvalidFormat):
    """A signing record is malformed."""


class LedgerError(InvalidFormat):
    """The ledger is unreadable."""


# ----------------------------------------------------------------------------- store, signing

class ArchiveError(AgreementsError):
    """The archive or one of its agreements is missing, inconsistent or closed."""

    code = "conflict.archive"


class PKIError(AgreementsError):
    """A problem with the practice's certificates or keys."""

    code = "denied.pki"


class SigningError(AgreementsError):
    """This signature cannot be made (missing consent, wrong order, ...)."""

    code = "usage.signing"


class TimestampError(AgreementsError):
    """No time-stamp token could be had from any configured TSA (signing stops: never a local time instead)."""

    code = "unavailable.tsa"


class LogError(AgreementsError):
    """The transparency log, its key or a checkpoint cannot be used (bad key, wrong passphrase, no checkpoint)."""

    code = "usage.log"


class IntakeError(AgreementsError):
    """An intake link or session is unusable."""

    code = "denied.intake"


class DrawingError(AgreementsError):
    """A drawn signature that is not a small, well-formed PNG (the intake refuses it)."""

    code = "usage.drawing"


class ReceiptError(AgreementsError):
    """A client's receipt cannot be made (no catalogue for the language, nothing signed, another client's)."""

    code = "usage.receipt"


class StaffError(AgreementsError):
    """A staff account cannot be added, removed or read (PRACTICE/staff.json)."""

    code = "usage.staff"


class MailError(AgreementsError):
    """Mail could not be sent: the practice's mail server was unreachable, untrusted or refused it."""

    code = "unavailable.mail"


class HandoffError(AgreementsError):
    """The client's copy cannot be handed over this way (a download link, a choice, a follow-up)."""

    code = "usage.handoff"


class StoreError(AgreementsError):
    """The object store (S3 with Object Lock) cannot do what was asked: unreachable (``unavailable.store``),
    refused by it (``denied.store``), a bucket without Object Lock (``conflict.store-unlocked``), an object
    already there with other bytes (``conflict.store-exists``), a URL that names no bucket (``usage.store-url``)."""

    code = "unavailable.store"


# ----------------------------------------------------------------------------- verification

class TrustError(AgreementsError):
    """The trust root or CRL cannot be read (exit 2: could not check)."""

    code = "usage.trust"


class CannotCheck(AgreementsError):
    """The input cannot be checked at all (exit 2), as opposed to checked and found wanting."""

    code = "usage.cannot-check"


class NotVerified(AgreementsError):
    """Checked and found wanting (exit 1): used where a whole verification cannot start, e.g. no trusted root."""

    code = "invalid.not-verified"


# Kinds -> exit codes (CLI) and HTTP statuses (web app).
EXIT_CODES: dict[str, int] = {
    "usage": 2, "format": 2, "conflict": 2, "denied": 2, "not-found": 2, "gone": 2,
    "lint": 1, "invalid": 1, "unavailable": 3,
}
HTTP_STATUSES: dict[str, int] = {
    "usage": 400, "format": 400, "conflict": 409, "denied": 403, "not-found": 404, "gone": 410,
    "lint": 422, "invalid": 422, "unavailable": 503,
}
