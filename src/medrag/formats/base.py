"""What every format parser takes and gives: its limits, and the markdown it extracted."""

from dataclasses import dataclass, field

from ..errors import TooLargeError


@dataclass(frozen=True)
class Limits:
    """Bounds on parsing one file (Settings' max_document_chars, max_decompressed_bytes, max_pdf_pages,
    parse_timeout, max_sheet_rows, ocr, ocr_max_pages, ocr_timeout, max_parse_memory)."""

    chars: int = 2_000_000
    decompressed: int = 64 * 2**20
    pages: int = 500
    seconds: float = 60.0
    rows: int = 100_000
    ocr: bool = True
    ocr_pages: int = 100
    ocr_seconds: float = 300.0
    memory: int = 2 * 2**30


@dataclass
class Extracted:
    """A file's text as markdown, its title, where each page starts in the text (PDFs), and the pages
    that could not be read, each with why."""

    text: str
    title: str = ""
    pages: list[int] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)


class Writer:
    """Markdown blocks appended one by one, counted against the characters allowed."""

    def __init__(self, label: str, limits: Limits):
        self.label, self.limit = label, limits.chars
        self.blocks: list[str] = []
        self.length = 0

    def add(self, block: str) -> None:
        block = block.strip()
        if not block:
            return
        self.blocks.append(block)
        self.length += len(block) + 2
        if self.length > self.limit:
            raise TooLargeError(f"{self.label}: more than {self.limit} characters of text (MEDRAG_MAX_DOCUMENT_CHARS)")

    def heading(self, level: int, text: str) -> None:
        text = " ".join(text.split())
        if text:
            self.add(f"{'#' * min(max(level, 1), 6)} {text}")

    def table(self, rows: list[list[str]]) -> None:
        """A table as one sentence a row, each value with its column's name (the first row's cells)."""
        for line in row_sentences(rows):
            self.add(line)

    @property
    def offset(self) -> int:
        """Where the next block will start in `text`."""
        return self.length

    @property
    def text(self) -> str:
        return "\n\n".join(self.blocks)


def row_sentences(rows: list[list[str]]) -> list[str]:
    """`指标：灵敏度，数值：0.87。` for each row after the header (commas: a semicolon would end the
    sentence for the chunker and the reader); a one-row table is its cells."""
    rows = [[" ".join((cell or "").split()) for cell in row] for row in rows]
    rows = [row for row in rows if any(row)]
    if not rows:
        return []
    if len(rows) == 1:
        return ["，".join(cell for cell in rows[0] if cell) + "。"]
    header = rows[0]
    sentences = []
    for row in rows[1:]:
        pairs = []
        for i, value in enumerate(row):
            if not value or (i and value == row[i - 1] and header[i] == header[i - 1]):
                continue  # an empty cell, or a merged cell repeated
            name = header[i] if i < len(header) and header[i] else f"第{i + 1}列"
            pairs.append(f"{name}：{value}")
        if pairs:
            sentences.append("，".join(pairs) + "。")
    return sentences
