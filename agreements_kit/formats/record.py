"""Signing records: the exact bytes a signer's CMS signature covers.

A record is a JSON document (canonical: sorted keys, two-space indent, UTF-8,
final newline) saved as the very bytes that were signed, so that anyone can read
what was attested and check it with ``openssl cms -verify -content RECORD``.
The format is documented in docs/archive.md.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agreements_kit import resources
from agreements_kit.errors import AgreementsError
from agreements_kit.formats.jsonio import canonical  # noqa: F401  (records are canonical JSON)

FORMAT = "agreements-kit/signing-record"
FORMAT_VERSION = 1
ROLES = ("client", "guardian", "therapist")
CLIENT_ROLES = ("client", "guardian")
INTENT = ("I have read this agreement. By adopting my typed name as my signature, "
          "I intend to sign it electronically, with the same effect as a handwritten signature.")
VOID_INTENT = "I void this agreement for the reason stated; it is no longer in effect."


class RecordError(AgreementsError):
    """A signing record is malformed."""


@dataclass(frozen=True)
class Disclosure:
    """The ESIGN consumer disclosure a client accepts before signing electronically."""

    version: str
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def load_disclosure(path: Path | None = None) -> Disclosure:
    path = path or resources.templates_dir() / "esign-disclosure.txt"
    text = path.read_text(encoding="utf-8")
    match = re.match(r"Version:\s*(\S+)\s*\n", text)
    if not match:
        raise AgreementsError(f"{path}: the disclosure must start with a 'Version:' line")
    return Disclosure(match.group(1), text)


def record_name(sequence: int, kind: str) -> str:
    """File name of a record: sequence and role (or 'void'), e.g. ``01-client.json``."""
    return f"{sequence:02d}-{kind}.json"


def parse(data: bytes, where: str) -> dict[str, Any]:
    """Parse a record's bytes; it must be canonical JSON of this format."""
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(f"{where}: not a JSON signing record ({exc})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise RecordError(f"{where}: not an agreements-kit signing record")
    if obj.get("format_version") != FORMAT_VERSION:
        raise RecordError(f"{where}: unsupported record format version {obj.get('format_version')!r}")
    return obj
