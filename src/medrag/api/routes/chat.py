"""The OpenAI-compatible face: chat clients can use medrag as a model, one per knowledge base.

The model `medrag/<kb>` answers from the knowledge base `<kb>`; plain `medrag` is `medrag/default`.
A `filter` in the body (medrag's own field, as /ask's) keeps the answer to some documents.

The last message is the question and the user and assistant messages before it are the
conversation; system messages are ignored, since medrag's own grounding rules apply. The answer
keeps its `[n]` markers; the passages they cite travel in a `citations` field (in the last chunk
when streaming), and the rest of medrag's response (found, evidence, fallback …) in `medrag`.
"""

import json
import logging
import time
import uuid
from collections.abc import Iterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from ...errors import BadInputError, MedragError, UnknownModelError
from ...types import Reply, Turn
from ..deps import ServiceDep, check_reader
from ..schemas import ChatMessage, ChatRequest, ModelList, ModelOut, answer_out, error_responses

router = APIRouter(prefix="/v1", tags=["openai"])
log = logging.getLogger("medrag.api")

MODEL = "medrag"
STARTED = int(time.time())


@router.get("/models", response_model=ModelList)
def models(service: ServiceDep) -> ModelList:
    """`medrag` (the default knowledge base) and `medrag/<kb>` for every knowledge base."""
    names = [MODEL] + [f"{MODEL}/{record.name}" for record in service.knowledge_bases()]
    return ModelList(data=[ModelOut(id=name, created=STARTED, owned_by="medrag") for name in names])


def knowledge_base_of(model: str, service) -> str:
    """The knowledge base a model name stands for; UnknownModelError for a name that is no model of medrag's."""
    kb = "default" if model == MODEL else model.removeprefix(f"{MODEL}/") if model.startswith(f"{MODEL}/") else None
    names = {record.name for record in service.knowledge_bases()}
    if kb is None or kb not in names:
        raise UnknownModelError(
            f"there is no model {model!r}; medrag serves {MODEL!r} and {MODEL}/<kb> for each knowledge base "
            "(GET /v1/models lists them)"
        )
    return kb


@router.post("/chat/completions", responses=error_responses(400, 401, 404, 408, 422, 503))
def chat_completions(body: ChatRequest, request: Request, service: ServiceDep):
    """Answer the conversation's last user message, as an OpenAI chat completion (streamed or not)."""
    kb = knowledge_base_of(body.model, service)
    check_reader(request, service, kb)
    question, history = conversation(body.messages)
    completion = f"chatcmpl-{uuid.uuid4().hex}"
    wanted = body.filter.to_filter() if body.filter else None
    if not body.stream:
        reply = service.ask(question, history=history, kb=kb, wanted=wanted)
        return {
            **envelope(completion, "chat.completion", body.model),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": reply.answer.text}, "finish_reason": "stop"}
            ],
            **extras(reply),
        }
    pieces = service.stream(question, history=history, kb=kb, wanted=wanted)  # bad input fails here, as JSON
    return StreamingResponse(
        chunks(completion, pieces, body.model),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def text_of(message: ChatMessage) -> str:
    if message.content is None or isinstance(message.content, str):
        return message.content or ""
    kinds = sorted({part.type for part in message.content if part.type != "text"})
    if kinds:
        raise BadInputError(f"only text content is supported; the message has {', '.join(kinds)} parts")
    return "\n".join(part.text or "" for part in message.content)


def conversation(messages: list[ChatMessage]) -> tuple[str, list[Turn]]:
    """The question (the last message, a user's) and the user and assistant messages before it."""
    if messages[-1].role != "user":
        raise BadInputError(f"the last message must be the user's question, not a {messages[-1].role!r} message")
    history = [Turn(m.role, text_of(m)) for m in messages[:-1] if m.role in ("user", "assistant")]
    return text_of(messages[-1]), history


def envelope(completion: str, kind: str, model: str = MODEL) -> dict:
    return {"id": completion, "object": kind, "created": int(time.time()), "model": model}


def extras(reply: Reply) -> dict:
    """`citations`, and medrag's other answer fields under `medrag`."""
    out = answer_out(reply).model_dump()
    citations = out.pop("citations")
    out.pop("answer")
    return {"citations": citations, "medrag": out}


def chunks(completion: str, pieces: Iterator[str | Reply], model: str = MODEL) -> Iterator[str]:
    """chat.completion.chunk events: the role, the text pieces, then the finish with the citations."""

    def event(payload: dict) -> str:
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

    head = envelope(completion, "chat.completion.chunk", model)
    yield event(
        {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
    )
    try:
        for piece in pieces:
            if isinstance(piece, Reply):
                yield event(
                    {
                        **head,
                        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                        **extras(piece),
                    }
                )
            elif piece:
                yield event({**head, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
    except Exception as error:  # the status line is sent already: report in the stream, as OpenAI servers do
        if isinstance(error, MedragError):
            detail, code = str(error), error.code
        else:
            log.exception("error while streaming a chat completion")
            detail, code = "internal error; the server log has the details", "internal_error"
        yield event({"error": {"message": detail, "code": code}, "detail": detail, "code": code})
    yield "data: [DONE]\n\n"
