"""The indexed documents, and adding or removing them while the service runs (as background jobs)."""

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from ...jobs import Job
from ..deps import Admin, ServiceDep, SettingsDep, check_reader
from ..schemas import KB_PATTERN, DocumentIn, DocumentOut, JobOut, document_out, error_responses, job_out
from ..uploads import read

router = APIRouter(tags=["documents"])
# The route reads its body itself (uploads.read, within its limits), so OpenAPI hears of it here.
POSTED = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "Files (.md, .txt, .html, .pdf, .docx, .pptx, .xlsx, .csv, .png, "
                            ".jpg), each as a multipart file field.",
                        },
                        "tags": {
                            "type": "array",
                            "items": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[^,]*$"},
                            "maxItems": 20,
                            "description": "Labels for filtering questions, one per field.",
                        },
                    },
                    "required": ["files"],
                }
            },
            "application/json": {"schema": DocumentIn.model_json_schema()},
        },
    }
}


KB = Query(default="default", pattern=KB_PATTERN, description="The knowledge base.")


@router.get("/documents", response_model=list[DocumentOut], responses=error_responses(401, 404, 422, 503))
def list_documents(request: Request, service: ServiceDep, kb: str = KB) -> list[DocumentOut]:
    """A knowledge base's documents with their chunk counts and the articles they cite."""
    check_reader(request, service, kb)
    return [document_out(info) for info in service.documents(kb)]


@router.get("/documents/{doc_id}", response_model=DocumentOut, responses=error_responses(401, 404, 422, 503))
def get_document(doc_id: str, request: Request, service: ServiceDep, kb: str = KB) -> DocumentOut:
    """One document's metadata and chunk count."""
    check_reader(request, service, kb)
    return document_out(service.document(doc_id, kb))


@router.post(
    "/documents",
    status_code=202,
    response_model=JobOut,
    responses=error_responses(401, 403, 404, 408, 413, 415, 422, 503),
    dependencies=[Admin],
    openapi_extra=POSTED,
)
async def add_documents(
    request: Request, response: Response, settings: SettingsDep, service: ServiceDep, kb: str = KB
) -> JobOut:
    """Queue documents for indexing: multipart files (.md, .txt, .html, .pdf, .docx, .pptx, .xlsx, .csv, .png,
    .jpg), JSON {url}, or JSON {title, text}.

    Cheap checks (type by name, media type and first bytes; size; count; an encrypted Office file) fail
    this request; text and markdown are parsed now too. Other files are parsed by the job, within the
    limits on characters, inflated bytes, pages, sheet rows, memory and seconds: a file past one, or that
    does not parse, fails the job and nothing of it is indexed; a scanned page OCR could not read is
    listed in the job's outcomes. A URL is fetched by the job. Follow the job at GET /jobs/{job_id}.
    """
    service.shelf(kb)  # an unknown knowledge base is 404 before the body is read
    change = await read(request, settings)
    job = await run_in_threadpool(lambda: service.add(**change, kb=kb))
    return accepted(job, response, kb)


@router.delete(
    "/documents/{doc_id}",
    status_code=202,
    response_model=JobOut,
    responses=error_responses(401, 403, 404, 422, 503),
    dependencies=[Admin],
)
def delete_document(doc_id: str, response: Response, service: ServiceDep, kb: str = KB) -> JobOut:
    """Queue a document's removal; once the job is done no query can retrieve it."""
    return accepted(service.remove([doc_id], kb), response, kb)


@router.get(
    "/jobs/{job_id}", response_model=JobOut, responses=error_responses(401, 403, 404, 422), dependencies=[Admin]
)
def get_job(job_id: str, service: ServiceDep, kb: str = KB) -> JobOut:
    """A job's state (queued, running, done, failed, cancelled), progress in chunks, outcome or error."""
    return job_out(service.job(job_id, kb))


@router.delete(
    "/jobs/{job_id}",
    status_code=202,
    response_model=JobOut,
    responses=error_responses(401, 403, 404, 409, 422),
    dependencies=[Admin],
)
def cancel_job(job_id: str, service: ServiceDep, kb: str = KB) -> JobOut:
    """Cancel a job: a queued one never runs (now `cancelled`); a running one stops before it writes anything
    and becomes `cancelled` (follow it at GET /jobs/{job_id}). A finished job is 409.
    """
    return job_out(service.cancel(job_id, kb))


def accepted(job: Job, response: Response, kb: str = "default") -> JobOut:
    response.headers["Location"] = f"/jobs/{job.job_id}" + ("" if kb == "default" else f"?kb={kb}")
    return job_out(job)
