"""The indexed documents, and adding or removing them while the service runs (as background jobs)."""

from fastapi import APIRouter, HTTPException, Request, Response
from starlette.datastructures import State

from ... import indexing
from ...embedding import load_embedder
from ...fetching import Fetcher
from ..deps import Admin, JobsDep, PipelineDep, SettingsDep
from ..jobs import Job
from ..schemas import DocumentOut, ErrorOut, JobOut, document_out, job_out
from ..uploads import read

router = APIRouter(tags=["documents"])
ERRORS = {status: {"model": ErrorOut} for status in (401, 403, 404, 413, 415, 422)}


@router.get("/documents", response_model=list[DocumentOut])
def list_documents(pipeline: PipelineDep) -> list[DocumentOut]:
    """The indexed documents with their chunk counts and the articles they cite."""
    index = pipeline.snapshot().index
    counts = index.chunk_counts()
    return [document_out(d, counts.get(d.doc_id, 0)) for d in index.documents.values()]


@router.get("/documents/{doc_id}", response_model=DocumentOut, responses=ERRORS)
def get_document(doc_id: str, pipeline: PipelineDep) -> DocumentOut:
    """One document's metadata and chunk count."""
    index = pipeline.snapshot().index
    if doc_id not in index.documents:
        raise HTTPException(404, f"no document {doc_id}")
    return document_out(index.documents[doc_id], index.chunk_counts().get(doc_id, 0))


@router.post("/documents", status_code=202, response_model=JobOut, responses=ERRORS, dependencies=[Admin])
async def add_documents(request: Request, response: Response, settings: SettingsDep, jobs: JobsDep) -> JobOut:
    """Queue documents for indexing: multipart files (.md, .txt, .html, .pdf), JSON {url}, or JSON {title, text}.

    Files are checked and parsed before the job is queued, so a bad file fails this request and
    nothing is indexed; a URL is fetched by the job. Follow the job at GET /jobs/{job_id}.
    """
    documents = await read(request, settings)
    state = request.app.state
    if isinstance(documents, str):
        url = documents
        fetcher = Fetcher(
            max_bytes=settings.fetch_max_bytes, timeout=settings.fetch_timeout, allow=settings.fetch_allow
        )
        job = jobs.submit("fetch", lambda job: write(state, job, add=[indexing.document_from_url(fetcher, url)]))
    else:
        job = jobs.submit("add", lambda job: write(state, job, add=documents))
    response.headers["Location"] = f"/jobs/{job.job_id}"
    return job_out(job)


@router.delete("/documents/{doc_id}", status_code=202, response_model=JobOut, responses=ERRORS, dependencies=[Admin])
def delete_document(doc_id: str, request: Request, response: Response, pipeline: PipelineDep, jobs: JobsDep) -> JobOut:
    """Queue a document's removal; once the job is done no query can retrieve it."""
    if doc_id not in pipeline.snapshot().index.documents:
        raise HTTPException(404, f"no document {doc_id}")
    state = request.app.state
    job = jobs.submit("remove", lambda job: write(state, job, remove=[doc_id]))
    response.headers["Location"] = f"/jobs/{job.job_id}"
    return job_out(job)


@router.get("/jobs/{job_id}", response_model=JobOut, responses=ERRORS, dependencies=[Admin])
def get_job(job_id: str, jobs: JobsDep) -> JobOut:
    """A job's state (queued, running, done, failed), progress in chunks, outcome or error."""
    job = jobs.get(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id} (jobs are forgotten when the service restarts)")
    return job_out(job)


def write(state: State, job: Job, **change) -> indexing.Change:
    """Run one index update for a job, on the writer thread."""
    settings = state.settings
    if getattr(state, "writer_embedder", None) is None:
        # The writer's own embedder, so queries never queue behind an indexing batch.
        state.writer_embedder = load_embedder(settings.embed_model, settings.embed_threads, settings.embed_batch_size)
    return indexing.update(
        state.pipeline.store,
        state.writer_embedder,
        size=settings.chunk_size,
        overlap=settings.chunk_overlap,
        progress=job.progress,
        waiting=lambda: setattr(job, "waiting", True),
        **change,
    )
