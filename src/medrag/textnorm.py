"""Text normalisation: what indexing and querying share (full-width forms, Traditional Chinese), and the
cleaning of extracted text (compatibility code points folded, spaces between Chinese characters and
hyphenation across lines undone)."""

import re
import unicodedata
from functools import lru_cache

from opencc import OpenCC

_T2S = OpenCC("t2s")
# Taiwan's words to the mainland's (資料 → 数据, 軟體 → 软件), for questions written the Taiwan way.
_S2T = OpenCC("s2t")
_TW2SP = OpenCC("tw2sp")
# What a reader or the LLM could take for a citation marker: a number, or a list of them, in square,
# full-width or lenticular brackets ([1], [1, 2], ［1］, 【12】).
BRACKETED_NUMBERS = re.compile(r"[\[【［]\s*(\d+(?:\s*[,，、]\s*\d+)*)\s*[\]】］]")


@lru_cache(maxsize=4096)
def normalize(text: str) -> str:
    """NFKC (full-width letters and digits to ASCII) and Traditional to Simplified Chinese."""
    return _T2S.convert(unicodedata.normalize("NFKC", text))


def traditional(text: str) -> bool:
    """Whether a text is written (at least in part) in Traditional Chinese characters."""
    return normalize(text) != unicodedata.normalize("NFKC", text)  # (normalize's cache serves it twice)


def mainland(text: str) -> str:
    """A text written the Taiwan way in the mainland's Simplified words: 資料 → 数据, 軟體 → 软件, 網路 → 网络
    (characters alone, as `normalize` maps them, give 资料, 软体, 网路)."""
    return _TW2SP.convert(_S2T.convert(text))


def neutralise_markers(text: str) -> str:
    """`text` with bracketed numbers put in parentheses, `[1]` → `(1)`: a document cannot forge a marker.

    ASCII parentheses, not look-alike brackets, since NFKC maps the full-width ones back to `[` and `]`.
    """
    return BRACKETED_NUMBERS.sub(r"(\1)", text)


# Chinese punctuation lives in the full-width block; NFKC would turn it into ASCII (，→ , ？→ ?), which
# changes how a passage reads, so stored text keeps it and folds everything else.
FULL_WIDTH_PUNCTUATION = "\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff60"
FOLDABLE = re.compile(f"[^\\x00-\\x7f{FULL_WIDTH_PUNCTUATION}]+")
# Chinese characters and CJK punctuation (with the full-width forms): text set without spaces.
CJK = "\u2e80-\u2fdf\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
SPACE_BY_CJK = re.compile(f"(?<=[{CJK}])[ \\t\u00a0]+|[ \\t\u00a0]+(?=[{CJK}])")


def fold(text: str) -> str:
    """Compatibility code points folded (NFKC: Kangxi radicals ⾏ → 行, full-width letters and digits,
    ligatures), Chinese full-width punctuation kept; what every format's stored text goes through."""
    if text.isascii():
        return text
    return FOLDABLE.sub(lambda match: unicodedata.normalize("NFKC", match.group()), text)


def join_spaced(text: str) -> str:
    """Spaces that PDF and OCR extraction put beside Chinese characters removed (`选取了 532 名` → `选取了532名`)."""
    return SPACE_BY_CJK.sub("", text)


def join_line(before: str, after: str) -> str:
    """Two lines of one paragraph as one: a word hyphenated across them joined, no space beside Chinese."""
    if before.endswith("-") and before[-2:-1].islower() and after[:1].islower():
        return before[:-1] + after
    if not before or not after or before.endswith("-") or SPACE_BY_CJK.search(f"{before[-1]} {after[0]}"):
        return before + after
    return f"{before} {after}"
