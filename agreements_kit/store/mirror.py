"""A bucket's archive brought into a local folder for the one verifier, and what the bucket says of it.

``audit s3://...`` runs the same verifier as for a folder, over a local mirror of the
bucket: agreement files at their folder places, the ledger assembled from its line
objects, the checkpoints in the log's history. The mirror is a cache, never trusted: a
file kept from an earlier audit is used again only when the bucket lists the same version
of it and the file's MD5 is that version's ETag; anything else is downloaded again.

While listing, every object's facts are gathered (one pass, key by key, memory flat):
how many versions a key holds (more than one: written again), delete markers, keys the
layout has no place for, gaps in the ledger's line numbers, and each object's lock (from
the GET that downloads it, or a HEAD when the cached copy is used). Where a key was
written again, the first version is the one mirrored: COMPLIANCE kept it, and it is the
one that was there first. The verification layer turns these facts into named problems.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from agreements_kit.formats import storekeys
from agreements_kit.store.files import make_private_dir, replace_file
from agreements_kit.store.s3 import Lock, ObjectVersion, S3Store, first_version, md5_etag


@dataclass
class ObjectFacts:
    """One key as the bucket holds it."""

    key: str
    versions: int  # versions with bytes
    delete_markers: int
    chosen: ObjectVersion | None  # the version mirrored: the first written
    lock: Lock | None = None
    later: list[ObjectVersion] = field(default_factory=list)  # versions written after the first, newest first
    lost_races: int = 0  # of those, ledger appends that lost the race for this line (store/s3ledger.py)


@dataclass
class MirrorReport:
    """What the mirror found; ``archive`` is the folder the verifier reads."""

    archive: Path
    objects: int = 0
    downloaded: int = 0
    reused: int = 0
    years: int | None = None  # the store marker's retention years (None: no marker)
    marker_problem: str | None = None
    rewritten: list[ObjectFacts] = field(default_factory=list)  # more than one version, or a delete marker
    unlocked: list[tuple[str, Lock | None]] = field(default_factory=list)  # not COMPLIANCE
    short: list[tuple[str, dt.datetime | None, dt.datetime]] = field(default_factory=list)  # key, until, due
    unexpected: list[str] = field(default_factory=list)
    ledger_gaps: list[int] = field(default_factory=list)  # the first missing line numbers
    ledger_lines: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # exact, by kind (the lists keep MAX_NAMED)

    def keep(self, kind: str, item: object) -> None:
        """Count a finding of ``kind`` (a list's name) and keep it by name while there are few."""
        self.counts[kind] = self.counts.get(kind, 0) + 1
        items: list[object] = getattr(self, kind)
        if len(items) < MAX_NAMED:
            items.append(item)


SLACK = dt.timedelta(days=1)  # clocks of writer and store differ a little; a lock a day short is still short
MAX_NAMED = 50  # problems of one kind kept by name (the count is always exact)


class Mirror:
    """The local mirror of one bucket prefix, in ``cache`` (owner-only)."""

    def __init__(self, store: S3Store, cache: Path):
        self.store = store
        self.cache = Path(cache)

    @property
    def archive(self) -> Path:
        return self.cache / "archive"

    def refresh(self, *, years: int | None = None, progress: Callable[[int], None] | None = None,
                only: str | None = None) -> MirrorReport:
        """Bring the mirror up to date with the bucket and gather its facts. ``years``: the retention the
        auditor requires (default: the store marker's). ``only``: of the agreements, only this one (with the
        whole ledger, the checkpoints and the marker): what ``verify`` of one agreement needs."""
        make_private_dir(self.cache, exist_ok=True)
        make_private_dir(self.archive, exist_ok=True)
        make_private_dir(self.cache / "ledger", exist_ok=True)
        index = sqlite3.connect(self.cache / "index.sqlite", check_same_thread=False)
        self._lock = threading.Lock()
        index.execute("CREATE TABLE IF NOT EXISTS cached (key TEXT PRIMARY KEY, version_id TEXT, etag TEXT)")
        report = MirrorReport(self.archive)
        seen_db = sqlite3.connect(":memory:")
        seen_db.execute("CREATE TABLE seen (key TEXT PRIMARY KEY)")
        facts_all: list[ObjectFacts] = []
        rewritten: list[ObjectFacts] = []  # keys with more than one version or a delete marker (few, or an attack)
        try:
            with ThreadPoolExecutor(max(1, self.store.connections)) as pool:
                pending: set[Future[None]] = set()
                for facts in _by_key(self.store.versions()):
                    if only is not None and facts.key.startswith(storekeys.AGREEMENTS) \
                            and not facts.key.startswith(f"{storekeys.AGREEMENTS}{only}/"):
                        continue  # another agreement: neither mirrored nor judged
                    report.objects += 1
                    seen_db.execute("INSERT OR IGNORE INTO seen VALUES (?)", (facts.key,))
                    parsed = storekeys.parse_key(facts.key)
                    if parsed is None:
                        if facts.versions > 1 or facts.delete_markers:
                            report.keep("rewritten", facts)
                        report.keep("unexpected", facts.key)
                        continue
                    if facts.chosen is None:
                        continue  # only delete markers: nothing to mirror (and no version to check)
                    facts_all.append(facts)
                    pending.add(pool.submit(self._fetch, facts, parsed, index, report))
                    if facts.later or facts.delete_markers:
                        rewritten.append(facts)  # judged once its versions are read (a lost race is no rewrite)
                    if len(pending) >= 4 * self.store.connections:
                        done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                        for f in done:
                            f.result()
                        _judge(facts_all, report, years)
                        facts_all = []
                        if progress:
                            progress(len(done))
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for f in done:
                    f.result()
                if progress:
                    progress(len(done))
            _judge(facts_all, report, years)
            for facts in rewritten:
                if facts.delete_markers or facts.lost_races < len(facts.later):
                    report.keep("rewritten", facts)
                if facts.lost_races:
                    report.counts["lost_races"] = report.counts.get("lost_races", 0) + facts.lost_races
            index.commit()
            self._prune(seen_db, index)
            index.commit()
            self._assemble_ledger(seen_db, report)
        finally:
            index.close()
            seen_db.close()
        return report

    def _fetch(self, facts: ObjectFacts, parsed: storekeys.Key, index: sqlite3.Connection,
               report: MirrorReport) -> None:
        chosen = facts.chosen
        assert chosen is not None
        target = self._path(parsed)
        with self._lock:
            row = _cached(index, facts.key)
        if row is not None and row == (chosen.version_id, chosen.etag) and target.is_file() \
                and md5_etag(target.read_bytes()) == chosen.etag:
            facts.lock = self.store.lock(facts.key, chosen.version_id)
            with self._lock:
                report.reused += 1
        else:
            data, facts.lock = self.store.get(facts.key, chosen.version_id)
            if md5_etag(data) != chosen.etag:
                data = b""  # the bytes do not match their listing: mirrored empty, so verification fails there
            make_private_dir(target.parent, exist_ok=True)
            replace_file(target, data)
            with self._lock:
                _remember(index, facts.key, chosen)
                report.downloaded += 1
        if parsed.kind == "ledger" and facts.later:
            facts.lost_races = sum(_lost_race(target.read_bytes(), self.store.get(facts.key, v.version_id)[0])
                                   for v in facts.later)
        if parsed.kind == "marker":
            try:
                report.years = S3Store.read_marker(target.read_bytes())
            except Exception as exc:
                report.marker_problem = str(exc)

    def _path(self, key: storekeys.Key) -> Path:
        if key.kind == "file":
            return self.archive / key.agreement_id / key.name
        if key.kind == "ledger":
            return self.cache / "ledger" / f"{key.number:012d}.json"
        if key.kind == "checkpoint":
            return self.archive / "log" / "checkpoints" / f"{key.number:08d}.txt"
        return self.cache / storekeys.STORE_MARKER

    def _prune(self, seen: sqlite3.Connection, index: sqlite3.Connection) -> None:
        """Cached objects the bucket no longer lists leave the mirror (a fresh bucket at the same URL)."""
        gone = [k for (k,) in index.execute("SELECT key FROM cached")
                if seen.execute("SELECT 1 FROM seen WHERE key = ?", (k,)).fetchone() is None]
        for k in gone:
            parsed = storekeys.parse_key(k)
            if parsed is not None:
                self._path(parsed).unlink(missing_ok=True)
            index.execute("DELETE FROM cached WHERE key = ?", (k,))
        for folder in list(os.scandir(self.archive)):
            if folder.is_dir(follow_symlinks=False) and folder.name != "log" and not any(os.scandir(folder.path)):
                shutil.rmtree(folder.path, ignore_errors=True)

    def _assemble_ledger(self, seen: sqlite3.Connection, report: MirrorReport) -> None:
        """ledger.jsonl from the line objects, in order; a missing line number is a gap (named, skipped)."""
        numbers = sorted(int(k[len(storekeys.LEDGER):-5]) for (k,) in seen.execute(
            "SELECT key FROM seen WHERE key LIKE 'ledger/%'") if storekeys.parse_key(k) is not None)
        expected = 1
        out = self.archive / f".ledger.{os.getpid()}.tmp"
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            for number in numbers:
                while expected < number:
                    report.keep("ledger_gaps", expected)
                    expected += 1
                line = (self.cache / "ledger" / f"{number:012d}.json").read_bytes()
                fh.write(line + b"\n")
                expected = number + 1
            fh.flush()
            os.fsync(fh.fileno())
        report.ledger_lines = len(numbers)
        target = self.archive / "ledger.jsonl"
        if numbers:
            os.replace(out, target)
        else:
            out.unlink()
            target.unlink(missing_ok=True)


def _lost_race(first: bytes, later: bytes) -> bool:
    """Whether a later version of a ledger line is an append that lost the race for it: an entry of its own
    for the same line number after the same predecessor (its writer then appended it again further on). An
    entry naming another place in the chain is a rewrite."""
    from agreements_kit.formats.ledger import parse_entry

    try:
        a = parse_entry(first, "ledger", 0).data
        b = parse_entry(later, "ledger", 0).data
    except Exception:
        return False
    return bool(a["seq"] == b["seq"] and a["prev"] == b["prev"] and first != later)


def _by_key(versions: Iterator[ObjectVersion]) -> Iterator[ObjectFacts]:
    """Consecutive versions of one key (the listing is by key, newest version first) as one ObjectFacts."""
    current: list[ObjectVersion] = []
    for v in versions:
        if current and v.key != current[0].key:
            yield _facts(current)
            current = []
        current.append(v)
    if current:
        yield _facts(current)


def _facts(versions: list[ObjectVersion]) -> ObjectFacts:
    real = [v for v in versions if not v.delete_marker]
    return ObjectFacts(versions[0].key, len(real), len(versions) - len(real), first_version(versions), later=real[:-1])


def _judge(batch: list[ObjectFacts], report: MirrorReport, years: int | None) -> None:
    """Each fetched object's lock against the retention due (the auditor's years, else the marker's)."""
    want = years if years is not None else report.years
    for facts in batch:
        lock = facts.lock
        if lock is None or lock.mode != "COMPLIANCE":
            report.keep("unlocked", (facts.key, lock))
            continue
        written = facts.chosen.last_modified if facts.chosen else None
        if want is None or written is None:
            continue
        due = _add_years(written, want) - SLACK
        if lock.retain_until is None or lock.retain_until < due:
            report.keep("short", (facts.key, lock.retain_until, due))


def _add_years(moment: dt.datetime, years: int) -> dt.datetime:
    from agreements_kit.store.s3 import add_years

    return add_years(moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC), years)


def _cached(index: sqlite3.Connection, key: str) -> tuple[str, str] | None:
    row = index.execute("SELECT version_id, etag FROM cached WHERE key = ?", (key,)).fetchone()
    return (row[0], row[1]) if row else None


def _remember(index: sqlite3.Connection, key: str, v: ObjectVersion) -> None:
    index.execute("INSERT OR REPLACE INTO cached VALUES (?, ?, ?)", (key, v.version_id, v.etag))
