"""Deep links to a quoted sentence: its document's URL with a text fragment (WICG Text Fragments, `#:~:text=`).

A quote of at most `WHOLE` characters goes whole into the directive (`text=start`); a longer one
goes as `text=start,end`: its first and last words, at least `EDGE` characters each, cut where a
browser surely sees a word boundary (at whitespace, after punctuation, or between Chinese
characters and Latin letters or digits; never inside a run of Chinese characters, which browsers
split by dictionary), so the link stays short and still matches the whole sentence. When no such
cut fits in `LONGEST_EDGE` characters, or the end would be found earlier in the sentence, the
quote goes whole. The URL's own fragment is kept (the spec's `#frag:~:text=`: browsers that find
the text ignore it, the page's script still sees it), and any text directive it had is replaced.
"""

import unicodedata
from urllib.parse import quote, urlsplit

WHOLE = 40
EDGE = 10
LONGEST_EDGE = 30


def deep_link(url: str | None, text: str, page: int | None = None) -> str | None:
    """`url` with a text fragment for `text`, or for a PDF (`page` given) `#page=N`, which PDF viewers
    open and text fragments do not reach; None for a URL that is not http(s) or a blank text."""
    if not url or urlsplit(url).scheme.lower() not in ("http", "https"):
        return None
    directive = text_directive(text)
    if directive is None:
        return None
    base, _, fragment = url.partition("#")
    if page is not None:
        return f"{base}#page={page}"
    return f"{base}#{fragment.split(':~:', 1)[0]}:~:{directive}"


def text_directive(text: str) -> str | None:
    """`text=…` for a quote, whitespace collapsed as a browser renders it; None for a blank one."""
    text = " ".join(text.split())
    if not text:
        return None
    return "text=" + ",".join(encode(part) for part in edges(text))


def edges(text: str) -> tuple[str, ...]:
    """The whole text when short, else its first and last words (see the module's docstring)."""
    if len(text) <= WHOLE:
        return (text,)
    cuts = [i for i in range(1, len(text)) if is_boundary(text, i)]
    first = next((i for i in cuts if len(text[:i].rstrip()) >= EDGE), None)
    last = next((i for i in reversed(cuts) if len(text[i:].lstrip()) >= EDGE), None)
    if first is None or last is None or first > last:
        return (text,)
    start, end = text[:first].rstrip(), text[last:].lstrip()
    # The range runs to the first match of `end` after `start`: it must be the sentence's own end.
    if len(start) > LONGEST_EDGE or len(end) > LONGEST_EDGE or text.find(end, len(start)) != len(text) - len(end):
        return (text,)
    return start, end


def is_boundary(text: str, i: int) -> bool:
    """Whether a word surely ends between text[i - 1] and text[i] (see the module's docstring).

    Punctuation inside an ASCII word or number ("e-mail", "5.6", "1,000") is not a word boundary.
    """
    before, after = text[i - 1], text[i]
    if before.isspace() or after.isspace():
        return True
    if (han(before) and ascii_word(after)) or (ascii_word(before) and han(after)):
        return True
    if not unicodedata.category(before).startswith("P"):
        return False
    inside_word = i >= 2 and before.isascii() and ascii_word(text[i - 2]) and ascii_word(after)
    return not inside_word


def ascii_word(character: str) -> bool:
    return character.isascii() and character.isalnum()


def han(character: str) -> bool:
    """A Chinese character (the CJK Unified Ideographs blocks and their extensions)."""
    point = ord(character)
    return 0x3400 <= point <= 0x4DBF or 0x4E00 <= point <= 0x9FFF or 0xF900 <= point <= 0xFAFF or point >= 0x20000


def encode(part: str) -> str:
    """Percent-encoded UTF-8 with only unreserved characters left, and `-` encoded too.

    `-`, `,` and `&` mean something in a text directive; `quote` keeps `-` (unreserved in URLs), so
    it is encoded here by hand.
    """
    return quote(part, safe="").replace("-", "%2D")
