"""Checking the ledger's hash chain, and what it says about one agreement.

The chain is read as a stream, once. A break is described by what most likely
happened, in words an auditor can act on: lines deleted (a gap in the sequence
numbers), reordered or inserted (a number out of place), or edited (a line whose
hash no longer matches the next line's ``prev``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .ledger import GENESIS, Ledger, entry_hash


@dataclass
class ChainReport:
    entries: int = 0
    problems: list[str] = field(default_factory=list)
    head: str = GENESIS

    @property
    def ok(self) -> bool:
        return not self.problems


def scan(path: Path, on_entry: Callable[[int, dict[str, Any], str], None] | None = None) -> ChainReport:
    """Walk the ledger once; ``on_entry(line_number, entry, line_hash)`` sees every parsable entry."""
    report = ChainReport()
    expected = 1
    prev_hash = GENESIS
    ledger = Ledger(path)
    if not path.exists():
        report.problems.append(f"{path}: the ledger is missing")
        return report
    for number, line in ledger.lines():
        report.entries += 1
        digest = entry_hash(line)
        try:
            entry = json.loads(line)
            if not isinstance(entry, dict):
                raise ValueError
        except ValueError:
            report.problems.append(f"ledger line {number} is not a JSON entry: it was edited")
            prev_hash, expected = digest, expected + 1
            continue
        seq = entry.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            report.problems.append(f"ledger line {number} has no sequence number: it was edited")
        elif seq > expected:
            missing = f"entry {expected}" if seq == expected + 1 else f"entries {expected} to {seq - 1}"
            report.problems.append(f"ledger line {number}: {missing} missing before it: ledger lines were deleted")
        elif seq < expected:
            report.problems.append(f"ledger line {number}: entry {seq} is out of place (expected {expected}): "
                                   "ledger lines were reordered or inserted")
        elif entry.get("prev") != prev_hash:
            what = f"line {number - 1} was edited" if number > 1 else "its first line was edited"
            report.problems.append(f"ledger line {number} does not chain to the line before it "
                                   f"(its 'prev' is not that line's SHA-256): {what}")
        if on_entry is not None:
            on_entry(number, entry, digest)
        prev_hash = digest
        expected = (seq + 1) if isinstance(seq, int) and not isinstance(seq, bool) else expected + 1
    report.head = prev_hash
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        last = b"\n"
        if size:
            fh.seek(size - 1)
            last = fh.read(1)
    if last != b"\n":
        report.problems.append("the ledger's last line is incomplete (a write was interrupted and not repaired)")
    return report


def entries_for(path: Path, agreement_id: str) -> tuple[ChainReport, list[dict[str, Any]]]:
    """The chain report and this agreement's entries (each with its line number as ``_line``)."""
    found: list[dict[str, Any]] = []

    def keep(number: int, entry: dict[str, Any], digest: str) -> None:
        if entry.get("agreement_id") == agreement_id:
            found.append(dict(entry, _line=number))

    return scan(path, keep), found
