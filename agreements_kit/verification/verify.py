"""Verification of one agreement folder: the steps of :mod:`.steps`, in order.

A verdict is ``valid`` (every check passed and the client and the therapist
signed), ``incomplete`` (nothing wrong, but a signature is still missing),
``voided`` (closed by a signed void record), or ``invalid`` (some check failed,
each failure with a reason code and a sentence). ``agreements verify`` and
``agreements audit`` both call :func:`verify_folder`; audit only shares the
ledger index, certificate cache and path cache between agreements.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

from agreements_kit.errors import CannotCheck, InvalidFormat
from agreements_kit.formats.folder import limit_for, read_file, read_folder
from agreements_kit.verification import copycheck, evidence, steps
from agreements_kit.verification.chain import PathValidator
from agreements_kit.verification.cms import CertCache
from agreements_kit.verification.ledgerview import LedgerIndex, build_index
from agreements_kit.verification.steps import Check, Context, Verdict
from agreements_kit.verification.timestamps import TokenChecker
from agreements_kit.verification.trust import Trust

__all__ = ["CannotCheck", "Check", "Verdict", "Verifier", "verify_folder"]


class Verifier:
    """One trust root, with the caches every agreement checked against it may share."""

    def __init__(self, trust: Trust, ledger: LedgerIndex | None, now: dt.datetime | None = None,
                 leave_out: frozenset[str] = frozenset(), require_timestamps: bool = False,
                 check_copies: bool = False):
        self.trust = trust
        self.ledger = ledger
        self.leave_out = leave_out  # ledger problems not to repeat in each verdict (audit lists them once)
        self.now = now or dt.datetime.now(dt.UTC)
        self.cache = CertCache()
        self.validator = PathValidator(trust.root)
        self.crl_verified: dict[bytes, bool] = {}
        self.memo: dict[str, Any] = {}
        self.tokens = TokenChecker(trust.tsa_roots)
        self.require_timestamps = require_timestamps
        # Read each signed copy in the folder with pyHanko (~0.1 s a copy)? Not by default: a folder's verify
        # and audit run the same steps, checking each copy's prefix and its ledger entry; a copy handed to
        # `agreements verify COPY.pdf` is read in full (copycheck.check_given_copy).
        self.check_copies = check_copies

    def verify(self, folder: Path, *, pdf_path: Path | None = None, check_embedded: bool = True) -> Verdict:
        try:
            return self._verify(str(folder), pdf_path, check_embedded)
        except CannotCheck:
            raise
        except InvalidFormat as exc:
            v = Verdict(Path(folder).name, str(folder), "invalid")
            v.fail("folder", exc.code, f"{exc.path or Path(folder).name}: {exc.message}")
            return v

    def _verify(self, folder: str, pdf_path: Path | None, check_embedded: bool) -> Verdict:
        files = read_folder(folder, read_pdf=pdf_path is None)
        if files.manifest is None and files.pdf is None and not files.records:
            raise CannotCheck(f"{folder} is not an agreement folder (no manifest.json)")
        v = Verdict(os.path.basename(folder.rstrip("/")), folder)
        ctx = Context(folder, files, self.trust, self.validator, self.cache, self.ledger, self.now,
                      check_embedded=check_embedded, crl_verified=self.crl_verified, memo=self.memo,
                      tokens=self.tokens, require_timestamps=self.require_timestamps)
        pdf = files.pdf
        if pdf_path is not None:
            try:
                pdf = read_file(str(pdf_path), limit_for("agreement.pdf"), pdf_path.name)
            except FileNotFoundError:
                raise CannotCheck(f"{pdf_path} not found") from None
        steps.step_folder(v, ctx)                                        # 1
        if not steps.step_manifest(v, ctx):                              # 2
            v.status = "invalid"
            return v
        steps.step_pdf(v, ctx, pdf)                                      # 3
        steps.step_records(v, ctx)                                       # 4
        steps.attach_entries(ctx)
        for sig in ctx.signatures:
            if not steps.step_signature(v, ctx, sig):                    # 5
                continue
            steps.step_time(v, ctx, sig)                                 # 6
            steps.step_register(v, ctx, sig)                             # 7
            steps.step_path(v, ctx, sig)                                 # 8
            if sig.path is None:
                continue
            steps.step_revocation(v, ctx, sig)                           # 9
            steps.step_role(v, ctx, sig)                                 # 10
        client, therapist, voids = steps.step_order(v, ctx)             # 11
        steps.step_ledger(v, ctx)                                        # 12
        evidence.step_evidence(v, ctx)                                   # 13
        # Without a ledger nothing holds a copy's bytes: then its signatures are read in full.
        copycheck.step_copies(v, ctx, deep=self.check_copies or self.ledger is None)  # 14
        if self.ledger is not None:
            for problem in self.ledger.report.problems:
                if not self.ledger.report.missing and problem.code not in self.leave_out:
                    v.fail("ledger", problem.code, problem.message)
        if v.failures:
            v.status = "invalid"
        elif voids:
            v.status = "voided"
        elif not client or not therapist:
            v.status = "incomplete"
            v.add("order", True, "missing: " + ", ".join(
                x for x, have in (("client", client), ("therapist", therapist)) if not have), code="order.incomplete")
        else:
            v.add("order", True, "client and therapist each signed once, in order", code="order.complete")
        return v


def verify_folder(folder: Path, trust: Trust, *, pdf_path: Path | None = None, ledger: Path | None = None,
                  now: dt.datetime | None = None, check_embedded: bool = True,
                  require_timestamps: bool = False) -> Verdict:
    """Check one agreement folder against ``trust``, with the archive's ledger when given."""
    index = build_index(str(ledger)) if ledger is not None else None
    verdict = Verifier(trust, index, now, require_timestamps=require_timestamps).verify(
        Path(folder), pdf_path=pdf_path, check_embedded=check_embedded)
    verdict.notes.append(trust.describe())
    return verdict
