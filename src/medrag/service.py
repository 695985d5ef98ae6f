"""The service: built once from `Settings`, it owns every part and offers what the entry points need.

The HTTP API and the command line are thin adapters over a `Service`: they parse, call one method
and render what comes back. What it returns already carries the documents its citations come from,
read from the index version that answered, so no caller handles index versions. Writes run as jobs
on one writer thread; the new version a job writes is served at once, without loading it again.
"""

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from . import corpus, indexing
from .embedding import Embedder, load_embedder
from .errors import BadInputError, MedragError, NotFoundError
from .fetching import Fetcher
from .indexing import Change, Migration
from .jobs import Job, JobRunner
from .llm import ChatClient
from .pipeline import Options, Pipeline, Snapshot
from .retrieval import Mode
from .settings import Settings
from .stores import FaissStore, IndexView, Store, open_store
from .types import Answer, Document, Reply, Results, Source, Turn


class Observer(Protocol):
    """Told of every answer and every finished job (the HTTP API's metrics); must be quick and never raise."""

    def answered(self, answer: Answer) -> None: ...

    def job_finished(self, job: Job) -> None: ...


@dataclass(frozen=True)
class DocumentInfo:
    """An indexed document and how many chunks it has."""

    document: Document
    chunks: int


@dataclass(frozen=True)
class Upload:
    """A file as uploaded: its name, its declared media type (or None) and its bytes."""

    name: str
    media_type: str | None
    data: bytes


@dataclass(frozen=True)
class Text:
    """A document's text in hand, with its title and the URL it came from, if any."""

    text: str
    title: str = ""
    url: str | None = None


def store_for(settings: Settings, kind: str | None = None) -> Store:
    """The configured store (MEDRAG_STORE), or the one `kind` names, with the configured connection."""
    token = settings.milvus_token.get_secret_value() if settings.milvus_token else None
    return open_store(
        kind or settings.store,
        index_dir=settings.index_dir,
        milvus_uri=settings.milvus_uri,
        milvus_collection=settings.milvus_collection,
        milvus_token=token,
        keep_versions=settings.keep_versions,
    )


def embedder_for(settings: Settings) -> Embedder:
    return load_embedder(settings.embed_model, settings.embed_threads, settings.embed_batch_size)


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


class Service:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.store = store_for(settings)
        self.embedder = embedder_for(settings)
        self.llm = llm_for(settings)
        self.fetcher = Fetcher(
            max_bytes=settings.fetch_max_bytes, timeout=settings.fetch_timeout, allow=settings.fetch_allow
        )
        options = Options(
            top_k=settings.top_k,
            fusion=settings.fusion,
            rrf_k=settings.rrf_k,
            candidates=settings.candidates,
            dense_weight=settings.dense_weight,
            min_evidence=settings.min_evidence,
            max_question_chars=settings.max_question_chars,
            history_turns=settings.history_turns,
            max_history_turns=settings.max_history_turns,
            max_request_chars=settings.max_request_chars,
            llm_min_evidence=settings.llm_min_evidence,
            llm_min_support=settings.llm_min_support,
        )
        self.pipeline = Pipeline(self.store, self.embedder, options, self.llm)
        self._writer_embedder: Embedder | None = None
        self._jobs: JobRunner | None = None
        self._lock = threading.Lock()
        self.observers: list[Observer] = []

    # Reading.

    def load(self) -> IndexView:
        """The live version, loaded now if it is not yet (the service start does this before the first question)."""
        return self.pipeline.snapshot().index

    @property
    def degraded(self) -> str | None:
        """Why the version served is not the live one (the live one is missing or damaged); None when it is."""
        return self.pipeline.degraded

    def ask(
        self, question: str, *, top_k: int | None = None, mode: Mode = "hybrid", history: Sequence[Turn] = ()
    ) -> Reply:
        *_, reply = self.stream(question, top_k=top_k, mode=mode, history=history, incremental=False)
        assert isinstance(reply, Reply), "an answer stream ends with its reply"
        return reply

    def stream(
        self,
        question: str,
        *,
        top_k: int | None = None,
        mode: Mode = "hybrid",
        history: Sequence[Turn] = (),
        incremental: bool = True,
    ) -> Iterator[str | Reply]:
        """Pieces of the answer as they are written, then the `Reply`; bad input and a missing index fail here."""
        snapshot = self.pipeline.snapshot()
        items = self.pipeline.stream(snapshot, question, top_k, mode, history, incremental=incremental)
        return self._replies(snapshot, items)

    def _replies(self, snapshot: Snapshot, items: Iterator[str | Answer]) -> Iterator[str | Reply]:
        documents = snapshot.index.documents
        for item in items:
            if isinstance(item, Answer):
                for observer in self.observers:
                    observer.answered(item)
                cited = {c.hit.chunk.doc_id for c in item.citations}
                yield Reply(item, {doc_id: documents[doc_id] for doc_id in cited if doc_id in documents})
            else:
                yield item

    def search(self, query: str, *, k: int | None = None, mode: Mode = "hybrid") -> Results:
        snapshot = self.pipeline.snapshot()
        hits = self.pipeline.search(snapshot, query, k, mode)
        documents = snapshot.index.documents
        found = {h.chunk.doc_id: documents[h.chunk.doc_id] for h in hits if h.chunk.doc_id in documents}
        return Results(query, tuple(hits), found)

    def documents(self) -> list[DocumentInfo]:
        index = self.load()
        counts = index.chunk_counts()
        return [DocumentInfo(d, counts.get(d.doc_id, 0)) for d in index.documents.values()]

    def document(self, doc_id: str) -> DocumentInfo:
        index = self.load()
        if doc_id not in index.documents:
            raise NotFoundError(f"no document {doc_id}")
        return DocumentInfo(index.documents[doc_id], index.chunk_counts().get(doc_id, 0))

    def job_states(self) -> dict[str, int]:
        """How many jobs this service holds in each state (none before the first write)."""
        with self._lock:
            runner = self._jobs
        return runner.states() if runner else {"queued": 0, "running": 0, "done": 0, "failed": 0}

    def job(self, job_id: str) -> Job:
        job = self._runner().get(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id} (jobs are forgotten when the service restarts)")
        return job

    # Writing: each write is a job on the one writer thread; callers follow it or wait for it.

    def add(
        self,
        *,
        uploads: Sequence[Upload] = (),
        texts: Sequence[Text] = (),
        paths: Sequence[Path] = (),
        urls: Sequence[str | Source] = (),
    ) -> Job:
        """Queue documents for indexing.

        Uploads and texts are checked and parsed now, all of them before any is queued, so a bad one
        fails the call and nothing is indexed. Paths and URLs are loaded by the job, each on its own: a
        file that does not parse or a URL that does not fetch is reported in the job's outcomes (as
        "failed: <reason>") and the others are still indexed; the job fails when none of them loads.
        """
        kinds = [corpus.kind_of(upload.name, upload.media_type) for upload in uploads]
        documents = [corpus.load_bytes(u.data, kind, name=u.name) for u, kind in zip(uploads, kinds, strict=True)]
        documents += [corpus.from_text(t.text, title=t.title, url=t.url) for t in texts]
        missing = [str(path) for path in paths if not path.exists()]
        if missing:
            raise BadInputError(f"{', '.join(missing)}: no such file or folder")
        if not (documents or paths or urls):
            raise BadInputError("nothing to add: give files, texts, paths or URLs")
        kind = "fetch" if urls and not (documents or paths) else "add"
        return self._submit(kind, lambda job: self._write(job, add=documents + self._load(job, paths, urls)))

    def remove(self, doc_ids: Sequence[str]) -> Job:
        known = self.load().documents
        unknown = [doc_id for doc_id in doc_ids if doc_id not in known]
        if unknown:
            raise NotFoundError(f"no such document: {', '.join(unknown)}")
        return self._submit("remove", lambda job: self._write(job, remove=list(doc_ids)))

    def reindex(self) -> Job:
        """Chunk and embed every document again (after a model or chunker change)."""
        return self._submit("reindex", lambda job: self._write(job, rebuild=True))

    def build_if_missing(self) -> Job | None:
        """Index the corpus folder when the store holds no version at all (whole or not); None when it holds one."""
        if self.store.versions():
            return None
        return self.add(paths=[self.settings.corpus_dir])

    def migrate(self, to: str) -> Migration:
        """Copy the FAISS index in MEDRAG_INDEX_DIR to the store `to` names, vectors and all."""
        with self._lock:  # no job of this service writes meanwhile
            source = FaissStore(self.settings.index_dir, self.settings.keep_versions)
            return indexing.migrate(source, store_for(self.settings, to))

    def close(self) -> None:
        if self._jobs is not None:
            self._jobs.stop()
        if self.llm is not None:
            self.llm.close()

    def _runner(self) -> JobRunner:
        with self._lock:
            if self._jobs is None:
                self._jobs = JobRunner(on_change=self._serve, on_finish=self._finished)
            return self._jobs

    def _submit(self, kind: str, work) -> Job:
        return self._runner().submit(kind, work)

    def _finished(self, job: Job) -> None:
        for observer in self.observers:
            observer.job_finished(job)

    def _serve(self, change: Change) -> None:
        if change.view is not None:
            self.pipeline.install(change.view)

    def _write(self, job: Job, **change) -> Change:
        """One index update, on the writer thread, with the writer's own embedder (queries never wait for it)."""
        if self._writer_embedder is None:
            self._writer_embedder = embedder_for(self.settings)
        return indexing.update(
            self.store,
            self._writer_embedder,
            size=self.settings.chunk_size,
            overlap=self.settings.chunk_overlap,
            progress=job.progress,
            waiting=job.mark_waiting,
            **change,
        )

    def _load(self, job: Job, paths: Sequence[Path], urls: Sequence[str | Source]) -> list[Document]:
        """The documents of paths and URLs, each failure recorded in the job's outcomes."""
        documents: list[Document] = []
        failures: list[MedragError] = []
        for path in paths:
            for file in corpus.files_in(path):
                try:
                    documents.append(corpus.load_file(file))
                except MedragError as error:
                    failures.append(error)
                    job.outcomes[str(file)] = f"failed: {error}"
        for item in urls:
            source = item if isinstance(item, Source) else Source(url=item)
            try:
                documents.append(self._fetch(source))
            except MedragError as error:
                failures.append(error)
                job.outcomes[source.url] = f"failed: {error}"
        if failures and not documents:
            raise failures[0]
        return documents

    def _fetch(self, source: Source) -> Document:
        document = indexing.document_from_url(self.fetcher, source.url)
        # A curated source's publisher wins (a page without one gets its host name); the page's own
        # date is more precise than the source's year.
        return replace(document, publisher=source.publisher or document.publisher, date=document.date or source.year)
