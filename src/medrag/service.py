"""The service: built once from `Settings`, it owns every part and offers what the entry points need.

The HTTP API and the command line are thin adapters over a `Service`: they parse, call one method
and render what comes back. What it returns already carries the documents its citations come from,
read from the index version that answered, so no caller handles index versions. Writes run as jobs
on one writer thread; the new version a job writes is served at once, without loading it again.
"""

import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Protocol

from . import corpus, indexing
from .embedding import Embedder, load_embedder
from .errors import BadInputError, MedragError, NotFoundError, StorageError, TooLargeError, WritesDisabledError
from .fetching import Fetcher
from .indexing import Change, Migration
from .jobs import STATES, Job, JobRunner
from .llm import ChatClient
from .pipeline import Options, Pipeline, Snapshot
from .retrieval import Mode
from .settings import Settings
from .stores import FaissStore, IndexView, Store, open_store
from .types import Answer, Document, Reply, Results, Source, Turn


def jobs_dir(settings: Settings) -> Path:
    """Where jobs are kept: a JSON file each."""
    return settings.index_dir / "jobs"


def uploads_dir(settings: Settings) -> Path:
    """Where the bytes of the uploads of unfinished jobs are kept."""
    return jobs_dir(settings) / "uploads"


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


def embedder_for(settings: Settings, *, queries: bool = False) -> Embedder:
    """The writer's encoder, or (`queries`) the questions' pool: one thread per handle, handles side by side."""
    handles = settings.query_encoders if queries else settings.embed_threads
    return load_embedder(settings.embed_model, 1, settings.embed_batch_size, handles)


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
        self.embedder = embedder_for(settings, queries=True)
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
            query_cache_size=settings.query_cache_size,
        )
        self.pipeline = Pipeline(self.store, self.embedder, options, self.llm)
        self._writer_embedder: Embedder | None = None
        self._jobs: JobRunner | None = None
        self._lock = threading.Lock()
        # Documents a queued or running job removes, by job id: a second DELETE of one is a 404.
        self._removing: dict[str, set[str]] = {}
        self._removing_lock = threading.Lock()
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
        return runner.states() if runner else dict.fromkeys(STATES, 0)

    def job(self, job_id: str) -> Job:
        job = self._runner().get(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id}")
        return job

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued job (it never runs) or a running one (it stops before it writes anything)."""
        job = self._runner().cancel(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id}")
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
        kind, work = self._adding(uploads, texts, paths, urls)
        return self._submit(kind, work, {"add": self._keep(uploads, texts, paths, urls)})

    def _adding(
        self, uploads: Sequence[Upload], texts: Sequence[Text], paths: Sequence[Path], urls: Sequence[str | Source]
    ) -> tuple[str, Callable[[Job], Change]]:
        """The kind and the work of a job adding these, after the checks made before it is queued."""
        items: list[Document | tuple[Upload, str]] = []
        for upload in uploads:
            kind = corpus.kind_of(upload.name, upload.media_type)
            corpus.check_bytes(upload.data, kind, upload.name)
            isolated = kind in ("pdf", "html")
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
        return kind, lambda job: self._write(job, add=self._parse(job, documents) + self._load(job, paths, urls))

    def _keep(
        self, uploads: Sequence[Upload], texts: Sequence[Text], paths: Sequence[Path], urls: Sequence[str | Source]
    ) -> dict:
        """An add job's inputs as JSON, each upload's bytes written to a file of its own beside the jobs."""
        kept = []
        try:
            uploads_dir(self.settings).mkdir(parents=True, exist_ok=True)
            for upload in uploads:
                blob = secrets.token_urlsafe(12)
                (uploads_dir(self.settings) / blob).write_bytes(upload.data)
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
        """Queue again the jobs the last run of the service left queued (the HTTP API calls this at start)."""
        runner = self._runner()
        for job in runner.resumable:
            inputs = job.inputs or {}
            try:
                if "add" in inputs:
                    add = inputs["add"]
                    uploads = [
                        Upload(u["name"], u["media_type"], (uploads_dir(self.settings) / u["blob"]).read_bytes())
                        for u in add["uploads"]
                    ]
                    texts = [Text(**text) for text in add["texts"]]
                    urls = [url if isinstance(url, str) else Source(**url) for url in add["urls"]]
                    _, work = self._adding(uploads, texts, [Path(path) for path in add["paths"]], urls)
                elif "remove" in inputs:
                    doc_ids = list(inputs["remove"])
                    with self._removing_lock:
                        self._removing[job.job_id] = set(doc_ids)
                    work = partial(self._write_removal, doc_ids=doc_ids)
                else:
                    work = partial(self._write, rebuild=True)
            except (MedragError, OSError, KeyError, TypeError) as error:
                detail = f"the service stopped while the job was queued, and it could not be queued again: {error}"
                runner.resume(job, None, {"detail": detail, "code": "interrupted"})
            else:
                runner.resume(job, work)
        runner.resumable.clear()

    def remove(self, doc_ids: Sequence[str]) -> Job:
        """Queue the removal of documents; one already gone, or already being removed by a job, is not found."""
        known = self.load().documents
        with self._removing_lock:
            removing = set().union(*self._removing.values())
            unknown = [doc_id for doc_id in doc_ids if doc_id not in known or doc_id in removing]
            if unknown:
                raise NotFoundError(f"no such document: {', '.join(unknown)}")
            job = self._submit("remove", partial(self._write_removal, doc_ids=list(doc_ids)), {"remove": list(doc_ids)})
            if not job.finished.is_set():
                self._removing[job.job_id] = set(doc_ids)
        return job

    def reindex(self) -> Job:
        """Chunk and embed every document again (after a model or chunker change)."""
        return self._submit("reindex", partial(self._write, rebuild=True), {"reindex": True})

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
        self.pipeline.close()
        if self._jobs is not None:
            self._jobs.stop()
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

    def _runner(self) -> JobRunner:
        self.check_writes()  # jobs are the writes: a read-only process neither runs nor resumes them
        with self._lock:
            if self._jobs is None:
                self._jobs = JobRunner(on_change=self._serve, on_finish=self._finished, folder=jobs_dir(self.settings))
            return self._jobs

    def _submit(self, kind: str, work, inputs: dict | None = None) -> Job:
        return self._runner().submit(kind, work, inputs)

    def _finished(self, job: Job) -> None:
        with self._removing_lock:
            self._removing.pop(job.job_id, None)
        for upload in (job.inputs or {}).get("add", {}).get("uploads", []):
            (uploads_dir(self.settings) / upload["blob"]).unlink(missing_ok=True)
        for observer in self.observers:
            observer.job_finished(job)

    def _serve(self, change: Change) -> None:
        if change.view is not None:
            self.pipeline.install(change.view)

    def _write_removal(self, job: Job, doc_ids: list[str]) -> Change:
        return self._write(job, remove=doc_ids)

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
                documents.append(corpus.parse_isolated(upload.data, kind, upload.name, limits))
        return documents

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

    def _limits(self) -> corpus.Limits:
        settings = self.settings
        return corpus.Limits(
            chars=settings.max_document_chars,
            decompressed=settings.max_decompressed_bytes,
            pages=settings.max_pdf_pages,
            seconds=settings.parse_timeout,
        )

    def _fetch(self, source: Source) -> Document:
        # As `indexing.document_from_url`, but a fetched PDF or HTML page is parsed in a child process
        # within the same limits as an upload.
        fetched = self.fetcher.fetch(source.url)
        kind = corpus.kind_of(None, fetched.media_type or indexing.sniff(fetched.body))
        if kind in ("pdf", "html"):
            document = corpus.parse_isolated(fetched.body, kind, source.url, self._limits(), url=source.url)
        else:
            document = corpus.load_bytes(fetched.body, kind, url=source.url, charset=fetched.charset)
        # A curated source's publisher wins (a page without one gets its host name); the page's own
        # date is more precise than the source's year.
        return replace(document, publisher=source.publisher or document.publisher, date=document.date or source.year)
