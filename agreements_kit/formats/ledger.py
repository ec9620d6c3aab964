"""The ledger entry format: one line of ``ledger.jsonl``.

Each line is one JSON object with ``seq`` (1, 2, ...), ``prev`` (the SHA-256 of
the previous line's bytes, 64 zeros for the first) and an ``event``:

- ``render``, ``archive``: a draft rendered, an agreement admitted to the archive
  (PDF and manifest hashes);
- ``sign``, ``void``: a record committed (its files' hashes, role, certificate);
- ``certificate``: the practice's register of issued certificates: every
  certificate its CAs issue, by SHA-256, with its role (and therapist id, or
  agreement id for a one-time certificate), never a name;
- ``crl``: a CRL set the practice published: per issuer its CRL's number and
  SHA-256 (older lines: one number for the set), and the certificates it newly
  revokes;
- ``migrate``: the archive was converted from a legacy format version;
- ``renew``: an archive time-stamp (``renewal-NN.json`` and its token) added to an agreement.

Format version 2 lines carry ``"format_version": 2`` and are RFC 8785 canonical
JSON. Legacy lines (version 1, no ``format_version``) are compact sorted JSON,
with only the events render, archive, sign and void. docs/archive.md and
docs/schemas/ledger-entry.schema.json describe every member.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from typing import Any

from agreements_kit.errors import AgreementsError, LedgerError
from agreements_kit.formats import jsonio, shape
from agreements_kit.formats.ids import ID_RE
from agreements_kit.formats.record import STAFF_ACCOUNT_RE

FORMAT = "agreements-kit/ledger"
FORMAT_VERSION = 2
GENESIS = "0" * 64
MAX_LINE = 64 * 1024
CERT_ROLES = ("root", "intake", "clinician-ca", "therapist", "administrator", "client", "guardian", "server")
EVENTS = ("render", "archive", "sign", "void", "certificate", "crl", "migrate", "log-key", "renew")
LEGACY_EVENTS = ("render", "archive", "sign", "void")

_s = shape.string
_ID = _s(64, ID_RE)
_BASE: dict[str, shape.Checker] = {"seq": shape.integer(1, 10**12), "prev": shape.sha256,
                                   "format": shape.const(FORMAT), "event": _s(20, choices=EVENTS),
                                   "time": shape.timestamp}
_DOCS = {"agreement_id": _ID, "pdf_sha256": shape.sha256, "manifest_sha256": shape.sha256}
_RECORD = {"agreement_id": _ID, "record": _s(40), "files": shape.mapping_of(shape.sha256, 10),
           "role": _s(20), "certificate_sha256": shape.sha256, "pdf_sha256": shape.sha256}
EVENT_FIELDS: dict[str, tuple[dict[str, shape.Checker], dict[str, shape.Checker]]] = {
    "render": (_DOCS, {}),
    "archive": (_DOCS, {}),
    "sign": (_RECORD, {"staff_account": _s(32, STAFF_ACCOUNT_RE)}),  # who opened the intake, at /staff
    "void": (_RECORD, {}),
    "certificate": ({"certificate_sha256": shape.sha256, "serial": _s(64), "role": _s(20, choices=CERT_ROLES),
                     "issuer_sha256": shape.sha256, "not_before": shape.timestamp, "not_after": shape.timestamp,
                     "source": _s(20, choices=("issued", "migration"))},
                    {"therapist_id": _s(32), "administrator_id": _s(32), "agreement_id": _ID}),
    # A CRL set: per issuer (SHA-256 of its name) its CRL's SHA-256 in ``crls`` and its CRL number in
    # ``crl_numbers``; lines written before CRLs were numbered per issuer have one ``crl_number`` for all.
    "crl": ({"crls": shape.mapping_of(shape.sha256, 64), "revoked": shape.list_of(shape.sha256, 10_000)},
            {"crl_number": shape.integer(1, 10**12),
             "crl_numbers": shape.mapping_of(shape.integer(1, 10**12), 64)}),
    "migrate": ({"from_version": shape.integer(1, 1), "to_version": shape.const(FORMAT_VERSION),
                 "agreements": shape.integer(0, 10**9)}, {}),
    # The transparency log's signing key (an Ed25519 key of its own, no CA key): created or retired.
    "log-key": ({"verifier_key": _s(200), "action": _s(10, choices=("created", "retired"))}, {}),
    # An archive time-stamp (agreements archive renew): renewal-NN.json and .tsr, with their SHA-256.
    "renew": ({"agreement_id": _ID, "record": _s(40), "files": shape.mapping_of(shape.sha256, 2)}, {}),
}


def _check_crl_numbers(entry: dict[str, Any], at: str) -> None:
    """A ``crl`` line numbers its CRLs one way: one ``crl_number`` (older lines) or one per issuer."""
    if ("crl_number" in entry) == ("crl_numbers" in entry):
        raise shape.fail("a crl entry has either 'crl_number' or 'crl_numbers' (one number per issuer)", at,
                         "format.missing-key" if "crl_number" not in entry else "format.unknown-key")


def crl_numbers(entry: dict[str, Any]) -> dict[str, int]:
    """Issuer -> CRL number of a ``crl`` entry, whichever way it numbers them (an issuer of ``crls`` without a
    number in ``crl_numbers`` has none: verifiers then find its CRL unlogged)."""
    if "crl_numbers" in entry:
        return dict(entry["crl_numbers"])
    return dict.fromkeys(entry["crls"], int(entry["crl_number"]))


@dataclass(frozen=True)
class LedgerEntry:
    raw: bytes
    data: dict[str, Any]
    line: int
    version: int

    @property
    def seq(self) -> int:
        return self.data["seq"]  # type: ignore[no-any-return]

    @property
    def prev(self) -> str:
        return self.data["prev"]  # type: ignore[no-any-return]

    @property
    def event(self) -> str:
        return self.data["event"]  # type: ignore[no-any-return]

    @property
    def agreement_id(self) -> str | None:
        return self.data.get("agreement_id")

    @property
    def time(self) -> dt.datetime:
        return dt.datetime.strptime(self.data["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


def encode(fields: dict[str, Any]) -> bytes:
    """A new (version 2) ledger line's bytes, without the newline."""
    return jsonio.jcs(dict(fields, format=FORMAT, format_version=FORMAT_VERSION))


def _fast_table(version: int, event: str) -> shape.FastShape:
    """The fast road's reader of a line of this version and event: the table parse_entry checks it with."""
    version_field = {"format_version": shape.const(FORMAT_VERSION)} if version == FORMAT_VERSION else {}
    required, optional = EVENT_FIELDS[event]
    return shape.FastShape({**_BASE, **version_field, **required}, optional, max_depth=3)


# By the bytes of the event's name, and whether the line has a format version: (event, version). Each
# reader is made on first use (a command that reads no ledger pays nothing for it at start-up).
_FAST: dict[tuple[bytes, bool], tuple[str, int]] = {
    (event.encode(), version == FORMAT_VERSION): (event, version)
    for version, events in ((1, LEGACY_EVENTS), (FORMAT_VERSION, EVENTS)) for event in events}
_fast_reader = functools.cache(_fast_table)
_EVENT = re.compile(rb'"event":"([a-z-]{1,20})"')


def _fast(line: bytes) -> tuple[dict[str, Any], int] | None:
    """What ``shape.fields`` returns for a canonical line, and its version, through shape.FastShape; None when
    it does not vouch (then parse_entry reads the line the full way). The version and event are guessed
    from the bytes only to pick a table, then held to what was read."""
    found = _EVENT.search(line) if len(line) <= MAX_LINE else None
    picked = _FAST.get((found.group(1), b'"format_version":' in line)) if found else None
    if picked is None:
        return None
    event, version = picked
    value = _fast_reader(version, event).read(line, "rfc8785" if version == FORMAT_VERSION else "compact")
    if value is None or value["event"] != event:
        return None
    return value, version


def parse_entry(line: bytes, where: str, number: int) -> LedgerEntry:
    """Parse one ledger line strictly; raises :class:`LedgerError` with a code and the line number."""
    try:
        fast = _fast(line)
        if fast is not None:
            checked, version = fast
            event = checked["event"]
        else:
            at = f"{where}:{number}"
            value = jsonio.parse(line, at, max_bytes=MAX_LINE, max_depth=3)
            if not isinstance(value, dict):
                raise LedgerError("not a ledger entry (not a JSON object)", path=where, line=number,
                                  code="format.bad-type")
            version = value.get("format_version", 1)
            if version not in (1, FORMAT_VERSION) or isinstance(version, bool):
                raise LedgerError(f"unsupported ledger format version {str(version)[:20]!r}", path=where,
                                  line=number, code="format.version")
            jsonio.check_canonical(value, line, at, "rfc8785" if version == FORMAT_VERSION else "compact")
            event = value.get("event")
            if version == 1 and event not in LEGACY_EVENTS:
                raise LedgerError(f"legacy ledger lines have no event {str(event)[:20]!r}", path=where,
                                  line=number, code="format.unknown-kind")
            required, optional = EVENT_FIELDS.get(str(event), ({}, {}))
            base = dict(_BASE)
            if version == FORMAT_VERSION:
                base["format_version"] = shape.const(FORMAT_VERSION)
            checked = shape.fields(value, at, {**base, **required}, optional)
        if event == "crl":
            _check_crl_numbers(checked, f"{where}:{number}")
    except LedgerError:
        raise
    except AgreementsError as exc:
        raise LedgerError(exc.message, path=where, line=number, code=exc.code) from None
    return LedgerEntry(line, checked, number, int(version))
