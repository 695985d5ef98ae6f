"""Text recognition offline with RapidOCR (PP-OCRv4 models run by onnxruntime, shipped inside the
`rapidocr-onnxruntime` wheel): an image's lines, positioned as `layout` reads them."""

from functools import lru_cache

from .layout import Line, clean_line

# A box's margins, as a share of its height: the recogniser pads each box on both sides.
BOX_MARGIN = 0.3
MIN_SCORE = 0.5


@lru_cache(maxsize=1)
def engine():
    from rapidocr_onnxruntime import RapidOCR

    # One thread: the service's cores answer questions meanwhile.
    return RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1)


def blank(image) -> bool:
    """Whether an image (an RGB array) is an empty page: nearly one colour all over."""
    return float(image.std()) < 2.0


def recognise(image, scale: float) -> list[Line]:
    """The lines of text in an RGB image rendered at `scale` pixels a point, top to bottom."""
    boxes, _ = engine()(image[:, :, ::-1])  # the engine reads OpenCV's BGR order
    found = []
    for corners, text, score in boxes or []:
        if float(score) < MIN_SCORE or not text.strip():
            continue
        xs = [point[0] / scale for point in corners]
        ys = [point[1] / scale for point in corners]
        top, bottom = min(ys), max(ys)
        text = clean_line(text)
        found.append(Line(text, font_size(max(xs) - min(xs), bottom - top, text), False, top, bottom, min(xs)))
    return merge_rows(found)


def font_size(width: float, height: float, text: str) -> float:
    """A line's font size from its box: Chinese characters are square, so width over their count is
    steadier than the box's height (Latin letters count about half a character)."""
    characters = sum(1.0 if ord(character) >= 0x2E80 else 0.55 for character in text)
    return max(width - BOX_MARGIN * height, 1.0) / max(characters, 1.0)


def merge_rows(lines: list[Line]) -> list[Line]:
    """Boxes that sit on one row of text as one line, left to right."""
    rows: list[list[Line]] = []
    for line in sorted(lines, key=lambda line: (line.top + line.bottom) / 2):
        middle = (line.top + line.bottom) / 2
        if rows:
            last = rows[-1][-1]
            if abs(middle - (last.top + last.bottom) / 2) < 0.4 * (last.bottom - last.top):
                rows[-1].append(line)
                continue
        rows.append([line])
    merged = []
    for row in rows:
        row.sort(key=lambda line: line.x0)
        merged.append(
            Line(
                clean_line(" ".join(line.text for line in row)),
                max(line.size for line in row),
                False,
                min(line.top for line in row),
                max(line.bottom for line in row),
                row[0].x0,
            )
        )
    return merged
