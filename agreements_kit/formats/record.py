"""Signing records: the exact bytes a signer's CMS signature covers.

A record is a JSON document saved as the very bytes that were signed, so that
anyone can read what was attested and check it with ``openssl cms -verify
-content RECORD``. Format version 2 is RFC 8785 canonical JSON; the legacy version 1
is sorted keys, two-space indent, final newline. Either way the bytes must be the
canonical form of what they say, so no two readers can see two records. There are
four kinds: client, guardian and therapist signatures, and voids; each has exactly
its own members (docs/archive.md, docs/schemas/signing-record.schema.json).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agreements_kit import resources
from agreements_kit.errors import AgreementsError, RecordError
from agreements_kit.formats import ids, jsonio, shape
from agreements_kit.formats.ids import LANGUAGE_RE
from agreements_kit.formats.jsonio import canonical  # noqa: F401  (legacy callers)

FORMAT = "agreements-kit/signing-record"
FORMAT_VERSION = 2
LEGACY_VERSION = 1
ROLES = ("client", "guardian", "therapist")
VOID_ROLES = ("therapist", "administrator")
KINDS = ("client", "guardian", "therapist", "void")
MAX_BYTES = 64 * 1024
RELATIONS = ("parent", "legal guardian", "conservator", "health care agent", "other legal representative")
CANONICAL_FORM = {1: "pretty", 2: "rfc8785"}
INITIALS_RE = re.compile(r"^[^\W\d_]{1,5}\Z")  # letters only; \Z: "$" would allow a final newline
# A staff account's sign-in name (intake/staff.py), named in a record's identity.staff_account when
# staff opened the intake on the intake server's staff page (optional: older records have none).
STAFF_ACCOUNT_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,31}\Z")
CLIENT_ROLES = ("client", "guardian")
INTENT = ("I have read this agreement. By adopting my typed name as my signature, "
          "I intend to sign it electronically, with the same effect as a handwritten signature.")
VOID_INTENT = "I void this agreement for the reason stated; it is no longer in effect."


def intent_statement(language: str | None = None) -> str:
    """The statement a client adopts, in the language of the pages they sign on: what the page shows and
    the record says are the same words. English is :data:`INTENT`; another language's is
    ``templates/intent/LANG.txt`` (a data file: a language is a new file)."""
    primary = primary_language(language)
    if primary == DISCLOSURE_LANGUAGE:
        return INTENT
    path = _intent_folder() / f"{primary}.txt"
    if not LANGUAGE_RE.match(primary) or not path.is_file():
        shown = repr(language)[1:-1][:40]
        raise AgreementsError(f"there is no intent statement in the language '{shown}': add "
                              f"templates/intent/{primary}.txt", code="usage.language")
    return _read_text(path)


def _intent_folder() -> Path:
    return resources.templates_dir() / "intent"


def _read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8").strip()


@functools.cache
def intent_statements() -> dict[str, str]:
    """Every statement a signing record may say its signer adopted -> its language: English's, each
    language's current one (templates/intent/LANG.txt), and every one published before
    (templates/intent-history/LANG/N.txt, kept byte for byte, as disclosures are), so that rewording a
    statement never makes the records that adopted the old words fail."""
    found = {INTENT: DISCLOSURE_LANGUAGE}
    history = resources.templates_dir() / "intent-history"
    for path in sorted(history.glob("*/*.txt")) if history.is_dir() else []:
        if LANGUAGE_RE.match(path.parent.name):
            found.setdefault(_read_text(path), path.parent.name)
    folder = _intent_folder()
    for path in sorted(folder.glob("*.txt")) if folder.is_dir() else []:
        if LANGUAGE_RE.match(path.stem):
            found.setdefault(_read_text(path), path.stem)
    return found


@dataclass(frozen=True)
class Disclosure:
    """The ESIGN consumer disclosure a client accepts before signing electronically."""

    version: str
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


DISCLOSURE_LANGUAGE = "en"  # templates/esign-disclosure.txt; another language's is esign-disclosure.LANG.txt


def primary_language(language: str | None) -> str:
    """The primary subtag of a language tag (``es-MX``, ``ES`` -> ``es``); English when None. Every text a
    signer is shown in a language (disclosure, intent statement) is found by this one rule."""
    return ids.primary_language(language) or DISCLOSURE_LANGUAGE


def disclosure_path(language: str | None = None) -> Path:
    """The current disclosure of ``language`` (its primary subtag: ``es-MX`` -> ``es``); English when None."""
    primary = primary_language(language)
    name = "esign-disclosure.txt" if primary == DISCLOSURE_LANGUAGE else f"esign-disclosure.{primary}.txt"
    return resources.templates_dir() / name


def disclosure_languages() -> list[str]:
    """The languages with a current disclosure: English, and one per ``esign-disclosure.LANG.txt``."""
    found = (p.name.split(".")[1] for p in resources.templates_dir().glob("esign-disclosure.*.txt"))
    return sorted({DISCLOSURE_LANGUAGE, *(lang for lang in found if LANGUAGE_RE.match(lang))})


def load_disclosure(path: Path | None = None, language: str | None = None) -> Disclosure:
    """A disclosure file (``path``), or the current one in ``language`` (English when None).

    A language without a disclosure of its own is refused rather than given another's text: the client
    must accept the words they were shown."""
    if path is None and language is not None and not LANGUAGE_RE.match(primary_language(language)):
        shown = repr(language)[1:-1][:40]
        raise AgreementsError(f"'{shown}' is not a language code such as 'en' or 'es'", code="usage.language")
    path = path or disclosure_path(language)
    if not path.is_file() and language is not None:
        raise AgreementsError(f"there is no ESIGN disclosure in the language '{language}': add "
                              f"templates/{path.name} (the same rights as esign-disclosure.txt)",
                              code="usage.language")
    text = path.read_text(encoding="utf-8")
    match = re.match(r"Version:\s*(\S+)\s*\n", text)
    if not match:
        raise AgreementsError(f"{path}: the disclosure must start with a 'Version:' line")
    return Disclosure(match.group(1), text)


def record_name(sequence: int, kind: str) -> str:
    """File name of a record: sequence and role (or 'void'), e.g. ``01-client.json``."""
    return f"{sequence:02d}-{kind}.json"


def encode(data: dict[str, Any]) -> bytes:
    """The bytes a new (format version 2) record is signed and stored as: RFC 8785."""
    return jsonio.jcs(data)


@dataclass(frozen=True)
class SigningRecord:
    """One parsed signing record: what a signer attested, and the exact bytes that were signed."""

    raw: bytes
    data: dict[str, Any]
    version: int
    kind: str  # client, guardian, therapist or void
    agreement_id: str
    sequence: int
    signed_at: dt.datetime
    document_sha256: str
    manifest_sha256: str
    certificate_sha256: str
    ledger_head: str
    role: str  # the signer's role (for a void: therapist or administrator)
    name: str

    @property
    def is_void(self) -> bool:
        return self.kind == "void"

    @property
    def client_side(self) -> bool:
        return self.kind in CLIENT_ROLES

    @property
    def signer(self) -> dict[str, Any]:
        return self.data["signer"]  # type: ignore[no-any-return]

    @property
    def file_name(self) -> str:
        return record_name(self.sequence, self.kind)


_s = shape.string
_NAME = _s(200)
_COMMON: dict[str, shape.Checker] = {
    "format": shape.const(FORMAT),
    "format_version": shape.integer(1, 2),
    "kind": _s(20, choices=("signature", "void")),
    "agreement_id": _s(64),
    "sequence": shape.integer(1, 99),
    "ledger_head": shape.sha256,
    "certificate": shape.obj({"sha256": shape.sha256, "subject": _s(1000), "issuer": _s(1000),
                              "serial": _s(64)}),
    "signed_at": shape.timestamp,
    "document": shape.obj({"file": shape.const("agreement.pdf"), "sha256": shape.sha256}),
    "manifest": shape.obj({"file": shape.const("manifest.json"), "sha256": shape.sha256}),
    "signer": shape.anything,  # checked per kind below
    "intent": shape.obj({"statement": _s(1000), "adopted": shape.true}),
}
_SIGNATURE = {
    **_COMMON,
    "esign": shape.anything,
    "initials": shape.mapping_of(_s(5)),
    "method": shape.obj({"typed_name": _NAME, "drawn_signature_png_sha256": shape.nullable(shape.sha256),
                         "drawn_signature_file": shape.nullable(_s(40))}),
    "identity": shape.obj({"method": _s(200), "checked_by": _s(200)},
                          {"staff_account": _s(32, STAFF_ACCOUNT_RE)}),
}
_VOID = {**_COMMON, "reason": _s(500)}
_ESIGN = shape.obj({"disclosure_version": _s(40), "disclosure_sha256": shape.sha256,
                    "disclosure_accepted": shape.true, "consent_to_electronic_records": shape.true})
_SIGNERS: dict[str, shape.Checker] = {
    "client": shape.obj({"role": shape.const("client"), "name": _NAME}),
    "guardian": shape.obj({"role": shape.const("guardian"), "name": _NAME, "on_behalf_of": _NAME},
                          {"relation": _s(40, choices=RELATIONS)}),
    "therapist": shape.obj({"role": shape.const("therapist"), "name": _NAME, "therapist_id": _s(32)}),
    "administrator": shape.obj({"role": shape.const("administrator"), "name": _NAME, "administrator_id": _s(32)}),
}


def _time(value: str) -> dt.datetime:
    return shape.parse_time(value)  # value passed shape.timestamp


# The fast road's tables, by kind and signer role: the record's table with the signer's (and a client's or
# guardian's esign) in place of ``anything``, as parse_record checks them once the role is known.
@functools.lru_cache(maxsize=32)  # the role is read from the bytes: bounded, whatever they say
def _fast_reader(kind: str, role: str) -> shape.FastShape | None:
    """Made on first use (not at start-up); None for a role the kind never has."""
    table, roles = {"signature": (_SIGNATURE, ROLES), "void": (_VOID, VOID_ROLES)}[kind]
    if role not in roles:
        return None
    return shape.FastShape({**table, "signer": _SIGNERS[role],
                            **({"esign": _ESIGN} if kind == "signature" and role in CLIENT_ROLES else {})},
                           max_depth=4)
_ROLE = re.compile(rb'"role": ?"([a-z]{1,20})"')


def _fast(data: bytes) -> dict[str, Any] | None:
    """What ``shape.fields`` returns for a canonical record of either version (its signer, and a client's or
    guardian's esign, as their own checkers accept them), through shape.FastShape; None when it does not
    vouch (then parse_record reads the record the full way). The version, kind and role are guessed from
    the bytes only to pick a table, then held to what was read."""
    if len(data) > MAX_BYTES:
        return None
    pretty = data.startswith(b"{\n")  # version 1 (pretty) or 2 (RFC 8785: no layout at all)
    void = (b'"kind": "void"' if pretty else b'"kind":"void"') in data
    found = _ROLE.search(data)
    reader = _fast_reader("void" if void else "signature", found.group(1).decode("ascii")) if found else None
    value = None if reader is None else reader.read(data, "pretty" if pretty else "rfc8785")
    if value is None or value["format_version"] != (LEGACY_VERSION if pretty else 2) or (
            value["kind"] == "void") != void:
        return None
    return value  # its signer's role is the table's (a const there)


def parse_record(data: bytes, where: str) -> SigningRecord:
    """Parse a record strictly; raises :class:`InvalidFormat` (``RecordError``) with a code on any deviation."""
    try:
        quick = _fast(data)  # the fast road checks signer and esign too (see below)
        if quick is not None:
            checked, version, kind = quick, quick["format_version"], quick["kind"]
        else:
            value = jsonio.parse(data, where, max_bytes=MAX_BYTES, max_depth=4)
            if not isinstance(value, dict):
                raise RecordError("not a signing record (not a JSON object)", path=where, code="format.bad-type")
            if value.get("format") != FORMAT:
                raise RecordError("not an agreements-kit signing record", path=where,
                                  code="format.unknown-format")
            version = value.get("format_version")
            if type(version) is not int or version not in CANONICAL_FORM:
                raise RecordError(f"unsupported record format version {str(version)[:20]!r}", path=where,
                                  code="format.version")
            jsonio.check_canonical(value, data, where, CANONICAL_FORM[version])
            kind = value.get("kind")
            checked = shape.fields(value, where, _VOID if kind == "void" else _SIGNATURE)
        role = checked["signer"].get("role") if isinstance(checked["signer"], dict) else None
        allowed = VOID_ROLES if kind == "void" else ROLES
        if role not in allowed:
            raise RecordError(f"a {'void' if kind == 'void' else 'signature'} record cannot have the signer role "
                              f"{str(role)[:20]!r}", path=where, code="format.unknown-kind")
        if "staff_account" in (checked.get("identity") or {}) and (version == LEGACY_VERSION or
                                                                   role not in CLIENT_ROLES):
            raise RecordError("'identity.staff_account' belongs only in a client's or guardian's record of "
                              "format version 2", path=where, code="format.unknown-key")
        if version == LEGACY_VERSION and role == "administrator":
            raise RecordError("format version 1 has no administrator role", path=where, code="format.unknown-kind")
        if quick is None:
            _SIGNERS[str(role)](checked["signer"], "signer", where)
        if kind == "signature":
            if role in CLIENT_ROLES:
                if quick is None:
                    _ESIGN(checked["esign"], "esign", where)
            elif checked["esign"] is not None:
                raise RecordError("'esign' must be null in a therapist's record", path=where, code="format.bad-value")
    except RecordError:
        raise
    except AgreementsError as exc:  # InvalidFormat from the shared checkers: re-raise as this format's error
        raise RecordError(exc.message, path=where, code=exc.code) from None
    return SigningRecord(
        raw=data, data=checked, version=int(version), kind="void" if kind == "void" else str(role),
        agreement_id=checked["agreement_id"], sequence=checked["sequence"], signed_at=_time(checked["signed_at"]),
        document_sha256=checked["document"]["sha256"], manifest_sha256=checked["manifest"]["sha256"],
        certificate_sha256=checked["certificate"]["sha256"], ledger_head=checked["ledger_head"], role=str(role),
        name=checked["signer"]["name"])


def parse(data: bytes, where: str) -> dict[str, Any]:
    """The record's content as a dict, after strict parsing (for callers that only read it)."""
    return parse_record(data, where).data
