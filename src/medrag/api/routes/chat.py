"""The OpenAI-compatible face: chat clients can use medrag as a model called "medrag".

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

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from ...errors import BadInputError, MedragError, UnknownModelError
from ...types import Reply, Turn
from ..deps import ServiceDep
from ..schemas import ChatMessage, ChatRequest, ModelList, ModelOut, answer_out, error_responses

router = APIRouter(prefix="/v1", tags=["openai"])
log = logging.getLogger("medrag.api")

MODEL = "medrag"
STARTED = int(time.time())


@router.get("/models", response_model=ModelList)
def models() -> ModelList:
    """The one model medrag serves."""
    return ModelList(data=[ModelOut(id=MODEL, created=STARTED, owned_by="medrag")])


@router.post("/chat/completions", responses=error_responses(400, 404, 408, 422, 503))
def chat_completions(body: ChatRequest, service: ServiceDep):
    """Answer the conversation's last user message, as an OpenAI chat completion (streamed or not)."""
    if body.model != MODEL:
        raise UnknownModelError(f"there is no model {body.model!r}; medrag serves one model, {MODEL!r}")
    question, history = conversation(body.messages)
    completion = f"chatcmpl-{uuid.uuid4().hex}"
    if not body.stream:
        reply = service.ask(question, history=history)
        return {
            **envelope(completion, "chat.completion"),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": reply.answer.text}, "finish_reason": "stop"}
            ],
            **extras(reply),
        }
    pieces = service.stream(question, history=history)  # bad input and a missing index fail here, as JSON
    return StreamingResponse(
        chunks(completion, pieces),
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


def envelope(completion: str, kind: str) -> dict:
    return {"id": completion, "object": kind, "created": int(time.time()), "model": MODEL}


def extras(reply: Reply) -> dict:
    """`citations`, and medrag's other answer fields under `medrag`."""
    out = answer_out(reply).model_dump()
    citations = out.pop("citations")
    out.pop("answer")
    return {"citations": citations, "medrag": out}


def chunks(completion: str, pieces: Iterator[str | Reply]) -> Iterator[str]:
    """chat.completion.chunk events: the role, the text pieces, then the finish with the citations."""

    def event(payload: dict) -> str:
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

    head = envelope(completion, "chat.completion.chunk")
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
