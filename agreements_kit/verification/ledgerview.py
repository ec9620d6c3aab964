"""Step 0 of every verification: read the ledger once, check its chain, and index it.

The ledger is streamed once into a SQLite index (in memory for ``verify``, in a
file the workers share for ``audit``), so memory stays flat whatever the
archive's size. While reading, the hash chain is checked and a break is named by
what most likely happened: lines deleted (a gap in the sequence numbers),
reordered or inserted (a number out of place), edited (a line whose hash is not
the next line's ``prev``), backdated (a time earlier than the line before it).

What verifiers ask of the index: an agreement's entries; the register entry of a
certificate (and where in the ledger it was entered); where a certificate was
revoked; per CRL issuer, the newest CRL number the practice published and the
SHA-256 it recorded for each number.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import heapq
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from cryptography.x509.oid import NameOID

from agreements_kit.errors import InvalidFormat
from agreements_kit.formats.crlset import CrlSet, issuer_key
from agreements_kit.formats.folder import open_regular
from agreements_kit.formats.ledger import GENESIS, MAX_LINE, LedgerEntry, crl_numbers, parse_entry
from agreements_kit.formats.shape import parse_time

LEDGER_SKEW = dt.timedelta(minutes=5)
SCHEMA = """
CREATE TABLE entries (agreement_id TEXT, seq INTEGER, line INTEGER, event TEXT, data TEXT);
CREATE TABLE certs (sha256 TEXT, seq INTEGER, role TEXT, data TEXT);
CREATE TABLE revoked (sha256 TEXT, seq INTEGER, time TEXT);
CREATE TABLE crls (issuer TEXT, number INTEGER, seq INTEGER, sha256 TEXT);
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
        # Answers about one certificate (register entry, revocation), asked again for every signature a
        # therapist's or a CA's certificate is on. The index never changes once built: keeping them is safe.
        self._certs: dict[str, tuple[int, dict[str, Any]] | None] = {}
        self._revoked: dict[str, tuple[int, str] | None] = {}

    @classmethod
    def open(cls, db_path: str, report: LedgerReport) -> LedgerIndex:
        return cls(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, check_same_thread=False), report)

    # ------------------------------------------------------------------ queries

    def entries_for(self, agreement_id: str) -> list[LedgerEntry]:
        rows = self.db.execute("SELECT line, data FROM entries WHERE agreement_id = ? AND event != 'render' "
                               "ORDER BY seq",
                               (agreement_id,)).fetchall()
        decode = _plain_decoder().decode  # lines the index was built from: read strictly then
        return [LedgerEntry(b"", decode(d), line, 2) for line, d in rows]

    def certificate(self, sha256: str) -> tuple[int, dict[str, Any]] | None:
        """The first register entry of a certificate: (seq, entry). Callers must not change the entry."""
        if sha256 in self._certs:
            return self._certs[sha256]
        row = self.db.execute("SELECT seq, data FROM certs WHERE sha256 = ? ORDER BY seq LIMIT 1",
                              (sha256,)).fetchone()
        found = (row[0], _plain_decoder().decode(row[1])) if row else None
        _remember(self._certs, sha256, found)
        return found

    def revoked_at(self, sha256: str) -> tuple[int, str] | None:
        """Where (seq of the CRL entry) and when a certificate was first listed as revoked."""
        if sha256 in self._revoked:
            return self._revoked[sha256]
        row = self.db.execute("SELECT seq, time FROM revoked WHERE sha256 = ? ORDER BY seq LIMIT 1",
                              (sha256,)).fetchone()
        found = (row[0], row[1]) if row else None
        _remember(self._revoked, sha256, found)
        return found

    def newest_crl(self, before_seq: int | None = None) -> dict[str, int]:
        """Issuer (SHA-256 of its name) -> the highest CRL number the ledger records it published (in entries
        before ``before_seq``, when given: the CRLs in force when that entry was made)."""
        limit = 10**13 if before_seq is None else before_seq
        return {issuer: int(number) for issuer, number in
                self.db.execute("SELECT issuer, MAX(number) FROM crls WHERE seq < ? GROUP BY issuer", (limit,))}

    def crl_problems(self, crls: CrlSet, before_seq: int | None = None, what: str = "",
                     rollback: bool = True) -> list[tuple[str, str]]:
        """A CRL set against the ledger, issuer by issuer (each CA's CRL is numbered and re-issued by that CA
        alone): (code, sentence) for each CRL older than the newest the ledger records for its issuer
        (``revocation.rollback``; with ``before_seq``, the newest in force before that entry), one the ledger
        never recorded (``revocation.unlogged``), one with another SHA-256 than recorded
        (``revocation.substituted``), and each issuer the ledger knows that the set lacks (substituted).
        ``what`` follows "the CRL of X" in sentences (" embedded in the signature"); ``rollback=False`` checks
        only that each CRL is one the ledger recorded."""
        newest = self.newest_crl()
        if not newest:
            return []  # a ledger without CRL entries (legacy, before migration): nothing to compare with
        if not rollback:
            newest = {}
        elif before_seq is not None:
            newest = self.newest_crl(before_seq)
        problems: list[tuple[str, str]] = []
        digests = crls.digests()
        for crl in crls.crls:
            issuer = issuer_key(crl.issuer)
            attrs = crl.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
            who = f"'{attrs[0].value!s}'" if attrs else crl.issuer.rfc4514_string()
            number = crls.numbers[issuer]
            if number < newest.get(issuer, 0):
                problems.append(("revocation.rollback", f"the CRL of {who}{what} is number {number}, but the ledger "
                                 f"records that number {newest[issuer]} was published: an older CRL was put back"))
                continue
            logged = self.crl_entry(issuer, number)
            if logged is None:
                problems.append(("revocation.unlogged", f"the CRL of {who}{what} number {number} is not in the "
                                 "ledger: it was not published by the practice's tools"))
            elif logged != digests[issuer]:
                problems.append(("revocation.substituted", f"the CRL of {who}{what} number {number} is not the one "
                                 "the ledger recorded (its SHA-256 differs)"))
        for issuer, number in newest.items():
            if issuer not in crls.numbers:
                problems.append(("revocation.substituted", f"the CRL set{what} lacks a CRL the ledger records the "
                                 f"practice published (issuer {issuer[:16]}..., number {number}): it was removed or "
                                 "replaced"))
        return problems

    def crl_entry(self, issuer: str, number: int) -> str | None:
        """The SHA-256 the ledger first recorded for ``issuer``'s CRL number ``number`` (None: never logged)."""
        row = self.db.execute("SELECT sha256 FROM crls WHERE issuer = ? AND number = ? ORDER BY seq LIMIT 1",
                              (issuer, number)).fetchone()
        return str(row[0]) if row else None

    def archived_ids(self) -> list[str]:
        return [r[0] for r in self.db.execute(
            "SELECT DISTINCT agreement_id FROM entries WHERE event IN ('archive', 'sign', 'void') ORDER BY 1")]

    def drafts_not_archived(self) -> int:
        (n,) = self.db.execute(
            "SELECT COUNT(DISTINCT agreement_id) FROM entries WHERE event = 'render' AND agreement_id NOT IN "
            "(SELECT agreement_id FROM entries WHERE event != 'render')").fetchone()
        return int(n)


def _remember(memo: dict[str, Any], key: str, value: Any, limit: int = 512) -> None:
    """Keep an answer, in bounded memory (one-time certificates are asked about once or twice)."""
    if len(memo) >= limit:
        memo.pop(next(iter(memo)))  # the oldest
    memo[key] = value


# A ledger this large is checked on two cores (see _scan_two_cores); a smaller one is not worth a process.
TWO_CORES_FROM = 1 << 20


def build_index(ledger_path: str, db_path: str = ":memory:", *, two_cores: bool = False,
                two_cores_from: int = TWO_CORES_FROM) -> LedgerIndex:
    """Read and check the whole ledger, indexing it into ``db_path``.

    ``two_cores`` (an audit, whose other core is idle until the index is built): a ledger of
    ``two_cores_from`` bytes or more is read as in :func:`_scan_two_cores`; the index and report are the
    same either way (tests/test_audit.py holds the two roads equal)."""
    db = sqlite3.connect(db_path, check_same_thread=False)
    if db_path != ":memory:":
        # An audit's workers read the index while its main process writes their verdicts into the same
        # file: with a write-ahead log neither waits for the other (a rollback journal locks readers out).
        db.execute("PRAGMA journal_mode=WAL")
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
        size = os.fstat(fh.fileno()).st_size
        done = two_cores and size >= two_cores_from and hasattr(os, "fork")
        if done and not _scan_two_cores(fh, ledger_path, db, report):
            # The two-core road could not vouch for its scan: start again from nothing, the one way.
            db.executescript("DELETE FROM entries; DELETE FROM certs; DELETE FROM revoked; DELETE FROM crls;")
            report = LedgerReport(ledger_path)
            fh.seek(0)
            done = False
        if not done:
            _scan(_lines(fh, report), ledger_path, db, report)
    db.executescript(INDEXES)
    db.commit()
    return LedgerIndex(db, report)


def _scan_two_cores(fh: BinaryIO, path: str, db: sqlite3.Connection, report: LedgerReport) -> bool:
    """The ledger scanned on two cores; False (nothing kept) when it cannot vouch for the result.

    Reading an entry strictly (:func:`~agreements_kit.formats.ledger.parse_entry`: every member, its type,
    the canonical form) is most of a scan's cost, yet it only decides whether a line is malformed. So a
    second process reads every line strictly while this one scans them with a plain JSON decode. The
    scan stands only if the other process found every line well formed and read the very same bytes (a
    SHA-256 over all lines, each side's own), and this side's plain decode met nothing odd either: then
    each entry's data is what the strict read gives (the same JSON), and the scan is the one-way scan's.
    Otherwise (a malformed line, a ledger that grew or changed between the two reads) the caller scans
    again the one way, which names what is wrong."""
    import multiprocessing

    mine = hashlib.sha256()
    ctx = multiprocessing.get_context("fork")
    receiving, sending = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_check_strictly, args=(path, sending), daemon=True)
    try:
        child.start()
    except (OSError, AssertionError):  # no process to be had (EAGAIN, ENOMEM; a daemonic caller): one way
        receiving.close()
        sending.close()
        return False
    sending.close()
    verdict = None
    try:
        try:
            _scan(_hashed(_lines(fh, report), mine), path, db, report, read=_read_plain)
        except Exception:  # noqa: BLE001 - a line the plain decode cannot take: the one-way scan says what it is
            return False  # (the child is stopped below: its answer no longer matters)
        try:
            verdict = receiving.recv()  # the child's answer, or EOFError if it died: no time limit to guess
        except (EOFError, OSError):
            verdict = None
    finally:
        receiving.close()
        if verdict is None and child.is_alive():
            child.kill()
        child.join()
    return verdict == (True, report.entries, mine.digest())


def _hashed(lines: Iterator[bytes], digest: Any) -> Iterator[bytes]:
    for line in lines:
        digest.update(line)
        digest.update(b"\n")
        yield line


def _check_strictly(path: str, conn: Any) -> None:
    """In the second process: (every line well formed, how many lines, SHA-256 over them), sent to ``conn``."""
    digest = hashlib.sha256()
    count = 0
    name = os.path.basename(path)
    answer: tuple[bool, int, bytes] = (False, -1, b"")
    try:
        with open_regular(path, name) as fh:
            for number, line in enumerate(_hashed(_lines(fh, LedgerReport(path)), digest), start=1):
                count = number
                try:
                    parse_entry(line, name, number)
                except InvalidFormat:
                    break  # the first malformed line decides: the one-way scan will name it
            else:
                answer = (True, count, digest.digest())
    except Exception:  # noqa: BLE001 - any failure here only sends the scan the one way
        pass
    try:
        conn.send(answer)
    except OSError:
        pass  # the parent stopped listening: it scans the one way
    finally:
        conn.close()


class _Odd(Exception):
    """A line the plain decode does not take as it is."""


@functools.cache
def _plain_decoder() -> Any:
    import msgspec

    return msgspec.json.Decoder()


def _read_plain(line: bytes, where: str, number: int) -> LedgerEntry:
    """An entry decoded as plain JSON, trusting :func:`_check_strictly` for the rest (see _scan_two_cores)."""
    data = _plain_decoder().decode(line)
    version = data.get("format_version", 1) if isinstance(data, dict) else None
    if not isinstance(version, int) or isinstance(version, bool):
        raise _Odd
    return LedgerEntry(line, data, number, version)


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


def _scan(lines: Iterable[bytes], path: str, db: sqlite3.Connection, report: LedgerReport,
          read: Callable[[bytes, str, int], LedgerEntry] = parse_entry) -> None:
    highest = 0
    gaps: dict[int, int] = {}
    recent: dict[int, tuple[str, int]] = {0: (GENESIS, 0)}
    last_time: dt.datetime | None = None
    rows: list[tuple[Any, ...]] = []
    certs: list[tuple[Any, ...]] = []
    held: list[int] = [0]  # the seqs in ``recent``, as a heap: the smallest leaves first
    name = os.path.basename(path)
    for number, line in enumerate(lines, start=1):
        report.entries += 1
        digest = hashlib.sha256(line).hexdigest()
        try:
            entry = read(line, name, number)
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
        when = parse_time(entry.data["time"])  # entry.time, without strptime: shape.timestamp checked it
        if last_time is not None and when < last_time - LEDGER_SKEW:
            report.add("ledger.backdated", f"ledger line {number} is dated {entry.data['time']}, before the line "
                       "above it: an entry was backdated or inserted")
        last_time = when if last_time is None else max(last_time, when)
        if seq not in recent:
            heapq.heappush(held, seq)
        recent[seq] = (digest, number)
        if len(recent) > 64:
            recent.pop(heapq.heappop(held))
        event = entry.event
        if event == "certificate":
            # The line itself, not json.dumps(entry.data): parse_entry read exactly this JSON into entry.data.
            certs.append((entry.data["certificate_sha256"], seq, entry.data["role"], line.decode("utf-8")))
        elif event == "crl":
            numbers = crl_numbers(entry.data)
            db.executemany("INSERT INTO crls VALUES (?, ?, ?, ?)",
                           [(issuer, numbers[issuer], seq, digest) for issuer, digest in entry.data["crls"].items()
                            if issuer in numbers])
            db.executemany("INSERT INTO revoked VALUES (?, ?, ?)",
                           [(fp, seq, entry.data["time"]) for fp in entry.data["revoked"]])
        if entry.agreement_id is not None and event != "certificate":
            rows.append((entry.agreement_id, seq, number, event,
                         "" if event == "render" else line.decode("utf-8")))
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
