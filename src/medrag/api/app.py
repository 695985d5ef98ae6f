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
from .routes import ask, chat, documents, feedback, health, widget
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
            allow_headers=["Content-Type"],
            expose_headers=["X-Request-ID", "Retry-After"],
            max_age=600,
        )
    for module in (ask, chat, feedback, health, widget, documents):
        app.include_router(module.router)
    return app
