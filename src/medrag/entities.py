"""The names a corpus talks about, found at index time: models, organisations and their aliases.

A document's entities are extracted once, when it is indexed, and stored with it (`Document.entities`),
so each index version carries the list of its own documents and a change re-extracts only new ones.
The reader uses them to tell which entity a question asks about and which one a sentence is about.

Where names come from:
- Latin-script names: a capital after the first letter or a digit (MedGPT, GPT-4, MMedC, ICD-10),
  or capitalised words (Google Cloud), with a version number that follows (Llama 3, Med-PaLM 2);
- the head of a heading written "Name：description" (### 1. MedGPT：国内首个…);
- organisations: jieba's organisation tag (nt) and Chinese runs ending in 大学, 医院, 公司, 团队 …;
- aliases written `X（Y）` or `X(Y)`: 中国医药大学附设医院（中医大附医）, 大语言模型（LLM）.
jieba's person and place tags are left out: on medical text they tag common words (康复, 伦理).
"""

import re
from dataclasses import dataclass
from functools import cached_property

import jieba.posseg as pseg

from .chunking import HEADING, SENTENCE_END, clean
from .textnorm import normalize
from .types import Document

LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-.+][A-Za-z0-9]+)*")
VERSION = re.compile(r" \d+(?:\.\d+)?(?![\d.])")
# Capitalised words that start English sentences or refer back rather than name something.
NOT_NAMES = frozenset(
    "what which who whom whose when where why how is are was were do does did can could would should will "
    "tell please give list and or but the a an in on of for to by it its they them their this that these those "
    "he she his her compare describe explain i me my you your we our".split()
)
ORGANISATION = re.compile(r"[\u4e00-\u9fff]{2,14}(?:大学|学院|医学院|医院|公司|集团|团队|研究院|研究所|实验室|中心)")
ALIAS = re.compile(r"([\u4e00-\u9fffA-Za-z0-9·\-]{2,16})[（(]([^（）()\n]{2,16})[）)]")
HEAD = re.compile(r"^(?:\d+[.、)]\s*)?(.{2,24}?)[：:]")
# A name found by a pattern starts after the last of these words: "医联与四川大学华西医院" names 四川大学华西医院.
LEADING = re.compile(r".*(?:相当于|覆盖|包括|由|与|和|及|在|于|为|是|的|将|对|从|但|即|被)")
# What follows a name in brackets is not an alias when it gives an example or a list.
NOT_ALIAS = re.compile(r"^(?:如|例如|即|包括|e\.g\.)|[和与、,，]")
URL = re.compile(r"https?://\S+")
# A sentence naming one model and an organisation with one of these words says the organisation made
# the model (由上海交通大学团队开发的MMed-Llama 3, MedGPT由…医联…正式发布).
MAKING = re.compile(r"开发|研发|发布|推出|打造|developed|released|launched|built", re.IGNORECASE)
# A model's name: Latin, with a digit or an inner capital (MedGPT, Med-PaLM 2), unlike Google Cloud.
MODEL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9 .\-]*")
MODEL_MARK = re.compile(r"\d|[a-z][A-Z]")
# Where people write a Latin name's parts together or apart: GPT-4, GPT 4 and gpt4 are one name.
NAME_BREAK = re.compile(r"[-\s.]+|(?<=[a-z])(?=\d)|(?<=\d)(?=[a-z])")


def squashed(form: str) -> str:
    """A Latin name without the separators between its parts (lower case): med-palm 2 → medpalm2."""
    return "".join(NAME_BREAK.split(form.lower()))


def is_model(name: str) -> bool:
    """Whether an entity's name looks like a model's (MedGPT, Med-PaLM 2) rather than an organisation's."""
    return bool(MODEL_NAME.fullmatch(name) and MODEL_MARK.search(name))


def subsequence(short: str, long: str) -> bool:
    """Whether the characters of `short` appear in `long` in order (交大 in 上海交通大学)."""
    rest = iter(long)
    return all(character in rest for character in short)


def trimmed(name: str) -> str:
    """A name without the words that precede it in its sentence."""
    return LEADING.sub("", name)


def latin_names(text: str) -> list[str]:
    """Latin-script names in text, in order; adjacent capitalised names join ("Google Cloud")."""
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
            names[-1] = f"{names[-1]} {word}"
        else:
            names.append(word)
        last_end = end
    return names


def extract(document: Document) -> tuple[tuple[str, ...], ...]:
    """A document's entities: each a tuple of surface forms, the canonical one first (normalised text)."""
    groups: dict[str, list[str]] = {}

    def add(name: str, *aliases: str) -> None:
        name = name.strip(" -·")
        if len(name) < 2 or name.isdigit():
            return
        key = next((k for k, forms in groups.items() if name.lower() in (f.lower() for f in forms)), None)
        forms = groups.setdefault(key or name, [key or name])
        for form in (name, *aliases):
            form = form.strip(" -·")
            if len(form) >= 2 and not form.isdigit() and form.lower() not in (f.lower() for f in forms):
                forms.append(form)

    for line in document.text.splitlines():
        heading = HEADING.match(line)
        if heading:
            head = HEAD.match(normalize(clean(heading.group(2))).strip())
            if head:
                add(head.group(1).strip())
    text = URL.sub(" ", normalize(clean(document.text)))
    for name, alias in ALIAS.findall(text):
        if not re.fullmatch(r"[\d.%\s]+", alias) and not NOT_ALIAS.search(alias):
            add(trimmed(name), alias)
    for name in latin_names(text):
        add(name)
    for name in ORGANISATION.findall(text):
        add(trimmed(name))
    for word, flag in pseg.lcut(text):
        if flag == "nt" and len(word) > 1:
            add(word)
    return tuple(tuple(forms) for forms in groups.values())


@dataclass(frozen=True)
class Mention:
    """An entity named in a text: its canonical name and where."""

    name: str
    start: int
    end: int


class Lexicon:
    """All entities of an index version, for finding them in questions and sentences (normalised text)."""

    def __init__(self, groups: list[tuple[str, ...]], texts: tuple[str, ...] = ()):
        self.texts = texts  # the documents' text, for `makers`
        self.canonical: dict[str, str] = {}
        self.by_squashed: dict[str, str] = {}  # Latin forms written with or without separators
        for forms in groups:
            for form in forms:
                self.canonical.setdefault(form.lower(), forms[0])
                if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 .\-]*", form):
                    self.by_squashed.setdefault(squashed(form), forms[0])

    @classmethod
    def of(cls, documents) -> "Lexicon":
        documents = list(documents)
        groups = [forms for document in documents for forms in (document.entities or extract(document))]
        return cls(groups, tuple(document.text for document in documents))

    @cached_property
    def makers(self) -> dict[str, str]:
        """Organisation (…大学, …公司, …团队, Google) → the one model the corpus says it made, for
        questions that describe a model by its maker (交大的模型). One said to make several makes none.

        Made at the first question that needs it, in one pass over the version's text.
        """
        made: dict[str, set[str]] = {}
        for text in self.texts:
            for sentence in SENTENCE_END.split(URL.sub(" ", normalize(clean(text)))):
                if not MAKING.search(sentence):
                    continue
                names = self.names(sentence)
                built = [name for name in names if is_model(name)]
                if len(built) == 1:
                    for name in names:
                        if ORGANISATION.fullmatch(name) or (MODEL_NAME.fullmatch(name) and not is_model(name)):
                            made.setdefault(name, set()).add(built[0])
        return {maker: next(iter(models)) for maker, models in made.items() if len(models) == 1}

    def abbreviated(self, short: str) -> str | None:
        """The entity with a longer Chinese form holding `short`'s characters in order (交大 for
        上海交通大学, 上海交大), or None when none or several unrelated ones do. Of nested ones
        (上海交通大学 and 上海交大团队 within 上海交通大学团队) the longest stands for all."""
        found = sorted(
            {
                self.canonical[form]
                for form in self.canonical
                if len(form) > len(short) and not MODEL_NAME.fullmatch(form) and subsequence(short, form)
            },
            key=len,
        )
        if not found or not all(subsequence(shorter, found[-1]) for shorter in found[:-1]):
            return None
        return found[-1]

    @cached_property
    def _pattern(self) -> re.Pattern | None:
        forms = sorted(self.canonical, key=len, reverse=True)
        if not forms:
            return None
        # Latin forms must not sit inside a longer word: "Llama 3" in "MMed-Llama 3" is not Llama 3.
        # Their parts may be written together or apart (see NAME_BREAK).
        parts = []
        for form in forms:
            if squashed(form) in self.by_squashed:
                escaped = r"[-\s.]?".join(re.escape(part) for part in NAME_BREAK.split(form) if part)
            else:
                escaped = re.escape(form)
            if re.match(r"[a-z0-9]", form):
                escaped = r"(?<![a-z0-9\-])" + escaped
            if re.search(r"[a-z0-9]$", form):
                escaped += r"(?![a-z0-9])"
            parts.append(escaped)
        return re.compile("|".join(parts))

    def find(self, text: str) -> list[Mention]:
        """The entities named in normalised text, longest forms first, left to right."""
        if self._pattern is None:
            return []
        lowered = text.lower()
        return [
            Mention(self.canonical.get(m.group()) or self.by_squashed[squashed(m.group())], m.start(), m.end())
            for m in self._pattern.finditer(lowered)
        ]

    def names(self, text: str) -> list[str]:
        """Canonical names of the entities in text, in order, each once."""
        return list(dict.fromkeys(m.name for m in self.find(text)))

    def __len__(self) -> int:
        return len(set(self.canonical.values()))
