"""Liveness and the index manifest."""

import os

from fastapi import APIRouter

from ...errors import MedragError
from ..deps import ServiceDep

router = APIRouter(tags=["service"])


@router.get("/healthz")
def healthz(service: ServiceDep) -> dict:
    """`ok` or `degraded` (an older whole version served, and why) with its manifest, or `no_index` and why.

    `process` is the answering process's id: `medrag serve --workers N` runs N of them.
    """
    try:
        manifest = service.load().manifest.to_json()
    except MedragError as error:
        return {"status": "no_index", "code": error.code, "detail": str(error), "process": os.getpid()}
    reason = service.degraded
    if reason is not None:
        return {"status": "degraded", "detail": reason, "index": manifest, "process": os.getpid()}
    return {"status": "ok", "index": manifest, "process": os.getpid()}
