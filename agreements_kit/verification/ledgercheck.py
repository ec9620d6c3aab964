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

from agreements_kit.store.ledger import GENESIS, Ledger, entry_hash


@dataclass
class ChainReport:
    entries: int = 0
    problems: list[str] = field(default_factory=list)
    missing: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems


def scan(path: Path, on_entry: Callable[[int, dict[str, Any], bytes], None] | None = None) -> ChainReport:
    """Walk the ledger once; ``on_entry(line_number, entry, line_bytes)`` sees every parsable entry."""
    report = ChainReport()
    ledger = Ledger(path)
    if not path.exists():
        report.problems.append(f"{path}: the ledger is missing (deleted, or not given with the folder)")
        report.missing = True
        return report
    highest = 0
    gaps: dict[int, int] = {}  # sequence numbers skipped so far -> line where the gap was seen
    recent: dict[int, tuple[str, int]] = {0: (GENESIS, 0)}  # sequence -> (line hash, line number), last few
    for number, line in ledger.lines():
        report.entries += 1
        digest = entry_hash(line)
        try:
            entry = json.loads(line)
            if not isinstance(entry, dict):
                raise ValueError
        except ValueError:
            report.problems.append(f"ledger line {number} is not a JSON entry: it was edited")
            continue
        seq = entry.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            report.problems.append(f"ledger line {number} has no valid sequence number: it was edited")
        elif seq > highest:
            for missing in range(highest + 1, min(seq, highest + 1 + 10_000)):
                gaps[missing] = number
            highest = seq
            # In order: the line must chain to the entry before it (when that one was seen in place).
            before = recent.get(seq - 1)
            if seq - 1 not in gaps and before is not None and entry.get("prev") != before[0]:
                where = f"line {before[1]}" if before[1] else "the ledger's start"
                report.problems.append(f"ledger line {number} does not chain to entry {seq - 1} (its 'prev' is not "
                                       f"that line's SHA-256): {where} was edited")
        elif seq in gaps:
            gaps.pop(seq)
            report.problems.append(f"ledger line {number}: entry {seq} is out of place (after entry {highest}): "
                                   "ledger lines were reordered")
        else:
            report.problems.append(f"ledger line {number}: entry {seq} appears a second time: a line was inserted "
                                   "or copied")
        if on_entry is not None:
            on_entry(number, entry, line)
        if isinstance(seq, int) and not isinstance(seq, bool):
            recent[seq] = (digest, number)
            if len(recent) > 64:
                recent.pop(min(recent))
    for first, last, line in _ranges(gaps):
        what = f"entry {first}" if first == last else f"entries {first} to {last}"
        report.problems.append(f"ledger line {line}: {what} missing before it: ledger lines were deleted")
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        last = b"\n"
        if size:
            fh.seek(size - 1)
            last = fh.read(1)
    if last != b"\n":
        report.problems.append("the ledger's last line is incomplete (a write was interrupted and not repaired)")
    return report


def _ranges(gaps: dict[int, int]) -> list[tuple[int, int, int]]:
    """Consecutive missing sequence numbers as (first, last, line where noticed)."""
    out: list[tuple[int, int, int]] = []
    for seq in sorted(gaps):
        if out and out[-1][1] == seq - 1 and out[-1][2] == gaps[seq]:
            out[-1] = (out[-1][0], seq, out[-1][2])
        else:
            out.append((seq, seq, gaps[seq]))
    return out


def entries_for(path: Path, agreement_id: str) -> tuple[ChainReport, list[dict[str, Any]]]:
    """The chain report and this agreement's entries (each with its line number as ``_line``)."""
    found: list[dict[str, Any]] = []

    def keep(number: int, entry: dict[str, Any], line: bytes) -> None:
        if entry.get("agreement_id") == agreement_id:
            found.append(dict(entry, _line=number))

    return scan(path, keep), found
