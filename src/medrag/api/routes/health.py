"""Liveness and the index manifest."""

from fastapi import APIRouter

from ...errors import MedragError
from ..deps import ServiceDep

router = APIRouter(tags=["service"])


@router.get("/healthz")
def healthz(service: ServiceDep) -> dict:
    """`ok` with the live index's manifest, or `no_index` with the reason (the service still runs)."""
    try:
        return {"status": "ok", "index": service.load().manifest.to_json()}
    except MedragError as error:
        return {"status": "no_index", "code": error.code, "detail": str(error)}
