"""The manifest format: what a PDF says, and how to reproduce it.

Two forms (docs/manifest.md, docs/schemas/manifest.schema.json): the copy embedded
in the PDF, and ``manifest.json`` beside it, which adds ``document`` (the PDF's
SHA-256 and size, and the embedded copy's SHA-256). Both are the ``pretty``
canonical JSON of :mod:`agreements_kit.formats.jsonio`, and only that: a
manifest whose bytes are not the canonical form of its content is refused.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from agreements_kit.errors import AgreementsError, InvalidFormat
from agreements_kit.formats import jsonio, shape
from agreements_kit.formats.ids import ID_RE, LANGUAGE_RE

FORMAT = "agreements-kit/manifest"
FORMAT_VERSION = 1
MAX_BYTES = 1024 * 1024

_s = shape.string
_scalar_or_list: shape.Checker = shape.anything  # clause variables: strings, numbers, booleans (checked below)


def _variable(value: Any, member: str, where: str) -> Any:
    if isinstance(value, (str, bool, int, float)) or value is None:
        if isinstance(value, str) and len(value) > 2000:
            raise shape.fail(f"'{member}' is longer than 2000 characters", where, "format.bad-value")
        return value
    raise shape.fail(f"'{member}' must be a string, number or boolean", where, "format.bad-type")


_LANGUAGE = _s(20, LANGUAGE_RE)

_AGREEMENT = shape.obj(
    {"id": _s(64, ID_RE), "date": shape.date, "client": shape.obj({"name": _s(200)}),
     "therapist": shape.obj({"id": _s(32), "name": _s(200), "credentials": _s(200)}),
     "practice": shape.obj({"name": _s(200), "phone": _s(200), "address": _s(2000), "email": _s(200)}),
     "jurisdiction": shape.nullable(_s(20))},
    {"guardian": shape.obj({"name": _s(200), "relation": _s(40)})})
_FIELDS: dict[str, shape.Checker] = {
    "format": shape.const(FORMAT),
    "format_version": shape.const(FORMAT_VERSION),
    "agreement": _AGREEMENT,
    "inputs": shape.obj({"client": _s(200), "therapist": _s(32), "id": shape.nullable(_s(64)),
                         "date": shape.nullable(_s(10)), "jurisdiction": shape.nullable(_s(20)),
                         "clauses": shape.nullable(shape.list_of(_s(100))),
                         "variables": shape.mapping_of(_variable)},
                        {"guardian": shape.nullable(_s(200)), "relation": shape.nullable(_s(40)),
                         "language": _LANGUAGE}),
    "variables": shape.mapping_of(_variable),
    # "language": only a translated render says it (an English manifest keeps its fields and bytes).
    "library": shape.obj({"name": _s(200), "version": shape.integer(0, 10**6)}, {"language": _LANGUAGE}),
    "clauses": shape.list_of(shape.obj({"id": _s(100), "version": shape.integer(0, 10**6),
                                        "jurisdiction": shape.nullable(_s(20)),
                                        "variant_version": shape.nullable(shape.integer(0, 10**6)),
                                        "initials": shape.boolean, "sha256": shape.sha256})),
    "template": shape.obj({"files": shape.mapping_of(shape.sha256), "sha256": shape.sha256}),
    "software": shape.obj({"agreements_kit": _s(40), "weasyprint": _s(40), "python": _s(40)}),
    "pdf": shape.obj({"variant": _s(20), "file": shape.const("agreement.pdf")}),
}
_DOCUMENT = shape.obj({"sha256": shape.sha256, "bytes": shape.integer(1, 1 << 40),
                       "embedded_manifest_sha256": shape.sha256})
@functools.cache
def _fast_reader(embedded: bool) -> shape.FastShape:
    """The fast road's reader of either form, made on first use (not at start-up)."""
    return shape.FastShape(_FIELDS, None if embedded else {"document": _DOCUMENT}, max_depth=5)


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest. ``data`` is the whole document; the properties name what verifiers use."""

    raw: bytes
    data: dict[str, Any]
    # True when parse_manifest proved raw to be the pretty canonical form of data (see embedded_bytes).
    canonical: bool = field(default=False, compare=False)

    @property
    def agreement_id(self) -> str:
        return self.data["agreement"]["id"]  # type: ignore[no-any-return]

    @property
    def client_name(self) -> str:
        return self.data["agreement"]["client"]["name"]  # type: ignore[no-any-return]

    @property
    def guardian(self) -> dict[str, str] | None:
        return self.data["agreement"].get("guardian")  # type: ignore[no-any-return]

    @property
    def therapist_id(self) -> str:
        return self.data["agreement"]["therapist"]["id"]  # type: ignore[no-any-return]

    @property
    def date(self) -> str:
        return self.data["agreement"]["date"]  # type: ignore[no-any-return]

    @property
    def pdf_sha256(self) -> str | None:
        doc = self.data.get("document")
        return doc["sha256"] if doc else None

    @property
    def initialled_clauses(self) -> list[str]:
        return [c["id"] for c in self.data["clauses"] if c["initials"]]

    def embedded_bytes(self) -> bytes:
        """The bytes the copy embedded in the PDF must have: this manifest without ``document``."""
        if self.canonical and "document" in self.data:
            # raw is canonical_json(data): the same text without the top-level member "document". In the
            # pretty form a raw newline is only layout (one in a string is written \n), so the member sits
            # at two spaces of indent, after a comma (keys are sorted, "agreement" comes first), and is
            # exactly what the pretty printer writes for its value at that depth.
            member = ',\n  "document": ' + jsonio.canonical_json(self.data["document"])[:-1].decode("utf-8").replace(
                "\n", "\n  ")
            text = self.raw.decode("utf-8")
            at = text.find(member)
            if at > 0 and text.find(',\n  "document": ', at + 1) < 0:
                return (text[:at] + text[at + len(member):]).encode("utf-8")
        return jsonio.canonical_json({k: v for k, v in self.data.items() if k != "document"})


def parse_manifest(data: bytes, where: str, *, embedded: bool = False) -> Manifest:
    """Parse ``manifest.json`` (``embedded=False``: it must carry ``document``) or the PDF's copy (it must not)."""
    try:
        # The fast road (shape.FastShape: what shape.fields returns for canonical bytes), else the full way.
        checked = _fast_reader(embedded).read(data, "pretty") if len(data) <= MAX_BYTES else None
        if checked is None:
            value = jsonio.parse(data, where, max_bytes=MAX_BYTES, max_depth=5, canonical_form="pretty")
            if isinstance(value, dict) and value.get("format") != FORMAT:
                raise InvalidFormat("not an agreements-kit manifest", path=where, code="format.unknown-format")
            if isinstance(value, dict) and value.get("format_version") != FORMAT_VERSION:
                raise InvalidFormat("unsupported manifest format version "
                                    f"{str(value.get('format_version'))[:20]!r}", path=where, code="format.version")
            checked = shape.fields(value, where, _FIELDS, {} if embedded else {"document": _DOCUMENT})
        if not embedded and "document" not in checked:
            raise InvalidFormat("missing key 'document' (the PDF's SHA-256)", path=where, code="format.missing-key")
    except InvalidFormat:
        raise
    except AgreementsError as exc:  # pragma: no cover - the checkers raise InvalidFormat only
        raise InvalidFormat(exc.message, path=where, code=exc.code) from None
    return Manifest(data, checked, canonical=True)
