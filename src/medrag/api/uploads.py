"""Read a POST /documents body within its limits: multipart files, or JSON {url} or {title, text}."""

import json
from collections.abc import AsyncIterator
from pathlib import PurePosixPath

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from ..corpus import SUFFIXES
from ..errors import BadInputError, TooLargeError, UnsupportedTypeError
from ..fetching import check_scheme
from ..service import Text, Upload
from ..settings import Settings
from .schemas import DocumentIn


async def read(request: Request, settings: Settings) -> dict:
    """The body as arguments of `Service.add`: {"uploads": [...]}, {"urls": [...]} or {"texts": [...]}."""
    limit = settings.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLargeError(f"the request has {declared} bytes; the limit is {limit} (MEDRAG_MAX_UPLOAD_BYTES)")
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "application/json":
        body = b"".join([piece async for piece in capped(request.stream(), limit)])
        # Parsed as FastAPI parses the other routes' bodies, so a lone surrogate (`"\\ud800"`) reaches
        # the schema's check and is refused as bad input, as it is everywhere.
        try:
            payload = DocumentIn.model_validate(json.loads(body))
        except ValidationError as error:
            raise RequestValidationError(error.errors(include_url=False)) from None
        except ValueError as error:  # not JSON, or not UTF-8
            raise RequestValidationError(
                [{"type": "json_invalid", "loc": ("body",), "msg": f"Invalid JSON: {error}", "input": None}]
            ) from None
        if payload.url is not None:
            check_scheme(payload.url)  # a link shown with citations must be http(s) too
        if payload.text is None:
            return {"urls": [payload.url], "tags": payload.tags}
        return {"texts": [Text(payload.text, title=payload.title, url=payload.url)], "tags": payload.tags}
    if media == "multipart/form-data":
        return await read_files(request, settings)
    raise UnsupportedTypeError(
        f"send multipart/form-data with files ({', '.join(SUFFIXES)}) or application/json with "
        f'{{"url"}} or {{"title", "text"}}, not {media or "a body without a content type"}'
    )


async def read_files(request: Request, settings: Settings) -> dict:
    """Each uploaded file's name, declared media type and bytes, and the `tags` fields' values."""
    parser = MultiPartParser(
        request.headers,
        capped(request.stream(), settings.max_upload_bytes),
        max_files=settings.max_upload_files,
        max_fields=40,  # up to 20 `tags` fields beside whatever else a client sends
    )
    try:
        form = await parser.parse()
    except MultiPartException as error:
        if error.message.startswith("Too many files"):
            raise TooLargeError(
                f"more than {settings.max_upload_files} files in one request (MEDRAG_MAX_UPLOAD_FILES)"
            ) from None
        raise BadInputError(f"malformed multipart body: {error.message}") from None
    try:
        uploads = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
        if not uploads:
            raise BadInputError("no files in the upload: send each file as a multipart file field")
        files = []
        for upload in uploads:
            name = PurePosixPath((upload.filename or "upload").replace("\\", "/")).name or "upload"
            files.append(Upload(name, upload.content_type, await upload.read()))
        tags = [value for key, value in form.multi_items() if key == "tags" and isinstance(value, str)]
        return {"uploads": files, "tags": checked_tags(tags)}
    finally:
        await form.close()


def checked_tags(tags: list[str]) -> list[str]:
    """Multipart `tags` fields, held to what the JSON body's schema says: at most 20, 1-64 characters, no commas."""
    if len(tags) > 20:
        raise BadInputError(f"{len(tags)} tags: at most 20")
    for tag in tags:
        if not 1 <= len(tag) <= 64 or "," in tag:
            raise BadInputError(f"tag {tag[:80]!r}: 1 to 64 characters, no commas")
    return tags


async def capped(stream: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    """The request body, refused once it grows past the limit (a body may come without a length)."""
    received = 0
    async for piece in stream:
        received += len(piece)
        if received > limit:
            raise TooLargeError(f"the request is larger than {limit} bytes (MEDRAG_MAX_UPLOAD_BYTES)")
        yield piece
