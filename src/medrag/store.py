"""The store protocol, and the default store: versions of (FAISS vectors, chunks, documents, BM25, manifest) on disk.

A `Store` is where the index lives (this folder, or a Milvus collection: `milvus.py`); an
`IndexView` is one readable version of it, which a query keeps from start to end. Retrieval and
answering see only these two protocols.

Layout under the index folder:

    CURRENT                 name of the live version (replaced atomically)
    LOCK                    held (flock) by the one process writing a new version
    v-<time>-<rand>/        one complete version: manifest.json, vectors.faiss, chunks.jsonl,
                            documents.jsonl, bm25_counts.npz, bm25_terms.txt

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
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Protocol

import faiss
import numpy as np

from .errors import IndexMismatchError, IndexMissingError
from .lexical import BM25, tokenize
from .textnorm import normalize
from .types import Chunk, Document, Hit, Source

FORMAT = 2  # 2: BM25 stored as term counts (bm25_counts.npz), not weights
# Exact search up to this many vectors; beyond it an HNSW graph keeps queries in milliseconds
# (recall against exact search is measured in benchmarks/).
EXACT_LIMIT = 200_000
KEEP_VERSIONS = 3

Waiting = Callable[[], None]


class IndexView(Protocol):
    """One readable version of the index: everything a query reads comes from one view."""

    version: str
    manifest: dict
    documents: dict[str, Document]

    def chunk_counts(self) -> dict[str, int]:
        """Chunks per document id."""
        ...

    def dense_search(self, vector: np.ndarray, k: int) -> list[Hit]:
        """The k chunks nearest the (normalised) query vector by inner product, best first."""
        ...

    def lexical_search(self, text: str, k: int) -> list[Hit]:
        """The k best BM25 matches (jieba tokens) of the query text, best first; no zero scores."""
        ...

    def hybrid_search(self, text: str, vector: np.ndarray, k: int, *, depth: int, rrf_k: int) -> list[Hit]:
        """Dense and lexical top-`depth` rankings fused by RRF: score = sum of 1 / (rrf_k + rank)."""
        ...

    def term_statistics(self, terms: Iterable[str]) -> tuple[int, dict[str, int]]:
        """The number of chunks, and per term how many chunks contain it (as `lexical.tokenize` splits them)."""
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
        *,
        add: Sequence[Document],
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        remove: Collection[str],
        manifest: dict,
    ) -> str:
        """Delete the documents `remove` names (with their chunks), then add `add` with its chunks and vectors.

        One change: `remove` must name the older copy of any document in `add`. Returns the new live
        version's name. The caller holds `lock`.
        """
        ...


def searchable_text(chunk: Chunk, document: Document) -> str:
    """What gets embedded and tokenised: the passage with its title and heading path as context.

    A bullet such as "参数规模：1000亿参数" only says whose parameters they are in its headings.
    """
    context = " > ".join(part for part in (document.title, *chunk.section) if part)
    return normalize(f"{context}\n{chunk.text}" if context else chunk.text)


def version_name() -> str:
    """A new version's name; names sort by creation time (to the microsecond)."""
    now = time.time()
    return f"v-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now))}.{int(now % 1 * 1e6):06d}-{secrets.token_hex(3)}"


def fuse_rrf(dense: list[Hit], lexical: list[Hit], k: int, rrf_k: int) -> list[Hit]:
    """Reciprocal-rank fusion of two best-first rankings (ranks count from 1)."""
    fused: dict[str, float] = {}
    for ranking in (dense, lexical):
        for rank, hit in enumerate(ranking, start=1):
            fused[hit.chunk.chunk_id] = fused.get(hit.chunk.chunk_id, 0.0) + 1.0 / (rrf_k + rank)
    return fused_hits(fused, dense, lexical, k)


def fused_hits(fused: dict[str, float], dense: list[Hit], lexical: list[Hit], k: int) -> list[Hit]:
    """The k best fused scores as hits, with each ranking's own score where the chunk was in it."""
    chunks = {h.chunk.chunk_id: h.chunk for h in (*dense, *lexical)}
    dense_scores = {h.chunk.chunk_id: h.dense_score for h in dense}
    lexical_scores = {h.chunk.chunk_id: h.lexical_score for h in lexical}
    ranked = sorted(fused.items(), key=lambda item: -item[1])[:k]
    return [
        Hit(chunk=chunks[i], score=score, dense_score=dense_scores.get(i), lexical_score=lexical_scores.get(i, 0.0))
        for i, score in ranked
    ]


class FaissStore:
    """The index folder: immutable versions, switched atomically (see the module docstring)."""

    def __init__(self, root: Path):
        self.root = root

    def live_version(self) -> str | None:
        path = current_path(self.root)
        return path.name if path else None

    def load(self, model_id: str | None = None) -> "Index":
        return load(self.root, model_id)

    def lock(self, waiting: Waiting | None = None) -> AbstractContextManager[None]:
        return write_lock(self.root, waiting)

    def write(
        self,
        *,
        add: Sequence[Document],
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        remove: Collection[str],
        manifest: dict,
    ) -> str:
        try:
            live = load(self.root)
        except IndexMissingError:
            live = None
        documents = {d.doc_id: d for d in live.documents.values() if d.doc_id not in remove} if live else {}
        survivors = [c for c in live.chunks if c.doc_id not in remove] if live else []
        parts = []
        if survivors:
            rows = {c.chunk_id: i for i, c in enumerate(live.chunks)}
            parts.append(live.all_vectors()[[rows[c.chunk_id] for c in survivors]])
        parts.append(np.asarray(vectors, dtype=np.float32).reshape(-1, manifest["dim"]))
        documents.update((d.doc_id, d) for d in add)
        everything = survivors + list(chunks)
        started = time.perf_counter()
        fresh = [tokenize(searchable_text(c, documents[c.doc_id])) for c in chunks]
        if survivors:  # only the new chunks are tokenised; the survivors keep their counts
            bm25 = live.bm25.keep([rows[c.chunk_id] for c in survivors]).extend(fresh)
        else:
            bm25 = BM25.build(fresh)
        lexical = time.perf_counter() - started
        # The lexical index is this store's part of the build, so its time is added here.
        manifest = {
            **manifest,
            "build_seconds": round(manifest.get("build_seconds", 0) + lexical, 3),
            "phase_seconds": {**manifest.get("phase_seconds", {}), "lexical": round(lexical, 3)},
        }
        return write(self.root, list(documents.values()), everything, np.vstack(parts), bm25, manifest).name


def as_store(target: "Store | Path") -> Store:
    """A store as given, or the FAISS store in a folder (the default)."""
    return FaissStore(target) if isinstance(target, Path) else target


class Index:
    """One loaded, immutable FAISS index version (an `IndexView`)."""

    def __init__(
        self,
        path: Path,
        manifest: dict,
        documents: dict[str, Document],
        chunks: list[Chunk],
        vectors: faiss.Index,
        bm25: BM25,
    ):
        self.path = path
        self.manifest = manifest
        self.documents = documents
        self.chunks = chunks
        self.vectors = vectors
        self.bm25 = bm25

    @property
    def version(self) -> str:
        return self.manifest["version"]

    def chunk_counts(self) -> dict[str, int]:
        return Counter(c.doc_id for c in self.chunks)

    def dense_search(self, vector: np.ndarray, k: int) -> list[Hit]:
        k = min(k, self.vectors.ntotal)
        if k == 0:
            return []
        scores, ids = self.vectors.search(vector.reshape(1, -1).astype(np.float32), k)
        return [
            Hit(chunk=self.chunks[row], score=float(score), dense_score=float(score))
            for row, score in zip(ids[0].tolist(), scores[0].tolist(), strict=False)
            if row >= 0
        ]

    def lexical_search(self, text: str, k: int) -> list[Hit]:
        if not self.chunks:
            return []
        scores = self.bm25.scores(tokenize(text))
        if len(scores) <= k:
            top = np.argsort(-scores)
        else:
            part = np.argpartition(-scores, k)[:k]
            top = part[np.argsort(-scores[part])]
        return [
            Hit(chunk=self.chunks[row], score=float(scores[row]), lexical_score=float(scores[row]))
            for row in top.tolist()
            if scores[row] > 0
        ]

    def hybrid_search(self, text: str, vector: np.ndarray, k: int, *, depth: int, rrf_k: int) -> list[Hit]:
        return fuse_rrf(self.dense_search(vector, depth), self.lexical_search(text, depth), k, rrf_k)

    def term_statistics(self, terms: Iterable[str]) -> tuple[int, dict[str, int]]:
        return len(self.chunks), {term: self.bm25.document_frequency(term) for term in terms}

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
            raise IndexMissingError(
                f"no index in {root}/: build it with `medrag ingest` (or start with `medrag serve`)"
            )
        try:
            return _load(path, model_id)
        except (FileNotFoundError, RuntimeError):  # faiss reports a missing file as RuntimeError
            if path.is_dir():
                raise
            continue  # pruned by a writer while we read it: a newer version is live by now
    raise IndexMismatchError(f"index in {root}/ changed under the reader three times; try again")


def check(manifest: dict, name: str, expected_format: int, model_id: str | None) -> None:
    """Refuse a version of another format, or one built by another model than `model_id`."""
    if manifest.get("format") != expected_format:
        raise IndexMismatchError(
            f"{name} has format {manifest.get('format')}, expected {expected_format}: rebuild it with `medrag reindex`"
        )
    if model_id is not None and manifest["model_id"] != model_id:
        raise IndexMismatchError(
            f"{name} was built with embedding model {manifest['model_id']!r} but the service is "
            f"configured with {model_id!r}: set MEDRAG_EMBED_MODEL to match or rebuild with `medrag reindex`"
        )


def _load(path: Path, model_id: str | None) -> Index:
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    check(manifest, f"index {path.name}", FORMAT, model_id)
    chunks = [_chunk(json.loads(line)) for line in _lines(path / "chunks.jsonl")]
    documents = {d.doc_id: d for d in (_document(json.loads(line)) for line in _lines(path / "documents.jsonl"))}
    vectors = faiss.read_index(str(path / "vectors.faiss"))
    if vectors.ntotal != len(chunks) or manifest["chunks"] != len(chunks) or manifest["documents"] != len(documents):
        raise IndexMismatchError(
            f"index {path.name} is inconsistent: {vectors.ntotal} vectors, {len(chunks)} chunks, "
            f"{len(documents)} documents; the manifest says {manifest['chunks']} and {manifest['documents']}"
        )
    return Index(path, manifest, documents, chunks, vectors, BM25.load(path))


def write(
    root: Path, documents: list[Document], chunks: list[Chunk], vectors: np.ndarray, bm25: BM25, manifest: dict
) -> Path:
    """Write a new version and make it live; returns its folder. The caller holds `write_lock`."""
    root.mkdir(parents=True, exist_ok=True)
    name = version_name()  # sorts by creation time, which is what pruning relies on
    temporary = root / f".tmp-{name}"
    temporary.mkdir()
    index, kind = make_faiss(vectors, manifest["dim"])
    faiss.write_index(index, str(temporary / "vectors.faiss"))
    _write_lines(temporary / "chunks.jsonl", (asdict(c) for c in chunks))
    _write_lines(temporary / "documents.jsonl", (asdict(d) for d in documents))
    bm25.save(temporary)
    manifest = {
        **manifest,
        "format": FORMAT,
        "version": name,
        "index_type": kind,
        "documents": len(documents),
        "chunks": len(chunks),
    }
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
