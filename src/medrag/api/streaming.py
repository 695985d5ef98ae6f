"""Server-Sent Events for answers: `delta` events with answer text, then `done` (the /ask body) or `error`."""

import json
import logging
from collections.abc import Iterator

from fastapi.responses import StreamingResponse

from ..errors import MedragError
from ..types import Reply
from .schemas import answer_out

log = logging.getLogger("medrag.api")


def event(name: str, data: dict) -> str:
    # JSON escapes newlines, so each event's data is one line.
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def answer_events(items: Iterator[str | Reply]) -> Iterator[str]:
    """The events for an answer stream; a failure after the first byte becomes an `error` event."""
    try:
        for item in items:
            if isinstance(item, Reply):
                yield event("done", answer_out(item).model_dump(mode="json"))
            else:
                yield event("delta", {"text": item})
    except MedragError as error:
        yield event("error", {"detail": str(error), "code": error.code})
    except Exception:
        log.exception("unhandled error while streaming an answer")
        yield event("error", {"detail": "internal error; the server log has the details", "code": "internal_error"})


def answer_stream(items: Iterator[str | Reply]) -> StreamingResponse:
    return StreamingResponse(
        answer_events(items),
        media_type="text/event-stream",
        # Proxies must pass each event on at once rather than buffer the response.
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
