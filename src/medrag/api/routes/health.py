"""Liveness, the index manifest and the indexed documents."""

from collections import Counter

from fastapi import APIRouter

from ...errors import MedragError
from ..deps import PipelineDep
from ..schemas import DocumentOut, document_out

router = APIRouter(tags=["service"])


@router.get("/healthz")
def healthz(pipeline: PipelineDep) -> dict:
    """`ok` with the live index's manifest, or `no_index` with the reason (the service still runs)."""
    try:
        return {"status": "ok", "index": pipeline.snapshot().index.manifest}
    except MedragError as error:
        return {"status": "no_index", "code": error.code, "detail": str(error)}


@router.get("/documents", response_model=list[DocumentOut])
def documents(pipeline: PipelineDep) -> list[DocumentOut]:
    """The indexed documents with their chunk counts and the articles they cite."""
    index = pipeline.snapshot().index
    counts = Counter(c.doc_id for c in index.chunks)
    return [document_out(d, counts[d.doc_id]) for d in index.documents.values()]
