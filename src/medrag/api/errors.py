"""One error shape for every failure: {"detail": ..., "code": ...}."""

import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..errors import (
    BadInputError,
    ConfigError,
    FetchFailedError,
    FetchRefusedError,
    GeneratorError,
    IndexMismatchError,
    IndexMissingError,
    MedragError,
    StoreUnavailableError,
    TooLargeError,
    UnauthorizedError,
    UnknownModelError,
    UnsupportedTypeError,
    WritesDisabledError,
)

log = logging.getLogger("medrag.api")

# The first matching class wins: subclasses before their bases.
STATUS = {
    TooLargeError: 413,
    UnsupportedTypeError: 415,
    BadInputError: 422,
    FetchRefusedError: 422,
    FetchFailedError: 502,
    UnauthorizedError: 401,
    WritesDisabledError: 403,
    IndexMissingError: 503,
    IndexMismatchError: 503,
    StoreUnavailableError: 503,
    ConfigError: 500,
    GeneratorError: 502,
    UnknownModelError: 404,
}


def error(status: int, detail, code: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": jsonable_encoder(detail), "code": code})


def register(app: FastAPI) -> None:
    @app.exception_handler(MedragError)
    async def medrag_error(request: Request, exc: MedragError) -> JSONResponse:
        status = next((s for kind, s in STATUS.items() if isinstance(exc, kind)), 500)
        response = error(status, str(exc), exc.code)
        if status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error(422, exc.errors(), "validation_error")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        return error(exc.status_code, exc.detail, codes.get(exc.status_code, f"http_{exc.status_code}"))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error(500, "internal error; the server log has the details", "internal_error")
