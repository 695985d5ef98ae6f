"""Where the index lives: the store protocols (`base`), FAISS versions in a folder (`faiss`), Milvus (`milvus`)."""

from pathlib import Path

from ..errors import ConfigError
from .base import IndexView, Manifest, Store, VersionState, Waiting, write_lock
from .faiss import FaissStore

__all__ = ["FaissStore", "IndexView", "Manifest", "Store", "VersionState", "Waiting", "open_store", "write_lock"]


def open_store(
    kind: str,
    *,
    index_dir: Path,
    milvus_uri: str | None = None,
    milvus_collection: str,
    milvus_token: str | None = None,
    keep_versions: int = 3,
) -> Store:
    """The store of this kind: "faiss" (versions in `index_dir`) or "milvus" (pymilvus is imported only then)."""
    if kind == "faiss":
        return FaissStore(index_dir, keep_versions)
    if kind != "milvus":
        raise ConfigError(f"unknown store {kind!r}: use faiss or milvus")
    if not milvus_uri:
        raise ConfigError("no Milvus to use: set MEDRAG_MILVUS_URI, e.g. http://127.0.0.1:19530 or index/milvus.db")
    from .milvus import MilvusStore

    return MilvusStore(
        milvus_uri, milvus_collection, lock_dir=index_dir, token=milvus_token, keep_versions=keep_versions
    )
