"""Question analysis, done once per request: normalised text, language, weighted content terms, names.

Retrieval, follow-up rewriting and answering read the `Query` this module makes instead of each
analysing the string again.
"""

import re

import jieba
import jieba.posseg as pseg

from .lexical import STOPWORDS, WORD
from .textnorm import normalize
from .types import Query

CJK = re.compile(r"[\u3400-\u9fff]")
CJK_RUN = re.compile(r"[\u3400-\u9fff]+")
# Words that shape a question rather than name what it asks about.
QUESTION_WORDS = frozenset(
    "什么 什么样 哪 哪个 哪些 哪家 哪里 哪儿 哪一天 哪年 几 多少 多 多大 多高 多长 多久 "
    "怎么 怎样 如何 为什么 是否 吗 呢 时候 名字 叫 是 有 请问 请 介绍 一下 告诉 我 你 它 他们 能 可以 会".split()
)
# Part-of-speech weights (jieba tags): nouns, names and foreign words carry a question's topic;
# verbs and adjectives are often paraphrased; the rest carries little.
POS_WEIGHTS = {"n": 1.0, "vn": 1.0, "eng": 1.0, "j": 1.0, "m": 0.8, "v": 0.3, "a": 0.3}
# Latin-script names: words with a capital after the first letter or a digit (MedGPT, GPT-4, MMed),
# capitalised words (Google Cloud), each optionally followed by a version number (Llama 3, PaLM 2).
LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-.+][A-Za-z0-9]+)*")
VERSION = re.compile(r" \d+(?:\.\d+)?(?![\d.])")
# Capitalised words that start English questions or refer back rather than name something.
NOT_NAMES = frozenset(
    "what which who whom whose when where why how is are was were do does did can could would should will "
    "tell please give list and or but the a an in on of for to by it its they them their this that these those "
    "he she his her compare describe explain i me my you your we our".split()
)
# jieba part-of-speech tags of proper names: people, places, organisations, other names, abbreviations.
NAME_TAGS = frozenset({"nr", "nrt", "nrfg", "ns", "nt", "nz", "j"})
POINTING_BACK = frozenset(
    "它 它们 其 该 此 这个 那个 这款 那款 这些 那些 这种 那种 他 她 他们 她们 上述 前者 后者 "
    "it its they them their this that these those he she his her".split()
)


def analyse(text: str) -> Query:
    """The analysed form of a question (or of a standalone query built from one)."""
    text = text.strip()
    normalized = normalize(text)
    return Query(text=text, normalized=normalized, language=language(text), terms=tuple(question_terms(normalized)))


def warm_up() -> None:
    """Load jieba's dictionaries now rather than during the first question (about a second)."""
    question_terms("预热")


def language(text: str) -> str:
    """'zh' when the text has Chinese characters, else 'en'."""
    return "zh" if CJK.search(text) else "en"


def question_terms(question: str) -> list[tuple[str, float]]:
    """Content terms of a question with their part-of-speech weights.

    A single Chinese character before another content word is often a segmentation slip
    (参数量 comes out as 参 | 数量), so the two are kept together as one term.
    """
    kept: list[tuple[int, str, float]] = []
    for position, (word, flag) in enumerate(pseg.lcut(normalize(question))):
        word = word.strip()
        if not word or not WORD.fullmatch(word) or word.lower() in STOPWORDS or word in QUESTION_WORDS:
            continue
        if flag == "m" and not any(c.isdigit() for c in word):
            continue  # 多少, 几: question words tagged as numerals
        weight = POS_WEIGHTS.get(flag, POS_WEIGHTS.get(flag[:1], 0.3))
        adjacent = kept and kept[-1][0] == position - 1
        if adjacent and len(kept[-1][1]) == 1 and CJK_RUN.fullmatch(kept[-1][1] + word):
            _, previous, previous_weight = kept.pop()
            word, weight = previous + word, max(weight, previous_weight)
        kept.append((position, word, weight))
    terms: dict[str, float] = {}
    for _, word, weight in kept:
        terms[word] = max(weight, terms.get(word, 0.0))
    return list(terms.items())


def entities(text: str) -> list[str]:
    """Names in a question, in order: Latin-script names and Chinese proper nouns."""
    text = normalize(text)
    names: list[str] = []
    last_end = -1
    for match in LATIN_WORD.finditer(text):
        word, end = match.group(), match.end()
        if not (
            any(c.isupper() for c in word[1:])
            or any(c.isdigit() for c in word)
            or (word[0].isupper() and word.lower() not in NOT_NAMES)
        ):
            continue
        version = None if any(c.isdigit() for c in word) else VERSION.match(text, end)
        if version:
            word, end = word + version.group(), version.end()
        if names and text[last_end : match.start()] == " ":
            names[-1] = f"{names[-1]} {word}"  # "Google Cloud": adjacent names are one
        else:
            names.append(word)
        last_end = end
    for word, flag in pseg.lcut(LATIN_WORD.sub(" ", text)):
        if flag in NAME_TAGS and len(word.strip()) > 1:
            names.append(word.strip())
    return list(dict.fromkeys(names))


def points_back(text: str) -> bool:
    """Whether the question refers to something named earlier (它, 其, this, it …)."""
    return any(word.lower() in POINTING_BACK for word in jieba.lcut(normalize(text)))
