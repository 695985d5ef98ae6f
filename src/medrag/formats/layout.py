"""Positioned lines of text (a PDF's text layer, or OCR) as markdown: headings recovered from font size
and weight, lines of one paragraph joined, tables as rows, and where each page starts."""

from collections import Counter
from dataclasses import dataclass

from ..textnorm import fold, join_line, join_spaced
from .base import Writer

# A line this much larger than the body text is a heading; a bold line of body size is one when short.
HEADING_RATIO = 1.15
SHORT_HEADING = 30
TERMINAL = tuple("。！？；.!?;:：，,")


@dataclass(frozen=True)
class Line:
    """One line of text on a page, its font size and weight, and where it is (points from the top left)."""

    text: str
    size: float
    bold: bool
    top: float
    bottom: float
    x0: float


@dataclass(frozen=True)
class Table:
    """A table on a page: its top edge and its rows of cells."""

    top: float
    rows: list[list[str]]


def clean_line(text: str) -> str:
    """A line as extraction gives it, folded and without the spaces it put beside Chinese characters."""
    return join_spaced(fold(" ".join(text.split())))


def write(pages: list[list[Line | Table]], out: Writer) -> list[int]:
    """Each page's lines and tables into `out`, top to bottom; where each page starts in its text."""
    lines = [item for page in pages for item in page if isinstance(item, Line) and item.text]
    level_of = heading_levels(lines)
    starts = []
    for items in pages:
        starts.append(out.offset)
        paragraph: list[Line] = []
        level = 0
        margin = min((item.x0 for item in items if isinstance(item, Line)), default=0.0)
        for item in sorted(items, key=lambda item: item.top):
            if isinstance(item, Table):
                _flush(out, paragraph, level)
                out.table(item.rows)
                continue
            if not item.text:
                continue
            if paragraph and level_of(item) == level and not _breaks(paragraph[-1], item, margin, level):
                paragraph.append(item)
                continue
            _flush(out, paragraph, level)
            paragraph, level = [item], level_of(item)
        _flush(out, paragraph, level)
    return starts


def heading_levels(lines: list[Line]):
    """A function giving a line's heading level (1 is the document's title) or 0 for body text."""
    if not lines:
        return lambda line: 0
    weights: Counter[float] = Counter()
    for line in lines:
        weights[_size(line)] += len(line.text)
    body = weights.most_common(1)[0][0]

    def is_bold_heading(line: Line) -> bool:
        return (
            line.bold and _size(line) >= body and len(line.text) <= SHORT_HEADING and not line.text.endswith(TERMINAL)
        )

    # Sizes within a tenth of each other are one level (OCR measures the same font a little differently).
    levels: list[list[float]] = []
    for size in sorted({_size(line) for line in lines if _size(line) >= body * HEADING_RATIO}, reverse=True):
        if levels and size >= levels[-1][0] * 0.9:
            levels[-1].append(size)
        else:
            levels.append([size])
    # The largest size is the title only when it is used once; else every heading is a section's.
    first = 1 if levels and sum(_size(line) in levels[0] for line in lines) == 1 else 2
    by_size = {size: first + i for i, sizes in enumerate(levels) for size in sizes}
    bold_level = first + len(levels)

    def level(line: Line) -> int:
        if _size(line) in by_size:
            return by_size[_size(line)]
        return bold_level if is_bold_heading(line) else 0

    return level


def _size(line: Line) -> float:
    return round(line.size * 2) / 2


def _breaks(previous: Line, line: Line, margin: float, level: int) -> bool:
    """Whether `line` starts a new paragraph after `previous`: a gap, or a first-line indent."""
    gap = line.top - previous.bottom
    if gap > 0.6 * line.size or gap < -0.5 * line.size:
        return True
    return level == 0 and line.x0 > margin + 0.9 * line.size


def _flush(out: Writer, paragraph: list[Line], level: int) -> None:
    """A paragraph's lines as one block (a heading when `level`), then the paragraph emptied."""
    if not paragraph:
        return
    text = paragraph[0].text
    for line in paragraph[1:]:
        text = join_line(text, line.text)
    if level:
        out.heading(level, text)
    else:
        out.add(text)
    paragraph.clear()
