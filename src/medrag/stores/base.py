"""What every store offers: the `Store` and `IndexView` protocols, the manifest, version names, the write lock.

A `Store` is where the index lives (a folder of FAISS versions, or Milvus collections); an
`IndexView` is one readable version of it, which a query keeps from start to end. Retrieval and
answering see only these two protocols.
"""

import fcntl
import hashlib
import secrets
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import IndexCorruptError, IndexMismatchError
from ..types import Chunk, Document, Hit

Waiting = Callable[[], None]


@dataclass(frozen=True)
class Manifest:
    """What a version says about itself: how it was built, and what it holds (checked when it loads)."""

    model_id: str
    dim: int
    chunker: dict[str, int]  # {"size", "overlap"}
    format: int = 0
    version: str = ""
    index_type: str = ""
    documents: int = 0
    chunks: int = 0
    built_at: str = ""
    build_seconds: float = 0.0
    # Where the time of the build went (chunk, embed, lexical), for the ingestion benchmark.
    phase_seconds: dict[str, float] = field(default_factory=dict)
    new_chunks: int = 0
    collection: str | None = None  # Milvus: the chunks collection of this version
    migrated_from: str | None = None  # the version it was copied from by `medrag migrate`
    # Size and SHA-256 of every other file of the version ({name: {"size", "sha256"}}), checked on
    # load; empty in versions written before it was recorded, which are checked by loading them.
    files: dict[str, dict] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {key: value for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_json(cls, record: dict) -> "Manifest":
        """A manifest from its JSON form; keys this version of medrag does not know are ignored."""
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{key: value for key, value in record.items() if key in known})
        except TypeError as error:
            raise IndexCorruptError(f"not a medrag manifest: {error}") from error


@dataclass(frozen=True)
class VersionState:
    """One stored version as `verify` found it: whole (problem None) or damaged, and whether it is live."""

    version: str
    problem: str | None
    live: bool


class IndexView(Protocol):
    """One readable version of the index: everything a query reads comes from one view."""

    version: str
    manifest: Manifest
    documents: dict[str, Document]

    def chunk_counts(self) -> dict[str, int]:
        """Chunks per document id."""
        ...

    # Each search takes `allowed`: the ids of the documents it may return (`filters.allowed`), None for all.

    def dense_search(self, vector: np.ndarray, k: int, *, allowed: Collection[str] | None = None) -> list[Hit]:
        """The k chunks nearest the (normalised) query vector by inner product, best first."""
        ...

    def lexical_search(self, text: str, k: int, *, allowed: Collection[str] | None = None) -> list[Hit]:
        """The k best BM25 matches (jieba tokens) of the normalised query text, best first; no zero scores."""
        ...

    def term_statistics(self, terms: Iterable[str]) -> tuple[int, dict[str, int]]:
        """The number of chunks, and per term how many chunks contain it (as `lexical.tokenize` splits them)."""
        ...

    def sentence_vectors(self, chunks: Sequence[Chunk]) -> list[np.ndarray]:
        """Per chunk of this version, the vectors of its `chunking.reader_sentences` (rows in their order),
        embedded with `chunking.sentence_context` when the chunk was indexed."""
        ...


class Store(Protocol):
    """Where the index lives; writers take turns under `lock`, readers load the live version."""

    def live_version(self) -> str | None:
        """The live version's name, cheap enough to ask before every query; None without an index."""
        ...

    def load(self, model_id: str | None = None) -> IndexView:
        """The live version; with `model_id`, refuse one built by another model."""
        ...

    def lock(self, waiting: Waiting | None = None) -> AbstractContextManager[None]:
        """Be the only writer until the block ends; `waiting` is called if another one is."""
        ...

    def write(
        self,
        base: IndexView | None,
        *,
        add: Sequence[Document],
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        sentences: Sequence[np.ndarray],
        remove: Collection[str],
        manifest: Manifest,
    ) -> IndexView:
        """From the live version `base` (None before the first write), delete `remove`'s documents, then add `add`.

        `vectors` has one row per chunk of `chunks`, `sentences` one matrix per chunk (its
        `reader_sentences`' vectors); the survivors' vectors of both are carried over from `base`.
        One change: `remove` must name the older copy of any document in `add`. Returns the new live
        version, ready to query. The caller holds `lock` and loaded `base` under it.
        """
        ...

    def versions(self) -> list[str]:
        """The names of the versions stored, oldest first, whole or not; empty only before the first write."""
        ...

    def recover(self, model_id: str | None = None) -> IndexView:
        """The newest whole version, for when the live one is missing or damaged; IndexMissingError if none is."""
        ...

    def verify(self) -> list[VersionState]:
        """Every stored version checked, newest first."""
        ...

    def repair(self) -> str:
        """Point the live version at the newest whole one (unless the live one is whole); returns the live version."""
        ...

    def destroy(self) -> None:
        """Delete every version (a knowledge base deleted); the caller holds `lock`."""
        ...


def version_name() -> str:
    """A new version's name; names sort by creation time (to the microsecond)."""
    now = time.time()
    return f"v-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now))}.{int(now % 1 * 1e6):06d}-{secrets.token_hex(3)}"


def check(manifest: Manifest, name: str, expected_format: int, model_id: str | None) -> None:
    """Refuse a version of another format, or one built by another model than `model_id`."""
    if manifest.format != expected_format:
        raise IndexMismatchError(
            f"{name} has format {manifest.format}, expected {expected_format}: rebuild it with `medrag reindex`"
        )
    if model_id is not None and manifest.model_id != model_id:
        raise IndexMismatchError(
            f"{name} was built with embedding model {manifest.model_id!r} but the service is "
            f"configured with {model_id!r}: set MEDRAG_EMBED_MODEL to match or rebuild with `medrag reindex`"
        )


def file_record(path: Path) -> dict:
    """A file's size and SHA-256, as a manifest records them."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return {"size": path.stat().st_size, "sha256": digest.hexdigest()}


def check_files(folder: Path, manifest: Manifest) -> None:
    """Refuse a version whose files differ from what its manifest recorded (missing, truncated, changed)."""
    for name, recorded in sorted(manifest.files.items()):
        expected = recorded if isinstance(recorded, dict) else {}
        path = folder / name
        if not path.is_file():
            raise IndexCorruptError(f"index {folder.name} is damaged: {name} is missing")
        size = path.stat().st_size
        if size != expected.get("size"):
            raise IndexCorruptError(
                f"index {folder.name} is damaged: {name} has {size} bytes, the manifest says {expected.get('size')}"
            )
        if file_record(path)["sha256"] != expected.get("sha256"):
            raise IndexCorruptError(f"index {folder.name} is damaged: {name} does not match its SHA-256")


@contextmanager
def write_lock(root: Path, waiting: Waiting | None = None) -> Iterator[None]:
    """Be the only writer of this index until the block ends; `waiting` is called if another one is."""
    root.mkdir(parents=True, exist_ok=True)
    # The kernel drops the lock when its holder dies, even by SIGKILL, so it never goes stale.
    with open(root / "LOCK", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting:
                waiting()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
