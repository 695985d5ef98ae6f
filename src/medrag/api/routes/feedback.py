"""Readers' ratings of answers."""

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter

from ... import feedback
from ..deps import SettingsDep
from ..schemas import FeedbackRequest, FeedbackResponse, error_responses

router = APIRouter(tags=["feedback"])


@router.post("/feedback", response_model=FeedbackResponse, status_code=201, responses=error_responses(400, 408, 422))
def give_feedback(body: FeedbackRequest, settings: SettingsDep) -> FeedbackResponse:
    """Store a 👍 (`up`) or 👎 (`down`) on an answer in the operators' append-only JSONL file."""
    record = {
        "id": uuid.uuid4().hex,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        **body.model_dump(),
    }
    feedback.append(settings.feedback_path, record, max_bytes=settings.feedback_max_bytes)
    return FeedbackResponse(id=record["id"], stored=True)
