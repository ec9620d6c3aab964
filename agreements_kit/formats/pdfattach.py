"""The manifest attached to an agreement PDF (an associated file, /AF).

Read with pyHanko's PDF reader; a damaged PDF gives None, never an exception.
"""

from __future__ import annotations

import json
from typing import Any


def embedded_manifest(pdf: bytes) -> bytes | None:
    """The ``manifest.json`` attached to a PDF, read with pyHanko's PDF reader; None if unreadable."""
    import io

    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        names = reader.root["/Names"]["/EmbeddedFiles"]["/Names"]
        for i in range(0, len(names), 2):
            if str(names[i]) == "manifest.json":
                return names[i + 1].get_object()["/EF"]["/F"].get_object().data
    except Exception:  # a damaged PDF can fail in many ways; the caller reports "unreadable"
        return None
    return None


def manifest_from_damaged_pdf(pdf: bytes) -> dict[str, Any] | None:
    """Find the embedded manifest in a PDF the reader rejects (truncated, say) by inflating its streams."""
    import re
    import zlib

    for match in re.finditer(rb"stream\r?\n", pdf):
        try:
            data = zlib.decompressobj().decompress(pdf[match.end():match.end() + 1_000_000])
        except zlib.error:
            continue
        if b'"agreements-kit/manifest"' in data:
            try:
                return json.loads(data)
            except ValueError:
                continue
    return None
