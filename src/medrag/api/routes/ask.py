"""Questions and retrieval."""

from typing import Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from ..deps import ServiceDep
from ..schemas import AskRequest, AskResponse, SearchResponse, answer_out, error_responses, search_out
from ..streaming import answer_stream

router = APIRouter(tags=["answering"])
ERRORS = error_responses(400, 408, 422, 503)


@router.post("/ask", response_model=AskResponse, responses=ERRORS)
def ask(body: AskRequest, service: ServiceDep) -> AskResponse:
    """Answer a question from the corpus with `[n]` citations, or say that the corpus has no answer."""
    return answer_out(service.ask(body.question, top_k=body.top_k, mode=body.retriever, history=body.turns()))


@router.post(
    "/ask/stream",
    response_class=StreamingResponse,
    responses={
        **ERRORS,
        200: {
            "content": {"text/event-stream": {}},
            "description": '`event: delta` with data {"text": ...} as the answer is produced, '
            "then `event: done` with the /ask response body, or `event: error` "
            'with {"detail", "code"}.',
        },
    },
)
def ask_stream(body: AskRequest, service: ServiceDep) -> StreamingResponse:
    """The /ask answer as Server-Sent Events; bad input is refused as JSON before the stream starts."""
    return answer_stream(service.stream(body.question, top_k=body.top_k, mode=body.retriever, history=body.turns()))


@router.get("/search", response_model=SearchResponse, responses=error_responses(422, 503))
def search(
    service: ServiceDep,
    q: str = Query(description="The query."),
    k: int = Query(default=5, ge=1, le=50),
    mode: Literal["hybrid", "dense", "bm25"] = "hybrid",
) -> SearchResponse:
    """Ranked passages for a query, without composing an answer."""
    return search_out(service.search(q, k=k, mode=mode))
