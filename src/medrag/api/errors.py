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
    IndexBusyError,
    IndexMismatchError,
    IndexMissingError,
    MedragError,
    NotFoundError,
    StorageError,
    StoreUnavailableError,
    TooLargeError,
    UnauthorizedError,
    UnsupportedTypeError,
    WritesDisabledError,
)

log = logging.getLogger("medrag.api")

# The status of an error is that of the nearest class in its hierarchy listed here.
STATUS = {
    BadInputError: 422,
    TooLargeError: 413,
    UnsupportedTypeError: 415,
    FetchRefusedError: 422,
    FetchFailedError: 502,
    UnauthorizedError: 401,
    WritesDisabledError: 403,
    NotFoundError: 404,
    IndexMissingError: 503,
    IndexMismatchError: 503,
    IndexBusyError: 503,
    StoreUnavailableError: 503,
    GeneratorError: 502,
    ConfigError: 500,
    StorageError: 500,
    MedragError: 500,
}


def status_of(error: MedragError) -> int:
    return next(STATUS[kind] for kind in type(error).__mro__ if kind in STATUS)


def error(status: int, detail, code: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": jsonable_encoder(detail), "code": code})


def register(app: FastAPI) -> None:
    @app.exception_handler(MedragError)
    async def medrag_error(request: Request, exc: MedragError) -> JSONResponse:
        status = status_of(exc)
        response = error(status, str(exc), exc.code)
        if status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        if isinstance(exc, IndexBusyError):
            response.headers["Retry-After"] = "1"
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
