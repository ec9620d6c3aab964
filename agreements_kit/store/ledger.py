"""The archive's ledger: an append-only hash chain of renders, signatures and voids.

``ledger.jsonl`` holds one JSON object per line (the format, strictly parsed, is
:mod:`agreements_kit.formats.ledger`). Each entry has a sequence number and
``prev``, the SHA-256 of the previous line's bytes (64 zeros for the first), so
deleting, inserting, editing or reordering a line breaks the chain at that point.
The ledger holds ids and hashes only, never a client's name: it is a log. Appends
happen under the archive lock; a line cut short by a crash was never committed and is removed by ``repair``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agreements_kit.errors import LedgerError
from agreements_kit.formats.ledger import FORMAT, GENESIS, LedgerEntry, encode, parse_entry
from agreements_kit.store.files import FILE_MODE

__all__ = ["FORMAT", "GENESIS", "Ledger", "LedgerEntry", "entry_hash", "line_bytes"]


def line_bytes(entry: dict[str, Any]) -> bytes:
    """A new line's bytes (format version 2: RFC 8785)."""
    return encode({k: v for k, v in entry.items() if k not in ("format", "format_version")})


def entry_hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


class Ledger:
    def __init__(self, path: Path):
        self.path = Path(path)

    def lines(self) -> Iterator[tuple[int, bytes]]:
        """(line number, bytes without newline) for every complete line, streamed."""
        try:
            fh = open(self.path, "rb")  # noqa: SIM115 - closed by the `with` below; a missing ledger is empty
        except FileNotFoundError:
            return
        with fh:
            for number, raw in enumerate(fh, start=1):
                if not raw.endswith(b"\n"):
                    return  # an uncommitted partial line (crash during append)
                yield number, raw[:-1]

    def entries(self) -> Iterator[tuple[int, dict[str, Any], bytes]]:
        """Every committed entry, strictly parsed (LedgerError on the first bad line)."""
        for number, line in self.lines():
            yield number, parse_entry(line, str(self.path), number).data, line

    def parsed(self) -> Iterator[LedgerEntry]:
        for number, line in self.lines():
            yield parse_entry(line, str(self.path), number)

    def last(self) -> tuple[dict[str, Any] | None, str]:
        """The last committed entry and its hash (the head), reading only the file's end."""
        try:
            fh = open(self.path, "rb")  # noqa: SIM115 - closed by the `with` below
        except FileNotFoundError:
            return None, GENESIS
        with fh:
            size = fh.seek(0, os.SEEK_END)
            block = 8192
            while True:
                start = max(0, size - block)
                fh.seek(start)
                data = fh.read(size - start)
                end = data.rfind(b"\n")
                begin = data.rfind(b"\n", 0, max(end, 0)) + 1
                if start > 0 and (end < 0 or begin == 0):
                    block *= 2  # the last complete line starts before this block
                    continue
                break
        if end < 0:
            return None, GENESIS
        line = data[begin:end]
        try:
            return parse_entry(line, str(self.path), 0).data, entry_hash(line)
        except LedgerError:
            raise LedgerError("the last entry is not a valid ledger entry; run 'agreements audit'",
                              path=self.path, code="format.ledger-tail") from None

    def head(self) -> str:
        return self.last()[1]

    def repair(self) -> bool:
        """Drop a partial last line left by a crash; True if something was dropped. Call under lock."""
        try:
            with open(self.path, "rb+") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                if size == 0:
                    return False
                fh.seek(size - 1)
                if fh.read(1) == b"\n":
                    return False
                pos = size
                while pos > 0:
                    step = min(4096, pos)
                    pos -= step
                    fh.seek(pos)
                    chunk = fh.read(step)
                    idx = chunk.rfind(b"\n")
                    if idx >= 0:
                        fh.truncate(pos + idx + 1)
                        break
                else:
                    fh.truncate(0)
                fh.flush()
                os.fsync(fh.fileno())
                return True
        except FileNotFoundError:
            return False

    def append(self, fields: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """Append an entry chained to the current head; returns it and its hash. Call under lock."""
        last, head = self.last()
        entry = dict(fields, seq=(last["seq"] + 1) if last else 1, prev=head)
        line = line_bytes(entry)
        entry = parse_entry(line, str(self.path), 0).data  # what every reader will see; refuses a malformed entry
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        try:
            os.write(fd, line + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        return entry, entry_hash(line)
