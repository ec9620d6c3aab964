"""Drawn signatures: what the signature pad sends, checked and redrawn before it is kept.

The pad sends a PNG as a ``data:image/png;base64,...`` URL. Nothing from the browser
is stored as it came: the bytes must be one well-formed PNG (signature, chunks with
good CRCs, IHDR first, IEND last, nothing after it), no larger than ``MAX_BYTES`` and
``MAX_WIDTH`` x ``MAX_HEIGHT`` pixels (read from the header before anything is
inflated), whose pixel data inflates to exactly the size its header implies (inflating
stops one byte past it, so a small file that would inflate to a huge image costs
nothing). Pillow then decodes it and encodes a fresh RGBA PNG with no metadata; that
new PNG is the one stored, and the one whose SHA-256 the signing record names.
Anything else gets one message, :data:`REFUSED`.
"""

from __future__ import annotations

import base64
import binascii
import io
import struct
import zlib

from agreements_kit.errors import DrawingError

PREFIX = "data:image/png;base64,"
MAX_BYTES = 256 * 1024
MAX_WIDTH = 1200  # the pad is 600 x 180; twice that leaves room for a high-density screen
MAX_HEIGHT = 600
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REFUSED = (f"the drawn signature could not be used: it must be a picture from the signature pad "
           f"(a PNG of at most {MAX_BYTES // 1024} KiB and {MAX_WIDTH} x {MAX_HEIGHT} pixels)")


def from_data_url(value: str) -> bytes | None:
    """The clean PNG of the pad's data URL (None when nothing was drawn). Raises DrawingError."""
    if not value:
        return None
    if not value.startswith(PREFIX) or len(value) > len(PREFIX) + (MAX_BYTES * 4) // 3 + 4:
        raise DrawingError(REFUSED)
    try:
        data = base64.b64decode(value[len(PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise DrawingError(REFUSED) from None
    return clean_png(data)


def clean_png(data: bytes) -> bytes:
    """``data`` checked as one small PNG and re-encoded by Pillow (RGBA, no metadata). Raises DrawingError.

    The pixel data is inflated here first, to exactly the size the header implies (never
    more), because Pillow alone would pass a truncated or damaged image: WeasyPrint, loaded
    in the same process, sets Pillow's ``LOAD_TRUNCATED_IMAGES`` for everyone."""
    width, height = _check_pixels(data)
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            if image.size != (width, height) or getattr(image, "n_frames", 1) != 1:
                raise DrawingError(REFUSED)  # an animated PNG, or a header Pillow reads otherwise
            image.load()
            pixels = image.convert("RGBA")
    except DrawingError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError, zlib.error):
        raise DrawingError(REFUSED) from None
    clean = Image.new("RGBA", pixels.size)
    clean.paste(pixels)  # a new image: no text, profile or other chunk of the original survives
    out = io.BytesIO()
    clean.save(out, format="PNG")
    return out.getvalue()


_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel
_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}


def _check_pixels(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG that is exactly right: chunks, header, and pixel data complete."""
    header, idat = _chunks(data)
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", header)
    if not (1 <= width <= MAX_WIDTH and 1 <= height <= MAX_HEIGHT) or depth not in _DEPTHS.get(colour, ()) \
            or (compression, filtering, interlace) != (0, 0, 0):
        raise DrawingError(REFUSED)  # too large, or not what a signature pad makes (interlaced, say)
    stride = 1 + (width * _CHANNELS[colour] * depth + 7) // 8
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(idat, height * stride + 1)  # never more than one byte past the expected size
    except zlib.error:
        raise DrawingError(REFUSED) from None
    if len(raw) != height * stride or not inflater.eof or inflater.unused_data or inflater.unconsumed_tail:
        raise DrawingError(REFUSED)  # truncated, too much (a decompression bomb), or data after the stream
    if any(raw[row] > 4 for row in range(0, len(raw), stride)):
        raise DrawingError(REFUSED)  # a row filter PNG does not have
    return width, height


def _chunks(data: bytes) -> tuple[bytes, bytes]:
    """The IHDR body and the joined IDAT data of a PNG whose chunk structure is exactly right."""
    if len(data) > MAX_BYTES or not data.startswith(PNG_MAGIC):
        raise DrawingError(REFUSED)
    position, header, idat = len(PNG_MAGIC), b"", []
    while True:
        if position + 12 > len(data):
            raise DrawingError(REFUSED)  # truncated: no IEND
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        end = position + 12 + length
        if end > len(data):
            raise DrawingError(REFUSED)
        body = data[position + 8:end - 4]
        (crc,) = struct.unpack(">I", data[end - 4:end])
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            raise DrawingError(REFUSED)
        if (kind == b"IHDR") != (not header):  # IHDR first, and only once
            raise DrawingError(REFUSED)
        if kind == b"IHDR":
            if length != 13:
                raise DrawingError(REFUSED)
            header = body
        elif kind == b"IDAT":
            idat.append(body)
        position = end
        if kind == b"IEND":
            if position != len(data) or not idat:
                raise DrawingError(REFUSED)  # bytes after the image's end: not stored, not signed
            return header, b"".join(idat)
