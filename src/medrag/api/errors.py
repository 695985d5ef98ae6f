"""One error shape for every failure: {"detail": ..., "code": ...}."""

import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from ..errors import (
    BadInputError,
    ConfigError,
    ConflictError,
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
from .schemas import encodable

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
    ConflictError: 409,
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
        errors = exc.errors()
        # Text UTF-8 cannot encode is bad input, named by its field; it is never echoed (that would fail).
        for item in sorted(errors, key=lambda item: item["type"] != "unencodable_text"):
            if item["type"] == "unencodable_text" or unencodable(item.get("input")) or unencodable(item["loc"]):
                return error(422, f"{field_name(item['loc'])} {unencodable_message(item)}", "bad_input")
        return error(422, errors, "validation_error")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 408: "request_timeout"}
        response = error(exc.status_code, exc.detail, codes.get(exc.status_code, f"http_{exc.status_code}"))
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:
            response.headers["Allow"] = ", ".join(allowed_methods(request))
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error(500, "internal error; the server log has the details", "internal_error")


def unencodable(value) -> bool:
    """Whether a value holds text UTF-8 cannot encode: a lone UTF-16 surrogate, which JSON can escape."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(unencodable(key) or unencodable(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return any(unencodable(item) for item in value)
    return False


def field_name(loc) -> str:
    """A validation error's location as a field path (`history.0.content`), printable whatever it holds."""
    parts = [str(part) for part in loc]
    # "body" says where, not which field; "str", "list[ContentPart]" … name the branch of a union.
    parts = [
        part
        for index, part in enumerate(parts)
        if not (index == 0 and part == "body") and part != "str" and "[" not in part
    ]
    return ".".join(parts).encode("utf-8", "backslashreplace").decode("utf-8") or "the body"


def unencodable_message(item: dict) -> str:
    """What is wrong, where: pydantic's own str check may refuse a surrogate before the schema's does."""
    if item["type"] == "unencodable_text":
        return item["msg"]
    if isinstance(item.get("input"), str):
        try:
            encodable(item["input"])
        except PydanticCustomError as error:
            return error.message()
    return "has a lone UTF-16 surrogate, which is no character: send valid Unicode text"


def allowed_methods(request: Request) -> list[str]:
    """The methods some route at this path answers: what a 405's Allow header lists."""
    routes = request.app.router.routes
    return [
        method
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)
    ]
