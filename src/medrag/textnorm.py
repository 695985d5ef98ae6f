"""Text normalisation shared by indexing and querying: full-width forms and Traditional Chinese."""

import re
import unicodedata
from functools import lru_cache

from opencc import OpenCC

_T2S = OpenCC("t2s")
# What a reader or the LLM could take for a citation marker: a number, or a list of them, in square,
# full-width or lenticular brackets ([1], [1, 2], ［1］, 【12】).
BRACKETED_NUMBERS = re.compile(r"[\[【［]\s*(\d+(?:\s*[,，、]\s*\d+)*)\s*[\]】］]")


@lru_cache(maxsize=4096)
def normalize(text: str) -> str:
    """NFKC (full-width letters and digits to ASCII) and Traditional to Simplified Chinese."""
    return _T2S.convert(unicodedata.normalize("NFKC", text))


def neutralise_markers(text: str) -> str:
    """`text` with bracketed numbers put in parentheses, `[1]` → `(1)`: a document cannot forge a marker.

    ASCII parentheses, not look-alike brackets, since NFKC maps the full-width ones back to `[` and `]`.
    """
    return BRACKETED_NUMBERS.sub(r"(\1)", text)
