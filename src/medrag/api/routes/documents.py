"""The indexed documents, and adding or removing them while the service runs (as background jobs)."""

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from ...jobs import Job
from ..deps import Admin, ServiceDep, SettingsDep
from ..schemas import DocumentOut, ErrorOut, JobOut, document_out, job_out
from ..uploads import read

router = APIRouter(tags=["documents"])
ERRORS = {status: {"model": ErrorOut} for status in (401, 403, 404, 413, 415, 422)}


@router.get("/documents", response_model=list[DocumentOut])
def list_documents(service: ServiceDep) -> list[DocumentOut]:
    """The indexed documents with their chunk counts and the articles they cite."""
    return [document_out(info) for info in service.documents()]


@router.get("/documents/{doc_id}", response_model=DocumentOut, responses=ERRORS)
def get_document(doc_id: str, service: ServiceDep) -> DocumentOut:
    """One document's metadata and chunk count."""
    return document_out(service.document(doc_id))


@router.post("/documents", status_code=202, response_model=JobOut, responses=ERRORS, dependencies=[Admin])
async def add_documents(request: Request, response: Response, settings: SettingsDep, service: ServiceDep) -> JobOut:
    """Queue documents for indexing: multipart files (.md, .txt, .html, .pdf), JSON {url}, or JSON {title, text}.

    Files are checked and parsed before the job is queued, so a bad file fails this request and
    nothing is indexed; a URL is fetched by the job. Follow the job at GET /jobs/{job_id}.
    """
    change = await read(request, settings)
    job = await run_in_threadpool(lambda: service.add(**change))
    return accepted(job, response)


@router.delete("/documents/{doc_id}", status_code=202, response_model=JobOut, responses=ERRORS, dependencies=[Admin])
def delete_document(doc_id: str, response: Response, service: ServiceDep) -> JobOut:
    """Queue a document's removal; once the job is done no query can retrieve it."""
    return accepted(service.remove([doc_id]), response)


@router.get("/jobs/{job_id}", response_model=JobOut, responses=ERRORS, dependencies=[Admin])
def get_job(job_id: str, service: ServiceDep) -> JobOut:
    """A job's state (queued, running, done, failed), progress in chunks, outcome or error."""
    return job_out(service.job(job_id))


def accepted(job: Job, response: Response) -> JobOut:
    response.headers["Location"] = f"/jobs/{job.job_id}"
    return job_out(job)
