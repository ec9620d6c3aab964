"""The manifest attached to an agreement PDF (an associated file, /AF).

Two readers, held equal by a differential test (tests/test_differential.py):

- :func:`embedded_manifest`: pyHanko's PDF reader follows the document's name tree
  to the ``manifest.json`` attachment. It is the reference, but importing it costs
  a quarter of a second and reading a PDF about 4 ms.
- :func:`scan_manifests`: a fast scan that inflates every top-level stream and
  returns every one that holds an agreements-kit manifest. It relies on one rule
  of the PDF standard (ISO 32000-1 7.5.7: a stream is never stored inside an
  object stream), so every attachment is a top-level stream it sees. Image data
  (DCT, JPX, JBIG2, CCITT) is looked at as stored. It gives up (None) on anything
  else it cannot read plainly (another filter, an indirect length, a damaged
  stream, a file that does not end with its cross-reference offset and %%EOF).

A PDF passes when exactly one manifest is attached and it is the expected one: a
second manifest hidden in the file is refused, whichever one a reader would show.
:func:`manifest_attachments` is the scan alone: when the scan cannot decide, the PDF
is refused rather than handed to the reference reader, since the reference follows
the name tree and would not see a second manifest hidden in a stream the scan cannot
read (tests/test_differential.py). The renderer writes only streams the scan reads,
and the verifier looks at a PDF only once it is byte for byte the rendered one.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from typing import Any

MANIFEST_MARK = b'"format": "agreements-kit/manifest"'
MAX_INFLATE = 4 * 1024 * 1024
MAX_DAMAGED_STREAMS = 10_000  # zlib streams manifest_from_damaged_pdf tries (an agreement has about 20)
MAX_TOTAL_INFLATE = 16 * 1024 * 1024  # all streams of one PDF together (an agreement: ~200 KB)
_STREAM = re.compile(rb">>\s*stream(?:\r\n|\n)")
_LENGTH = re.compile(rb"/Length\s+(\d+)(\s+\d+\s+R)?")
_FILTER = re.compile(rb"/Filter\s*(/[A-Za-z0-9#]+|\[[^\]]*\])")
_IMAGE_FILTERS = (b"/DCTDecode", b"/JPXDecode", b"/JBIG2Decode", b"/CCITTFaxDecode")
_COMPLETE = re.compile(rb"startxref\s+\d+\s+%%EOF\s*\Z")
# Streams that recur from PDF to PDF (the ICC profile, the fonts' common parts: two thirds of the bytes
# an audit inflates) are inflated once: the SHA-256 of the stored bytes -> the inflated length of a stream
# found to hold no manifest. What a stream inflates to is a function of its stored bytes alone, so a hit
# answers exactly as inflating again would (tests/test_formats.py holds the scan with and without it).
_PLAIN: dict[bytes, int] = {}
_PLAIN_LIMIT = 512


def embedded_manifest(pdf: bytes) -> bytes | None:
    """The ``manifest.json`` attached to a PDF, read with pyHanko's PDF reader; None if unreadable."""
    import io

    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        names = reader.root["/Names"]["/EmbeddedFiles"]["/Names"]
        for i in range(0, len(names), 2):
            if str(names[i]) == "manifest.json":
                data = names[i + 1].get_object()["/EF"]["/F"].get_object().data
                return bytes(data)
    except Exception:  # a damaged PDF can fail in many ways; the caller reports "unreadable"
        return None
    return None


def scan_manifests(pdf: bytes) -> list[bytes] | None:
    """Every top-level stream's content that is an agreements-kit manifest; None if the scan cannot decide."""
    if not pdf.startswith(b"%PDF-") or _COMPLETE.search(pdf[-64:]) is None:
        return None  # truncated, or not a PDF: no reader can open it
    found: list[bytes] = []
    # Each stream's dictionary is looked for only after the previous stream's data, and the inflated
    # bytes are budgeted, so that a hostile file costs time and memory in proportion to its size.
    after = 0
    budget = MAX_TOTAL_INFLATE
    for match in _STREAM.finditer(pdf):
        if match.start() < after:
            continue  # the word 'stream' inside the previous stream's data
        obj = pdf.rfind(b" obj", after, match.start())
        head = pdf[max(after, obj - 20) if obj >= 0 else after:match.start()]
        length = _LENGTH.search(head)
        if length is None or length.group(2) or len(length.group(1)) > 12:
            return None  # an indirect (or absurd) /Length
        start = match.end()
        end = start + int(length.group(1))
        if not re.match(rb"\s*endstream", pdf[end:end + 20]):
            return None
        after = end
        data = pdf[start:end]
        flt = _FILTER.search(head)
        if flt is None or flt.group(1).strip(b"[ ]") in _IMAGE_FILTERS:
            content = data  # image data is not inflated, but a manifest stored under such a name is found
        elif flt.group(1) in (b"/FlateDecode", b"[/FlateDecode]", b"[ /FlateDecode ]"):
            allowed = min(MAX_INFLATE, budget)
            digest = hashlib.sha256(data).digest()
            known = _PLAIN.get(digest)
            if known is not None and known < allowed:
                budget -= known  # inflated before, no manifest in it: the same answer without inflating
                continue
            inflater = zlib.decompressobj()
            try:
                content = inflater.decompress(data, allowed)
            except zlib.error:
                return None
            if inflater.unconsumed_tail:
                return None
            budget -= len(content)
            if budget <= 0:
                return None
            if MANIFEST_MARK not in content:
                if len(_PLAIN) >= _PLAIN_LIMIT:
                    _PLAIN.clear()
                _PLAIN[digest] = len(content)
                continue
        else:
            return None
        if MANIFEST_MARK in content:
            found.append(content)
    return found


def manifest_attachments(pdf: bytes) -> list[bytes] | None:
    """The manifests attached to ``pdf``, as the scan finds them; None (refused) when it cannot decide."""
    return scan_manifests(pdf)


def manifest_from_damaged_pdf(pdf: bytes) -> dict[str, Any] | None:
    """Find the embedded manifest in a PDF the reader rejects (truncated, say) by inflating its streams."""
    view = memoryview(pdf)  # slices without copying: a file full of 'stream' costs no more than its size
    tries, budget = 0, MAX_TOTAL_INFLATE
    for match in re.finditer(rb"stream\r?\n", pdf):
        at = match.end()
        if at + 1 >= len(pdf) or pdf[at] & 0x0F != 8 or (pdf[at] << 8 | pdf[at + 1]) % 31:
            continue  # not a zlib header (RFC 1950: deflate, header check bits)
        tries += 1
        if tries > MAX_DAMAGED_STREAMS or budget <= 0:
            return None  # a hostile file: give up rather than inflate without end
        try:
            data = zlib.decompressobj().decompress(view[at:at + 1_000_000], min(MAX_INFLATE, budget))
        except zlib.error:
            continue
        budget -= len(data)
        if b'"agreements-kit/manifest"' in data:
            try:
                value = json.loads(data)
            except (ValueError, RecursionError):
                continue
            return value if isinstance(value, dict) else None
    return None
