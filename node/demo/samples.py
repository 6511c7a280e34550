"""Sample evidence for the demo, made at start-up: a site photo (JPEG) and an
inspection record (PDF), each different per township so every file has its own hash.

Pillow draws the photo and fpdf2 writes the PDF (fpdf2 needs Pillow already). The PDF
embeds a subset of a CJK font when the machine has one (Debian's fonts-noto-cjk);
without one it is written in English, so the demo runs anywhere.
"""

from __future__ import annotations

import glob
import io
import zlib
from datetime import UTC, datetime
from functools import cache

from fpdf import FPDF
from PIL import Image, ImageDraw, ImageFont

_CJK_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/**/NotoSansCJK*Regular*.tt[cf]",
    "/usr/share/fonts/**/*CJK*Regular*.tt[cf]",
    "/usr/share/fonts/**/wqy*.tt[cf]",
)


_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@cache
def cjk_font() -> str | None:
    """A font file with Chinese glyphs on this machine, or None."""
    for pattern in _CJK_FONTS:
        found = sorted(glob.glob(pattern, recursive=True))
        if found:
            return found[0]
    return None


def photo(place: str, caption: str) -> bytes:
    """A 640x400 JPEG "site photo" of ``place``: sky, ground, a building and a caption."""
    seed = zlib.crc32(place.encode())
    image = Image.new("RGB", (640, 400), (150 + seed % 60, 190 + seed % 40, 230))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 260, 640, 400), fill=(110 + seed % 50, 140, 80))
    left = 80 + seed % 300
    wall, line = (200, 190, 170), (90, 80, 70)
    draw.rectangle((left, 140, left + 200, 300), fill=wall, outline=line, width=3)
    draw.polygon([(left - 20, 140), (left + 100, 70), (left + 220, 140)], fill=(160, 60, 50))
    draw.rectangle((left + 80, 220, left + 120, 300), fill=(100, 70, 50))
    font_file = cjk_font()
    font = (
        ImageFont.truetype(font_file, 26) if font_file else ImageFont.load_default(size=22)
    )
    text = f"{place} {caption}" if font_file else f"site photo {seed % 10_000:04d}"
    draw.rectangle((0, 352, 640, 400), fill=(0, 0, 0))
    draw.text((16, 360), text, fill=(255, 255, 255), font=font)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=80)
    return out.getvalue()


def record_pdf(title: str, lines: list[str]) -> bytes:
    """A one-page PDF record with ``title`` and ``lines`` (English if no CJK font)."""
    pdf = FPDF(format="A4")
    pdf.set_creation_date(_EPOCH)  # the same bytes for the same text
    pdf.add_page()
    font_file = cjk_font()
    if font_file:
        pdf.add_font("cjk", fname=font_file, collection_font_number=0)
        pdf.set_font("cjk", size=18)
    else:
        pdf.set_font("helvetica", size=18)
        title = "Inspection record"
        lines = [f"line {i + 1}: " + "".join(c if c.isascii() else "?" for c in line)
                 for i, line in enumerate(lines)]
    pdf.cell(w=0, h=14, text=title, new_x="LMARGIN", new_y="NEXT", align="C")
    pdf.set_font_size(12)
    for line in lines:
        pdf.multi_cell(w=0, h=8, text=line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
