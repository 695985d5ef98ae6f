"""Request and response bodies of the HTTP API (kept apart from the internal dataclasses)."""

from typing import Literal

from pydantic import BaseModel, Field

from ..types import Answer, Document, Hit


class AskRequest(BaseModel):
    question: str = Field(description="The question, in Chinese or English.")
    top_k: int | None = Field(default=None, ge=1, le=20, description="Passages to retrieve (default from settings).")
    retriever: Literal["hybrid", "dense", "bm25"] = Field(default="hybrid", description="Retrieval mode; for comparisons.")


class CitationOut(BaseModel):
    n: int
    chunk_id: str
    doc_id: str
    title: str
    section: str
    url: str | None = Field(description="The document's own URL; null for local files.")
    source_urls: list[str] = Field(description="URLs of the articles the passage cites.")
    text: str
    score: float


class AskResponse(BaseModel):
    answer: str
    found: bool
    evidence: float = Field(description="Evidence score in [0, 1], higher is stronger; below the threshold found is false.")
    citations: list[CitationOut]
    timings_ms: dict[str, float]


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


class ErrorOut(BaseModel):
    detail: str | list
    code: str


def citation_out(n: int, hit: Hit, document: Document | None) -> CitationOut:
    chunk = hit.chunk
    return CitationOut(
        n=n,
        chunk_id=chunk.chunk_id,
        doc_id=chunk.doc_id,
        title=document.title if document else chunk.doc_id,
        section=" > ".join(chunk.section),
        url=document.url if document else None,
        source_urls=list(chunk.links),
        text=chunk.text,
        score=round(hit.score, 6),
    )


def answer_out(answer: Answer, documents: dict[str, Document]) -> AskResponse:
    return AskResponse(
        answer=answer.text,
        found=answer.found,
        evidence=round(answer.evidence, 4),
        citations=[citation_out(c.n, c.hit, documents.get(c.hit.chunk.doc_id)) for c in answer.citations],
        timings_ms=answer.timings_ms,
    )


def document_out(document: Document, chunks: int) -> DocumentOut:
    return DocumentOut(
        doc_id=document.doc_id,
        title=document.title,
        url=document.url,
        path=document.path,
        publisher=document.publisher,
        date=document.date,
        content_hash=document.content_hash,
        chunks=chunks,
        sources=[SourceOut(url=s.url, title=s.title, publisher=s.publisher, year=s.year) for s in document.sources],
    )
