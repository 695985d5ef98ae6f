"""Question analysis, done once per request: normalised text, language, weighted content terms, names.

Retrieval, follow-up rewriting and answering read the `Query` this module makes instead of each
analysing the string again.
"""

import re

import jieba
import jieba.posseg as pseg

from . import glossary
from .entities import LATIN_WORD, ORGANISATION, Lexicon, is_model, latin_names, trimmed
from .lexical import STOPWORDS, WORD
from .textnorm import mainland, normalize, traditional
from .types import Query

CJK = re.compile(r"[\u3400-\u9fff]")
CJK_RUN = re.compile(r"[\u3400-\u9fff]+")
LATIN_WORDS = re.compile(r"[A-Za-z]+")
# Words that shape a question rather than name what it asks about, and the courtesies around it
# (麻烦问一下, 谢谢, 想请教): a polite question asks what the plain one asks.
QUESTION_WORDS = frozenset(
    "什么 什么样 哪 哪个 哪些 哪家 哪里 哪儿 哪一天 哪年 几 多少 多 多大 多高 多长 多久 "
    "怎么 怎样 如何 为什么 是否 吗 呢 时候 名字 叫 是 有 请问 请 介绍 一下 告诉 我 你 它 他们 能 可以 会 "
    "麻烦 谢谢 多谢 感谢 谢 你好 您好 您 想 想要 知道 了解 请教 问 问问 能否 能不能 可否 帮 帮忙 急 简要 说明".split()
)
# Part-of-speech weights (jieba tags): nouns, names and foreign words carry a question's topic;
# verbs and adjectives are often paraphrased; the rest carries little.
POS_WEIGHTS = {"n": 1.0, "vn": 1.0, "eng": 1.0, "j": 1.0, "m": 0.8, "v": 0.3, "a": 0.3}
# jieba part-of-speech tags of proper names: people, places, organisations, other names, abbreviations.
NAME_TAGS = frozenset({"nr", "nrt", "nrfg", "ns", "nt", "nz", "j"})
POINTING_BACK = frozenset(
    "它 它们 其 该 此 这个 那个 这款 那款 这些 那些 这种 那种 他 她 他们 她们 上述 前者 后者 "
    "it its they them their this that these those he she his her".split()
)


# An in-text citation: "(搜狐, 2024)", "(搜狐, 2024; 健康远见, 2023)".
CITATION = re.compile(r"[(（][^()（）]{1,40}[,，]\s*\d{4}[a-z]?(?:[;；][^()（）]*)?[)）]")


# What kind of answer a question asks for, tried in this order on the normalised, lower-cased question.
# Each is a pattern of the question and a pattern a sentence holding such an answer has.
ANSWER_TYPES: tuple[tuple[str, re.Pattern, re.Pattern], ...] = tuple(
    (name, re.compile(asked, re.IGNORECASE), re.compile(held, re.IGNORECASE))
    for name, asked, held in (
        # The title of a cited article: its passage cites one (the reader then looks its title up). (Not
        # 题目, which is as often an exam's question: 一共有多少道题目.)
        ("title", r"标题|篇名|题为|\btitles?\b|\bheadlines?\b|\btitled\b", CITATION.pattern),
        (
            "source",
            r"(哪家|哪个|哪些|什么|哪一?篇)(媒体|报道|报纸|刊物|期刊|杂志|网站|来源|出处|文献|文章|新闻)|引用了?(哪|什么)"
            r"|出处|来源是|\bwhich (publication|source|outlet|media|article|journal|newspaper|magazine|website)"
            r"|\bwhat (publication|source|outlet|article|journal)|\bcited\b|according to (which|what)",
            CITATION.pattern,
        ),
        (
            "date",
            r"什么时候|何时|几时|哪一?年|哪一?天|哪一?日|哪个月|几月|几号|日期|什么时间"
            r"|\bwhen\b|what (year|date|month|time|day)|which (year|month|day)|since when",
            r"\d{4}年|\d{1,2}月|\d{1,2}日|\b(19|20)\d{2}\b|january|february|march|april|may|june|july|august"
            r"|september|october|november|december",
        ),
        (
            "quantity",
            r"多少|(?<!哪)几[个种项家条名位次倍岁天]|多大|多高|多长|多久|多重|比例|占比|百分之"
            r"|\bhow (many|much|large|big|long|old|high)"
            r"|what (percentage|share|proportion|rate|score|accuracy|number)|率",
            # Digits, a number in Chinese numerals (二十八, 一万二千) or one with its unit (三人, 十分钟).
            r"\d|[零一二三四五六七八九十百千万亿两]{2,}|百分之"
            r"|[一二三四五六七八九十百千万亿两][个种项家条名位次倍人天年月周分秒岁例台件元米%]",
        ),
        (
            "list",
            r"哪些|有哪几|包括什么|包括哪|列举|列出|都有什么|\bwhich (\w+ )?(models|areas|fields|languages|scenarios"
            r"|functions|hospitals|institutions|organi[sz]ations|companies|tasks|directions|aspects|ways)\b"
            r"|what are the|\blist\b",
            r"、|，.+，|；|以及|\band\b|, ",
        ),
        (
            "organisation",
            r"哪家|哪个(公司|机构|团队|医院|大学|组织|单位|媒体|企业)|由谁|谁(开发|发布|研发|推出|打造|提出)"
            r"|\bwhich (company|organi[sz]ation|team|hospital|university|institution|media|outlet)"
            r"|\bwho (developed|released|built|made|created|launched|published|partnered)",
            r"公司|大学|学院|医院|团队|研究院|机构|集团|社|[A-Z][a-z]+",
        ),
        ("place", r"哪里|哪儿|什么地方|哪个(国家|城市|地区)|\bwhere\b|which (country|city|region)", r"国|省|市|洲"),
        ("reason", r"为什么|为何|原因|\bwhy\b", r"因为|由于|为了|旨在|以便|从而|because|in order|so that|to "),
        (
            "yesno",
            r"是否|是不是|有没有|能不能|会不会|吗[？?]?$|^(is|are|does|do|did|can|was|were|has|have|will)\b",
            r"",
        ),
        ("definition", r"是什么|什么是|指什么|\bwhat (is|are|was)\b|介绍", r""),
    )
)
# A count asked with a classifier: Chinese counts things with one (6种语言, 800万条数据), so a sentence
# giving the count has a number and a classifier, not only a score or a share (67.75, 90%). Not
# necessarily the same one (多少道题 is answered by 5万对问答), and not for 个, the generic one that
# large numbers drop (多少个参数: 1000亿参数).
CLASSIFIERS = "种项家条名位次道篇对款所台例份组门"
COUNT_ASKED = re.compile(rf"(?:多少|几)([{CLASSIFIERS}])")
COUNT_GIVEN = re.compile(rf"(?:\d|[一二三四五六七八九十百千万亿两余])[万亿千百]?[{CLASSIFIERS}]")
# Tokens that are no term: punctuation alone, one Latin letter.
NOT_A_TERM = re.compile(r"[\W_]+|[A-Za-z]")
# Colloquial spellings of question words, written out before analysis (啥 is 什么, 咋 is 怎么).
COLLOQUIAL = (("啥时候", "什么时候"), ("多会儿", "什么时候"), ("啥", "什么"), ("咋", "怎么"), ("哪儿", "哪里"))
# "除了X之外还有…": X is what the question sets aside, not what it asks about.
EXCLUDED = re.compile(r"除了?([^，,。？?]{1,20}?)(?:之外|以外|外)")
# Words of a question asking for a source or a cited article's title: an in-text citation "(搜狐, 2024)" answers them.
SOURCE_WORDS = frozenset(
    "媒体 报道 报导 报纸 刊物 期刊 杂志 网站 来源 出处 文献 文章 新闻 引用 标题 篇名 "
    "publication source outlet media article journal newspaper magazine website cited cite title headline".split()
)
# Words for a model: a question with one that names only an organisation describes the model it made.
MODEL_WORDS = re.compile(r"模型|model|llm", re.IGNORECASE)
# Words that ask rather than name, and that point at what was said.
ASKING = re.compile(r"哪|什么|谁|几|多少|何")
DEMONSTRATIVE = re.compile(r"这|那|该|此|本|其|每|各")
# Types whose answer a sentence visibly holds or lacks; the others say nothing about a sentence.
TYPED = frozenset({"title", "source", "date", "quantity", "list", "organisation", "place", "reason"})


def analyse(text: str, lexicon: Lexicon | None = None) -> Query:
    """The analysed form of a question (or of a standalone query built from one).

    With the index version's `lexicon`, the corpus's entities the question names are found (by any
    alias), and names it gives that the corpus does not know are listed apart.
    """
    text = text.strip()
    normalized = standard(text)
    excluded = tuple(term for clause in EXCLUDED.findall(normalized) for term, _ in question_terms(clause))
    tagged = pseg.lcut(normalized)  # one segmentation serves the terms, the names and the organisations
    terms = _terms(tagged)
    named: list[str] = []
    unknown: list[str] = []
    if lexicon is not None:
        mentions = lexicon.find(normalized)
        named = list(dict.fromkeys(m.name for m in mentions))
        spans = [normalized[m.start : m.end].lower() for m in mentions]
        # Names the corpus's list lacks (the reader checks that the corpus's text lacks them too, so a
        # common word jieba tags as a place or a name does not count).
        candidates = [
            *_names(normalized, tagged),
            *organisations(normalized),
            # Chinese names the dictionary knows for companies and universities (微软, 华为). (Latin ones
            # are left out: an English question's capitalised words are as often places: US, Taiwan.)
            *(word for word, _ in tagged if CJK_RUN.fullmatch(word) and glossary.organisation(word)),
        ]
        # Abbreviations (jieba's tag j) of a name the corpus writes in full: 交大 for 上海交通大学团队.
        abbreviations = [word for word, flag in tagged if flag == "j"]
        for name in dict.fromkeys(candidates):
            if ASKING.search(name):
                continue  # "哪家公司" asks for a name, it gives none
            if not any(name.lower() in span or span in name.lower() for span in spans):
                full = lexicon.abbreviated(name) if any(word in name for word in abbreviations) else None
                if full is None:
                    unknown.append(name)
                else:
                    named.append(full)
                    spans.append(name.lower())
        # A model described by its maker and not named (交大的模型, Google's model): the model it made.
        if MODEL_WORDS.search(normalized) and not any(is_model(name) for name in named):
            named = [lexicon.makers.get(name, name) for name in named]
        named = list(dict.fromkeys(named))
        covered = " ".join([*spans, *(n.lower() for n in named), *(n.lower() for n in unknown)])
    else:
        covered = " ".join(n.lower() for n in _names(normalized, tagged))
    attributes = [(term, weight) for term, weight in terms if term.lower() not in covered and term not in excluded]
    return Query(
        text=text,
        normalized=normalized,
        language=language(text),
        terms=tuple(terms),
        entities=tuple(named),
        unknown_names=tuple(unknown),
        answer_type=answer_type(normalized),
        counted=counted(normalized),
        attributes=tuple(attributes),
        excluded=excluded,
    )


def organisations(text: str) -> list[str]:
    """Organisation names a question gives by their form (…大学, …团队), without the words before them.

    A phrase that asks or points (哪个学校的团队, 这个团队) names none, and neither does the bare word
    left when the words before it are trimmed (团队).
    """
    names = []
    for phrase in ORGANISATION.findall(text):
        name = trimmed(phrase)
        if not ASKING.search(phrase) and not DEMONSTRATIVE.match(name) and ORGANISATION.fullmatch(name):
            names.append(name)
    return names


def standard(text: str) -> str:
    """The text a question is embedded and analysed as: normalised, colloquial question words written out.

    A question in Traditional characters also gets the mainland's words for Taiwan's (資料 → 数据,
    軟體 → 软件): the corpus is written in mainland Chinese, and characters alone do not map them.
    """
    text = text.strip()
    normalized = normalize(mainland(text) if traditional(text) else text)
    for colloquial, written in COLLOQUIAL:
        normalized = normalized.replace(colloquial, written)
    return normalized


def answer_type(normalized: str) -> str:
    """The kind of answer asked for: title (of a cited article), source, date, quantity, list,
    organisation, place, reason, yesno, definition, other."""
    lowered = normalized.lower().strip()
    return next((name for name, asked, _ in ANSWER_TYPES if asked.search(lowered)), "other")


def counted(normalized: str) -> str:
    """The classifier of a count asked for (多少种语言 → 种, 第几家 → 家), or "" (also for 个)."""
    asked = COUNT_ASKED.search(normalized)
    return asked.group(1) if asked else ""


def holds_count(sentence: str) -> bool:
    """Whether a (normalised) sentence gives a count with a classifier: 6种, 800万条, 第一家, 十余家."""
    return bool(COUNT_GIVEN.search(sentence))


def holds(kind: str, sentence: str) -> bool:
    """Whether a (normalised) sentence holds an answer of this kind; True for the kinds a sentence cannot show.

    A citation's year is no date or figure the sentence gives.
    """
    if kind not in TYPED:
        return True
    if kind not in ("source", "title"):
        sentence = CITATION.sub(" ", sentence)
    held = next(pattern for name, _, pattern in ANSWER_TYPES if name == kind)
    return bool(held.search(sentence))


def asks_source(term: str) -> bool:
    """Whether a question's term asks for a source (媒体, 报道, 媒体报道, publication)."""
    term = term.lower()
    return term in SOURCE_WORDS or bool(CJK_RUN.fullmatch(term) and any(word in term for word in SOURCE_WORDS))


def warm_up() -> None:
    """Load jieba's dictionaries now rather than during the first question (about a second)."""
    question_terms("预热")


def language(text: str) -> str:
    """'zh' when the text has at least as many Chinese characters as Latin words, else 'en'.

    An English question that gives a Chinese alias ("Medlinker (医联)") is still asked in English.
    """
    chinese = len(CJK.findall(text))
    return "zh" if chinese and chinese >= len(LATIN_WORDS.findall(text)) else "en"


def question_terms(question: str) -> list[tuple[str, float]]:
    """Content terms of a question with their part-of-speech weights.

    A single Chinese character before another content word is often a segmentation slip
    (参数量 comes out as 参 | 数量), so the two are kept together as one term.
    """
    return _terms(pseg.lcut(normalize(question)))


def _terms(tagged: list) -> list[tuple[str, float]]:
    """`question_terms` from the question's words and their part-of-speech tags."""
    kept: list[tuple[int, str, float]] = []
    for position, (word, flag) in enumerate(tagged):
        word = word.strip()
        if not word or not WORD.fullmatch(word) or word.lower() in STOPWORDS or word in QUESTION_WORDS:
            continue
        if NOT_A_TERM.fullmatch(word):
            continue  # a hyphen, the s of "MedLM's"
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
    return _names(text, pseg.lcut(text))


def _names(text: str, tagged: list) -> list[str]:
    """`entities` of a normalised text from its words and their tags (words with Latin letters are
    Latin names' business)."""
    names = latin_names(text)
    for word, flag in tagged:
        word = word.strip()
        # A word the dictionary knows only as an ordinary one is no name, whatever jieba tags it (谢谢).
        if flag in NAME_TAGS and len(word) > 1 and not LATIN_WORD.search(word) and not glossary.ordinary(word):
            names.append(word)
    return list(dict.fromkeys(names))


def points_back(text: str) -> bool:
    """Whether the question refers to something named earlier (它, 其, this, it …)."""
    return any(word.lower() in POINTING_BACK for word in jieba.lcut(normalize(text)))
