"""The client's receipt: one page, in the client's language, to take home.

It lists, for each agreement of a visit (one, or a packet), the agreement id, the
SHA-256 of the signed document, who signed and when, and how each signer's
identity was checked; then how to check all of it without the practice, and the
transparency log's signed checkpoint that includes the client's signature (as
text and as a QR code), so a client holding the paper can later prove their
agreement existed. It is made from the signed records, never stored in the
archive, and rendered like agreements and the certificate of completion:
sandboxed Jinja2, WeasyPrint, PDF/A-3u, no network.

Words come from a message catalogue per language (``templates/receipt/LANG.yaml``,
every language with the same keys and placeholders as English); dates are written
by Babel in the client's locale. The language is the agreement's (its clause
library's ``language``), or the one asked for; one without a catalogue is refused.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

from agreements_kit.authoring import catalogues
from agreements_kit.errors import AgreementsError, LibraryError, ReceiptError
from agreements_kit.formats.ids import primary_language
from agreements_kit.formats.jsonio import canonical_json
from agreements_kit.formats.record import CLIENT_ROLES
from agreements_kit.formats.text import same_name
from agreements_kit.resources import clauses_dir, templates_dir
from agreements_kit.store.archive import AgreementFolder, sha256_file

TEMPLATE = "receipt.html.j2"
CATALOGUES = "receipt"  # templates/receipt/LANG.yaml
DEFAULT_LANGUAGE = "en"
LANGUAGE_RE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*\Z")


# ----------------------------------------------------------------------------- language


def available_languages(template_dir: Path | None = None) -> list[str]:
    """The languages a receipt can be written in: one catalogue file each."""
    folder = (template_dir or templates_dir()) / CATALOGUES
    return sorted(p.stem for p in folder.glob("*.yaml") if LANGUAGE_RE.match(p.stem))


def agreement_language(folder: AgreementFolder) -> str:
    """The language the agreement was written in: its clause library's ``language``.

    The manifest names the library (name and version); a manifest that also records
    the language is taken at its word. Otherwise the library is looked up by name,
    first the practice's own (when the folder lies in PRACTICE/signed or
    PRACTICE/drafts), then the default one, each with its document libraries
    (``documents/NAME/``). Unknown: English.
    """
    library = folder.manifest.get("library") or {}
    if isinstance(library.get("language"), str):
        return library["language"]
    name = library.get("name")
    for directory in _library_dirs(folder, name):
        index = _library_index(*_stamp(directory / "library.yaml"))
        if index.get("library") == name and isinstance(index.get("language"), str):
            return index["language"]
    return DEFAULT_LANGUAGE


def _library_dirs(folder: AgreementFolder, name: object) -> list[Path]:
    from agreements_kit.authoring.practice import SETTINGS, load_practice

    bases = []
    practice_root = folder.path.resolve().parent.parent
    if (practice_root / SETTINGS).is_file():
        bases.append(load_practice(practice_root).library_dir())
    bases.append(clauses_dir())
    documents = [name] if isinstance(name, str) and re.match(r"^[a-z0-9][a-z0-9-]{0,63}\Z", name) else []
    return [d for base in dict.fromkeys(bases) for d in (base, *(base / "documents" / n for n in documents))]


def _stamp(path: Path) -> tuple[str, int]:
    """A file's cache key: its path and modification time (-1: none), so an edited file is read again."""
    try:
        return str(path), path.stat().st_mtime_ns
    except OSError:
        return str(path), -1


@lru_cache(maxsize=32)
def _library_index(path: str, mtime: int) -> dict[str, Any]:
    """library.yaml's top level (name, version, language...), or nothing when there is none."""
    from agreements_kit.authoring import yamlfile

    if mtime < 0 or not Path(path).is_file():
        return {}
    data = yamlfile.load(Path(path), LibraryError)
    return dict(data) if isinstance(data, dict) else {}


def resolve_language(tag: str, template_dir: Path | None = None) -> tuple[str, str]:
    """``(catalogue, locale)`` for a language tag such as ``es`` or ``es-MX``; ReceiptError when there is none.

    The catalogue is the tag's primary language (``es``); the locale (``es_MX``), used
    for dates, keeps the region when Babel knows it.
    """
    from babel import Locale, UnknownLocaleError

    languages = available_languages(template_dir)
    primary = primary_language(tag) if LANGUAGE_RE.match(tag or "") else None
    if primary is None or primary not in languages:
        shown = repr(tag)[1:-1][:40]  # escaped: one line whatever was typed
        raise ReceiptError(f"no receipt in the language '{shown}': receipts are written in "
                           f"{', '.join(languages)} (templates/{CATALOGUES}/LANG.yaml)", code="usage.receipt-language")
    try:
        locale = str(Locale.parse(tag.replace("-", "_")))
    except (UnknownLocaleError, ValueError):
        locale = primary
    return primary, locale


# ----------------------------------------------------------------------------- catalogues


def load_catalogue(language: str, template_dir: Path | None = None) -> dict[str, str]:
    """The messages of ``language``, checked against English: the same names, the same placeholders."""
    folder = (template_dir or templates_dir()) / CATALOGUES
    return catalogues.checked(folder / f"{language}.yaml", folder / f"{DEFAULT_LANGUAGE}.yaml", ReceiptError)


def _translator(messages: dict[str, str]) -> Callable[..., Markup]:
    def t(key: str, **values: Any) -> Markup:
        # The message is plain text (escaped here); values are escaped by Markup.format.
        return escape(messages[key]).format(**values)
    return t


# ----------------------------------------------------------------------------- content


def _when(iso: str) -> dt.datetime:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(dt.UTC)


def _signers(folder: AgreementFolder, locale: str) -> list[dict[str, Any]]:
    from babel.dates import format_datetime

    out = []
    for name, rec in folder.records:
        if rec.get("kind") != "signature":
            continue
        identity = rec.get("identity") or {}
        out.append({
            "file": name, "name": rec["signer"]["name"], "role": rec["signer"]["role"],
            "signed_at": rec["signed_at"],
            "when": format_datetime(_when(rec["signed_at"]), "long", tzinfo=dt.UTC, locale=locale),
            "method": identity.get("method"), "checked_by": identity.get("checked_by"),
            "staff_account": identity.get("staff_account"),
        })
    return out


def _check_folders(folders: Sequence[AgreementFolder]) -> None:
    if not folders:
        raise ReceiptError("a receipt needs at least one agreement")
    ids = [f.id for f in folders]
    if len(set(ids)) != len(ids):
        raise ReceiptError(f"agreement {next(i for i in ids if ids.count(i) > 1)} is named twice")
    for folder in folders:
        if not folder.client_signed:
            raise ReceiptError(f"agreement {folder.id} has no client signature yet: there is nothing to give a "
                               "receipt for", code="conflict.receipt-unsigned")
        if not same_name(folder.client_name, folders[0].client_name):
            raise ReceiptError(f"agreement {folder.id} is another client's than {folders[0].id}: a receipt lists "
                               "one client's agreements", code="usage.receipt-clients")


def copy_names(count: int) -> list[str]:
    """The names the client's signed copies go by (intake/delivery.py): one, or a packet's several."""
    return ["signed-agreement.pdf"] if count == 1 else [f"signed-document-{n}.pdf" for n in range(1, count + 1)]


def receipt_html(folders: Sequence[AgreementFolder], *, checkpoint: bytes | None = None,
                 language: str | None = None, template_dir: Path | None = None,
                 copies: Sequence[str] | None = None) -> tuple[str, bytes, dt.date]:
    """The receipt's HTML, the summary embedded in its PDF (canonical JSON), and its date (the last signature's).

    ``copies``: the file names of the client's signed copies, one per folder (default :func:`copy_names`)."""
    from babel.dates import format_date

    from agreements_kit.authoring.html import _environment
    from agreements_kit.signing.completion import _anchor

    _check_folders(folders)
    template_dir = template_dir or templates_dir()
    catalogue, locale = resolve_language(agreement_language(folders[0]) if language is None else language,
                                         template_dir)
    t = _translator(load_catalogue(catalogue, template_dir))
    copies = list(copies) if copies is not None else copy_names(len(folders))
    if len(copies) != len(folders):
        raise ReceiptError("a receipt needs one copy name per agreement")
    agreements = []
    for folder, copy in zip(folders, copies, strict=True):
        meta = folder.manifest["agreement"]
        agreements.append({
            "id": folder.id, "copy_name": copy, "pdf_sha256": sha256_file(folder.pdf),
            "pdf_bytes": folder.pdf.stat().st_size,
            "date": format_date(dt.date.fromisoformat(meta["date"]), "long", locale=locale),
            "therapist": meta["therapist"]["name"], "signers": _signers(folder, locale),
            "status": "voided" if folder.voided else "complete" if folder.complete else "awaiting",
            "records": {name: sha256_file(folder.path / name) for name, _ in folder.records},
        })
    last = max(s["signed_at"] for a in agreements for s in a["signers"])
    html = _environment(str(template_dir)).get_template(TEMPLATE).render(
        t=t, lang=locale.replace("_", "-"), practice=folders[0].manifest["agreement"]["practice"],
        client=folders[0].client_name, agreements=agreements, anchor=_anchor(checkpoint), created=last)
    summary = canonical_json({
        "format": "agreements-kit/receipt", "language": catalogue,
        "agreements": [{"id": a["id"], "pdf_sha256": a["pdf_sha256"], "records": a["records"]} for a in agreements],
        "checkpoint": checkpoint.decode("utf-8") if checkpoint is not None else None,
    })
    return html, summary, _when(last).date()


def receipt_pdf(folders: Sequence[AgreementFolder], *, checkpoint: bytes | None = None,
                language: str | None = None, template_dir: Path | None = None,
                copies: Sequence[str] | None = None) -> bytes:
    """The one-page receipt (PDF/A-3u) of one or more agreements of one client.

    ``checkpoint``: the log's signed checkpoint that includes the client's signatures
    (:func:`client_checkpoint` finds one), printed as text and QR code. ``language``
    overrides the agreement's; ReceiptError for one without a catalogue. ``copies``: the names of the
    client's signed copies, as the receipt tells them to check (default :func:`copy_names`).
    """
    from agreements_kit.authoring import pdf

    template_dir = template_dir or templates_dir()
    html, summary, day = receipt_html(folders, checkpoint=checkpoint, language=language, template_dir=template_dir,
                                      copies=copies)
    return pdf.write_pdf(html, template_dir, summary, day, attachment_name="receipt.json")


# ----------------------------------------------------------------------------- the checkpoint


def client_checkpoint(folders: Sequence[AgreementFolder]) -> bytes | None:
    """The archive's latest signed checkpoint, when it includes every client signature of ``folders``; else None.

    The ledger must hold the checkpoint's tree (LogError ``conflict.log-inconsistent``
    otherwise: a receipt never carries a checkpoint the archive contradicts).
    """
    import json

    from agreements_kit.store import tlog

    if not folders:
        return None
    archive_root = folders[0].path.parent
    if not (tlog.log_dir(archive_root) / tlog.LATEST).exists():
        return None
    cp, data = tlog.latest_checkpoint(archive_root)
    for folder in folders:
        if folder.path.parent != archive_root:
            return None
        try:
            entries = tlog.inclusion_entries(archive_root, folder.id, cp)
        except AgreementsError as exc:
            if exc.code == "not-found.log-entry":
                return None
            raise
        lines = [json.loads(e.line) for e in entries]
        if not any(e.get("event") == "sign" and e.get("role") in CLIENT_ROLES for e in lines):
            return None  # the client signed after this checkpoint
    return data
