"""Request and response bodies of the HTTP API (kept apart from the internal dataclasses)."""

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from .. import chunking, deeplinks
from ..service import DocumentInfo
from ..types import Chunk, Document, Filter, Hit, Quote, Reply, Results, Turn

# Bounds on a conversation sent back with each question: generous for chat clients, bounded for the server.
MAX_HISTORY_MESSAGES = 200
MAX_MESSAGE_CHARS = 20_000


def encodable(text: str) -> str:
    """`text` if it is all characters: a lone UTF-16 surrogate (JSON's "\\ud800") is refused here, at the edge."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise PydanticCustomError(
            "unencodable_text",
            "has a lone UTF-16 surrogate ({character}) at character {position}, which is no character: "
            "send valid Unicode text (a surrogate only as half of a pair)",
            {"character": f"\\u{ord(text[error.start]):04x}", "position": error.start},
        ) from None
    return text


# Every text field of a request body is checked so (api/errors.py turns its error into `bad_input`);
# after any StringConstraints, which would not apply on top of the check.
Encodable = AfterValidator(encodable)
UnicodeText = Annotated[str, Encodable]


class TurnIn(BaseModel):
    role: Literal["user", "assistant"]
    content: UnicodeText = Field(max_length=MAX_MESSAGE_CHARS)


KB_PATTERN = r"^[a-z0-9_-]{1,64}$"
KbName = Annotated[str, StringConstraints(pattern=KB_PATTERN)]
DATE_PATTERN = r"^[0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?$"
Label = Annotated[str, StringConstraints(min_length=1, max_length=200), Encodable]


class FilterIn(BaseModel):
    """Keep a question to some documents: every field given must hold, any value of a list."""

    model_config = ConfigDict(extra="forbid")

    doc_ids: list[Label] = Field(default=[], max_length=1000, description="Only these documents.")
    sites: list[Label] = Field(
        default=[], max_length=50, description="Documents whose publisher or URL host is one of these."
    )
    languages: list[Literal["zh", "en"]] = Field(default=[], max_length=2)
    date_from: Annotated[str, StringConstraints(pattern=DATE_PATTERN)] | None = Field(
        default=None, description="Documents dated on or after this (YYYY, YYYY-MM or YYYY-MM-DD)."
    )
    date_to: Annotated[str, StringConstraints(pattern=DATE_PATTERN)] | None = Field(
        default=None, description="Documents dated on or before this."
    )
    tags: list[Label] = Field(default=[], max_length=50, description="Documents with one of these tags.")

    def to_filter(self) -> Filter:
        return Filter(
            doc_ids=tuple(self.doc_ids),
            sites=tuple(self.sites),
            languages=tuple(self.languages),
            date_from=self.date_from or "",
            date_to=self.date_to or "",
            tags=tuple(self.tags),
        )


class AskRequest(BaseModel):
    question: UnicodeText = Field(description="The question, in Chinese or English.")
    kb: KbName = Field(default="default", description="The knowledge base to answer from.")
    filter: FilterIn | None = Field(default=None, description="Answer only from the documents it lets through.")
    top_k: int | None = Field(default=None, ge=1, le=20, description="Passages to retrieve (default from settings).")
    retriever: Literal["hybrid", "dense", "bm25"] = Field(
        default="hybrid", description="Retrieval mode; for comparisons."
    )
    history: list[TurnIn] = Field(
        default=[],
        max_length=MAX_HISTORY_MESSAGES,
        description="Earlier messages of the conversation, oldest first, for follow-ups.",
    )

    def turns(self) -> list[Turn]:
        return [Turn(t.role, t.content) for t in self.history]


class QuoteOut(BaseModel):
    text: str = Field(description="The sentence of the passage that supports the answer.")
    passage_start: int = Field(
        description="Where it starts in the citation's `text` (its passage); offsets count characters (code points)."
    )
    passage_end: int = Field(description="Where it ends there: `text[passage_start:passage_end]` is the quote.")
    document_start: int | None = Field(
        description="Where it starts in the document's raw text (markdown): its visible text, links as their "
        "labels and without `**`/`__`, is the quote (all of a link's label when the quote starts or ends "
        "inside one). Null when the document is not at hand."
    )
    document_end: int | None = Field(description="Where it ends in the document's raw text; null as document_start.")


class CitationOut(BaseModel):
    n: int
    chunk_id: str
    doc_id: str
    title: str
    section: str
    page: int | None = Field(
        default=None, description="PDFs: the page (from 1) the quote is on, or the passage when there is no quote."
    )
    url: str | None = Field(description="The document's own URL; null for local files.")
    source_urls: list[str] = Field(description="URLs of the articles the passage cites.")
    text: str
    score: float
    support: float | None = Field(
        default=None,
        description="LLM answers: how well the answer's sentences citing this passage are supported by it, in [0, 1].",
    )
    quote: QuoteOut | None = Field(
        default=None,
        description="The sentence of the passage that supports the answer; null when the answer names none "
        "and in search hits.",
    )
    deep_link: str | None = Field(
        default=None,
        description="The document's URL with a text fragment (`#:~:text=`) that opens it at the quote, or "
        "for a PDF with its page (`#page=N`); null without a quote or an http(s) URL.",
    )


class AskResponse(BaseModel):
    answer: str
    found: bool
    evidence: float = Field(
        description="Evidence score in [0, 1], higher is stronger; below the threshold found is false."
    )
    citations: list[CitationOut] = Field(description="Exactly the passages the answer's [n] markers cite, by n.")
    timings_ms: dict[str, float]
    query: str = Field(description="What retrieval searched for: the question, or its standalone form after a history.")
    generator: Literal["extractive", "llm"] = Field(description="Who wrote the answer text.")
    fallback: str | None = Field(
        description="Why the LLM's answer was not used (the answer is then the extractive "
        "one) or was cut short; null when nothing went wrong."
    )
    removed_citations: list[int] = Field(description="Markers the LLM wrote for passages it was not given; removed.")
    uncited_sentences: list[str] = Field(description="Sentences of the answer without any [n] marker.")
    unsupported_sentences: list[str] = Field(
        description="Sentences the LLM wrote that the passage they cite does not support; removed from the answer."
    )


class SearchResponse(BaseModel):
    query: str
    hits: list[CitationOut]


class SourceOut(BaseModel):
    url: str
    title: str
    publisher: str
    year: str


class DocumentOut(BaseModel):
    doc_id: str
    title: str
    url: str | None
    path: str | None
    publisher: str
    date: str
    content_hash: str
    chunks: int
    sources: list[SourceOut]


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: Literal["up", "down"]
    question: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000), Encodable]
    answer: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20000), Encodable]
    found: StrictBool | None = Field(default=None, description="The `found` of the answer rated.")
    chunk_ids: list[Annotated[str, StringConstraints(max_length=200), Encodable]] = Field(
        default=[], max_length=50, description="The cited passages, so operators can see what was rated."
    )
    comment: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000), Encodable] = ""


class FeedbackResponse(BaseModel):
    id: str
    stored: bool


class DocumentIn(BaseModel):
    """JSON body of POST /documents: a URL to fetch, or text in hand (with its URL, if it has one)."""

    model_config = ConfigDict(extra="forbid")

    url: UnicodeText | None = Field(
        default=None, description="Fetched when there is no text; otherwise the text's source URL."
    )
    title: UnicodeText = ""
    text: UnicodeText | None = None
    tags: list[Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^,]*$"), Encodable]] = Field(
        default=[], max_length=20, description="Labels for filtering questions (`filter.tags`); no commas."
    )

    @model_validator(mode="after")
    def _url_or_text(self) -> "DocumentIn":
        if self.url is None and self.text is None:
            raise ValueError('send {"url": ...} to fetch a page, or {"title": ..., "text": ...}')
        return self


class ProgressOut(BaseModel):
    done: int = Field(description="Chunks embedded so far.")
    total: int = Field(description="Chunks to embed; 0 until the documents are chunked.")
    pages_done: int = Field(default=0, description="Pages (or slides, sheets) of the file being parsed read so far.")
    pages_total: int = Field(default=0, description="Pages of the file being parsed; 0 before parsing starts.")


class JobOut(BaseModel):
    job_id: str
    kind: str = Field(description="add, fetch or remove")
    state: str = Field(description="queued, running, done, failed or cancelled")
    waiting: bool = Field(description="True while another writer (the CLI, say) holds the index lock.")
    progress: ProgressOut
    error: dict | None = Field(
        description='{"detail", "code"} when the job failed or was cancelled; the code "interrupted" when '
        "the service stopped while it was queued or running."
    )
    outcomes: dict[str, str] = Field(
        description="Per document id: added, replaced, unchanged, duplicate of <id>, removed or reindexed; "
        'per "<file> page <n>" that could not be read (no text layer and no OCR, OCR past its limits or '
        "failing): why."
    )
    version: str | None = Field(description="The index version live after the job.")
    created_at: float
    finished_at: float | None


class ErrorOut(BaseModel):
    """Every error's body."""

    detail: str | list = Field(
        description="What went wrong, for people: a sentence, or (code `validation_error`) pydantic's list of errors."
    )
    code: str = Field(description="Stable and machine-readable: bad_input, validation_error, not_found, …")


ERROR_DESCRIPTIONS = {
    400: "The body is not valid UTF-8 JSON (`http_400`).",
    401: "Missing or wrong admin token, or a missing, expired or foreign read token (`unauthorized`).",
    403: "Document writes are off: no MEDRAG_ADMIN_TOKEN is set (`writes_disabled`).",
    404: "No such resource (`not_found`, `model_not_found`).",
    409: "The resource's state does not allow it: the job has finished, the name is taken (`conflict`).",
    408: "The request's body took longer than MEDRAG_REQUEST_TIMEOUT to arrive (`request_timeout`).",
    413: "Too large: bytes or files past the limits (`too_large`).",
    415: "A media type medrag does not read (`unsupported_type`).",
    422: "Invalid input: `bad_input` (detail a sentence) or `validation_error` (detail a list).",
    502: "An upstream server failed (`fetch_failed`, `generator_failed`).",
    503: "No index to answer from yet, or the store is busy or unreachable (`index_missing`, …).",
}


def error_responses(*statuses: int) -> dict[int | str, dict]:
    """OpenAPI `responses` for the errors a route returns, each with the one error body."""
    return {status: {"model": ErrorOut, "description": ERROR_DESCRIPTIONS[status]} for status in statuses}


def citation_out(
    n: int, hit: Hit, document: Document | None, support: float | None = None, quote: Quote | None = None
) -> CitationOut:
    chunk = hit.chunk
    # A quote that is not where it says it is in the passage is no quote at all.
    if quote is not None and not (0 <= quote.start < quote.end and chunk.text[quote.start : quote.end] == quote.text):
        quote = None
    quoted = quote_out(quote, chunk, document) if quote else None
    page = None
    if document is not None:
        page = document.page_at(quoted.document_start if quoted and quoted.document_start is not None else chunk.start)
    return CitationOut(
        n=n,
        chunk_id=chunk.chunk_id,
        doc_id=chunk.doc_id,
        title=document.title if document else chunk.doc_id,
        section=" > ".join(chunk.section),
        page=page,
        url=document.url if document else None,
        source_urls=list(chunk.links),
        text=chunk.text,
        score=round(hit.score, 6),
        support=None if support is None else round(support, 4),
        quote=quoted,
        deep_link=deeplinks.deep_link(document.url, quote.text, page=page) if quote and document else None,
    )


def quote_out(quote: Quote, chunk: Chunk, document: Document | None) -> QuoteOut:
    """The quote's offsets in its passage, and in the document's raw text when the chunk was cut from that text."""
    document_start = document_end = None
    raw = document.text[chunk.start : chunk.end] if document else ""
    if document and chunking.clean(raw) == chunk.text:
        start, end = chunking.raw_span(raw, quote.start, quote.end)
        document_start, document_end = chunk.start + start, chunk.start + end
    return QuoteOut(
        text=quote.text,
        passage_start=quote.start,
        passage_end=quote.end,
        document_start=document_start,
        document_end=document_end,
    )


def answer_out(reply: Reply) -> AskResponse:
    answer, documents = reply.answer, reply.documents
    return AskResponse(
        answer=answer.text,
        found=answer.found,
        evidence=round(answer.evidence, 4),
        citations=[
            citation_out(c.n, c.hit, documents.get(c.hit.chunk.doc_id), c.support, c.quote) for c in answer.citations
        ],
        timings_ms=answer.timings_ms,
        query=answer.query,
        generator=answer.generator,
        fallback=answer.fallback,
        removed_citations=list(answer.removed_citations),
        uncited_sentences=list(answer.uncited_sentences),
        unsupported_sentences=list(answer.unsupported_sentences),
    )


def search_out(results: Results) -> SearchResponse:
    hits = [citation_out(i, h, results.documents.get(h.chunk.doc_id)) for i, h in enumerate(results.hits, start=1)]
    return SearchResponse(query=results.query, hits=hits)


def document_out(info: DocumentInfo) -> DocumentOut:
    document = info.document
    return DocumentOut(
        doc_id=document.doc_id,
        title=document.title,
        url=document.url,
        path=document.path,
        publisher=document.publisher,
        date=document.date,
        content_hash=document.content_hash,
        chunks=info.chunks,
        sources=[SourceOut(url=s.url, title=s.title, publisher=s.publisher, year=s.year) for s in document.sources],
    )


# OpenAI chat-completions shapes: just the fields medrag reads or writes; unknown request fields are ignored.


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: UnicodeText
    text: UnicodeText | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: UnicodeText | list[ContentPart] | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: UnicodeText
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_HISTORY_MESSAGES)
    stream: StrictBool = False
    filter: FilterIn | None = Field(default=None, description="medrag's own: answer only from these documents.")


class ModelOut(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelOut]


def job_out(job) -> JobOut:
    return JobOut(
        job_id=job.job_id,
        kind=job.kind,
        state=job.state,
        waiting=job.waiting,
        progress=ProgressOut(done=job.done, total=job.total, pages_done=job.pages_done, pages_total=job.pages_total),
        error=job.error,
        outcomes=job.outcomes,
        version=job.version,
        created_at=job.created_at,
        finished_at=job.finished_at,
    )


class KbIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: KbName = Field(description="1 to 64 characters of a-z, 0-9, _ and -.")
    title: Annotated[str, StringConstraints(max_length=200), Encodable] = ""
    description: Annotated[str, StringConstraints(max_length=2000), Encodable] = ""
    embed_model: Annotated[str, StringConstraints(min_length=1, max_length=500), Encodable] | None = Field(
        default=None, description="The embedding model of its index; the service's own when left out."
    )
    private: StrictBool = Field(default=False, description="Reading it needs the admin token or a read token.")


class KbOut(BaseModel):
    name: str
    title: str
    description: str
    embed_model: str | None
    private: bool
    created_at: float


# scheme://host[:port], as a browser sends it in `Origin`.
ORIGIN_PATTERN = r"^https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$"


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    origin: Annotated[str, StringConstraints(pattern=ORIGIN_PATTERN, max_length=300)] = Field(
        description="The web page origin (scheme://host[:port]) that may use the token."
    )
    ttl_seconds: int | None = Field(default=None, ge=1, description="Lifetime; at most MEDRAG_READ_TOKEN_TTL.")


class TokenOut(BaseModel):
    token: str
    kb: str
    origin: str
    expires_at: float


def kb_out(record) -> KbOut:
    return KbOut(
        name=record.name,
        title=record.title,
        description=record.description,
        embed_model=record.embed_model,
        private=record.private,
        created_at=record.created_at,
    )
