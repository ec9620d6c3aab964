"""The archive of signed agreements and its crash-safe write protocol.

Layout (documented in docs/archive.md)::

    signed/
      ledger.jsonl            hash chain of every render, archive, signature and void
      .lock                   held while anything is written
      .work/                  in-flight markers and half-copied drafts (crash recovery)
      agr-.../
        agreement.pdf         byte for byte the rendered draft
        manifest.json
        01-client.json        signing record (the exact signed bytes)
        01-client.json.p7s    detached CMS signature (DER)
        02-therapist.json(.p7s)
        completion.pdf        certificate of completion, once complete

Nothing is ever overwritten. A record is committed in three steps under the
lock: write ``.NAME.pending`` files, append the ledger entry (the commit point),
rename the pending files into place. A marker in ``.work/`` names the agreement
while this is under way. After a crash, the next writer finishes the job
(``recover``): pending files whose ledger entry exists are renamed into place,
others are deleted, and a partial ledger line is dropped. So the archive always
agrees with the ledger, and an interrupted signature can simply be signed again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from agreements_kit.errors import ArchiveError
from agreements_kit.formats.ids import ID_RE
from agreements_kit.formats.record import CLIENT_ROLES
from agreements_kit.formats.record import parse as parse_record
from agreements_kit.store.files import fsync_dir, make_private_dir, rename_noreplace, write_new
from agreements_kit.store.ledger import Ledger

LOCK_TIMEOUT = 60.0
PENDING = ".pending"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _crashpoint(name: str) -> None:
    """Fault injection for the crash tests: die here if AGREEMENTS_FAULT names this point."""
    if os.environ.get("AGREEMENTS_FAULT") == name:
        os.kill(os.getpid(), 9)


@dataclass
class AgreementFolder:
    """One agreement in the archive (or a draft) and what its manifest says."""

    path: Path
    manifest: dict[str, Any]
    records: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.manifest["agreement"]["id"]

    @property
    def pdf(self) -> Path:
        return self.path / "agreement.pdf"

    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    @property
    def client_name(self) -> str:
        return self.manifest["agreement"]["client"]["name"]

    @property
    def therapist_id(self) -> str:
        return self.manifest["agreement"]["therapist"]["id"]

    @property
    def voided(self) -> bool:
        return any(r.get("kind") == "void" for _, r in self.records)

    def signed_roles(self) -> list[str]:
        return [r["signer"]["role"] for _, r in self.records if r.get("kind") == "signature"]

    @property
    def client_signed(self) -> bool:
        return any(role in CLIENT_ROLES for role in self.signed_roles())

    @property
    def complete(self) -> bool:
        """Signed on the client's side and countersigned by the therapist, and not voided."""
        return self.client_signed and "therapist" in self.signed_roles() and not self.voided

    @property
    def awaiting_client(self) -> bool:
        return not self.voided and not self.client_signed

    def check_pdf(self) -> str:
        """The PDF's SHA-256, after checking it against the manifest."""
        expected = self.manifest.get("document", {}).get("sha256")
        actual = sha256_file(self.pdf)
        if actual != expected:
            raise ArchiveError(f"{self.pdf} no longer matches its manifest (sha256 {actual[:16]}..., "
                               f"manifest says {str(expected)[:16]}...); it must not be signed")
        return actual


def load_folder(path: Path) -> AgreementFolder:
    manifest_path = path / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        manifest["agreement"]["id"]
    except FileNotFoundError:
        raise ArchiveError(f"{path} is not an agreement folder (no manifest.json)") from None
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        raise ArchiveError(f"{manifest_path} is not an agreements-kit manifest") from None
    if not (path / "agreement.pdf").is_file():
        raise ArchiveError(f"{path} has no agreement.pdf")
    folder = AgreementFolder(path, manifest)
    for rec in sorted(path.glob("[0-9][0-9]-*.json")):
        folder.records.append((rec.name, parse_record(rec.read_bytes(), str(rec))))
    return folder


class Archive:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.ledger = Ledger(self.root / "ledger.jsonl")

    def require_current_format(self) -> None:
        """Refuse to write into a legacy (format 1) archive that was not migrated: it would mix formats."""
        try:
            with open(self.ledger.path, "rb") as fh:
                first = fh.readline()
        except FileNotFoundError:
            return
        if not first or b'"format_version":2' in first:
            return
        if not any(e.get("event") == "migrate" for _, e, _ in self.ledger.entries()):
            raise ArchiveError(f"the archive {self.root} is in the legacy format 1: run 'agreements archive migrate' "
                               "before signing into it", code="conflict.legacy-archive")

    @contextmanager
    def locked(self, allow_legacy: bool = False) -> Iterator[list[Path]]:
        """Hold the archive lock (one writer at a time), after repairing any crash leftovers.

        Yields the agreement folders whose interrupted commits were just finished or undone.
        """
        make_private_dir(self.root, exist_ok=True)
        lock = FileLock(str(self.root / ".lock"), timeout=LOCK_TIMEOUT, mode=0o600)
        try:
            with lock:
                self.ledger.repair()
                if not allow_legacy:
                    self.require_current_format()
                self._drop_partial_admissions()
                recovered = []
                for marker in sorted(self.work.glob("inflight-*")):
                    folder = self.root / marker.name.removeprefix("inflight-")
                    if folder.is_dir():
                        self.recover(folder)
                        recovered.append(folder)  # the caller finishes it, then calls settled()
                    else:
                        marker.unlink()
                yield recovered
        except Timeout:
            raise ArchiveError(f"the archive {self.root} is busy (another signer holds its lock); try again") \
                from None

    def folder_path(self, agreement_id: str) -> Path:
        if not ID_RE.match(agreement_id):
            raise ArchiveError(f"{agreement_id!r} is not an agreement id")
        return self.root / agreement_id

    @property
    def work(self) -> Path:
        """Small folder for in-flight state, so recovery never has to list the whole archive."""
        return self.root / ".work"

    def _drop_partial_admissions(self) -> None:
        """Finish admissions the ledger committed; drop the others (and stray temporary files)."""
        make_private_dir(self.work, exist_ok=True)
        partials = sorted(self.work.glob("*.partial"))
        if not partials:
            return
        archived = {e.get("agreement_id") for _, e, _ in self.ledger.entries() if e.get("event") == "archive"}
        for partial in partials:
            agreement_id = partial.name.removesuffix(".partial")
            target = self.root / agreement_id
            if agreement_id in archived and not target.exists() and ID_RE.match(agreement_id):
                rename_noreplace(partial, target)
            else:
                shutil.rmtree(partial, ignore_errors=True)

    def log(self, fields: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """Append a ledger entry. Call under the lock."""
        return self.ledger.append(fields)

    def admit(self, draft: AgreementFolder, when: str) -> AgreementFolder:
        """Copy a checked draft into the archive and log it. Call under the lock.

        The PDF must match manifest.json, and manifest.json the manifest embedded in the
        PDF: signatures will bind both files, so they must say the same thing. The bytes
        checked are the bytes archived. Like a record, admission is committed by its
        ledger entry: ``.work/ID.partial`` is written, the entry appended, then the folder
        renamed into place; recovery finishes or drops it after a crash.
        """
        from agreements_kit.formats.jsonio import canonical_json
        from agreements_kit.formats.pdfattach import embedded_manifest

        target = self.folder_path(draft.id)
        if target.exists():
            raise ArchiveError(f"{target} already exists in the archive")
        pdf = draft.pdf.read_bytes()
        manifest_bytes = draft.manifest_path.read_bytes()
        pdf_sha = hashlib.sha256(pdf).hexdigest()
        if pdf_sha != draft.manifest.get("document", {}).get("sha256"):
            raise ArchiveError(f"{draft.pdf} no longer matches its manifest (sha256 {pdf_sha[:16]}...); "
                               "it must not be signed")
        stripped = {k: v for k, v in json.loads(manifest_bytes).items() if k != "document"}
        if embedded_manifest(pdf) != canonical_json(stripped):
            raise ArchiveError(f"{draft.manifest_path} does not match the manifest embedded in agreement.pdf "
                               "(it was edited); it must not be signed")
        tmp = self.work / f"{draft.id}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        make_private_dir(tmp)
        write_new(tmp / "agreement.pdf", pdf)
        write_new(tmp / "manifest.json", manifest_bytes)
        _crashpoint("admit-before-ledger")
        self.log({"event": "archive", "agreement_id": draft.id, "time": when, "pdf_sha256": pdf_sha,
                  "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest()})
        _crashpoint("admit-after-ledger")
        rename_noreplace(tmp, target)
        fsync_dir(self.root)
        return load_folder(target)

    def recover(self, path: Path) -> None:
        """Finish or undo an interrupted commit in one agreement folder. Call under the lock."""
        pending = sorted(path.glob(f".*{PENDING}"))
        if not pending:
            return
        committed: dict[str, str] = {}
        for _, entry, _ in self.ledger.entries():
            if entry.get("agreement_id") == path.name:
                committed.update(entry.get("files") or {})
        for p in pending:
            final = path / p.name[1:-len(PENDING)]
            if committed.get(final.name) == sha256_file(p) and not final.exists():
                rename_noreplace(p, final)  # the ledger committed it: finish the job
            else:
                p.unlink()  # never committed: as if it had not been tried
        fsync_dir(path)

    def commit(self, folder: AgreementFolder, record_name: str, files: dict[str, bytes],
               ledger_fields: dict[str, Any], keep_marker: bool = False) -> dict[str, Any]:
        """Write a record, its signature and attachments, committed by one ledger entry. Call under the lock.

        ``keep_marker`` leaves the in-flight marker for the caller to remove with :meth:`settled`
        once it has finished follow-up work (the certificate of completion), so a crash in
        between is completed by the next writer."""
        path = folder.path
        for name in files:
            if (path / name).exists():
                raise ArchiveError(f"{path / name} already exists; records are never overwritten")
        # The marker tells the next writer, whichever agreement it touches, to recover this one.
        marker = self.work / f"inflight-{folder.id}"
        if not marker.exists():
            write_new(marker, b"")
        for name, data in files.items():
            write_new(path / f".{name}{PENDING}", data)
        _crashpoint("before-ledger")
        entry, _ = self.log(dict(ledger_fields, record=record_name,
                                 files={n: hashlib.sha256(d).hexdigest() for n, d in files.items()}))
        _crashpoint("after-ledger")
        for name in files:
            rename_noreplace(path / f".{name}{PENDING}", path / name)
        fsync_dir(path)
        if not keep_marker:
            marker.unlink()
        return entry

    def settled(self, folder: AgreementFolder) -> None:
        """Remove the in-flight marker of an agreement whose follow-up work is done."""
        (self.work / f"inflight-{folder.id}").unlink(missing_ok=True)
