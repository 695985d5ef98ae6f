"""Text normalisation shared by indexing and querying: full-width forms and Traditional Chinese."""

import unicodedata
from functools import lru_cache

from opencc import OpenCC

_T2S = OpenCC("t2s")


@lru_cache(maxsize=4096)
def normalize(text: str) -> str:
    """NFKC (full-width letters and digits to ASCII) and Traditional to Simplified Chinese."""
    return _T2S.convert(unicodedata.normalize("NFKC", text))
