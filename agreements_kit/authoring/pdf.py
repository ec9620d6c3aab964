"""HTML -> archival PDF (PDF/A-3u) with WeasyPrint, offline and reproducible.

Three rules, each for a reason:
- No network, no stray files: a URL fetcher that serves only files inside the
  template folder and stops the render for anything else (WeasyPrint follows
  URLs in HTML and CSS; CVE-2025-68616 was an SSRF through redirects).
- Same inputs, same bytes: dates come from the agreement (``dcterms`` meta and
  fixed attachment times), the PDF identifier from the manifest, and
  ``SOURCE_DATE_EPOCH`` is pinned for the fontTools subsetting fallback.
- One ``FontConfiguration`` per process: building it is a large part of a small
  document's cost.
- No empty boxes in an archival file: the laid-out pages are checked for
  characters no installed font has, and such a render is refused
  (``MissingGlyphError``) before any PDF byte exists.

This is the only module that imports WeasyPrint, and nothing imports it at
start-up, so commands that do not render stay fast.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import mimetypes
import os
from pathlib import Path
from urllib.request import url2pathname

import weasyprint
from weasyprint import HTML, Attachment
from weasyprint.document import Document
from weasyprint.formatting_structure.boxes import TextBox
from weasyprint.text.ffi import ffi, pango
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import FatalURLFetchingError, URLFetcher, URLFetcherResponse

from agreements_kit.authoring.glyphs import describe
from agreements_kit.errors import MissingGlyphError, RenderError

PDF_VARIANT = "pdf/a-3u"
WEASYPRINT_VERSION = weasyprint.__version__

_font_config: FontConfiguration | None = None


def font_config() -> FontConfiguration:
    global _font_config
    if _font_config is None:
        _font_config = FontConfiguration()
    return _font_config


class RefusedURL(FatalURLFetchingError):
    """A fetch outside the template folder; stops the render (BaseException in WeasyPrint)."""


class TemplateFolderFetcher(URLFetcher):
    """Serves ``file:`` URLs inside one folder, refuses everything else."""

    def __init__(self, folder: Path):
        super().__init__(allowed_protocols=("file",), allow_redirects=False, fail_on_errors=True)
        self.folder = Path(folder).resolve()

    def fetch(self, url: str, headers=None) -> URLFetcherResponse:
        if not url.startswith("file:"):
            raise RefusedURL(f"refused to fetch {url[:80]!r}: only files of the template folder may be used")
        path = Path(url2pathname(url.split("?")[0].split("#")[0].removeprefix("file:"))).resolve()
        if not path.is_relative_to(self.folder) or not path.is_file():
            raise RefusedURL(f"refused to fetch {path}: not a file inside the template folder {self.folder}")
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return URLFetcherResponse(path.as_uri(), path.read_bytes(), {"Content-Type": mime})


def _fixed_time(date: dt.date) -> dt.datetime:
    return dt.datetime(date.year, date.month, date.day, tzinfo=dt.UTC)


def write_pdf(html: str, template_dir: Path, manifest_bytes: bytes, date: dt.date,
              attachment_name: str = "manifest.json") -> bytes:
    """Render ``html`` to PDF/A-3u bytes with ``manifest_bytes`` embedded as an associated file."""
    # fontTools' subsetter (used when HarfBuzz's is missing) stamps the current time otherwise.
    os.environ.setdefault("SOURCE_DATE_EPOCH", "0")
    fetcher = TemplateFolderFetcher(template_dir)
    when = _fixed_time(date)
    manifest = Attachment(string=manifest_bytes, name=attachment_name, relationship="Data",
                          description="agreements-kit manifest: inputs, clause and template hashes",
                          created=when, modified=when, url_fetcher=fetcher)
    options = {
        "pdf_variant": PDF_VARIANT,
        "pdf_identifier": hashlib.sha256(manifest_bytes).hexdigest()[:32].encode("ascii"),
        "attachments": [manifest],
        "attachment_relationships": ["Data"],
    }
    try:
        source = HTML(string=html, base_url=template_dir.resolve().as_uri() + "/", url_fetcher=fetcher)
        # HTML.write_pdf is render() then Document.write_pdf(): split to look at the laid-out glyphs between.
        document = source.render(font_config=font_config(), **options)
        missing = undrawn_characters(document)
        if missing:
            raise MissingGlyphError(
                f"the document's text contains {describe(missing[0])}, which no installed font can draw; the "
                "PDF/A copy would show an empty box. Change that text, or install a font that has it "
                "(README: 'Fonts and print quality')", chars=missing)
        return document.write_pdf(**options)
    except RefusedURL as exc:
        raise RenderError(str(exc)) from None


def undrawn_characters(document: Document) -> list[str]:
    """Characters that Pango found no font for, as laid out: WeasyPrint would draw ``.notdef``.

    It walks the same glyph runs that WeasyPrint's drawing walks (``draw/text.py``), so it
    sees exactly what the PDF would show, margin boxes (the footers) included."""
    missing: dict[str, None] = {}
    for page in document.pages:
        for box in page._page_box.descendants():
            if not isinstance(box, TextBox) or getattr(box, "pango_layout", None) is None:
                continue
            if not box.text.strip():
                continue  # WeasyPrint draws no glyphs for these either
            layout = box.pango_layout
            layout.reactivate(box.style)  # layouts are kept without their Pango objects between layout and drawing
            try:
                pango.pango_layout_set_single_paragraph_mode(layout.layout, True)
                first_line, _ = layout.get_first_line()
                run = first_line.runs
                while run != ffi.NULL:
                    glyphs = run.data.glyphs
                    for i in range(glyphs.num_glyphs):
                        glyph = glyphs.glyphs[i].glyph
                        if glyph != pango.PANGO_GLYPH_EMPTY and glyph & pango.PANGO_GLYPH_UNKNOWN_FLAG:
                            missing[chr(glyph - pango.PANGO_GLYPH_UNKNOWN_FLAG)] = None
                    run = run.next
            finally:
                layout.deactivate()
    return list(missing)
