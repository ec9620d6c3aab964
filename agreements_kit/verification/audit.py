"""Auditing a whole archive: every agreement, the whole ledger, in bounded memory.

The archive is streamed, never loaded: the ledger is read once into a
temporary SQLite index on disk (chain checked on the way), agreement folders are
listed in batches and checked in worker processes (one per core) by the same
:class:`~agreements_kit.verification.verify.Verifier` as ``agreements verify``
(every step, nothing skipped; only parsed certificates and validated paths are
cached, by the SHA-256 of their DER), and verdicts go back into the same SQLite
file, from which the summary and the report are produced, problems first. Memory stays flat whatever the
archive's size; only the temporary index grows, on disk.

Cross-checks beyond each agreement: every archived agreement has its ledger
entries, and every agreement the ledger says was archived is in the archive.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import tempfile
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from agreements_kit.errors import CannotCheck
from agreements_kit.formats.ids import ID_RE
from agreements_kit.verification.ledgerview import LedgerIndex, LedgerReport, build_index
from agreements_kit.verification.steps import Verdict
from agreements_kit.verification.trust import Trust
from agreements_kit.verification.verify import Verifier

# Ledger problems of the whole archive: the summary lists them once.
_ARCHIVE_WIDE = frozenset({"ledger.chain", "ledger.deleted", "ledger.reordered", "ledger.duplicate",
                           "ledger.backdated", "ledger.malformed", "ledger.incomplete", "ledger.legacy",
                           "ledger.version-mix"})

BATCH = 2048
STATUS_ORDER = {"invalid": 0, "incomplete": 1, "voided": 2, "valid": 3}


@dataclass
class AuditSummary:
    archive: str
    agreements: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUS_ORDER, 0))
    ledger_entries: int = 0
    ledger_problems: list[str] = field(default_factory=list)
    ledger_codes: list[str] = field(default_factory=list)
    missing_from_archive: list[str] = field(default_factory=list)
    drafts_not_archived: int = 0
    notes: list[str] = field(default_factory=list)
    renewal_due: list[str] = field(default_factory=list)  # agreements whose evidence needs an archive time-stamp
    store: str | None = None  # the S3 URL, for an audit of a bucket (verification/storeaudit.py)
    store_problems: list[tuple[str, str]] = field(default_factory=list)  # (code, sentence): what the bucket holds

    @property
    def ok(self) -> bool:
        return not self.counts["invalid"] and not self.ledger_problems and not self.missing_from_archive \
            and not self.store_problems

    def as_dict(self) -> dict[str, Any]:
        return {"archive": self.archive, "ok": self.ok, "agreements": self.agreements, "counts": self.counts,
                "ledger": {"entries": self.ledger_entries, "problems": self.ledger_problems,
                           "codes": self.ledger_codes},
                "missing_from_archive": self.missing_from_archive, "drafts_not_archived": self.drafts_not_archived,
                "notes": self.notes,
                "renewal_due": {"count": len(self.renewal_due), "agreements": self.renewal_due},
                "store": None if self.store is None else {
                    "url": self.store, "problems": [{"code": c, "detail": m} for c, m in self.store_problems]}}


# ----------------------------------------------------------------------------- workers

_state: dict[str, Any] = {}


def _init_worker(db_path: str, report: LedgerReport, trust: Trust, now: dt.datetime, require_timestamps: bool) -> None:
    _state["verifier"] = Verifier(trust, LedgerIndex.open(db_path, report), now, leave_out=_ARCHIVE_WIDE,
                                  require_timestamps=require_timestamps)


def _check(folder: str) -> tuple[str, str, str]:
    """(agreement id, status, verdict as JSON): the one verifier's steps, serialized here, in the worker."""
    name = Path(folder).name
    verifier: Verifier = _state["verifier"]
    try:
        v = verifier.verify(Path(folder))
    except CannotCheck as exc:
        v = Verdict(name, folder, "invalid")
        v.fail("folder", exc.code, str(exc))
    # Archive-wide ledger problems are reported once, in the summary, not in every verdict: the
    # verifier leaves them out, so the status is what the agreement's own checks make it (valid,
    # incomplete or voided), not "valid" for any agreement they alone made invalid.
    agreement_id = v.agreement_id if v.agreement_id == name else name
    return agreement_id, v.status, json.dumps({
        "id": agreement_id, "status": v.status, "headline": v.headline(),
        "failures": [c.as_dict() for c in v.failures], "signers": v.signers,
        "renewal_due": next((c.detail for c in v.checks if c.code == "evidence.renewal-due"), None)})


def _folders(archive: Path) -> Iterator[str]:
    with os.scandir(archive) as it:
        for entry in it:
            if entry.is_dir(follow_symlinks=False) and ID_RE.match(entry.name):
                yield entry.path


def _batches(it: Iterator[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in it:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def count_folders(archive: Path) -> int:
    return sum(1 for _ in _folders(archive))


def audit(archive: Path, trust: Trust, *, workers: int | None = None,
          progress: Callable[[int], None] | None = None, require_timestamps: bool = False,
          checkpoints: Sequence[tuple[str, bytes]] = (), witness_key: str | None = None
          ) -> tuple[AuditSummary, Path]:
    """Check every agreement and the ledger. Returns the summary and the SQLite file of verdicts."""
    archive = Path(archive)
    if checkpoints and trust.log_key is None:
        raise CannotCheck("a checkpoint was given but no log key to check its signature: pass --log-key "
                          "(the practice's published log.pub)")
    workdir = Path(tempfile.mkdtemp(prefix="agreements-audit-"))
    db_path = workdir / "audit.sqlite"
    index = build_index(str(archive / "ledger.jsonl"), str(db_path), two_cores=(workers or os.cpu_count() or 1) > 1)
    report = index.report
    summary = AuditSummary(str(archive))
    summary.ledger_entries = report.entries
    summary.ledger_problems = [p.message for p in report.problems]
    summary.ledger_codes = [p.code for p in report.problems]
    db = index.db
    db.execute("CREATE TABLE results (id TEXT PRIMARY KEY, rank INTEGER, status TEXT, data TEXT)")
    db.commit()
    workers = max(1, workers or os.cpu_count() or 1)
    ctx = get_context("fork") if hasattr(os, "fork") else get_context()
    now = dt.datetime.now(dt.UTC)
    with ctx.Pool(workers, initializer=_init_worker,
                  initargs=(str(db_path), report, trust, now, require_timestamps)) as pool:
        # Two batches in flight: the workers start on the next one while the last results of this one
        # come in, so no core waits at a batch's end; memory still holds at most two batches of names.
        in_flight: deque[Iterator[tuple[str, str, str]]] = deque()
        for batch in _batches(_folders(archive), BATCH):
            in_flight.append(pool.imap_unordered(_check, batch, chunksize=32))
            if len(in_flight) > 1:
                _collect(in_flight.popleft(), db, summary, progress)
        while in_flight:
            _collect(in_flight.popleft(), db, summary, progress)
    # Agreements the ledger says were archived but whose folder is gone.
    for (agreement_id,) in db.execute(
            "SELECT DISTINCT agreement_id FROM entries WHERE event IN ('archive', 'sign', 'void') "
            "AND agreement_id NOT IN (SELECT id FROM results) ORDER BY agreement_id"):
        summary.missing_from_archive.append(agreement_id)
    summary.drafts_not_archived = index.drafts_not_archived()
    summary.renewal_due = [r[0] for r in db.execute(
        "SELECT id FROM results WHERE json_extract(data, '$.renewal_due') IS NOT NULL ORDER BY id")]
    if summary.renewal_due:  # a note, not a problem (evidence.renewal-due): the evidence still holds today
        shown = ", ".join(summary.renewal_due[:10]) + (", ..." if len(summary.renewal_due) > 10 else "")
        summary.notes.append(f"renewal due for {len(summary.renewal_due)} agreement(s) (evidence.renewal-due): "
                             f"{shown}: run 'agreements archive renew'")
    db.close()
    _anchors(summary, archive, trust, checkpoints, witness_key)
    return summary, db_path


def _collect(verdicts: Iterator[tuple[str, str, str]], db: sqlite3.Connection, summary: AuditSummary,
             progress: Callable[[int], None] | None) -> None:
    """One batch's verdicts into the results table (one transaction) and the summary's counts."""
    rows = []
    for agreement_id, status, data in verdicts:
        rows.append((agreement_id, STATUS_ORDER[status], status, data))
        summary.counts[status] += 1
        summary.agreements += 1
        if progress:
            progress(1)
    db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?)", rows)
    db.commit()


def _anchors(summary: AuditSummary, archive: Path, trust: Trust, checkpoints: Sequence[tuple[str, bytes]],
             witness_key: str | None) -> None:
    """The ledger against the log's checkpoints: those in the archive, and those from outside it.

    A checkpoint from a receipt or a witness is the one thing a rewrite of the archive
    cannot reach: a ledger whose first SIZE entries no longer hash to its root was
    rewritten, and one shorter than SIZE lost its tail."""
    from agreements_kit.verification import anchors

    if trust.log_key is None:
        if (archive / "log").is_dir():
            summary.notes.append("the archive's log checkpoints were not checked: no log key given (--log-key)")
        return
    problems = anchors.check_archive_checkpoints(archive, trust.log_key)
    for name, data in checkpoints:
        problems += anchors.check_checkpoint(archive / "ledger.jsonl", data, trust.log_key,
                                             what=f"the checkpoint {name}")
        if witness_key is not None:
            problems += anchors.check_cosignature(data, witness_key)
    for code, message in problems:
        summary.ledger_problems.append(message)
        summary.ledger_codes.append(code)


def results(db_path: Path) -> Iterator[dict[str, Any]]:
    """Verdicts, problems first (invalid, incomplete, voided, valid), then by id: streamed."""
    db = sqlite3.connect(db_path)
    try:
        for (data,) in db.execute("SELECT data FROM results ORDER BY rank, id"):
            yield json.loads(data)
    finally:
        db.close()
