"""The ledger in a bucket, appended to by several sites at once without a lock.

Line N is the object ``ledger/N`` (formats/storekeys). S3 has no lock, and RGW ignores
conditional writes on a versioned bucket (tests/test_rgw.py), so two sites may write
``ledger/N`` at the same moment: the bucket then keeps both versions. The rule that makes
one sequence of them: **line N is the first version of ledger/N the store lists** (it
lists a key's versions newest first, in the order it committed them, the same order to
every reader). An append:

1. reads the tail: the highest N, and line N's bytes (its first version);
2. builds its entry as line N + 1 (``seq`` N + 1, ``prev`` the SHA-256 of line N);
3. writes it as a new version of ``ledger/N+1`` (COMPLIANCE-locked, like every object);
4. lists the versions of ``ledger/N+1``: if its own version is the first, the entry is line
   N + 1 and the append is done; if not, it lost the race: its version stays (nothing is
   ever deleted) and it goes back to 1.

Why no entry is lost, duplicated or forked, whatever the interleaving:

- *No fork*: every reader takes the same first version of each key, and each entry names
  its predecessor's hash, so there is one chain; a losing version names the same
  predecessor as the winner and is told apart by the audit as a lost race (a note), not a
  rewrite (``store.rewritten`` is for a later version naming any other place).
- *No loss*: an append returns only once its version is the first of its key, and a first
  version cannot be displaced (a later write only adds newer versions; COMPLIANCE forbids
  deleting it). A writer killed before step 4 returned nothing: its caller counts nothing
  as committed, and its retry appends again.
- *No duplicate*: before building its entry, a retry (``append(..., since=K)``) looks at the
  lines after K, the tail it knew, for an entry with its very fields; if a killed attempt's
  entry won its line after all, the retry returns that line instead of appending it twice.
- *Progress*: a writer that loses a race lost it to an entry that is now a line, so every
  round commits at least one entry.

The lines before the tail are read only once per writer; the tail is found by listing keys
after the last one known (``StartAfter``), not the whole ledger.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from agreements_kit.errors import StoreError
from agreements_kit.formats import storekeys
from agreements_kit.formats.ledger import GENESIS, parse_entry
from agreements_kit.store.ledger import line_bytes
from agreements_kit.store.s3 import S3Store, first_version

MAX_ROUNDS = 1000  # a writer that loses this many races in a row is told so (every lost race is someone's win)


@dataclass(frozen=True)
class Appended:
    number: int  # the line number (= the entry's seq)
    entry: dict[str, Any]
    line: bytes
    raced: int  # races lost before this one was won
    again: bool  # a retry found its entry already committed


class S3Ledger:
    """Appends to and reads the ledger of one bucket archive."""

    def __init__(self, store: S3Store):
        self.store = store
        self._known = 0  # the highest line number seen so far
        self._known_line: bytes | None = None

    def line(self, number: int) -> bytes:
        """Line ``number``: the first version of its object."""
        key = storekeys.ledger_key(number)
        first = first_version(self.store.versions_of(key))
        if first is None:
            raise StoreError(f"ledger line {number} has no object in {self.store.url}", code="not-found.store")
        data, _ = self.store.get(key, first.version_id)
        return data

    def tail(self) -> tuple[int, bytes | None]:
        """The number of the last line and its bytes (0, None for an empty ledger)."""
        start = storekeys.ledger_key(self._known) if self._known else None
        last = self._known
        for key in self.store.keys_after(storekeys.LEDGER, start):
            parsed = storekeys.parse_key(key)
            if parsed is not None and parsed.kind == "ledger" and parsed.number > last:
                last = parsed.number
        if last == 0:
            return 0, None
        if last != self._known or self._known_line is None:
            self._known, self._known_line = last, self.line(last)
        return self._known, self._known_line

    def append(self, fields: dict[str, Any], *, since: int | None = None) -> Appended:
        """Append an entry with ``fields`` (its event and members; ``seq`` and ``prev`` are the ledger's).

        ``since``: a retry of an append that may have won a line after line ``since``; that line is
        returned if it holds these fields, instead of a second entry."""
        for raced in range(MAX_ROUNDS):
            number, last = self.tail()
            if since is not None:
                found = self._committed(fields, since, number)
                if found is not None:
                    return found
                since = number  # lines up to here were looked at: a lost race below adds only newer ones
            prev = hashlib.sha256(last).hexdigest() if last is not None else GENESIS
            entry = dict(fields, seq=number + 1, prev=prev)
            line = line_bytes(entry)
            entry = parse_entry(line, "ledger", number + 1).data  # refuses a malformed entry before it is stored
            key = storekeys.ledger_key(number + 1)
            mine = self.store.put_version(key, line)
            first = first_version(self.store.versions_of(key))
            if first is not None and first.version_id == mine:
                self._known, self._known_line = number + 1, line
                return Appended(number + 1, entry, line, raced, False)
            self._known, self._known_line = number + 1, None  # that line exists: the next round starts after it
        raise StoreError(f"the ledger in {self.store.url} moved on {MAX_ROUNDS} times while an entry was appended: "
                         "too many writers at once; try again", code="unavailable.store")

    def _committed(self, fields: dict[str, Any], after: int, upto: int) -> Appended | None:
        for number in range(after + 1, upto + 1):
            line = self.line(number)
            entry = parse_entry(line, "ledger", number).data
            if {k: v for k, v in entry.items() if k not in ("seq", "prev", "format", "format_version")} \
                    == {k: v for k, v in fields.items() if k not in ("format", "format_version")}:
                return Appended(number, entry, line, 0, True)
        return None
