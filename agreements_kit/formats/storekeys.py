"""The archive as objects: which key holds which file, parsed strictly in one place.

An object store (S3 with Object Lock) holds nothing that is ever rewritten, so the
archive's one growing file, ``ledger.jsonl``, is kept there line by line: each ledger
entry is an object of its own, named by its line number. Under the store's prefix::

    store.json                        what the store is (format, retention years): written once
    agreements/ID/NAME                each file of agreement folder ID (formats/folder's names)
    ledger/NNNNNNNNNNNN.json          ledger line N (1-based, 12 digits), its bytes without the newline
    log/checkpoints/NNNNNNNN.txt      every signed checkpoint, by tree size (store/tlog's history)

The folder's working files (``.lock``, ``.work/``, pending files) and the log's
"latest checkpoint" (the highest-numbered one says the same) have no object. Any other
key under the prefix is named as unexpected by the audit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agreements_kit.errors import InvalidFormat
from agreements_kit.formats.folder import COPY_RE, PNG_RE, RECORD_RE, RENEWAL_RE
from agreements_kit.formats.ids import ID_RE

STORE_MARKER = "store.json"
AGREEMENTS = "agreements/"
LEDGER = "ledger/"
CHECKPOINTS = "log/checkpoints/"
FIXED_NAMES = frozenset({"agreement.pdf", "manifest.json", "completion.pdf"})
_LEDGER_RE = re.compile(r"^ledger/([0-9]{12})\.json\Z")
_CHECKPOINT_RE = re.compile(r"^log/checkpoints/([0-9]{8})\.txt\Z")
MAX_LEDGER_LINE = 10**12 - 1


@dataclass(frozen=True)
class Key:
    """What one object is: ``kind`` is ``marker``, ``file`` (agreement ``agreement_id``, file ``name``),
    ``ledger`` (line ``number``) or ``checkpoint`` (tree size ``number``)."""

    kind: str
    agreement_id: str = ""
    name: str = ""
    number: int = 0


def folder_file_name(name: str) -> bool:
    """Whether ``name`` is a file an agreement folder holds (formats/folder's layout)."""
    return name in FIXED_NAMES or any(
        pattern.match(name) for pattern in (RECORD_RE, PNG_RE, RENEWAL_RE, COPY_RE)) or (
        name.endswith(".json.p7s") and RECORD_RE.match(name[:-4]) is not None)


def agreement_key(agreement_id: str, name: str) -> str:
    if not ID_RE.match(agreement_id) or not folder_file_name(name):
        raise InvalidFormat(f"{agreement_id}/{name} is not a file of an agreement folder", code="format.store-key")
    return f"{AGREEMENTS}{agreement_id}/{name}"


def ledger_key(number: int) -> str:
    if not 1 <= number <= MAX_LEDGER_LINE:
        raise InvalidFormat(f"ledger line {number} is out of range", code="format.store-key")
    return f"{LEDGER}{number:012d}.json"


def checkpoint_key(size: int) -> str:
    if not 0 <= size <= 99_999_999:
        raise InvalidFormat(f"checkpoint size {size} is out of range", code="format.store-key")
    return f"{CHECKPOINTS}{size:08d}.txt"


def parse_key(key: str) -> Key | None:
    """What the object at ``key`` (relative to the prefix) is; None for a key the layout has no place for."""
    if key == STORE_MARKER:
        return Key("marker")
    if key.startswith(AGREEMENTS):
        parts = key[len(AGREEMENTS):].split("/")
        if len(parts) == 2 and ID_RE.match(parts[0]) and folder_file_name(parts[1]):
            return Key("file", parts[0], parts[1])
        return None
    m = _LEDGER_RE.match(key)
    if m:
        number = int(m.group(1))
        return Key("ledger", number=number) if number >= 1 else None
    m = _CHECKPOINT_RE.match(key)
    if m:
        return Key("checkpoint", number=int(m.group(1)))
    return None
