"""Questions and retrieval."""

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from ...types import Filter
from ..deps import ServiceDep, check_reader
from ..schemas import (
    DATE_PATTERN,
    KB_PATTERN,
    AskRequest,
    AskResponse,
    SearchResponse,
    answer_out,
    error_responses,
    search_out,
)
from ..streaming import answer_stream

router = APIRouter(tags=["answering"])
ERRORS = error_responses(400, 401, 404, 408, 422, 503)


def wanted(body: AskRequest) -> Filter | None:
    return body.filter.to_filter() if body.filter else None


def as_json(model: BaseModel) -> Response:
    """The response model's JSON as it is. Returned as a model from a plain (threaded) route, FastAPI
    would validate it again on its thread pool, a second hop there and back on every question; the
    route's `response_model` still states the shape."""
    return Response(model.model_dump_json(by_alias=True), media_type="application/json")


@router.post("/ask", response_model=AskResponse, responses=ERRORS)
def ask(body: AskRequest, request: Request, service: ServiceDep) -> Response:
    """Answer a question from a knowledge base with `[n]` citations, or say that it has no answer."""
    check_reader(request, service, body.kb)
    reply = service.ask(
        body.question, top_k=body.top_k, mode=body.retriever, history=body.turns(), kb=body.kb, wanted=wanted(body)
    )
    return as_json(answer_out(reply))


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
def ask_stream(body: AskRequest, request: Request, service: ServiceDep) -> StreamingResponse:
    """The /ask answer as Server-Sent Events; bad input is refused as JSON before the stream starts."""
    check_reader(request, service, body.kb)
    return answer_stream(
        service.stream(
            body.question, top_k=body.top_k, mode=body.retriever, history=body.turns(), kb=body.kb, wanted=wanted(body)
        )
    )


@router.get("/search", response_model=SearchResponse, responses=error_responses(401, 404, 422, 503))
def search(
    request: Request,
    service: ServiceDep,
    q: str = Query(description="The query."),
    k: int = Query(default=5, ge=1, le=50),
    mode: Literal["hybrid", "dense", "bm25"] = "hybrid",
    kb: str = Query(default="default", pattern=KB_PATTERN, description="The knowledge base to search."),
    doc_id: Annotated[list[str] | None, Query(max_length=1000, description="Only these documents (repeat).")] = None,
    site: Annotated[list[str] | None, Query(max_length=50, description="Publisher or URL host (repeat).")] = None,
    language: Annotated[list[Literal["zh", "en"]] | None, Query(max_length=2)] = None,
    date_from: str | None = Query(default=None, pattern=DATE_PATTERN),
    date_to: str | None = Query(default=None, pattern=DATE_PATTERN),
    tag: Annotated[list[str] | None, Query(max_length=50, description="With one of these tags (repeat).")] = None,
) -> Response:
    """Ranked passages for a query, without composing an answer; the filter parameters as /ask's `filter`."""
    check_reader(request, service, kb)
    given = Filter(
        tuple(doc_id or ()), tuple(site or ()), tuple(language or ()), date_from or "", date_to or "", tuple(tag or ())
    )
    return as_json(search_out(service.search(q, k=k, mode=mode, kb=kb, wanted=given if given != Filter() else None)))
