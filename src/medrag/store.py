"""The on-disk index: versions of (FAISS vectors, chunk records, documents, BM25, manifest).

Layout under the index folder:

    CURRENT                 name of the live version (replaced atomically)
    LOCK                    held (flock) by the one process writing a new version
    v-<time>-<rand>/        one complete version: manifest.json, vectors.faiss, chunks.jsonl,
                            documents.jsonl, bm25.npz, bm25_idf.npy, bm25_terms.txt

A version is written under a temporary name, flushed to disk, renamed into place, and only
then named in CURRENT; so a crash at any point leaves the previous version live and whole.
Writers hold LOCK from reading the live version to switching CURRENT, so two writers (the
service and the CLI, say) never interleave and neither loses the other's change.
"""

import fcntl
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import faiss
import numpy as np

from .errors import IndexMismatchError, IndexMissingError
from .lexical import BM25
from .types import Chunk, Document, Source

FORMAT = 1
# Exact search up to this many vectors; beyond it an HNSW graph keeps queries in milliseconds
# (recall against exact search is measured in benchmarks/).
EXACT_LIMIT = 200_000
KEEP_VERSIONS = 3


class Index:
    """One loaded, immutable index version."""

    def __init__(self, path: Path, manifest: dict, documents: dict[str, Document], chunks: list[Chunk],
                 vectors: faiss.Index, bm25: BM25):
        self.path = path
        self.manifest = manifest
        self.documents = documents
        self.chunks = chunks
        self.vectors = vectors
        self.bm25 = bm25

    @property
    def version(self) -> str:
        return self.manifest["version"]

    def dense_search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Row ids and inner-product scores of the k nearest chunks, best first."""
        k = min(k, self.vectors.ntotal)
        if k == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        scores, ids = self.vectors.search(query.reshape(1, -1).astype(np.float32), k)
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep]

    def vector(self, row: int) -> np.ndarray:
        return self.vectors.reconstruct(int(row))

    def all_vectors(self) -> np.ndarray:
        if self.vectors.ntotal == 0:
            return np.zeros((0, self.manifest["dim"]), dtype=np.float32)
        return self.vectors.reconstruct_n(0, self.vectors.ntotal)


def make_faiss(vectors: np.ndarray, dim: int) -> tuple[faiss.Index, str]:
    if len(vectors) <= EXACT_LIMIT:
        index = faiss.IndexFlatIP(dim)
        kind = "flat-ip"
    else:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = 256  # recall@10 .94 at 1M chunks for 2 ms (benchmarks/scale.py)
        kind = "hnsw32-ip"
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index, kind


def current_path(root: Path) -> Path | None:
    pointer = root / "CURRENT"
    if not pointer.is_file():
        return None
    name = pointer.read_text(encoding="utf-8").strip()
    return root / name if name and (root / name).is_dir() else None


@contextmanager
def write_lock(root: Path, waiting: Callable[[], None] | None = None) -> Iterator[None]:
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


def load(root: Path, model_id: str | None = None) -> Index:
    """Load the live version; with `model_id`, refuse an index built by another model."""
    for _ in range(3):
        path = current_path(root)
        if path is None:
            raise IndexMissingError(f"no index in {root}/: build it with `medrag ingest` (or start with `medrag serve`)")
        try:
            return _load(path, model_id)
        except (FileNotFoundError, RuntimeError):  # faiss reports a missing file as RuntimeError
            if path.is_dir():
                raise
            continue  # pruned by a writer while we read it: a newer version is live by now
    raise IndexMismatchError(f"index in {root}/ changed under the reader three times; try again")


def _load(path: Path, model_id: str | None) -> Index:
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT:
        raise IndexMismatchError(f"index {path.name} has format {manifest.get('format')}, expected {FORMAT}: rebuild it with `medrag reindex`")
    if model_id is not None and manifest["model_id"] != model_id:
        raise IndexMismatchError(
            f"index {path.name} was built with embedding model {manifest['model_id']!r} but the service is "
            f"configured with {model_id!r}: set MEDRAG_EMBED_MODEL to match or rebuild with `medrag reindex`"
        )
    chunks = [_chunk(json.loads(line)) for line in _lines(path / "chunks.jsonl")]
    documents = {d.doc_id: d for d in (_document(json.loads(line)) for line in _lines(path / "documents.jsonl"))}
    vectors = faiss.read_index(str(path / "vectors.faiss"))
    if vectors.ntotal != len(chunks) or manifest["chunks"] != len(chunks) or manifest["documents"] != len(documents):
        raise IndexMismatchError(f"index {path.name} is inconsistent: {vectors.ntotal} vectors, {len(chunks)} chunks, "
                                 f"{len(documents)} documents; the manifest says {manifest['chunks']} and {manifest['documents']}")
    return Index(path, manifest, documents, chunks, vectors, BM25.load(path))


def write(root: Path, documents: list[Document], chunks: list[Chunk], vectors: np.ndarray, bm25: BM25,
          manifest: dict) -> Path:
    """Write a new version and make it live; returns its folder. The caller holds `write_lock`."""
    root.mkdir(parents=True, exist_ok=True)
    # Names sort by creation time (to the microsecond), which is what pruning relies on.
    now = time.time()
    name = f"v-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now))}.{int(now % 1 * 1e6):06d}-{secrets.token_hex(3)}"
    temporary = root / f".tmp-{name}"
    temporary.mkdir()
    index, kind = make_faiss(vectors, manifest["dim"])
    faiss.write_index(index, str(temporary / "vectors.faiss"))
    _write_lines(temporary / "chunks.jsonl", (asdict(c) for c in chunks))
    _write_lines(temporary / "documents.jsonl", (asdict(d) for d in documents))
    bm25.save(temporary)
    manifest = {**manifest, "format": FORMAT, "version": name, "index_type": kind,
                "documents": len(documents), "chunks": len(chunks)}
    (temporary / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    for file in temporary.iterdir():
        _fsync(file)
    os.rename(temporary, root / name)
    _fsync(root)
    pointer = root / f".CURRENT-{name}"
    pointer.write_text(name, encoding="utf-8")
    _fsync(pointer)
    os.replace(pointer, root / "CURRENT")
    _fsync(root)
    _prune(root, keep=name)
    return root / name


def _prune(root: Path, keep: str) -> None:
    """Remove leftovers of interrupted writes and all but the newest few versions."""
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    for stale in root.glob(".CURRENT-*"):
        stale.unlink(missing_ok=True)
    versions = sorted(p for p in root.glob("v-*") if p.is_dir() and p.name != keep)
    for old in versions[: max(0, len(versions) - (KEEP_VERSIONS - 1))]:
        shutil.rmtree(old, ignore_errors=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _lines(path: Path):
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield line


def _write_lines(path: Path, records) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def _chunk(record: dict) -> Chunk:
    return Chunk(**{**record, "section": tuple(record["section"]), "links": tuple(record["links"])})


def _document(record: dict) -> Document:
    return Document(**{**record, "sources": tuple(Source(**s) for s in record["sources"])})
