"""Follow-up questions: the standalone query that retrieval needs, from the question and its history.

With an LLM the question is rewritten by it. Without one (or when the rewrite fails) a heuristic
carries context from the previous question: its names (entities) when the follow-up has none of its
own or points back with a pronoun ("它的参数量呢？", "how many parameters does it have?"), and what it
asked about when the follow-up only swaps the name ("那MMed-Llama 3呢？", "what about GPT-4?").
"""

import logging
import re
from collections.abc import Sequence

import jieba
import jieba.posseg as pseg

from .answering import question_terms
from .errors import GeneratorError
from .llm import ChatClient, json_lines
from .textnorm import normalize
from .types import Turn

log = logging.getLogger("medrag.conversation")

REWRITE_INSTRUCTIONS = (
    "Rewrite the user's latest question so that it can be understood without the conversation: replace "
    "pronouns and omitted subjects with what they refer to. Keep the question's language. Reply with the "
    "rewritten question only: no answer, no explanation, no quotes."
)
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
# Words of an elliptic follow-up that ask nothing themselves ("what about X?", "还有X呢？").
ELLIPSIS = frozenset("about also then and 还有 那么 又 呢".split())
POINTING_BACK = frozenset(
    "它 它们 其 该 此 这个 那个 这款 那款 这些 那些 这种 那种 他 她 他们 她们 上述 前者 后者 "
    "it its they them their this that these those he she his her".split()
)


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


def topic_terms(text: str) -> list[str]:
    """What a question asks about, apart from its names: 参数, 发布, accuracy …"""
    names = " ".join(entities(text)).lower()
    # Single characters (上, 参) are mostly segmentation leftovers, too vague to carry over.
    return [
        term
        for term, _ in question_terms(text)
        if len(term) > 1 and term.lower() not in names and term.lower() not in ELLIPSIS
    ]


def carry(question: str, previous: str) -> str:
    """The retrieval query for `question` asked right after `previous` (both standalone or resolved)."""
    own = entities(question)
    earlier = entities(previous)
    if earlier and (not own or points_back(question)):
        missing = [name for name in earlier if name not in own]
        return f"{' '.join(missing)} {question}" if missing else question
    if own and not topic_terms(question):
        # Only a new name ("那MMed-Llama 3呢？"): ask what the previous question asked, about it.
        asked = topic_terms(previous)
        return f"{question} {' '.join(asked)}" if asked else question
    return question


def heuristic_query(question: str, history: Sequence[Turn]) -> str:
    """Each earlier user question resolved against the one before it, then this one."""
    resolved = None
    for turn in history:
        if turn.role == "user":
            resolved = turn.content if resolved is None else carry(turn.content, resolved)
    return question if resolved is None else carry(question, resolved)


def rewrite(question: str, history: Sequence[Turn], client: ChatClient, max_chars: int) -> str | None:
    """The LLM's standalone form of the question, or None when it fails or replies with something unusable."""
    conversation = [{"role": turn.role, "content": turn.content} for turn in history[-6:]]
    request = f"Conversation (JSON):\n{json_lines(conversation)}\n\nLatest question: {question}"
    try:
        reply = "".join(
            client.chat([{"role": "system", "content": REWRITE_INSTRUCTIONS}, {"role": "user", "content": request}])
        )
    except GeneratorError as error:
        log.warning("question rewrite failed, using the heuristic: %s", error)
        return None
    lines = [line.strip().strip("\"'“”「」") for line in reply.strip().splitlines() if line.strip()]
    if not lines or not lines[0] or len(lines[0]) > max_chars:
        log.warning("question rewrite unusable, using the heuristic: %r", reply[:200])
        return None
    return lines[0]


def standalone(question: str, history: Sequence[Turn], client: ChatClient | None, max_chars: int) -> str:
    """The query to retrieve passages for `question`; the question itself when nothing came before."""
    if not any(turn.role == "user" for turn in history):
        return question
    if client is not None:
        rewritten = rewrite(question, history, client, max_chars)
        if rewritten and rewritten != question:
            return rewritten
    # No LLM, a failed rewrite, or one that changed nothing: the heuristic may still find the subject.
    return heuristic_query(question, history)
