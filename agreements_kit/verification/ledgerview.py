"""Step 0 of every verification: read the ledger once, check its chain, and index it.

The ledger is streamed once into a SQLite index (in memory for ``verify``, in a
file the workers share for ``audit``), so memory stays flat whatever the
archive's size. While reading, the hash chain is checked and a break is named by
what most likely happened: lines deleted (a gap in the sequence numbers),
reordered or inserted (a number out of place), edited (a line whose hash is not
the next line's ``prev``), backdated (a time earlier than the line before it).

What verifiers ask of the index: an agreement's entries; the register entry of a
certificate (and where in the ledger it was entered); where a certificate was
revoked; the newest CRL set the practice published.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from agreements_kit.errors import InvalidFormat
from agreements_kit.formats.folder import open_regular
from agreements_kit.formats.ledger import GENESIS, MAX_LINE, LedgerEntry, parse_entry

LEDGER_SKEW = dt.timedelta(minutes=5)
SCHEMA = """
CREATE TABLE entries (agreement_id TEXT, seq INTEGER, line INTEGER, event TEXT, data TEXT);
CREATE TABLE certs (sha256 TEXT, seq INTEGER, role TEXT, data TEXT);
CREATE TABLE revoked (sha256 TEXT, seq INTEGER, time TEXT);
CREATE TABLE crls (number INTEGER, seq INTEGER, data TEXT);
"""
INDEXES = """
CREATE INDEX entries_id ON entries (agreement_id);
CREATE INDEX certs_sha ON certs (sha256);
CREATE INDEX revoked_sha ON revoked (sha256);
"""


@dataclass
class Problem:
    code: str
    message: str


@dataclass
class LedgerReport:
    """What reading the whole ledger found."""

    path: str
    entries: int = 0
    problems: list[Problem] = field(default_factory=list)
    missing: bool = False
    legacy_lines: int = 0
    migrated_at: int | None = None  # seq of the migrate entry

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, code: str, message: str) -> None:
        self.problems.append(Problem(code, message))


class LedgerIndex:
    """The ledger's chain report and its index (see the module docstring)."""

    def __init__(self, db: sqlite3.Connection, report: LedgerReport):
        self.db = db
        self.report = report

    @classmethod
    def open(cls, db_path: str, report: LedgerReport) -> LedgerIndex:
        return cls(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, check_same_thread=False), report)

    # ------------------------------------------------------------------ queries

    def entries_for(self, agreement_id: str) -> list[LedgerEntry]:
        rows = self.db.execute("SELECT line, data FROM entries WHERE agreement_id = ? AND event != 'render' "
                               "ORDER BY seq",
                               (agreement_id,)).fetchall()
        return [LedgerEntry(b"", json.loads(d), line, 2) for line, d in rows]

    def certificate(self, sha256: str) -> tuple[int, dict[str, Any]] | None:
        """The first register entry of a certificate: (seq, entry)."""
        row = self.db.execute("SELECT seq, data FROM certs WHERE sha256 = ? ORDER BY seq LIMIT 1",
                              (sha256,)).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def revoked_at(self, sha256: str) -> tuple[int, str] | None:
        """Where (seq of the CRL entry) and when a certificate was first listed as revoked."""
        row = self.db.execute("SELECT seq, time FROM revoked WHERE sha256 = ? ORDER BY seq LIMIT 1",
                              (sha256,)).fetchone()
        return (row[0], row[1]) if row else None

    def newest_crl(self) -> tuple[int, dict[str, Any]] | None:
        row = self.db.execute("SELECT number, data FROM crls ORDER BY number DESC, seq DESC LIMIT 1").fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def crl_entry(self, number: int) -> dict[str, Any] | None:
        row = self.db.execute("SELECT data FROM crls WHERE number = ? ORDER BY seq LIMIT 1", (number,)).fetchone()
        return json.loads(row[0]) if row else None

    def archived_ids(self) -> list[str]:
        return [r[0] for r in self.db.execute(
            "SELECT DISTINCT agreement_id FROM entries WHERE event IN ('archive', 'sign', 'void') ORDER BY 1")]

    def drafts_not_archived(self) -> int:
        (n,) = self.db.execute(
            "SELECT COUNT(DISTINCT agreement_id) FROM entries WHERE event = 'render' AND agreement_id NOT IN "
            "(SELECT agreement_id FROM entries WHERE event != 'render')").fetchone()
        return int(n)


def build_index(ledger_path: str, db_path: str = ":memory:") -> LedgerIndex:
    """Read and check the whole ledger, indexing it into ``db_path``."""
    db = sqlite3.connect(db_path, check_same_thread=False)
    db.executescript(SCHEMA)
    report = LedgerReport(ledger_path)
    try:
        fh = open_regular(ledger_path, os.path.basename(ledger_path))
    except FileNotFoundError:
        report.missing = True
        report.add("ledger.missing", f"{ledger_path}: the ledger is missing (deleted, or not given with the folder)")
        db.executescript(INDEXES)
        return LedgerIndex(db, report)
    except InvalidFormat as exc:
        report.missing = True
        report.add(exc.code, f"the ledger {exc.message}")
        db.executescript(INDEXES)
        return LedgerIndex(db, report)
    with fh:
        _scan(_lines(fh, report), ledger_path, db, report)
    db.executescript(INDEXES)
    db.commit()
    return LedgerIndex(db, report)


def _lines(fh: BinaryIO, report: LedgerReport) -> Iterator[bytes]:
    """The ledger's lines, streamed (without their newline); a line over the limit is cut and named."""
    while True:
        line = fh.readline(MAX_LINE + 2)
        if not line:
            return
        if not line.endswith(b"\n"):
            if len(line) > MAX_LINE:
                yield line  # parse_entry names it as too large
                while line and not line.endswith(b"\n"):  # skip the rest of the overlong line
                    line = fh.readline(1 << 20)
                continue
            report.add("ledger.incomplete", "the ledger's last line is incomplete (a write was interrupted and "
                       "not repaired)")
            return
        yield line[:-1]


def _scan(lines: Iterable[bytes], path: str, db: sqlite3.Connection, report: LedgerReport) -> None:
    highest = 0
    gaps: dict[int, int] = {}
    recent: dict[int, tuple[str, int]] = {0: (GENESIS, 0)}
    last_time: dt.datetime | None = None
    rows: list[tuple[Any, ...]] = []
    certs: list[tuple[Any, ...]] = []
    for number, line in enumerate(lines, start=1):
        report.entries += 1
        digest = hashlib.sha256(line).hexdigest()
        try:
            entry = parse_entry(line, os.path.basename(path), number)
        except InvalidFormat as exc:
            report.add("ledger.malformed", f"ledger line {number} is not a valid entry ({exc.message}): it was "
                       "edited")
            continue
        seq = entry.seq
        if entry.version == 1:
            report.legacy_lines += 1
            if report.migrated_at is not None:
                report.add("ledger.version-mix", f"ledger line {number} is in the legacy format after the archive "
                           "was migrated: it was added by an old tool or by hand")
        if entry.event == "migrate":
            report.migrated_at = seq
        if seq > highest:
            for missing in range(highest + 1, min(seq, highest + 1 + 10_000)):
                gaps[missing] = number
            highest = seq
            before = recent.get(seq - 1)
            if seq - 1 not in gaps and before is not None and entry.prev != before[0]:
                where = f"line {before[1]}" if before[1] else "the ledger's start"
                report.add("ledger.chain", f"ledger line {number} does not chain to entry {seq - 1} (its 'prev' is "
                           f"not that line's SHA-256): {where} was edited")
        elif seq in gaps:
            gaps.pop(seq)
            report.add("ledger.reordered", f"ledger line {number}: entry {seq} is out of place (after entry "
                       f"{highest}): ledger lines were reordered")
        else:
            report.add("ledger.duplicate", f"ledger line {number}: entry {seq} appears a second time: a line was "
                       "inserted or copied")
        when = entry.time
        if last_time is not None and when < last_time - LEDGER_SKEW:
            report.add("ledger.backdated", f"ledger line {number} is dated {entry.data['time']}, before the line "
                       "above it: an entry was backdated or inserted")
        last_time = when if last_time is None else max(last_time, when)
        recent[seq] = (digest, number)
        if len(recent) > 64:
            recent.pop(min(recent))
        event = entry.event
        if event == "certificate":
            certs.append((entry.data["certificate_sha256"], seq, entry.data["role"], json.dumps(entry.data)))
        elif event == "crl":
            db.execute("INSERT INTO crls VALUES (?, ?, ?)", (entry.data["crl_number"], seq, json.dumps(entry.data)))
            db.executemany("INSERT INTO revoked VALUES (?, ?, ?)",
                           [(fp, seq, entry.data["time"]) for fp in entry.data["revoked"]])
        if entry.agreement_id is not None and event != "certificate":
            rows.append((entry.agreement_id, seq, number, event,
                         "" if event == "render" else json.dumps(entry.data)))
        if len(rows) >= 2000:
            db.executemany("INSERT INTO entries VALUES (?, ?, ?, ?, ?)", rows)
            rows.clear()
        if len(certs) >= 2000:
            db.executemany("INSERT INTO certs VALUES (?, ?, ?, ?)", certs)
            certs.clear()
    db.executemany("INSERT INTO entries VALUES (?, ?, ?, ?, ?)", rows)
    db.executemany("INSERT INTO certs VALUES (?, ?, ?, ?)", certs)
    for first, last, line_no in _ranges(gaps):
        what = f"entry {first}" if first == last else f"entries {first} to {last}"
        report.add("ledger.deleted", f"ledger line {line_no}: {what} missing before it: ledger lines were deleted")
    if report.legacy_lines and report.migrated_at is None:
        report.add("ledger.legacy", "the archive is in the legacy format 1 (no register of certificates, no CRL "
                   "entries): run 'agreements archive migrate' so it can be verified under format 2")


def _ranges(gaps: dict[int, int]) -> list[tuple[int, int, int]]:
    out: list[tuple[int, int, int]] = []
    for seq in sorted(gaps):
        if out and out[-1][1] == seq - 1 and out[-1][2] == gaps[seq]:
            out[-1] = (out[-1][0], seq, out[-1][2])
        else:
            out.append((seq, seq, gaps[seq]))
    return out
