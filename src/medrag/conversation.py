"""Follow-up questions: the standalone query that retrieval needs, from the question and its history.

With an LLM the question is rewritten by it. Without one (or when the rewrite fails) a heuristic
carries context from the previous question: its names (entities) when the follow-up has none of its
own or points back with a pronoun ("它的参数量呢？", "how many parameters does it have?"), and what it
asked about when the follow-up only swaps the name ("那MMed-Llama 3呢？", "what about GPT-4?").
"""

import logging
from collections.abc import Sequence

from .errors import GeneratorError
from .llm import ChatClient, json_lines
from .query import entities, points_back, question_terms
from .types import Turn

log = logging.getLogger("medrag.conversation")

REWRITE_INSTRUCTIONS = (
    "Rewrite the user's latest question so that it can be understood without the conversation: replace "
    "pronouns and omitted subjects with what they refer to. Keep the question's language. Reply with the "
    "rewritten question only: no answer, no explanation, no quotes."
)
# Words of an elliptic follow-up that ask nothing themselves ("what about X?", "还有X呢？").
ELLIPSIS = frozenset("about also then and 还有 那么 又 呢".split())


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


def recent(history: Sequence[Turn], history_turns: int) -> Sequence[Turn]:
    """The last `history_turns` messages (none for 0: `history[-0:]` would be all of them)."""
    return history[-history_turns:] if history_turns > 0 else ()


def heuristic_query(question: str, history: Sequence[Turn]) -> str:
    """Each earlier user question resolved against the one before it, then this one."""
    resolved = None
    for turn in history:
        if turn.role == "user":
            resolved = turn.content if resolved is None else carry(turn.content, resolved)
    return question if resolved is None else carry(question, resolved)


def rewrite(
    question: str, history: Sequence[Turn], client: ChatClient, max_chars: int, history_turns: int
) -> str | None:
    """The LLM's standalone form of the question, or None when it fails or replies with something unusable."""
    conversation = [{"role": turn.role, "content": turn.content} for turn in recent(history, history_turns)]
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
        # Its length only: the reply is the question in other words, and questions are not logged.
        log.warning("question rewrite unusable (%d characters), using the heuristic", len(reply))
        return None
    return lines[0]


def standalone(
    question: str, history: Sequence[Turn], client: ChatClient | None, *, max_chars: int, history_turns: int
) -> str:
    """The query to retrieve passages for `question`; the question itself when nothing came before."""
    # Only the last `history_turns` messages are read: the cost stays bounded whatever the history's length.
    history = recent(history, history_turns)
    if not any(turn.role == "user" for turn in history):
        return question
    if client is not None:
        rewritten = rewrite(question, history, client, max_chars, history_turns)
        if rewritten and rewritten != question:
            return rewritten
    # No LLM, a failed rewrite, or one that changed nothing: the heuristic may still find the subject.
    return heuristic_query(question, history)
