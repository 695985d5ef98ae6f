"""Knowledge bases: list, create and delete them, and mint read tokens for the private ones."""

from fastapi import APIRouter, Path

from ...stores.catalog import KnowledgeBase
from ..deps import Admin, ServiceDep
from ..schemas import KB_PATTERN, KbIn, KbOut, TokenIn, TokenOut, error_responses, kb_out

router = APIRouter(tags=["knowledge bases"])
NAME = Path(pattern=KB_PATTERN, description="The knowledge base.")


@router.get("/kbs", response_model=list[KbOut], responses=error_responses(503))
def list_kbs(service: ServiceDep) -> list[KbOut]:
    """Every knowledge base, `default` (the shipped documents) first."""
    return [kb_out(record) for record in service.knowledge_bases()]


@router.post(
    "/kbs",
    status_code=201,
    response_model=KbOut,
    responses=error_responses(400, 401, 403, 408, 409, 422, 503),
    dependencies=[Admin],
)
def create_kb(body: KbIn, service: ServiceDep) -> KbOut:
    """Create an empty knowledge base; add documents with POST /documents?kb=<name>."""
    record = KnowledgeBase(body.name, body.title, body.description, body.embed_model, body.private)
    return kb_out(service.create_kb(record))


@router.delete(
    "/kbs/{kb}",
    status_code=202,
    response_model=KbOut,
    responses=error_responses(401, 403, 404, 409, 422, 503),
    dependencies=[Admin],
)
def delete_kb(service: ServiceDep, kb: str = NAME) -> KbOut:
    """Delete a knowledge base with its documents and jobs: gone at once for new requests, its index once
    the questions still reading it are answered. `default` cannot be deleted (409)."""
    return kb_out(service.delete_kb(kb))


@router.post(
    "/kbs/{kb}/tokens",
    status_code=201,
    response_model=TokenOut,
    responses=error_responses(400, 401, 403, 404, 408, 422),
    dependencies=[Admin],
)
def mint_token(body: TokenIn, service: ServiceDep, kb: str = NAME) -> TokenOut:
    """A short-lived read token for one knowledge base and one web origin, for a page embedding the widget."""
    token, expires = service.mint_token(kb, body.origin, body.ttl_seconds)
    return TokenOut(token=token, kb=kb, origin=body.origin, expires_at=expires)
