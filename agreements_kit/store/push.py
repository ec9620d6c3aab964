"""``agreements store push signed/ s3://...``: a local archive copied into a write-once bucket.

Every object is written with :meth:`S3Store.put_once`, so a push can be interrupted and
run again (what is there with the same bytes is left as it is) and never replaces
anything (a key holding other bytes stops the push with ``conflict.store-exists``).
Agreement folders go first, then the ledger's lines, then the checkpoints: an entry or a
checkpoint in the bucket never speaks of files the bucket does not hold yet.
Requests run in parallel over a bounded number of connections.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from agreements_kit.errors import StoreError
from agreements_kit.store.folderobjects import FolderObjects
from agreements_kit.store.s3 import S3Store


@dataclass
class PushReport:
    written: int = 0
    present: int = 0
    agreements: int = 0
    ledger_lines: int = 0
    checkpoints: int = 0
    skipped: list[str] = field(default_factory=list)


def push(archive: Path, store: S3Store, *, progress: Callable[[int], None] | None = None) -> PushReport:
    """Copy the archive at ``archive`` into ``store`` (opened: its retention years known)."""
    source = FolderObjects(Path(archive))
    report = PushReport()
    ids = source.agreement_ids()
    report.agreements = len(ids)

    def files() -> Iterator[tuple[str, bytes]]:
        for agreement_id in ids:
            yield from source.agreement_files(agreement_id)
            if progress:
                progress(1)

    _put_all(store, files(), report)
    _put_all(store, _counted(source.ledger_lines(), report, "ledger_lines"), report)
    _put_all(store, _counted(source.checkpoints(), report, "checkpoints"), report)
    report.skipped = source.skipped
    return report


def _counted(items: Iterator[tuple[str, bytes]], report: PushReport, what: str) -> Iterator[tuple[str, bytes]]:
    """The items, streamed (never all in memory), counted into ``report.<what>``."""
    for item in items:
        setattr(report, what, getattr(report, what) + 1)
        yield item


def _put_all(store: S3Store, items: Iterable[tuple[str, bytes]], report: PushReport) -> None:
    """put_once for each item, at most ``store.connections`` at a time; the first failure stops the rest."""
    limit = max(1, store.connections)
    with ThreadPoolExecutor(limit) as pool:
        pending: set[Future[str]] = set()
        try:
            for key, data in items:
                pending.add(pool.submit(store.put_once, key, data))
                if len(pending) >= 2 * limit:
                    done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                    _count(done, report)
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            _count(done, report)
        except BaseException:
            for f in pending:
                f.cancel()
            raise
        if pending:  # stopped early by a failure
            for f in pending:
                f.cancel()
            raise StoreError("the push stopped before every object was written", code="unavailable.store")


def _count(done: set[Future[str]], report: PushReport) -> None:
    for f in done:
        outcome = f.result()  # the first StoreError surfaces here
        if outcome == "written":
            report.written += 1
        else:
            report.present += 1
