"""Dependencies shared by the routes."""

import hmac
from typing import Annotated

from fastapi import Depends, Request

from ..errors import UnauthorizedError, WritesDisabledError
from ..service import Service
from ..settings import Settings


# Coroutines, though they await nothing: FastAPI runs a plain function dependency on its thread pool,
# a hop there and back on every request for an attribute read.
async def get_service(request: Request) -> Service:
    return request.app.state.service


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def require_admin(request: Request) -> None:
    """Document writes need `Authorization: Bearer <MEDRAG_ADMIN_TOKEN>`; with no token set they are off.

    A read-only process (a worker of `medrag serve --workers N`) refuses them before anything else.
    """
    request.app.state.service.check_writes()
    token = request.app.state.settings.admin_token
    if token is None:
        raise WritesDisabledError(
            "document writes are disabled: set MEDRAG_ADMIN_TOKEN on the server and "
            "send it as 'Authorization: Bearer <token>'"
        )
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.get_secret_value().encode()):
        raise UnauthorizedError("missing or wrong admin token: send 'Authorization: Bearer <MEDRAG_ADMIN_TOKEN>'")


def check_reader(request: Request, service: Service, kb: str) -> None:
    """A private knowledge base needs `Authorization: Bearer` the admin token or a read token for the page's origin."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    bearer = given.strip() if scheme.lower() == "bearer" else None
    service.check_reader(kb, bearer or None, request.headers.get("origin"))


ServiceDep = Annotated[Service, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
Admin = Depends(require_admin)
