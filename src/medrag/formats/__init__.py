"""Binary formats as markdown: headings as `#` lines, tables as one sentence a row, pages as offsets.

One module per format (`word`, `slides`, `sheets`, `pdf`, `images`), each with `extract(data, label,
limits, progress)`; `layout` turns positioned lines (a PDF's text layer or OCR) into markdown, and
`office` opens the zip an Office file is, within its limits. `corpus` calls `extract` in a child
process (`corpus.parse_isolated`), so a format's parser never runs inside the service.
"""

from collections.abc import Callable

from .base import Extracted, Limits

Progress = Callable[[int, int], None]
# The kinds parsed here (corpus.SUFFIXES names them); HTML goes through trafilatura in corpus.py.
KINDS = ("pdf", "docx", "pptx", "xlsx", "csv", "image")


def extract(
    kind: str,
    data: bytes,
    label: str,
    limits: Limits,
    progress: Progress | None = None,
    ocr_starts: Callable[[], None] | None = None,
) -> Extracted:
    """The markdown of a file of one of `KINDS`, within `limits`; `progress(done, total)` counts pages, and
    `ocr_starts()` is called before the first page or image is recognised (OCR has time of its own)."""
    from . import images, pdf, sheets, slides, word

    parsers = {
        "pdf": pdf.extract,
        "docx": word.extract,
        "pptx": slides.extract,
        "xlsx": sheets.extract_xlsx,
        "csv": sheets.extract_csv,
        "image": images.extract,
    }
    if kind in ("pdf", "image"):
        return parsers[kind](data, label, limits, progress or (lambda done, total: None), ocr_starts or (lambda: None))
    return parsers[kind](data, label, limits, progress or (lambda done, total: None))


__all__ = ["KINDS", "Extracted", "Limits", "Progress", "extract"]
