"""Plain values that flow between the stages: documents, chunks, hits and answers."""

from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Source:
    """An article cited by a document (a reference-list entry)."""

    url: str
    title: str = ""
    publisher: str = ""
    year: str = ""


@dataclass(frozen=True)
class Document:
    """A loaded document: its full text and where it came from."""

    doc_id: str
    title: str
    text: str
    content_hash: str
    url: str | None = None
    path: str | None = None
    publisher: str = ""
    date: str = ""
    sources: tuple[Source, ...] = ()
    # The names it talks about, each a tuple of surface forms with the canonical one first; found
    # when it is indexed (`entities.extract`), so each index version carries its own list.
    entities: tuple[tuple[str, ...], ...] = ()
    # Where each page starts in `text` (PDFs): a chunk is on the page its start falls in.
    pages: tuple[int, ...] = ()
    # Labels given when it was uploaded (`POST /documents` `tags`), for filtering questions.
    tags: tuple[str, ...] = ()

    def page_at(self, offset: int) -> int | None:
        """The page (1-based) that `text[offset]` is on; None for a document without pages."""
        return bisect_right(self.pages, offset) or None if self.pages else None


@dataclass(frozen=True)
class Filter:
    """Which documents a question may be answered from; every criterion given must hold, any value of a list.

    `sites` match a document's publisher or its URL's host; `languages` are "zh" or "en"; the dates
    are ISO prefixes (YYYY, YYYY-MM or YYYY-MM-DD), inclusive, against the document's own date.
    """

    doc_ids: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    date_from: str = ""
    date_to: str = ""
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Chunk:
    """A passage of a document; `document.text[start:end]` is its raw source span."""

    chunk_id: str
    doc_id: str
    text: str
    start: int
    end: int
    section: tuple[str, ...] = ()
    links: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk; `score` is higher-is-better within one ranking."""

    chunk: Chunk
    score: float
    dense_score: float | None = None
    lexical_score: float | None = None


@dataclass(frozen=True)
class Quote:
    """The sentence of a passage that supports an answer; `chunk.text[start:end] == text`."""

    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Citation:
    """The passage behind an `[n]` marker in an answer, with the sentence of it that supports the answer.

    `support` (LLM answers) is how well the answer's sentences citing this passage are supported by
    it, in [0, 1]; None for extractive answers, whose text is the quote itself.
    """

    n: int
    hit: Hit
    quote: Quote | None = None
    support: float | None = None


@dataclass(frozen=True)
class Turn:
    """An earlier message of a conversation; `role` is "user" or "assistant"."""

    role: str
    content: str


@dataclass(frozen=True)
class Query:
    """A question analysed once (by `query.analyse`) for every stage that reads it.

    `text` is as asked; `normalized` is NFKC and Simplified Chinese, what is embedded and
    tokenised; `terms` are its content words with their part-of-speech weights.
    """

    text: str
    normalized: str
    language: str  # "zh" or "en"
    terms: tuple[tuple[str, float], ...] = ()
    entities: tuple[str, ...] = ()  # canonical names of the corpus's entities the question names
    unknown_names: tuple[str, ...] = ()  # names in the question that the corpus's entity list lacks
    answer_type: str = "other"  # see query.ANSWER_TYPES
    counted: str = ""  # asked for a count with a classifier (多少种, 几家): the classifier, 种 or 家
    attributes: tuple[tuple[str, float], ...] = ()  # the terms that are not part of a name: what is asked
    excluded: tuple[str, ...] = ()  # terms the question sets aside ("除了X之外"): not what it asks for


@dataclass(frozen=True)
class Question:
    """A question as asked, its analysed standalone form (what retrieval searches), and the conversation before it."""

    text: str
    query: Query
    history: tuple[Turn, ...] = ()


@dataclass(frozen=True)
class Answer:
    """An answer with its citations; `found` is False when the corpus holds no evidence.

    `generator` says who wrote the text ("extractive" or "llm"); `fallback` says why an LLM's answer
    was not used (the text is then the extractive one) or was cut short. `removed_citations` are
    markers the LLM wrote for passages it was not given; `uncited_sentences` carry no marker;
    `unsupported_sentences` were written by the LLM but not supported by the passage they cited, and
    were removed from the text.
    """

    text: str
    found: bool
    citations: tuple[Citation, ...] = ()
    evidence: float = 0.0
    timings_ms: dict[str, float] = field(default_factory=dict)
    query: str = ""
    generator: str = "extractive"
    fallback: str | None = None
    removed_citations: tuple[int, ...] = ()
    uncited_sentences: tuple[str, ...] = ()
    unsupported_sentences: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reply:
    """An answer with the documents its citations come from, read from the index version that answered."""

    answer: Answer
    documents: Mapping[str, Document]


@dataclass(frozen=True)
class Results:
    """Ranked passages for a query, with their documents from the version that was searched."""

    query: str
    hits: tuple[Hit, ...]
    documents: Mapping[str, Document]
