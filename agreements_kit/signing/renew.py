"""``agreements archive renew``: an archive time-stamp over each agreement folder (RFC 4998, PAdES B-LTA in spirit).

A signature's time-stamp is only as good as its TSA certificate and its algorithms.
Before either ages, a new time-stamp over *everything* in the folder (the PDF, the
records, their signatures with their tokens and embedded CRLs, and earlier renewals)
proves that all of it existed while it was still strong; renewing again before that one
ages carries the proof on, link by link.

For each folder, under the archive lock:

1. read it with the strict folder reader, and compare every file with what the ledger
   recorded (a folder that differs is *refused*, never blessed: verify it first);
2. *skip* it if nothing changed since its last renewal and that renewal is not due
   (``formats.renewal.renewal_due``: its TSA certificate is good for more than a year,
   its algorithms are not ageing);
3. otherwise write ``renewal-NN.json`` (the SHA-256 of every file) and ``renewal-NN.tsr``
   (the TSA's token over that JSON's bytes), committed like a signature: pending files,
   the ledger's ``renew`` entry, then the renames (``Archive.commit``).

A TSA failure stops the run with its :class:`TimestampError` (exit 3), as at signing;
the folders renewed before it stay renewed.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agreements_kit.authoring.practice import Practice
from agreements_kit.errors import ArchiveError, InvalidFormat, TimestampError
from agreements_kit.formats import renewal as fmt
from agreements_kit.formats.folder import FolderFiles, read_folder
from agreements_kit.formats.ids import ID_RE
from agreements_kit.signing.pki import iso, utcnow
from agreements_kit.signing.timestamp import Timestamper
from agreements_kit.store.archive import Archive, load_folder, sha256_file


@dataclass(frozen=True)
class RenewOutcome:
    """What ``renew`` did with one folder: ``renewed``, ``skipped`` or ``refused``, and why."""

    agreement_id: str
    action: str
    detail: str
    record: str | None = None


def renew_archive(practice: Practice, timestamper: Timestamper | None = None) -> list[RenewOutcome]:
    """Renew every agreement folder of the practice's archive; see the module docstring."""
    if timestamper is None:
        if practice.timestamping is None:
            raise TimestampError("the practice configures no TSA (practice.yaml 'timestamping'): an archive "
                                 "time-stamp needs one", code="usage.tsa-url")
        timestamper = Timestamper(practice.timestamping.urls, practice.timestamping.timeout)
    from agreements_kit.signing.sign import finish_recovered

    archive = Archive(practice.archive)
    if not archive.root.is_dir():
        raise ArchiveError(f"there is no archive at {archive.root}", code="not-found.archive")
    with os.scandir(archive.root) as it:
        folders = sorted(Path(e.path) for e in it if e.is_dir(follow_symlinks=False) and ID_RE.match(e.name))
    recorded = _recorded(archive)
    outcomes: list[RenewOutcome] = []
    for path in folders:
        with archive.locked() as recovered:
            finish_recovered(archive, recovered)
            try:
                outcomes.append(_renew_one(archive, path, timestamper, recorded))
            except TimestampError as exc:
                done = sum(1 for o in outcomes if o.action == "renewed")
                raise TimestampError(f"no archive time-stamp for {path.name} ({done} folder(s) renewed before it "
                                     f"stay renewed): {exc.message}", code=exc.code) from None
    return outcomes


def _recorded(archive: Archive) -> dict[str, dict[str, str]]:
    """agreement id -> file name -> SHA-256, as the ledger recorded them (read once per run)."""
    out: dict[str, dict[str, str]] = defaultdict(dict)
    for _, entry, _ in archive.ledger.entries():
        _note(out, entry)
    return out


def _note(out: dict[str, dict[str, str]], entry: dict[str, Any]) -> None:
    agreement_id = entry.get("agreement_id")
    if agreement_id is None:
        return
    if entry["event"] == "archive":
        out[agreement_id].update({"agreement.pdf": entry["pdf_sha256"], "manifest.json": entry["manifest_sha256"]})
    elif entry["event"] in ("sign", "void", "renew"):
        out[agreement_id].update(entry["files"])


def _digests(path: Path, files: FolderFiles) -> dict[str, str]:
    """SHA-256 of every file in the folder, by name."""
    def sha(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    out: dict[str, str] = {}
    if files.pdf is not None:
        out["agreement.pdf"] = sha(files.pdf)
    if files.manifest is not None:
        out["manifest.json"] = sha(files.manifest)
    for rec in files.records:
        out[rec.name] = sha(rec.raw)
        if rec.p7s is not None:
            out[f"{rec.name}.p7s"] = sha(rec.p7s)
    out.update({name: sha(data) for name, data in files.pngs.items()})
    out.update({name: sha(data) for name, data in files.renewals.items()})
    out.update({name: sha256_file(path / name) for name in files.copies})  # signed copies, in the sign entries
    if files.has_completion:
        out["completion.pdf"] = sha256_file(path / "completion.pdf")
    return out


def _differs(digests: dict[str, str], recorded: dict[str, str]) -> str | None:
    """Why the folder is not what the ledger recorded, or None."""
    for name, digest in sorted(recorded.items()):
        if name not in digests:
            return f"{name}, which the ledger recorded, is missing"
        if digests[name] != digest:
            return f"{name} differs from what the ledger recorded"
    for name in sorted(set(digests) - set(recorded) - {"completion.pdf"}):
        return f"{name} is not recorded in the ledger"
    return None


def _renew_one(archive: Archive, path: Path, ts: Timestamper, recorded: dict[str, dict[str, str]]) -> RenewOutcome:
    agreement_id = path.name
    try:
        files = read_folder(str(path))
    except InvalidFormat as exc:
        return RenewOutcome(agreement_id, "refused", f"the folder cannot be read ({exc.message})")
    if files.problems:
        name, code, sentence = files.problems[0]
        return RenewOutcome(agreement_id, "refused", f"{sentence} [{code}]: verify it before renewing")
    digests = _digests(path, files)
    problem = _differs(digests, recorded.get(agreement_id, {}))
    if problem is not None:  # another writer may have committed since the ledger was read: read it again
        recorded.clear()
        recorded.update(_recorded(archive))
        problem = _differs(digests, recorded.get(agreement_id, {}))
    if problem is not None:
        return RenewOutcome(agreement_id, "refused", f"{problem}: verify it before renewing")
    numbers = sorted(int(m.group(1)) for n in files.renewals if (m := fmt.NAME_RE.match(n)) and n.endswith(".json"))
    if numbers:
        last = numbers[-1]
        try:
            latest = fmt.parse_renewal(files.renewals[fmt.record_name(last)], fmt.record_name(last))
            facts = fmt.token_facts(files.renewals.get(fmt.token_name(last), b""), fmt.token_name(last))
        except InvalidFormat as exc:
            return RenewOutcome(agreement_id, "refused", f"{exc}: verify it before renewing")
        own = {fmt.record_name(last), fmt.token_name(last)}
        if {n: d for n, d in digests.items() if n not in own} == latest.files:
            due = fmt.renewal_due(facts.certificate, facts.imprint_algorithm, utcnow())
            if due is None:
                return RenewOutcome(agreement_id, "skipped", f"unchanged since {latest.name}, which is not due for "
                                    "renewal")
    sequence = (numbers[-1] if numbers else 0) + 1
    if sequence > fmt.MAX_SEQUENCE:
        return RenewOutcome(agreement_id, "refused", f"the folder already holds {fmt.MAX_SEQUENCE} renewals")
    name = fmt.record_name(sequence)
    now = utcnow()
    record = fmt.encode(agreement_id, sequence, digests, iso(now))
    token = ts.token(record)
    entry = archive.commit(load_folder(path), name, {name: record, fmt.token_name(sequence): token},
                           {"event": "renew", "agreement_id": agreement_id, "time": iso(now)})
    _note(recorded, entry)
    return RenewOutcome(agreement_id, "renewed", f"{name} covers {len(digests)} files", name)
