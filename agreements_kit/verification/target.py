"""What ``verify`` was asked to check: an agreement folder, or any PDF looked up in an archive.

A PDF is looked up by the agreement id in its embedded manifest; it is then checked
against that agreement's folder (its bytes must be the archived PDF's).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from agreements_kit.errors import CannotCheck, InvalidFormat
from agreements_kit.formats.folder import limit_for, read_file
from agreements_kit.formats.ids import ID_RE


@dataclass
class Target:
    folder: Path
    archive: Path
    pdf_path: Path | None = None

    @property
    def ledger(self) -> Path:
        return self.archive / "ledger.jsonl"

    @property
    def in_archive(self) -> bool:
        """Whether the folder sits in an archive (ledger, work folder or lock beside it)."""
        return self.ledger.exists() or (self.archive / ".work").is_dir() or (self.archive / ".lock").exists()


def explicit_practice(option: Path | None) -> Path | None:
    """The practice folder only when named (``--practice`` or ``AGREEMENTS_PRACTICE``), never the current folder."""
    if option is not None:
        return Path(option)
    env = os.environ.get("AGREEMENTS_PRACTICE")
    return Path(env) if env else None


def resolve_target(path: Path, archive: Path | None, practice: Path | None) -> Target:
    from agreements_kit.formats.pdfattach import manifest_from_damaged_pdf, scan_manifests

    if path.is_dir():
        return Target(path, archive or path.resolve().parent)
    try:
        data = read_file(str(path), limit_for("01-client.copy.pdf"), path.name)  # a signed copy's limit: the larger
    except InvalidFormat as exc:
        raise CannotCheck(f"{path}: {exc.message}") from None
    # The bounded scan, not a full PDF reader: this PDF is anyone's, and may be a decompression bomb.
    found = scan_manifests(data)
    raw = found[0] if found and len(found) == 1 else None
    try:
        manifest = json.loads(raw) if raw else manifest_from_damaged_pdf(data)
        agreement_id = manifest["agreement"]["id"]  # type: ignore[index]
    except (TypeError, ValueError, KeyError):
        raise CannotCheck(f"{path} carries no agreements-kit manifest: name the agreement folder instead") from None
    if not isinstance(agreement_id, str) or not ID_RE.match(agreement_id):
        raise CannotCheck(f"{path} carries a manifest whose agreement id is not valid: it is not one of ours")
    archive = archive or (practice or Path.cwd()) / "signed"
    folder = archive / agreement_id
    if not folder.is_dir():
        raise CannotCheck(f"{path} names agreement {agreement_id}, which is not in the archive {archive}")
    return Target(folder, archive, path)
