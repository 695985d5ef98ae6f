"""Plain values that flow between the stages: documents, chunks, hits and answers."""

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
class Citation:
    """The passage behind an `[n]` marker in an answer."""

    n: int
    hit: Hit


@dataclass(frozen=True)
class Answer:
    """An answer with its citations; `found` is False when the corpus holds no evidence."""

    text: str
    found: bool
    citations: tuple[Citation, ...] = ()
    evidence: float = 0.0
    timings_ms: dict[str, float] = field(default_factory=dict)
