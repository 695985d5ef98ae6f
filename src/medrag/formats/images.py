"""Images (.png, .jpg) of text: recognised by OCR, within the pixels and seconds allowed."""

import io

from ..errors import BadInputError, TooLargeError
from .base import Extracted, Limits, Writer
from .layout import write

# Past this many pixels an image is refused (Pillow's own guard against decompression bombs is 179M).
MAX_PIXELS = 40_000_000
# Larger images are scaled down to this longest side before OCR: enough for text, bounded in time.
MAX_SIDE = 3000


def extract(data: bytes, label: str, limits: Limits, progress, ocr_starts) -> Extracted:
    import numpy as np
    from PIL import Image

    from . import ocr

    if not limits.ocr:
        raise BadInputError(f"{label}: an image is read by OCR, and OCR is off (MEDRAG_OCR)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise TooLargeError(f"{label}: {image.width}×{image.height} pixels; at most {MAX_PIXELS} are read")
            image.draft("RGB", (MAX_SIDE, MAX_SIDE))  # JPEG: decode at a reduced size when it is large
            picture = image.convert("RGB")
    except TooLargeError:
        raise
    except Exception as error:  # Pillow raises many types for a damaged image
        raise BadInputError(f"{label}: damaged image ({type(error).__name__}: {error})") from error
    scale = min(1.0, MAX_SIDE / max(picture.size))
    if scale < 1.0:
        picture = picture.resize((round(picture.width * scale), round(picture.height * scale)))
    pixels = np.asarray(picture)
    ocr_starts()
    lines = [] if ocr.blank(pixels) else ocr.recognise(pixels, 1.0)
    progress(1, 1)
    out = Writer(label, limits)
    write([list(lines)], out)
    if not out.text:
        raise BadInputError(f"{label}: no text was recognised in the image")
    return Extracted(out.text)
