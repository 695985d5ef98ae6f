"""The FastAPI application factory."""

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from .. import __version__
from ..errors import MedragError
from ..service import Service
from ..settings import Settings
from . import errors, middleware
from .routes import ask, chat, documents, feedback, health, kbs, widget
from .timeouts import BodyTimeout

log = logging.getLogger("medrag.api")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.service = Service(settings)
        app.state.service.observers.append(app.state.metrics)
        try:
            app.state.service.load()  # load the index now, not on the first question
        except MedragError as error:  # the service still starts and reports the reason on each request
            log.warning("index not loaded: %s", error)
        if not settings.read_only:
            app.state.service.resume_jobs()  # the jobs the last run left queued
        if app.state.service.llm is not None:
            log.info("answers are written by %s at %s", settings.llm_model, settings.llm_base_url)
        yield
        app.state.service.close()

    app = FastAPI(
        title="medrag",
        version=__version__,
        lifespan=lifespan,
        description="Question answering with citations over Chinese medical documents.",
    )
    app.state.settings = settings
    errors.register(app)
    app.add_middleware(BodyTimeout, seconds=settings.request_timeout)  # innermost: the 408 is counted and logged
    middleware.install(app, settings)  # before CORS, so that CORS wraps what it answers (429, 500)
    if settings.cors_origins:
        # Only what the widget needs: JSON posts without cookies, so no credentials are allowed.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "Authorization"],  # a private knowledge base's read token
            expose_headers=["X-Request-ID", "Retry-After"],
            max_age=600,
        )
    for module in (ask, chat, feedback, health, widget, documents, kbs):
        app.include_router(module.router)

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = with_limits(FastAPI.openapi(app), settings)
        return app.openapi_schema

    app.openapi = openapi
    return app


# Python's notion of whitespace, which `str.strip` uses: a question must have something else.
NOT_BLANK = r"[^\s\x1c-\x1f\x85]"
# What `fetching.check_scheme` accepts of a posted document's URL, narrowed to plain host names.
LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
HTTP_URL = rf"^https?://{LABEL}(\.{LABEL})*(:[0-9]{{1,4}})?([/?#][^\s\x00-\x1f\x7f]*)?$"


def with_limits(document: dict, settings: Settings) -> dict:
    """The OpenAPI document with the checks the service makes beyond the models: what it states is accepted."""
    schemas = document["components"]["schemas"]
    # POST /documents: a text to index is not blank, and there is a text or a URL to fetch.
    posted = document["paths"]["/documents"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    posted["properties"]["text"]["anyOf"][0]["pattern"] = NOT_BLANK
    posted["properties"]["url"]["anyOf"][0]["pattern"] = HTTP_URL
    posted["anyOf"] = [
        {"required": ["text"], "properties": {"text": {"type": "string"}}},
        {"required": ["url"], "properties": {"url": {"type": "string"}}},
    ]
    # ... and an upload has at least one file and at most MEDRAG_MAX_UPLOAD_FILES (413 beyond).
    files = document["paths"]["/documents"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    files["properties"]["files"].update(minItems=1, maxItems=settings.max_upload_files)
    question = {"minLength": 1, "maxLength": settings.max_question_chars, "pattern": NOT_BLANK}
    schemas["AskRequest"]["properties"]["question"].update(question)
    schemas["AskRequest"]["properties"]["history"]["maxItems"] = settings.max_history_turns
    content = schemas["TurnIn"]["properties"]["content"]
    content["maxLength"] = min(content["maxLength"], settings.max_request_chars)
    # The question and the user and assistant messages before it.
    schemas["ChatRequest"]["properties"]["messages"]["maxItems"] = settings.max_history_turns + 1
    # A knowledge base's model is one the operator offers.
    offered = sorted({settings.embed_model, *settings.embed_models})
    schemas["KbIn"]["properties"]["embed_model"]["anyOf"][0]["enum"] = offered
    for parameter in document["paths"]["/search"]["get"]["parameters"]:
        if parameter["name"] == "q":
            parameter["schema"].update(question)
    return document
