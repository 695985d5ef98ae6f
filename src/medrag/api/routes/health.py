"""Liveness and the index manifest."""

from fastapi import APIRouter

from ...errors import MedragError
from ..deps import PipelineDep

router = APIRouter(tags=["service"])


@router.get("/healthz")
def healthz(pipeline: PipelineDep) -> dict:
    """`ok` with the live index's manifest, or `no_index` with the reason (the service still runs)."""
    try:
        return {"status": "ok", "index": pipeline.snapshot().index.manifest}
    except MedragError as error:
        return {"status": "no_index", "code": error.code, "detail": str(error)}
