"""Questions and retrieval."""

from typing import Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from ..deps import PipelineDep
from ..schemas import AskRequest, AskResponse, SearchResponse, answer_out, citation_out
from ..streaming import answer_stream

router = APIRouter(tags=["answering"])


@router.post("/ask", response_model=AskResponse)
def ask(body: AskRequest, pipeline: PipelineDep) -> AskResponse:
    """Answer a question from the corpus with `[n]` citations, or say that the corpus has no answer."""
    snapshot = pipeline.snapshot()  # one version for the answer and the documents it cites
    answer = pipeline.ask(body.question, body.top_k, body.retriever, history=body.turns(), snapshot=snapshot)
    return answer_out(answer, snapshot.index.documents)


@router.post(
    "/ask/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": '`event: delta` with data {"text": ...} as the answer is produced, '
            "then `event: done` with the /ask response body, or `event: error` "
            'with {"detail", "code"}.',
        }
    },
)
def ask_stream(body: AskRequest, pipeline: PipelineDep) -> StreamingResponse:
    """The /ask answer as Server-Sent Events; bad input is refused as JSON before the stream starts."""
    snapshot = pipeline.snapshot()  # one version for the answer and the documents it cites
    items = pipeline.stream(body.question, body.top_k, body.retriever, history=body.turns(), snapshot=snapshot)
    return answer_stream(items, snapshot.index.documents)


@router.get("/search", response_model=SearchResponse)
def search(
    pipeline: PipelineDep,
    q: str = Query(description="The query."),
    k: int = Query(default=5, ge=1, le=50),
    mode: Literal["hybrid", "dense", "bm25"] = "hybrid",
) -> SearchResponse:
    """Ranked passages for a query, without composing an answer."""
    snapshot = pipeline.snapshot()
    hits = pipeline.search(q, k, mode, snapshot=snapshot)
    documents = snapshot.index.documents
    return SearchResponse(
        query=q, hits=[citation_out(i + 1, h, documents.get(h.chunk.doc_id)) for i, h in enumerate(hits)]
    )
