"""A local archive folder seen as the objects formats/storekeys names: what ``store push`` copies.

Agreement files are read as formats/folder reads them (regular files only, never through a
link, within each format's size limit); the ledger is read line by line, each line an
object; the log's history of checkpoints one object each. Files that have no place in the
layout (pending files of an interrupted commit, anything added by hand) are not objects:
they are listed in ``skipped`` so the caller can say so.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from agreements_kit.errors import InvalidFormat
from agreements_kit.formats import storekeys
from agreements_kit.formats.folder import limit_for, open_regular, read_file
from agreements_kit.formats.ids import ID_RE

MAX_LEDGER_LINE_BYTES = 1024 * 1024


@dataclass
class FolderObjects:
    """The objects of the archive at ``root`` (``signed/``)."""

    root: Path
    skipped: list[str] = field(default_factory=list)

    def agreement_ids(self) -> list[str]:
        with os.scandir(self.root) as it:
            return sorted(e.name for e in it if e.is_dir(follow_symlinks=False) and ID_RE.match(e.name))

    def agreement_files(self, agreement_id: str) -> Iterator[tuple[str, bytes]]:
        """(key, bytes) of each file of one agreement folder that the layout has a place for."""
        folder = self.root / agreement_id
        with os.scandir(folder) as it:
            names = sorted(e.name for e in it)
        for name in names:
            if not storekeys.folder_file_name(name):
                self.skipped.append(f"{agreement_id}/{name}")
                continue
            data = read_file(str(folder / name), limit_for(name), f"{agreement_id}/{name}")
            yield storekeys.agreement_key(agreement_id, name), data

    def ledger_lines(self) -> Iterator[tuple[str, bytes]]:
        """(key, line without its newline) for each complete ledger line, from the first."""
        path = self.root / "ledger.jsonl"
        try:
            fh = open_regular(str(path), "ledger.jsonl")
        except FileNotFoundError:
            return
        with fh:
            for number, line in enumerate(fh, start=1):
                if not line.endswith(b"\n"):
                    raise InvalidFormat(f"line {number} is cut off (an interrupted write): let the next writer "
                                        "repair the archive first", path=str(path), code="format.ledger-partial")
                if len(line) > MAX_LEDGER_LINE_BYTES:
                    raise InvalidFormat(f"line {number} is too long", path=str(path), code="format.too-large")
                yield storekeys.ledger_key(number), line[:-1]

    def checkpoints(self) -> Iterator[tuple[str, bytes]]:
        folder = self.root / "log" / "checkpoints"
        if not folder.is_dir():
            return
        for path in sorted(folder.iterdir()):
            name = path.name
            if not (name.endswith(".txt") and name[:-4].isdigit() and len(name) == 12):
                self.skipped.append(f"log/checkpoints/{name}")
                continue
            yield storekeys.checkpoint_key(int(name[:-4])), read_file(str(path), 64 * 1024, f"log/checkpoints/{name}")
