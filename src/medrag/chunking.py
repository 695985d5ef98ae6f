"""Chinese-aware splitting: headings first, then sentences, packed to a size with overlap.

Sizes count visible characters: markdown link markup `[label](url)` counts as its label and
`**` emphasis counts as nothing, so URLs never crowd out text. Every chunk keeps its raw span
`[start, end)` in the source, so `source[start:end]` is exactly the text it came from.
"""

import re
from dataclasses import dataclass

from langchain_text_splitters import RecursiveCharacterTextSplitter

from .textnorm import normalize
from .types import Chunk, Document

LINK = re.compile(r"\[([^\[\]\n]*)\]\((https?://[^()\s]+)\)")
EMPHASIS = re.compile(r"\*\*|__")
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
RULE = re.compile(r"^\s*([-*_])(\s*\1){2,}\s*$")
# A sentence ends after Chinese or Western terminal punctuation, with any closing quotes or
# brackets that follow it, at a period followed by a capitalised word, or at a line break.
SENTENCE_END = re.compile(r"(?:[。！？；…!?;]+[”’」』）)\]]*|\.(?=\s+[A-Z])|\n)")
# Where an over-long sentence may be cut, best first.
SOFT_BREAKS = ["，", "、", "：", ",", ":", " ", ""]


@dataclass(frozen=True)
class Piece:
    """A chunk before it gets ids: raw span, heading path, clean text and cited URLs."""

    start: int
    end: int
    section: tuple[str, ...]
    text: str
    links: tuple[str, ...]


def clean(raw: str) -> str:
    """Visible text of markdown: links become their labels, emphasis marks disappear."""
    return EMPHASIS.sub("", LINK.sub(r"\1", raw))


def visible_len(raw: str) -> int:
    return len(clean(raw))


def links_in(raw: str) -> tuple[str, ...]:
    """URLs linked inside `raw`, first occurrence order, no repeats."""
    return tuple(dict.fromkeys(match.group(2) for match in LINK.finditer(raw)))


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Spans of sentences in text[start:end], whitespace-trimmed, none empty."""
    end = len(text) if end is None else end
    spans = []
    position = start
    for match in SENTENCE_END.finditer(text, start, end):
        spans.append((position, match.end()))
        position = match.end()
    spans.append((position, end))
    return [span for span in (_trim(text, s, e) for s, e in spans) if span[0] < span[1]]


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def sections(text: str) -> list[tuple[tuple[str, ...], int, int]]:
    """Split markdown into (heading path, body start, body end); heading lines are not bodies.

    The first level-1 heading is the document's title and stays out of the path.
    """
    result = []
    path: list[tuple[int, str]] = []
    body_start = 0
    title_seen = False
    offset = 0
    for line in text.splitlines(keepends=True):
        match = HEADING.match(line.rstrip("\r\n"))
        if match:
            result.append((tuple(title for _, title in path), body_start, offset))
            level, title = len(match.group(1)), clean(match.group(2)).strip()
            if level == 1 and not title_seen:
                title_seen = True
                path = []
            else:
                path = [(lvl, t) for lvl, t in path if lvl < level] + [(level, title)]
            body_start = offset + len(line)
        elif RULE.match(line):
            # A horizontal rule is decoration: close the body before it, open one after it.
            result.append((tuple(title for _, title in path), body_start, offset))
            body_start = offset + len(line)
        offset += len(line)
    result.append((tuple(title for _, title in path), body_start, len(text)))
    return [(p, s, e) for p, s, e in (_with_trim(text, *r) for r in result) if s < e]


def _with_trim(text: str, path: tuple[str, ...], start: int, end: int):
    start, end = _trim(text, start, end)
    return path, start, end


def _cut_long(text: str, start: int, end: int, size: int) -> list[tuple[int, int]]:
    """Cut one over-long sentence into spans of at most `size` visible characters."""
    splitter = RecursiveCharacterTextSplitter(
        separators=SOFT_BREAKS,
        chunk_size=size,
        chunk_overlap=0,
        length_function=visible_len,
        keep_separator="end",
        strip_whitespace=False,
    )
    spans = []
    position = start
    for part in splitter.split_text(text[start:end]):
        if text.startswith(part, position):
            spans.append((position, position + len(part)))
            position += len(part)
    if position != end or any(visible_len(text[s:e]) > size for s, e in spans):
        # The splitter did not tile the sentence exactly (or cut inside link markup, where
        # visible length is not additive): fall back to cuts on character positions.
        spans = _hard_cut(text, start, end, size)
    return [span for span in (_trim(text, s, e) for s, e in spans) if span[0] < span[1]]


def _hard_cut(text: str, start: int, end: int, size: int) -> list[tuple[int, int]]:
    spans = []
    position = start
    while position < end:
        stop = position + 1
        while stop < end and visible_len(text[position : stop + 1]) <= size:
            stop += 1
        spans.append((position, stop))
        position = stop
    return spans


def split(text: str, size: int, overlap: int) -> list[Piece]:
    """Split markdown or plain text into pieces of at most `size` visible characters."""
    if overlap >= size:
        raise ValueError(f"overlap ({overlap}) must be smaller than size ({size})")
    pieces = []
    for path, body_start, body_end in sections(text):
        units = []
        for s, e in sentence_spans(text, body_start, body_end):
            # A cut of an over-long sentence may hold only markup ("**"), which shows nothing: dropped.
            spans = _cut_long(text, s, e, size) if visible_len(text[s:e]) > size else [(s, e)]
            units.extend(span for span in spans if visible_len(text[span[0] : span[1]]) > 0)
        for first, last in _pack(text, units, size, overlap):
            start, end = units[first][0], units[last][1]
            raw = text[start:end]
            pieces.append(Piece(start, end, path, clean(raw), links_in(raw)))
    return pieces


def _pack(text: str, units: list[tuple[int, int]], size: int, overlap: int) -> list[tuple[int, int]]:
    """Group consecutive units into (first, last) index ranges, with trailing-unit overlap."""
    groups = []
    first = 0
    while first < len(units):
        last = first
        while last + 1 < len(units) and visible_len(text[units[first][0] : units[last + 1][1]]) <= size:
            last += 1
        groups.append((first, last))
        if last + 1 >= len(units):
            break
        # Start the next group with as many trailing units as fit in the overlap budget, but
        # always move forward by at least one unit.
        next_first = last + 1
        while (
            next_first - 1 > first
            and visible_len(text[units[next_first - 1][0] : units[last][1]]) <= overlap
            and visible_len(text[units[next_first - 1][0] : units[last + 1][1]]) <= size
        ):
            next_first -= 1
        first = next_first
    return groups


# A list item's marker ("- ", "1. "), which a sentence the reader quotes leaves out.
LIST_MARK = re.compile(r"\s*(?:[-*+]|\d+[.)、])\s+")


def reader_sentences(text: str) -> list[tuple[int, int]]:
    """The sentences of a chunk's text that the reader may quote: offsets without list markers or
    trailing space, four characters or more. Sentence vectors are made for exactly these, in order."""
    spans = []
    for start, end in sentence_spans(text):
        mark = LIST_MARK.match(text, start, end)
        if mark:
            start = mark.end()
        while end > start and text[end - 1].isspace():
            end -= 1
        if end - start >= 4:
            spans.append((start, end))
    return spans


def sentence_context(chunk: Chunk, start: int, end: int) -> str:
    """What is embedded for one of a chunk's sentences: its heading path, then the sentence."""
    return normalize(f"{' > '.join(chunk.section)}：{chunk.text[start:end]}")


def searchable_text(chunk: Chunk, document: Document) -> str:
    """What every store embeds and tokenises for a chunk: the passage with its title and heading path as context.

    A bullet such as "参数规模：1000亿参数" only says whose parameters they are in its headings.
    """
    context = " > ".join(part for part in (document.title, *chunk.section) if part)
    return normalize(f"{context}\n{chunk.text}" if context else chunk.text)


def _markup(raw: str) -> tuple[list[int], list[tuple[int, int]]]:
    """The raw index of each character of `clean(raw)`, and the raw spans of its markup: links and emphasis marks."""
    # The same two passes as `clean`, keeping track of where each surviving character came from.
    linked: list[int] = []
    spans = []
    position = 0
    for match in LINK.finditer(raw):
        linked.extend(range(position, match.start()))
        linked.extend(range(match.start(1), match.end(1)))
        spans.append((match.start(), match.end()))
        position = match.end()
    linked.extend(range(position, len(raw)))
    visible: list[int] = []
    position = 0
    for match in EMPHASIS.finditer("".join(raw[i] for i in linked)):
        visible.extend(linked[position : match.start()])
        # The two characters of a mark may lie on either side of link markup ("[a*](u)*"): the span covers both.
        spans.append((linked[match.start()], linked[match.end() - 1] + 1))
        position = match.end()
    visible.extend(linked[position:])
    return visible, spans


def raw_span(raw: str, start: int, end: int) -> tuple[int, int]:
    """The span of `raw` whose visible text is `clean(raw)[start:end]`, cutting no link or emphasis mark in half.

    It is the tightest span from the first to the last character of the range, grown until no link
    markup `[label](url)` and no `**`/`__` mark sticks out of it: a range that starts or ends inside a
    link's label takes in the whole link (and so the whole label), and an emphasis mark that pairs
    across a boundary comes in with both halves. So `clean(raw[:s]) + clean(raw[s:e]) + clean(raw[e:])
    == clean(raw)` always holds, and `clean(raw[s:e]) == clean(raw)[start:end]` whenever the range
    covers each link's label whole or not at all (and no lone `*`/`_` at a label's edge pairs with one
    outside it, as in `[a*](u)[*b](v)`). An empty range gives an empty span: just before the character
    it falls on, or before the markup that character is inside.
    """
    visible, spans = _markup(raw)
    if not 0 <= start <= end <= len(visible):
        raise ValueError(f"range [{start}, {end}) is outside the {len(visible)} visible characters")
    s = visible[start] if start < len(visible) else len(raw)
    if start == end:
        while inside := [a for a, b in spans if a < s < b]:
            s = min(inside)
        return s, s
    e = visible[end - 1] + 1
    while crossing := [(a, b) for a, b in spans if a < e and b > s and (a < s or b > e)]:
        s = min(s, *(a for a, _ in crossing))
        e = max(e, *(b for _, b in crossing))
    return s, e
