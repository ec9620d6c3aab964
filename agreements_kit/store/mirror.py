"""A bucket's archive brought into a local folder for the one verifier, and what the bucket says of it.

``audit s3://...`` runs the same verifier as for a folder, over a *view*: a new folder
(``mkdtemp``, owner-only) made for this audit alone, holding exactly the objects the bucket
lists, each at its folder place, the ledger assembled from its line objects in order, the
checkpoints in the log's history. Nothing else can be in it, whatever was left or planted
in the cache folder.

The cache (``CACHE/objects/``) only saves downloads. It is never trusted: its files are
named by the SHA-256 of key and version id, read without following links and within the
size limits, and used only when their MD5 is the ETag the bucket lists for that version;
anything else is downloaded again. Its contents are copied into the view, never linked.

While listing, every object's facts are gathered (one pass, key by key, memory flat):
how many versions a key holds (more than one: written again), delete markers (also over
a key with no version left), keys the layout has no place for, gaps in the ledger's line
numbers, legal holds, and each object's lock (from the GET that downloads it, or a HEAD
when the cached copy is used), judged against the retention due from the store marker,
which is read first. Where a key was written again, the first version is the one
mirrored: COMPLIANCE kept it, and it is the one that was there first. A later version of a
ledger line that names the same line after the same predecessor is a race an append lost
(store/s3ledger.py) when its entry appears again further on; otherwise it is named.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from agreements_kit.errors import InvalidFormat, StoreError
from agreements_kit.formats import storekeys
from agreements_kit.formats.folder import limit_for, read_file
from agreements_kit.store.files import make_private_dir, replace_file, write_new
from agreements_kit.store.s3 import MAX_OBJECT, Lock, ObjectVersion, S3Store, first_version, md5_etag


@dataclass
class ObjectFacts:
    """One key as the bucket holds it."""

    key: str
    versions: int  # versions with bytes
    delete_markers: int
    chosen: ObjectVersion | None  # the version mirrored: the first written
    lock: Lock | None = None
    later: list[ObjectVersion] = field(default_factory=list)  # versions written after the first, newest first
    races: list[tuple[int, str]] = field(default_factory=list)  # lost appends: (line, the entry's fields digest)
    not_races: int = 0  # later versions of a ledger line that are no append at the same place


@dataclass
class MirrorReport:
    """What the mirror found; ``archive`` is the view the verifier reads."""

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
    unretried: list[int] = field(default_factory=list)  # lines with a lost append whose entry never came again
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


def _real_folder(path: Path) -> None:
    """``path`` exists as a folder of its own (not a link to one), created owner-only if missing."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        make_private_dir(path)
        return
    if not stat.S_ISDIR(mode):
        raise StoreError(f"the cache {path} is not a folder (a link or a file): give another --cache",
                         code="usage.store-cache")


class Mirror:
    """The local mirror of one bucket prefix: the cache in ``cache`` (owner-only), a new view per refresh."""

    def __init__(self, store: S3Store, cache: Path):
        self.store = store
        self.cache = Path(cache)
        self._lock = threading.Lock()

    @property
    def objects(self) -> Path:
        return self.cache / "objects"

    def refresh(self, *, years: int | None = None, progress: Callable[[int], None] | None = None,
                only: str | None = None) -> MirrorReport:
        """A new view of the bucket, with its facts. ``years``: the retention the auditor requires (default:
        the store marker's). ``only``: of the agreements, only this one (with the whole ledger, the
        checkpoints and the marker): what ``verify`` of one agreement needs. The caller removes
        ``report.archive`` (the view) when done with it."""
        _real_folder(self.cache)
        _real_folder(self.objects)
        view = Path(tempfile.mkdtemp(prefix="view-", dir=self.cache))
        report = MirrorReport(view)
        marker = self.store.get_optional(storekeys.STORE_MARKER)  # first: the retention every lock is judged by
        if marker is not None:
            try:
                report.years = S3Store.read_marker(marker)
            except StoreError as exc:
                report.marker_problem = exc.message
        order = view / ".ledger-order"  # (number, cache file) of each ledger line, in order: on disk, not in memory
        with open(order, "x", encoding="ascii") as lines, ThreadPoolExecutor(max(1, self.store.connections)) as pool:
            pending: set[Future[None]] = set()
            batch: list[ObjectFacts] = []
            odd: list[ObjectFacts] = []  # keys with more than one version or a delete marker (few, or an attack)
            expected = 1
            for facts in _by_key(self.store.versions()):
                if only is not None and facts.key.startswith(storekeys.AGREEMENTS) \
                        and not facts.key.startswith(f"{storekeys.AGREEMENTS}{only}/"):
                    continue  # another agreement: neither mirrored nor judged
                report.objects += 1
                parsed = storekeys.parse_key(facts.key)
                if parsed is None:
                    report.keep("unexpected", facts.key)
                    continue
                if facts.later or facts.delete_markers:
                    odd.append(facts)
                if facts.chosen is None:
                    continue  # only delete markers: named above (rewritten), nothing to mirror
                if parsed.kind == "ledger":
                    while expected < parsed.number:
                        report.keep("ledger_gaps", expected)
                        expected += 1
                    expected = parsed.number + 1
                    lines.write(f"{parsed.number}\n")
                    report.ledger_lines += 1
                batch.append(facts)
                pending.add(pool.submit(self._fetch, facts, parsed, view, report))
                if len(pending) >= 4 * self.store.connections:
                    done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                    _settle(done, progress)
                    _judge([f for f in batch if f.lock is not None], report, years)
                    batch = [f for f in batch if f.lock is None]
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            _settle(done, progress)
            _judge(batch, report, years)
        self._assemble_ledger(order, view, odd, report)
        for facts in odd:
            if not facts.key.startswith(storekeys.LEDGER):
                facts.not_races = len(facts.later)  # only a ledger line can have lost a race
            if facts.delete_markers or facts.not_races or facts.versions == 0:
                report.keep("rewritten", facts)
        return report

    def _name(self, key: str, version: ObjectVersion) -> str:
        return hashlib.sha256(f"{key}\0{version.version_id}".encode()).hexdigest()

    def _cached(self, name: str, etag: str, limit: int) -> bytes | None:
        """The cached bytes of a version, if the cache holds them as they were listed (else None)."""
        try:
            data = read_file(str(self.objects / name), limit, name)
        except (FileNotFoundError, InvalidFormat, OSError):
            return None
        return data if md5_etag(data) == etag else None

    def _fetch(self, facts: ObjectFacts, parsed: storekeys.Key, view: Path, report: MirrorReport) -> None:
        chosen = facts.chosen
        assert chosen is not None
        name = self._name(facts.key, chosen)
        limit = limit_for(parsed.name) if parsed.kind == "file" else 1024 * 1024
        data = self._cached(name, chosen.etag, limit)
        if data is not None:
            facts.lock = self.store.lock(facts.key, chosen.version_id)
            with self._lock:
                report.reused += 1
        else:
            data, facts.lock = self.store.get(facts.key, chosen.version_id)
            if md5_etag(data) != chosen.etag or len(data) > limit:
                data = b""  # the bytes do not match their listing (or their format's size): verification fails there
            else:
                replace_file(self.objects / name, data)
            with self._lock:
                report.downloaded += 1
        if parsed.kind == "ledger" and facts.later:
            _races(facts, parsed.number, data, self.store)
        target = _view_path(view, parsed)
        if target is None:
            return  # the marker: read before the listing
        with self._lock:
            make_private_dir(target.parent, exist_ok=True)  # inside the new view: no link can be there
        write_new(target, data)

    def _assemble_ledger(self, order: Path, view: Path, odd: list[ObjectFacts], report: MirrorReport) -> None:
        """ledger.jsonl of the view from the line objects in order; lost appends matched to their retry."""
        from agreements_kit.formats.ledger import parse_entry

        waiting: dict[str, list[int]] = {}
        for facts in odd:
            for number, digest in facts.races:
                waiting.setdefault(digest, []).append(number)
        first_race = min((n for numbers in waiting.values() for n in numbers), default=None)
        if report.ledger_lines:
            with open(order, encoding="ascii") as lines, open(view / "ledger.jsonl", "xb") as out:
                for row in lines:
                    number_text = row.strip()
                    line_file = view / ".lines" / f"{int(number_text):012d}"
                    data = line_file.read_bytes()
                    line_file.unlink()
                    out.write(data + b"\n")
                    if first_race is not None and int(number_text) > first_race:
                        try:
                            digest = _fields_digest(parse_entry(data, "ledger", int(number_text)).data)
                        except Exception:
                            continue
                        numbers = waiting.get(digest)
                        if numbers:  # every race this entry lost before it won this line (it may lose several)
                            retried = [n for n in numbers if n < int(number_text)]
                            waiting[digest] = [n for n in numbers if n >= int(number_text)]
                            report.counts["lost_races"] = report.counts.get("lost_races", 0) + len(retried)
                out.flush()
                os.fsync(out.fileno())
        order.unlink()
        if (view / ".lines").is_dir():
            os.rmdir(view / ".lines")
        for numbers in waiting.values():
            for number in numbers:
                report.keep("unretried", number)


def _view_path(view: Path, key: storekeys.Key) -> Path | None:
    """Where an object goes in the view: a folder file at its place, a ledger line under .lines/ (joined into
    ledger.jsonl in order), a checkpoint in the log's history; the marker nowhere (read before the listing)."""
    if key.kind == "file":
        return view / key.agreement_id / key.name
    if key.kind == "checkpoint":
        return view / "log" / "checkpoints" / f"{key.number:08d}.txt"
    if key.kind == "ledger":
        return view / ".lines" / f"{key.number:012d}"
    return None


def _fields_digest(entry: dict[str, object]) -> str:
    """What an append writes, apart from where: its fields without seq, prev and the format members."""
    from agreements_kit.formats.jsonio import canonical_json

    rest = {k: v for k, v in entry.items() if k not in ("seq", "prev", "format", "format_version")}
    return hashlib.sha256(canonical_json(rest)).hexdigest()


def _races(facts: ObjectFacts, number: int, first: bytes, store: S3Store) -> None:
    """Each later version of ledger line ``number``: an append that lost the race for it (the same seq and
    prev as the first version, another entry), to be matched to its retry; or not (counted in not_races)."""
    from agreements_kit.formats.ledger import parse_entry

    try:
        a = parse_entry(first, "ledger", number).data
    except Exception:
        facts.not_races = len(facts.later)
        return
    for version in facts.later[:MAX_NAMED]:  # an attacker's thousand versions are named, not all read
        data, _ = store.get(facts.key, version.version_id)
        try:
            b = parse_entry(data, "ledger", number).data
        except Exception:
            facts.not_races += 1
            continue
        if a["seq"] == b["seq"] and a["prev"] == b["prev"] and data != first:
            facts.races.append((number, _fields_digest(b)))
        else:
            facts.not_races += 1
    facts.not_races += max(0, len(facts.later) - MAX_NAMED)


def _settle(done: set[Future[None]], progress: Callable[[int], None] | None) -> None:
    for f in done:
        f.result()  # the first StoreError surfaces here
    if progress:
        progress(len(done))


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
        if lock is not None and lock.legal_hold:
            report.counts["held"] = report.counts.get("held", 0) + 1
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


__all__ = ["MAX_OBJECT", "Mirror", "MirrorReport", "ObjectFacts"]
