"""Audit of an archive in S3: the bucket's own facts, then the one verifier over its mirror.

The agreements and the ledger are checked exactly as for a folder (verification/audit.py,
over store/mirror's local copy); what only the bucket can say becomes named problems:

- ``store.rewritten``: a key holds more than one version (it was written again: an
  overwrite attempt; the first version is the one audited) or a delete marker;
- ``store.not-locked``: an object without COMPLIANCE retention (GOVERNANCE can be lifted);
- ``store.retention-short``: locked for less than the retention due (the years the store
  was made with, or ``--retention-years``, from when the object was written);
- ``store.unexpected-object``: a key the archive's layout has no place for;
- ``store.ledger-gap``: a ledger line number with no object (a line that was never written
  or whose object is gone: the chain check names it too);
- ``store.marker``: no readable store marker (store.json).

:func:`prove_copy` holds a pushed archive to its source: the same objects with the same
SHA-256, and the same verdict for every agreement.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

from agreements_kit.formats import storekeys
from agreements_kit.store.folderobjects import FolderObjects
from agreements_kit.store.mirror import Mirror, MirrorReport
from agreements_kit.store.s3 import S3Store
from agreements_kit.verification.audit import AuditSummary, audit
from agreements_kit.verification.steps import Verdict
from agreements_kit.verification.trust import Trust


def store_problems(found: MirrorReport) -> list[tuple[str, str]]:
    """The bucket's facts as (code, sentence), each kind with its exact count and the first ones by name."""
    problems: list[tuple[str, str]] = []

    def more(kind: str, shown: int) -> str:
        total = found.counts.get(kind, 0)
        return f" (and {total - shown} more)" if total > shown else ""

    for facts in found.rewritten:
        if facts.versions == 0:
            problems.append(("store.rewritten", f"{facts.key} holds only {facts.delete_markers} delete marker(s): "
                                                "every version of it is gone (deleted after its retention, or by "
                                                "an administrator of the store)"))
            continue
        what = []
        if facts.not_races:
            what.append(f"{facts.versions} versions (it was written again: an overwrite attempt; the first is "
                        "audited)")
        if facts.delete_markers:
            what.append(f"{facts.delete_markers} delete marker(s) (a delete was attempted; the locked versions "
                        "are kept)")
        problems.append(("store.rewritten", f"{facts.key} holds " + " and ".join(what)))
    if found.rewritten and more("rewritten", len(found.rewritten)):
        problems.append(("store.rewritten", "other keys were written again" + more("rewritten", len(found.rewritten))))
    for key, lock in found.unlocked:
        mode = lock.mode if lock is not None and lock.mode else "no retention"
        problems.append(("store.not-locked", f"{key} is not locked in COMPLIANCE mode ({mode}): it could be "
                                             "deleted or replaced"))
    if more("unlocked", len(found.unlocked)):
        problems.append(("store.not-locked", "other objects are not locked" + more("unlocked", len(found.unlocked))))
    for key, until, due in found.short:
        held = f"{until:%Y-%m-%d}" if until else "no date"
        problems.append(("store.retention-short", f"{key} is locked until {held}, before its retention is due "
                                                  f"({due:%Y-%m-%d})"))
    if more("short", len(found.short)):
        problems.append(("store.retention-short", "other objects are locked too briefly" + more("short",
                                                                                                 len(found.short))))
    for key in found.unexpected:
        problems.append(("store.unexpected-object", f"{key} does not belong in the archive's layout (added by hand?)"))
    if more("unexpected", len(found.unexpected)):
        problems.append(("store.unexpected-object", "other objects do not belong" + more("unexpected",
                                                                                          len(found.unexpected))))
    for number in found.ledger_gaps:
        problems.append(("store.ledger-gap", f"ledger line {number} has no object in the store"))
    if more("ledger_gaps", len(found.ledger_gaps)):
        problems.append(("store.ledger-gap", "other ledger lines are missing" + more("ledger_gaps",
                                                                                     len(found.ledger_gaps))))
    for number in found.unretried:
        problems.append(("store.race-unretried", f"ledger line {number} has a later version, an entry for the same "
                                                 "place in the chain that never appears further on: an append that "
                                                 "lost a race and was never retried, or an overwrite attempt (the "
                                                 "first version is audited)"))
    if more("unretried", len(found.unretried)):
        problems.append(("store.race-unretried", "other lines too" + more("unretried", len(found.unretried))))
    if found.marker_problem:
        problems.append(("store.marker", found.marker_problem))
    elif found.years is None:
        problems.append(("store.marker", f"the store has no {storekeys.STORE_MARKER}: it was not made by "
                                         "'agreements store init', and its retention is unknown"))
    return problems


def audit_store(store: S3Store, cache: Path, trust: Trust, *, years: int | None = None, workers: int | None = None,
                progress: Callable[[int], None] | None = None, require_timestamps: bool = False,
                checkpoints: Sequence[tuple[str, bytes]] = (), witness_key: str | None = None,
                ) -> tuple[AuditSummary, Path, MirrorReport]:
    """The bucket's facts and the audit of its mirror, in one summary."""
    store.check_bucket()
    found = Mirror(store, cache).refresh(years=years)
    summary, db = audit(found.archive, trust, workers=workers, progress=progress,
                        require_timestamps=require_timestamps, checkpoints=checkpoints, witness_key=witness_key)
    summary.archive = str(store.url)
    summary.store = str(store.url)
    summary.store_problems = store_problems(found)
    races = found.counts.get("lost_races", 0)
    if races:
        summary.notes.append(f"{races} ledger append(s) lost the race for their line to another site, were kept "
                             "as later versions of it and appended again further on (not a problem)")
    held = found.counts.get("held", 0)
    if held:
        summary.notes.append(f"{held} object(s) under a legal hold (agreements store hold)")
    return summary, db, found


def verify_in_store(store: S3Store, cache: Path, agreement_id: str, trust: Trust, *, years: int | None = None,
                    require_timestamps: bool = False) -> Verdict:
    """One agreement of a bucket, by the one verifier over its mirror (with the whole ledger), and what the
    bucket holds of it and of the ledger, as failures of the step ``store``."""
    from agreements_kit.errors import CannotCheck
    from agreements_kit.formats.ids import ID_RE
    from agreements_kit.verification.verify import verify_folder

    if not ID_RE.match(agreement_id):
        raise CannotCheck(f"{agreement_id!r} is not an agreement id")
    store.check_bucket()
    found = Mirror(store, cache).refresh(years=years, only=agreement_id)
    folder = found.archive / agreement_id
    if not folder.is_dir():
        raise CannotCheck(f"{store.url} holds no agreement {agreement_id}")
    ledger = found.archive / "ledger.jsonl"
    verdict = verify_folder(folder, trust, ledger=ledger if ledger.is_file() else None,
                            require_timestamps=require_timestamps)
    for code, message in store_problems(found):
        verdict.fail("store", code, message)
        verdict.status = "invalid"
    verdict.notes.append(f"read from {store.url} (every object's lock checked)")
    shutil.rmtree(found.archive, ignore_errors=True)
    return verdict


def prove_copy(local: Path, local_db: Path, mirror: MirrorReport, mirror_db: Path) -> list[str]:
    """Differences between a local archive and its copy in a bucket (empty: the same): every object the
    folder has, with the same SHA-256, and nothing else; every agreement with the same verdict."""
    differences: list[str] = []
    source = FolderObjects(Path(local))
    mirror_archive = mirror.archive
    if _file_sha256(mirror_archive / "ledger.jsonl") != _file_sha256(Path(local) / "ledger.jsonl"):
        differences.append("the ledger in the store differs from the folder's")
    for agreement_id in source.agreement_ids():
        for key, data in source.agreement_files(agreement_id):
            copy = mirror_archive / key[len(storekeys.AGREEMENTS):]
            if not copy.is_file():
                differences.append(f"{key} is not in the store")
            elif hashlib.sha256(copy.read_bytes()).digest() != hashlib.sha256(data).digest():
                differences.append(f"{key} differs in the store")
    for key, data in source.checkpoints():
        copy = mirror_archive / "log" / "checkpoints" / key[len(storekeys.CHECKPOINTS):]
        if not copy.is_file() or copy.read_bytes() != data:
            differences.append(f"{key} is missing or differs in the store")
    a = _verdicts(local_db)
    b = _verdicts(mirror_db)
    for agreement_id in sorted(set(a) | set(b)):
        if a.get(agreement_id) != b.get(agreement_id):
            differences.append(f"{agreement_id}: {a.get(agreement_id, 'absent')} in the folder, "
                               f"{b.get(agreement_id, 'absent')} in the store")
    return differences


def _file_sha256(path: Path) -> bytes:
    """A file's SHA-256, read in blocks (a ledger of millions of lines is never whole in memory); b"" if absent."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except FileNotFoundError:
        return b""
    return h.digest()


def _verdicts(db_path: Path) -> dict[str, str]:
    db = sqlite3.connect(db_path)
    try:
        return {str(i): str(s) for i, s in db.execute("SELECT id, status FROM results")}
    finally:
        db.close()
