"""PDF: pypdf checks the file within the limits (encryption, pages, inflated contents), pdfplumber reads
each page's lines with their fonts and its tables, and a page without a text layer is recognised by OCR."""

import io
import logging
import time

from ..errors import BadInputError, MedragError, TooLargeError, UnsupportedTypeError
from .base import Extracted, Limits, Writer
from .layout import Line, Table, clean_line, write

# Pages are rendered for OCR at 216 dpi (scale 3 over 72 points an inch), no side past this many pixels:
# at 144 dpi the recogniser loses the spaces between English words.
RENDER_SCALE = 3.0
MAX_RENDER_SIDE = 4000


def check(data: bytes, label: str, limits: Limits) -> str:
    """Refuse an encrypted PDF, one past the page limit or one whose page contents inflate past the
    limit (before any text is extracted); the title from its metadata."""
    from pypdf import PdfReader
    from pypdf.errors import LimitReachedError

    if not data.startswith(b"%PDF-"):
        raise UnsupportedTypeError(f"{label}: not a PDF (it does not start with %PDF-)")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise BadInputError(f"{label}: the PDF is encrypted")
        if len(reader.pages) > limits.pages:
            raise TooLargeError(
                f"{label}: {len(reader.pages)} pages; the limit is {limits.pages} (MEDRAG_MAX_PDF_PAGES)"
            )
        inflated = 0
        for page in reader.pages:
            # Inflating a page's contents is cheap next to extracting its text: a page built to
            # inflate to a huge content stream is refused before its text is extracted.
            contents = page.get_contents()
            inflated += len(contents.get_data()) if contents is not None else 0
            if inflated > limits.decompressed:
                raise TooLargeError(
                    f"{label}: the page contents inflate past {limits.decompressed} bytes "
                    "(MEDRAG_MAX_DECOMPRESSED_BYTES)"
                )
        return ((reader.metadata.title or "") if reader.metadata else "").strip()
    except MedragError:
        raise
    except LimitReachedError as error:  # pypdf's own bound on a stream's inflated size
        raise TooLargeError(f"{label}: {error}") from error
    except Exception as error:  # pypdf raises many types for a damaged file
        raise BadInputError(f"{label}: malformed PDF ({error})") from error


def extract(data: bytes, label: str, limits: Limits, progress, ocr_starts) -> Extracted:
    import pdfplumber

    title = check(data, label, limits)
    logging.getLogger("pdfminer").setLevel(logging.ERROR)  # font warnings of ordinary files
    failures: dict[str, str] = {}
    pages: list[list[Line | Table]] = []
    recogniser = Recogniser(data, limits, ocr_starts)
    try:
        with pdfplumber.open(io.BytesIO(data)) as document:
            total = len(document.pages)
            for number, page in enumerate(document.pages, start=1):
                items = text_layer(page)
                if not items and _drawn(page):
                    items, failure = recogniser.page(number)
                    if failure:
                        failures[f"page {number}"] = failure
                pages.append(items)
                page.close()
                progress(number, total)
    except MedragError:
        raise
    except Exception as error:  # pdfminer raises many types for a damaged file
        raise BadInputError(f"{label}: malformed PDF ({type(error).__name__}: {error})") from error
    out = Writer(label, limits)
    starts = write(pages, out)
    if not out.text:
        why = "; ".join(f"{where}: {reason}" for where, reason in list(failures.items())[:3])
        raise BadInputError(f"{label}: the PDF has no extractable text" + (f" ({why})" if why else ""))
    return Extracted(out.text, title=title, pages=starts, failures=failures)


def text_layer(page) -> list[Line | Table]:
    """The lines of a page's text layer (outside its tables) with their font size and weight, and its tables."""
    tables = page.find_tables()
    boxes = [table.bbox for table in tables]
    items: list[Line | Table] = [Table(table.bbox[1], table.extract()) for table in tables]
    for line in page.extract_text_lines(return_chars=True):
        middle = ((line["x0"] + line["x1"]) / 2, (line["top"] + line["bottom"]) / 2)
        if any(x0 <= middle[0] <= x1 and top <= middle[1] <= bottom for x0, top, x1, bottom in boxes):
            continue
        chars = [char for char in line["chars"] if char["text"].strip()]
        if not chars:
            continue
        sizes = sorted(char["size"] for char in chars)
        bold = sum("bold" in char["fontname"].lower() or "black" in char["fontname"].lower() for char in chars)
        items.append(
            Line(
                text=clean_line(line["text"]),
                size=sizes[len(sizes) // 2],
                bold=bold * 2 > len(chars),
                top=line["top"],
                bottom=line["bottom"],
                x0=line["x0"],
            )
        )
    return items


def _drawn(page) -> bool:
    """Whether anything at all is drawn on a page without text (an image, a line, a shape): an empty
    page is neither rendered nor recognised."""
    return any(page.objects.get(kind) for kind in ("image", "rect", "line", "curve"))


class Recogniser:
    """OCR of the pages without a text layer, within the pages and seconds the limits allow."""

    def __init__(self, data: bytes, limits: Limits, starts):
        self.data, self.limits, self.starts = data, limits, starts
        self.document = None
        self.pages = 0
        self.seconds = 0.0

    def page(self, number: int) -> tuple[list[Line | Table], str | None]:
        """The lines OCR finds on page `number` (1-based), or why it was not recognised."""
        limits = self.limits
        if not limits.ocr:
            return [], "no text layer, and OCR is off (MEDRAG_OCR)"
        if self.pages >= limits.ocr_pages:
            return [], f"no text layer, and {limits.ocr_pages} pages were recognised already (MEDRAG_OCR_MAX_PAGES)"
        if self.seconds >= limits.ocr_seconds:
            return [], f"no text layer, and OCR used its {limits.ocr_seconds:g} s already (MEDRAG_OCR_TIMEOUT)"
        started = time.monotonic()
        try:
            from . import ocr

            image, scale = self._render(number)
            if ocr.blank(image):
                return [], None  # an empty page: nothing to read, nothing wrong
            if self.pages == 0:
                self.starts()
            self.pages += 1
            return list(ocr.recognise(image, scale)), None
        except MedragError as error:
            return [], str(error)
        except Exception as error:  # a page pdfium cannot render, or the OCR engine failing on it
            return [], f"OCR failed ({type(error).__name__}: {error})"
        finally:
            self.seconds += time.monotonic() - started

    def _render(self, number: int):
        import numpy as np
        import pypdfium2

        if self.document is None:
            self.document = pypdfium2.PdfDocument(self.data)
        page = self.document[number - 1]
        width, height = page.get_size()
        scale = min(RENDER_SCALE, MAX_RENDER_SIDE / max(width, height, 1))
        image = page.render(scale=scale).to_pil().convert("RGB")
        return np.asarray(image), scale
