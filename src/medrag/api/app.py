"""The FastAPI application factory."""

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from .. import __version__
from ..embedding import load_embedder
from ..errors import ConfigError, MedragError
from ..llm import ChatClient
from ..pipeline import Pipeline
from ..settings import Settings
from ..store import FaissStore, Store
from . import errors
from .jobs import JobRunner
from .routes import ask, chat, documents, feedback, health, widget

log = logging.getLogger("medrag.api")


def llm_for(settings: Settings) -> ChatClient | None:
    """The configured LLM's client, or None for extractive answers."""
    if not settings.llm_base_url:
        return None
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    return ChatClient(
        settings.llm_base_url,
        settings.llm_model,
        key,
        timeout=settings.llm_timeout,
        retries=settings.llm_retries,
        max_tokens=settings.llm_max_tokens,
    )


def store_for(settings: Settings, kind: str | None = None) -> Store:
    """The configured store (MEDRAG_STORE), or the one `kind` names."""
    if (kind or settings.store) == "faiss":
        return FaissStore(settings.index_dir)
    if not settings.milvus_uri:
        raise ConfigError("no Milvus to use: set MEDRAG_MILVUS_URI, e.g. http://127.0.0.1:19530 or index/milvus.db")
    from ..milvus import MilvusStore

    token = settings.milvus_token.get_secret_value() if settings.milvus_token else None
    return MilvusStore(settings.milvus_uri, settings.milvus_collection, lock_dir=settings.index_dir, token=token)


def pipeline_for(settings: Settings) -> Pipeline:
    embedder = load_embedder(settings.embed_model, settings.embed_threads, settings.embed_batch_size)
    return Pipeline(
        store_for(settings),
        embedder,
        top_k=settings.top_k,
        fusion=settings.fusion,
        rrf_k=settings.rrf_k,
        min_evidence=settings.min_evidence,
        max_question_chars=settings.max_question_chars,
        llm=llm_for(settings),
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.pipeline = pipeline_for(settings)
        try:
            app.state.pipeline.snapshot()  # load the index now, not on the first question
        except MedragError as error:  # the service still starts and reports the reason on each request
            log.warning("index not loaded: %s", error)
        if app.state.pipeline.llm is not None:
            log.info("answers are written by %s at %s", settings.llm_model, settings.llm_base_url)
        # Loading the new version as soon as a write lands spares the next question the wait.
        app.state.jobs = JobRunner(on_change=app.state.pipeline.snapshot)
        yield
        app.state.jobs.stop()
        if app.state.pipeline.llm is not None:
            app.state.pipeline.llm.close()

    app = FastAPI(
        title="medrag",
        version=__version__,
        lifespan=lifespan,
        description="Question answering with citations over Chinese medical documents.",
    )
    app.state.settings = settings
    errors.register(app)
    if settings.cors_origins:
        # Only what the widget needs: JSON posts without cookies, so no credentials are allowed.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type"],
            max_age=600,
        )
    app.include_router(ask.router)
    app.include_router(chat.router)
    app.include_router(feedback.router)
    app.include_router(health.router)
    app.include_router(widget.router)
    app.include_router(documents.router)
    return app
