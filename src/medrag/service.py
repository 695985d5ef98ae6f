"""The service: built once from `Settings`, it owns every part and offers what the entry points need.

The HTTP API and the command line are thin adapters over a `Service`: they parse, call one method
and render what comes back. What it returns already carries the documents its citations come from,
read from the index version that answered, so no caller handles index versions. Writes run as jobs
on a writer thread; the new version a job writes is served at once, without loading it again.

Every method takes a knowledge base (`kb`, `default` unless named). Each knowledge base is a
`Shelf`: its own store, pipeline (snapshot, entity list) and job runner with its own writer thread,
sharing the service's embedders, LLM client and fetcher; so nothing of one is seen by another, and
a write to one never waits for, or holds up, another.
"""

import hashlib
import hmac
import logging
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Protocol

from . import corpus, indexing, tokens
from .embedding import Embedder, load_embedder
from .errors import (
    BadInputError,
    ConflictError,
    MedragError,
    NotFoundError,
    StorageError,
    TooLargeError,
    UnauthorizedError,
    WritesDisabledError,
)
from .fetching import Fetcher
from .indexing import Change, Migration
from .jobs import STATES, Job, JobRunner
from .llm import ChatClient
from .pipeline import Options, Pipeline, Snapshot
from .retrieval import Mode
from .settings import Settings
from .stores import FaissStore, IndexView, Store, open_store
from .stores.catalog import DEFAULT, Catalog, FolderCatalog, KnowledgeBase, check_name, folder
from .types import Answer, Document, Filter, Reply, Results, Source, Turn

log = logging.getLogger("medrag.service")


def jobs_dir(settings: Settings, kb: str = DEFAULT) -> Path:
    """Where a knowledge base's jobs are kept: a JSON file each."""
    return folder(settings.index_dir, kb) / "jobs"


def uploads_dir(settings: Settings, kb: str = DEFAULT) -> Path:
    """Where the bytes of the uploads of a knowledge base's unfinished jobs are kept."""
    return jobs_dir(settings, kb) / "uploads"


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


def collection_for(settings: Settings, kb: str) -> str:
    """A knowledge base's Milvus alias: MEDRAG_MILVUS_COLLECTION for `default`, `<it>_kb_<name>` for the others.

    Milvus names allow letters, digits and `_`: `_` is written `_0` and `-` `_1`, so no two names meet
    (and no name's versions, `<alias>_v_...`, look like another's).
    """
    if kb == DEFAULT:
        return settings.milvus_collection
    return f"{settings.milvus_collection}_kb_{check_name(kb).replace('_', '_0').replace('-', '_1')}"


def store_for(settings: Settings, kind: str | None = None, kb: str = DEFAULT) -> Store:
    """A knowledge base's store in the configured kind (MEDRAG_STORE) or the one `kind` names."""
    token = settings.milvus_token.get_secret_value() if settings.milvus_token else None
    return open_store(
        kind or settings.store,
        index_dir=folder(settings.index_dir, kb),
        milvus_uri=settings.milvus_uri,
        milvus_collection=collection_for(settings, kb),
        milvus_token=token,
        keep_versions=settings.keep_versions,
    )


def catalog_for(settings: Settings) -> Catalog:
    """Where the knowledge bases are recorded: beside the FAISS folders, or in Milvus (seen by every replica)."""
    if settings.store == "milvus":
        from .stores.milvus import MilvusCatalog

        token = settings.milvus_token.get_secret_value() if settings.milvus_token else None
        return MilvusCatalog(settings.milvus_uri or "", settings.milvus_collection, token=token)
    return FolderCatalog(settings.index_dir)


def embedder_for(settings: Settings, *, queries: bool = False, model: str | None = None) -> Embedder:
    """The writer's encoder, or (`queries`) the questions' pool: one thread per handle, handles side by side."""
    handles = settings.query_encoders if queries else settings.embed_threads
    return load_embedder(model or settings.embed_model, 1, settings.embed_batch_size, handles)


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


class Shelf:
    """One knowledge base's parts: its record, store, pipeline and job runner, and who is reading it."""

    def __init__(self, record: KnowledgeBase, store: Store, pipeline: Pipeline, writer: Embedder):
        self.record = record
        self.name = record.name
        self.store = store
        self.pipeline = pipeline
        self.writer = writer
        self.jobs: JobRunner | None = None
        # Documents a queued or running job removes, by job id: a second DELETE of one is a 404.
        self.removing: dict[str, set[str]] = {}
        self.removing_lock = threading.Lock()
        self.readers = 0
        self.idle = threading.Condition()

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Count a reader while the block runs: a deleted knowledge base's index goes once none is left."""
        with self.idle:
            self.readers += 1
        try:
            yield
        finally:
            with self.idle:
                self.readers -= 1
                self.idle.notify_all()


class Service:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.catalog = catalog_for(settings)
        self.llm = llm_for(settings)
        self.fetcher = Fetcher(
            max_bytes=settings.fetch_max_bytes, timeout=settings.fetch_timeout, allow=settings.fetch_allow
        )
        self.options = Options(
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
            query_cache_size=settings.query_cache_size,
        )
        # Encoders by (model, for questions), shared by the knowledge bases built with that model;
        # the writer's is loaded on the first write.
        self._embedders: dict[tuple[str, bool], Embedder] = {}
        self._embedders_lock = threading.Lock()
        self.embedder = self._embedder(settings.embed_model, queries=True)
        self._shelves: dict[str, Shelf] = {}
        self._lock = threading.Lock()
        self.observers: list[Observer] = []

    # Knowledge bases.

    def shelf(self, kb: str = DEFAULT) -> Shelf:
        """A knowledge base's parts, made on first use; NotFoundError when there is none of that name."""
        with self._lock:
            shelf = self._shelves.get(kb)
        if shelf is not None:
            return shelf
        record = self.catalog.get(check_name(kb))
        if record is None:
            raise NotFoundError(f"no knowledge base {kb}: GET /kbs lists them")
        model = record.embed_model or self.settings.embed_model
        queries = self._embedder(model, queries=True)
        store = store_for(self.settings, kb=kb)
        made = Shelf(record, store, Pipeline(store, queries, self.options, self.llm), _LazyWriter(self, model))
        with self._lock:
            return self._shelves.setdefault(kb, made)

    def _embedder(self, model: str, *, queries: bool) -> Embedder:
        with self._embedders_lock:
            key = (model, queries)
            if key not in self._embedders:
                self._embedders[key] = embedder_for(self.settings, queries=queries, model=model)
            return self._embedders[key]

    def knowledge_bases(self) -> list[KnowledgeBase]:
        return self.catalog.records()

    def knowledge_base(self, kb: str) -> KnowledgeBase:
        return self.shelf(kb).record

    def create_kb(self, record: KnowledgeBase) -> KnowledgeBase:
        """Record a new, empty knowledge base; ConflictError when the name is taken."""
        self.check_writes()
        check_name(record.name)
        if record.embed_model is not None:
            if not record.embed_model.strip():
                raise BadInputError("embed_model must name a model, or be left out for the service's own")
            # Only models the operator offers: a request never makes the service fetch or load another.
            offered = [self.settings.embed_model, *self.settings.embed_models]
            if record.embed_model not in offered:
                raise BadInputError(
                    f"embed_model {record.embed_model!r} is not offered here: use one of {', '.join(offered)} "
                    "(MEDRAG_EMBED_MODELS lists the others)"
                )
        created = self.catalog.create(record)
        shelf = self.shelf(created.name)
        settings = self.settings
        change = indexing.start(
            shelf.store, shelf.pipeline.embedder, size=settings.chunk_size, overlap=settings.chunk_overlap
        )
        self._serve(shelf, change)
        return created

    def delete_kb(self, kb: str, *, wait: bool = False) -> KnowledgeBase:
        """Delete a knowledge base with its documents and jobs; its index goes once its last reader is done.

        It disappears at once (new requests naming it are 404); its queued and running jobs are
        cancelled, and the index is deleted on a thread of its own after the readers still on it finish.
        """
        self.check_writes()
        if kb == DEFAULT:
            raise ConflictError("the knowledge base default cannot be deleted")
        shelf = self.shelf(kb)
        self.catalog.delete(kb)
        with self._lock:
            self._shelves.pop(kb, None)
        deleting = threading.Thread(target=self._destroy, args=(shelf,), name=f"medrag-delete-{kb}", daemon=True)
        deleting.start()
        if wait:  # the command line: the index is gone when it returns
            deleting.join()
        return shelf.record

    def _destroy(self, shelf: Shelf) -> None:
        runner = shelf.jobs
        if runner is not None:
            for job in runner.jobs():
                if not job.finished.is_set():
                    with suppress(ConflictError):  # finished meanwhile
                        runner.cancel(job.job_id)
            runner.stop()
        with shelf.idle:
            shelf.idle.wait_for(lambda: shelf.readers == 0)
        try:
            with shelf.store.lock():
                shelf.store.destroy()
        except MedragError as error:
            log.error("knowledge base %s: its index could not be deleted: %s", shelf.name, error)
        # Its folder (FAISS versions, or with Milvus the lock file) and its jobs go too.
        shutil.rmtree(folder(self.settings.index_dir, shelf.name), ignore_errors=True)

    # Who may read a private knowledge base: the admin token, or a read token for it and the page's origin.

    def _signing_key(self) -> bytes | None:
        settings = self.settings
        secret = settings.token_secret or settings.admin_token
        if secret is None:
            return None
        return hashlib.sha256(b"medrag read tokens\0" + secret.get_secret_value().encode()).digest()

    def mint_token(self, kb: str, origin: str, seconds: int | None = None) -> tuple[str, float]:
        """A read token for `kb` and pages of `origin`, and when it expires; it lives `seconds`, at most the setting."""
        self.shelf(kb)  # NotFoundError for an unknown knowledge base
        key = self._signing_key()
        if key is None:
            raise WritesDisabledError("read tokens need MEDRAG_ADMIN_TOKEN or MEDRAG_TOKEN_SECRET on the server")
        expires = time.time() + min(seconds or self.settings.read_token_ttl, self.settings.read_token_ttl)
        return tokens.mint(key, kb, origin, expires), float(int(expires))

    def check_reader(self, kb: str, bearer: str | None, origin: str | None) -> None:
        """Let anyone read a public knowledge base; a private one needs the admin token or a read token (401)."""
        if not self.shelf(kb).record.private:
            return
        if not bearer:
            raise UnauthorizedError(
                f"the knowledge base {kb} is private: send 'Authorization: Bearer <read token>' "
                "(POST /kbs/{kb}/tokens mints one)"
            )
        admin = self.settings.admin_token
        if admin is not None and hmac.compare_digest(bearer.encode(), admin.get_secret_value().encode()):
            return
        key = self._signing_key()
        if key is None:
            raise UnauthorizedError(f"the knowledge base {kb} is private and this server mints no read tokens")
        tokens.verify(key, bearer, kb, origin, time.time())

    # Reading.

    @property
    def store(self) -> Store:
        """The `default` knowledge base's store."""
        return self.shelf().store

    @property
    def pipeline(self) -> Pipeline:
        """The `default` knowledge base's pipeline."""
        return self.shelf().pipeline

    def load(self, kb: str = DEFAULT) -> IndexView:
        """The live version, loaded now if it is not yet (the service start does this before the first question)."""
        return self.shelf(kb).pipeline.snapshot().index

    @property
    def degraded(self) -> str | None:
        """Why the version served is not the live one (the live one is missing or damaged); None when it is."""
        return self.shelf().pipeline.degraded

    def degraded_of(self, kb: str) -> str | None:
        return self.shelf(kb).pipeline.degraded

    def ask(
        self,
        question: str,
        *,
        top_k: int | None = None,
        mode: Mode = "hybrid",
        history: Sequence[Turn] = (),
        kb: str = DEFAULT,
        wanted: Filter | None = None,
    ) -> Reply:
        pieces = self.stream(question, top_k=top_k, mode=mode, history=history, incremental=False, kb=kb, wanted=wanted)
        *_, reply = pieces
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
        kb: str = DEFAULT,
        wanted: Filter | None = None,
    ) -> Iterator[str | Reply]:
        """Pieces of the answer as they are written, then the `Reply`; bad input and a missing index fail here.

        `wanted` keeps the question to the documents it lets through (`filters`); when it lets none
        through, the answer is a refusal (found false), not an error.
        """
        shelf = self.shelf(kb)
        snapshot = shelf.pipeline.snapshot()
        items = shelf.pipeline.stream(snapshot, question, top_k, mode, history, incremental=incremental, wanted=wanted)
        return self._replies(shelf, snapshot, items)

    def _replies(self, shelf: Shelf, snapshot: Snapshot, items: Iterator[str | Answer]) -> Iterator[str | Reply]:
        documents = snapshot.index.documents
        with shelf.reading():
            for item in items:
                if isinstance(item, Answer):
                    for observer in self.observers:
                        observer.answered(item)
                    cited = {c.hit.chunk.doc_id for c in item.citations}
                    yield Reply(item, {doc_id: documents[doc_id] for doc_id in cited if doc_id in documents})
                else:
                    yield item

    def search(
        self,
        query: str,
        *,
        k: int | None = None,
        mode: Mode = "hybrid",
        kb: str = DEFAULT,
        wanted: Filter | None = None,
    ) -> Results:
        shelf = self.shelf(kb)
        with shelf.reading():
            snapshot = shelf.pipeline.snapshot()
            hits = shelf.pipeline.search(snapshot, query, k, mode, wanted)
        documents = snapshot.index.documents
        found = {h.chunk.doc_id: documents[h.chunk.doc_id] for h in hits if h.chunk.doc_id in documents}
        return Results(query, tuple(hits), found)

    def documents(self, kb: str = DEFAULT) -> list[DocumentInfo]:
        index = self.load(kb)
        counts = index.chunk_counts()
        return [DocumentInfo(d, counts.get(d.doc_id, 0)) for d in index.documents.values()]

    def document(self, doc_id: str, kb: str = DEFAULT) -> DocumentInfo:
        index = self.load(kb)
        if doc_id not in index.documents:
            raise NotFoundError(f"no document {doc_id}")
        return DocumentInfo(index.documents[doc_id], index.chunk_counts().get(doc_id, 0))

    def job_states(self) -> dict[str, int]:
        """How many jobs this service holds in each state, over every knowledge base (none before the first write)."""
        with self._lock:
            runners = [shelf.jobs for shelf in self._shelves.values() if shelf.jobs is not None]
        totals = dict.fromkeys(STATES, 0)
        for runner in runners:
            for state, count in runner.states().items():
                totals[state] += count
        return totals

    def job(self, job_id: str, kb: str = DEFAULT) -> Job:
        job = self._runner(self.shelf(kb)).get(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id}")
        return job

    def cancel(self, job_id: str, kb: str = DEFAULT) -> Job:
        """Cancel a queued job (it never runs) or a running one (it stops before it writes anything)."""
        job = self._runner(self.shelf(kb)).cancel(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id}")
        return job

    # Writing: each write is a job on the knowledge base's writer thread; callers follow it or wait for it.

    def add(
        self,
        *,
        uploads: Sequence[Upload] = (),
        texts: Sequence[Text] = (),
        paths: Sequence[Path] = (),
        urls: Sequence[str | Source] = (),
        tags: Sequence[str] = (),
        kb: str = DEFAULT,
    ) -> Job:
        """Queue documents for indexing in a knowledge base, each labelled with `tags`.

        Texts and text or markdown uploads are checked and parsed now; PDF and HTML uploads only get
        the cheap checks (type by name, media type and first bytes) now and are parsed by the job, each
        in a child process within `Settings`' limits (characters, inflated bytes, pages, seconds). A bad
        upload of either sort fails the whole call or job, and nothing of it is indexed. Paths and URLs
        are loaded by the job, each on its own: a file that does not parse or a URL that does not fetch
        is reported in the job's outcomes (as "failed: <reason>") and the others are still indexed; the
        job fails when none of them loads. The inputs are kept with the job (uploads as files beside
        it), so a job still queued when the service stops runs after the restart (`resume_jobs`).
        """
        self.check_writes()  # before anything is kept beside the jobs
        shelf = self.shelf(kb)
        tags = check_tags(tags)
        kind, work = self._adding(shelf, uploads, texts, paths, urls, tags)
        kept = {**self._keep(kb, uploads, texts, paths, urls), "tags": list(tags)}
        return self._submit(shelf, kind, work, {"add": kept})

    def _adding(
        self,
        shelf: Shelf,
        uploads: Sequence[Upload],
        texts: Sequence[Text],
        paths: Sequence[Path],
        urls: Sequence[str | Source],
        tags: tuple[str, ...] = (),
    ) -> tuple[str, Callable[[Job], Change]]:
        """The kind and the work of a job adding these, after the checks made before it is queued."""
        items: list[Document | tuple[Upload, str]] = []
        for upload in uploads:
            kind = corpus.kind_of(upload.name, upload.media_type)
            corpus.check_bytes(upload.data, kind, upload.name)
            isolated = kind in corpus.ISOLATED
            items.append((upload, kind) if isolated else corpus.load_bytes(upload.data, kind, name=upload.name))
        items += [corpus.from_text(t.text, title=t.title, url=t.url) for t in texts]
        limit = self.settings.max_document_chars
        for item in items:
            if isinstance(item, Document) and len(item.text) > limit:
                raise TooLargeError(
                    f"{item.path or item.title or 'the text'}: {len(item.text)} characters; "
                    f"the limit is {limit} (MEDRAG_MAX_DOCUMENT_CHARS)"
                )
        documents = items
        missing = [str(path) for path in paths if not path.exists()]
        if missing:
            raise BadInputError(f"{', '.join(missing)}: no such file or folder")
        if not (documents or paths or urls):
            raise BadInputError("nothing to add: give files, texts, paths or URLs")
        kind = "fetch" if urls and not (documents or paths) else "add"

        def work(job: Job) -> Change:
            loaded = self._parse(job, documents) + self._load(job, paths, urls)
            return self._write(shelf, job, add=[replace(d, tags=tags) for d in loaded] if tags else loaded)

        return kind, work

    def _keep(
        self,
        kb: str,
        uploads: Sequence[Upload],
        texts: Sequence[Text],
        paths: Sequence[Path],
        urls: Sequence[str | Source],
    ) -> dict:
        """An add job's inputs as JSON, each upload's bytes written to a file of its own beside the jobs."""
        kept = []
        folder = uploads_dir(self.settings, kb)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for upload in uploads:
                blob = secrets.token_urlsafe(12)
                (folder / blob).write_bytes(upload.data)
                kept.append({"name": upload.name, "media_type": upload.media_type, "blob": blob})
        except OSError as error:
            raise StorageError(f"the upload could not be kept beside its job: {error}") from error
        return {
            "uploads": kept,
            "texts": [asdict(text) for text in texts],
            "paths": [str(path.resolve()) for path in paths],
            "urls": [url if isinstance(url, str) else asdict(url) for url in urls],
        }

    def resume_jobs(self) -> None:
        """Queue again the jobs the last run of the service left queued, in every knowledge base (at start)."""
        self.check_writes()
        try:
            names = [record.name for record in self.knowledge_bases()]
        except MedragError as error:  # the store is down: the service starts and reports it on each request
            log.warning("the knowledge bases could not be listed: %s", error)
            names = [DEFAULT]
        for name in names:
            try:
                self._resume(self.shelf(name))
            except MedragError as error:
                log.warning("knowledge base %s: its queued jobs were not resumed: %s", name, error)

    def _resume(self, shelf: Shelf) -> None:
        runner = self._runner(shelf)
        for job in runner.resumable:
            inputs = job.inputs or {}
            try:
                if "add" in inputs:
                    add = inputs["add"]
                    blobs = uploads_dir(self.settings, shelf.name)
                    uploads = [
                        Upload(u["name"], u["media_type"], (blobs / u["blob"]).read_bytes()) for u in add["uploads"]
                    ]
                    texts = [Text(**text) for text in add["texts"]]
                    urls = [url if isinstance(url, str) else Source(**url) for url in add["urls"]]
                    paths = [Path(path) for path in add["paths"]]
                    _, work = self._adding(shelf, uploads, texts, paths, urls, tuple(add.get("tags", ())))
                elif "remove" in inputs:
                    doc_ids = list(inputs["remove"])
                    with shelf.removing_lock:
                        shelf.removing[job.job_id] = set(doc_ids)
                    work = partial(self._write_removal, shelf, doc_ids=doc_ids)
                else:
                    work = partial(self._write, shelf, rebuild=True)
            except (MedragError, OSError, KeyError, TypeError) as error:
                detail = f"the service stopped while the job was queued, and it could not be queued again: {error}"
                runner.resume(job, None, {"detail": detail, "code": "interrupted"})
            else:
                runner.resume(job, work)
        runner.resumable.clear()

    def remove(self, doc_ids: Sequence[str], kb: str = DEFAULT) -> Job:
        """Queue the removal of documents; one already gone, or already being removed by a job, is not found."""
        shelf = self.shelf(kb)
        known = self.load(kb).documents
        with shelf.removing_lock:
            removing = set().union(*shelf.removing.values())
            unknown = [doc_id for doc_id in doc_ids if doc_id not in known or doc_id in removing]
            if unknown:
                raise NotFoundError(f"no such document: {', '.join(unknown)}")
            work = partial(self._write_removal, shelf, doc_ids=list(doc_ids))
            job = self._submit(shelf, "remove", work, {"remove": list(doc_ids)})
            if not job.finished.is_set():
                shelf.removing[job.job_id] = set(doc_ids)
        return job

    def reindex(self, kb: str = DEFAULT) -> Job:
        """Chunk and embed every document again (after a model or chunker change)."""
        shelf = self.shelf(kb)
        return self._submit(shelf, "reindex", partial(self._write, shelf, rebuild=True), {"reindex": True})

    def build_if_missing(self) -> Job | None:
        """Index the corpus folder into `default` when its store holds no version at all; None when it holds one."""
        if self.store.versions():
            return None
        return self.add(paths=[self.settings.corpus_dir])

    def migrate(self, to: str) -> list[tuple[str, Migration]]:
        """Copy every knowledge base's FAISS index to the store `to` names, vectors and all.

        The knowledge bases' records go too, so a service on the target store serves them all.
        """
        copied = []
        target_settings = self.settings.model_copy(update={"store": to})
        target_catalog = catalog_for(target_settings)
        for record in FolderCatalog(self.settings.index_dir).records():
            with self._lock:  # no knowledge base is made meanwhile
                source = FaissStore(folder(self.settings.index_dir, record.name), self.settings.keep_versions)
                if record.name != DEFAULT and target_catalog.get(record.name) is None:
                    target_catalog.create(record)
                if record.name != DEFAULT and not source.versions():
                    continue  # made before its first version was: only its record goes
                target = store_for(target_settings, to, record.name)
                copied.append((record.name, indexing.migrate(source, target)))
        return copied

    def close(self) -> None:
        with self._lock:
            shelves = list(self._shelves.values())
        for shelf in shelves:
            shelf.pipeline.close()
            if shelf.jobs is not None:
                shelf.jobs.stop()
        if self.llm is not None:
            self.llm.close()

    def check_writes(self) -> None:
        """Raise `WritesDisabledError` when this process only answers (MEDRAG_READ_ONLY)."""
        if self.settings.read_only:
            raise WritesDisabledError(
                "this process only answers questions (MEDRAG_READ_ONLY, set in the workers of "
                "`medrag serve --workers N`): write and follow jobs through the one writing process, "
                "`medrag add`/`remove`/`reindex` or a `medrag serve` with one worker"
            )

    def _runner(self, shelf: Shelf) -> JobRunner:
        self.check_writes()  # jobs are the writes: a read-only process neither runs nor resumes them
        with self._lock:
            if shelf.jobs is None:
                shelf.jobs = JobRunner(
                    on_change=partial(self._serve, shelf),
                    on_finish=partial(self._finished, shelf),
                    folder=jobs_dir(self.settings, shelf.name),
                )
            return shelf.jobs

    def _submit(self, shelf: Shelf, kind: str, work, inputs: dict | None = None) -> Job:
        return self._runner(shelf).submit(kind, work, inputs)

    def _finished(self, shelf: Shelf, job: Job) -> None:
        with shelf.removing_lock:
            shelf.removing.pop(job.job_id, None)
        for upload in (job.inputs or {}).get("add", {}).get("uploads", []):
            (uploads_dir(self.settings, shelf.name) / upload["blob"]).unlink(missing_ok=True)
        for observer in self.observers:
            observer.job_finished(job)

    def _serve(self, shelf: Shelf, change: Change) -> None:
        if change.view is not None:
            shelf.pipeline.install(change.view)

    def _write_removal(self, shelf: Shelf, job: Job, doc_ids: list[str]) -> Change:
        return self._write(shelf, job, remove=doc_ids)

    def _write(self, shelf: Shelf, job: Job, **change) -> Change:
        """One index update, on the writer thread, with the writer's own embedder (queries never wait for it)."""
        return indexing.update(
            shelf.store,
            shelf.writer.get(),
            size=self.settings.chunk_size,
            overlap=self.settings.chunk_overlap,
            progress=job.progress,
            waiting=job.mark_waiting,
            **change,
        )

    def _parse(self, job: Job, items: Sequence[Document | tuple[Upload, str]]) -> list[Document]:
        """The documents of the uploads, PDF and HTML ones parsed now, each in a child process within its limits."""
        limits = self._limits()
        documents = []
        for item in items:
            job.check_cancelled()
            if isinstance(item, Document):
                documents.append(item)
            else:
                upload, kind = item
                documents.append(self._isolated(job, upload.data, kind, upload.name, limits))
        return documents

    def _isolated(self, job: Job, data: bytes, kind: str, name: str, limits: corpus.Limits) -> Document:
        """A file parsed in a child process; its pages counted in the job, those not read in its outcomes."""

        def failed(where: str, why: str) -> None:
            job.outcomes[f"{name} {where}"] = f"failed: {why}"

        return corpus.parse_isolated(data, kind, name, limits, progress=job.pages, failed=failed)

    def _load(self, job: Job, paths: Sequence[Path], urls: Sequence[str | Source]) -> list[Document]:
        """The documents of paths and URLs, each failure recorded in the job's outcomes."""
        documents: list[Document] = []
        failures: list[MedragError] = []
        for path in paths:
            for file in corpus.files_in(path):
                try:
                    kind = corpus.kind_of(file.name, None)
                    if kind in corpus.ISOLATED:  # within the same limits as an upload
                        documents.append(self._isolated(job, file.read_bytes(), kind, str(file), self._limits()))
                    else:
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

    def _limits(self) -> corpus.Limits:
        settings = self.settings
        return corpus.Limits(
            chars=settings.max_document_chars,
            decompressed=settings.max_decompressed_bytes,
            pages=settings.max_pdf_pages,
            seconds=settings.parse_timeout,
            rows=settings.max_sheet_rows,
            ocr=settings.ocr,
            ocr_pages=settings.ocr_max_pages,
            ocr_seconds=settings.ocr_timeout,
            memory=settings.max_parse_memory,
        )

    def _fetch(self, source: Source) -> Document:
        # As `indexing.document_from_url`, but a fetched PDF or HTML page is parsed in a child process
        # within the same limits as an upload.
        fetched = self.fetcher.fetch(source.url)
        kind = corpus.kind_of(None, fetched.media_type or indexing.sniff(fetched.body))
        if kind in corpus.ISOLATED:
            document = corpus.parse_isolated(fetched.body, kind, source.url, self._limits(), url=source.url)
        else:
            document = corpus.load_bytes(fetched.body, kind, url=source.url, charset=fetched.charset)
        # A curated source's publisher wins (a page without one gets its host name); the page's own
        # date is more precise than the source's year.
        return replace(document, publisher=source.publisher or document.publisher, date=document.date or source.year)


class _LazyWriter:
    """A knowledge base's writer encoder, loaded on its first write and shared by the knowledge bases of its model."""

    def __init__(self, service: Service, model: str):
        self.service = service
        self.model = model

    def get(self) -> Embedder:
        return self.service._embedder(self.model, queries=False)


# Tags given at upload: a few short labels each.
MAX_TAGS = 20
MAX_TAG_CHARS = 64


def check_tags(tags: Sequence[str]) -> tuple[str, ...]:
    cleaned = tuple(dict.fromkeys(tag.strip() for tag in tags if tag.strip()))
    if len(cleaned) > MAX_TAGS:
        raise BadInputError(f"{len(cleaned)} tags; a document may have at most {MAX_TAGS}")
    for tag in cleaned:
        if len(tag) > MAX_TAG_CHARS or "," in tag:
            raise BadInputError(f"tag {tag[:80]!r}: at most {MAX_TAG_CHARS} characters and no comma")
    return cleaned
