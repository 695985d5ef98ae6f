"""The default store: versions of (FAISS vectors, chunks, documents, BM25, manifest) in a folder.

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

import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, replace
from pathlib import Path

import faiss
import numpy as np

from .. import fusion
from ..chunking import searchable_text
from ..errors import IndexBusyError, IndexMismatchError, IndexMissingError
from ..lexical import BM25, tokenize
from ..types import Chunk, Document, Hit, Source
from .base import KEEP_VERSIONS, Manifest, Waiting, check, version_name, write_lock

FORMAT = 2  # 2: BM25 stored as term counts (bm25_counts.npz), not weights
# Exact search up to this many vectors; beyond it an HNSW graph keeps queries in milliseconds
# (recall against exact search is measured in benchmarks/).
EXACT_LIMIT = 200_000


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
        base: "Index | None",
        *,
        add: Sequence[Document],
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        remove: Collection[str],
        manifest: Manifest,
    ) -> "Index":
        documents = {d.doc_id: d for d in base.documents.values() if d.doc_id not in remove} if base else {}
        survivors = [c for c in base.chunks if c.doc_id not in remove] if base else []
        parts = []
        if survivors:
            rows = {c.chunk_id: i for i, c in enumerate(base.chunks)}
            parts.append(base.all_vectors()[[rows[c.chunk_id] for c in survivors]])
        parts.append(np.asarray(vectors, dtype=np.float32).reshape(-1, manifest.dim))
        documents.update((d.doc_id, d) for d in add)
        everything = survivors + list(chunks)
        started = time.perf_counter()
        fresh = [tokenize(searchable_text(c, documents[c.doc_id])) for c in chunks]
        # Only the new chunks are tokenised; the survivors keep their counts.
        bm25 = base.bm25.keep([rows[c.chunk_id] for c in survivors]).extend(fresh) if survivors else BM25.build(fresh)
        lexical = time.perf_counter() - started
        # The lexical index is this store's part of the build, so its time is added here.
        manifest = replace(
            manifest,
            build_seconds=round(manifest.build_seconds + lexical, 3),
            phase_seconds={**manifest.phase_seconds, "lexical": round(lexical, 3)},
        )
        return write(self.root, list(documents.values()), everything, np.vstack(parts), bm25, manifest)


class Index:
    """One loaded, immutable FAISS index version (an `IndexView`)."""

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
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
        return self.manifest.version

    def chunk_counts(self) -> dict[str, int]:
        return Counter(c.doc_id for c in self.chunks)

    def dense_search(self, vector: np.ndarray, k: int) -> list[Hit]:
        k = min(k, self.vectors.ntotal)
        if k == 0:
            return []
        scores, ids = self.vectors.search(vector.reshape(1, -1).astype(np.float32), k)
        return [
            Hit(chunk=self.chunks[row], score=float(score), dense_score=float(score))
            for row, score in zip(ids[0].tolist(), scores[0].tolist(), strict=True)
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
        return fusion.rrf(self.dense_search(vector, depth), self.lexical_search(text, depth), k, rrf_k)

    def term_statistics(self, terms: Iterable[str]) -> tuple[int, dict[str, int]]:
        return len(self.chunks), {term: self.bm25.document_frequency(term) for term in terms}

    def vector(self, row: int) -> np.ndarray:
        return self.vectors.reconstruct(int(row))

    def all_vectors(self) -> np.ndarray:
        if self.vectors.ntotal == 0:
            return np.zeros((0, self.manifest.dim), dtype=np.float32)
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
    raise IndexBusyError(f"index in {root}/ changed under the reader three times; try again")


def _load(path: Path, model_id: str | None) -> Index:
    manifest = Manifest.from_json(json.loads((path / "manifest.json").read_text(encoding="utf-8")))
    check(manifest, f"index {path.name}", FORMAT, model_id)
    chunks = [_chunk(json.loads(line)) for line in _lines(path / "chunks.jsonl")]
    documents = {d.doc_id: d for d in (_document(json.loads(line)) for line in _lines(path / "documents.jsonl"))}
    vectors = faiss.read_index(str(path / "vectors.faiss"))
    if vectors.ntotal != len(chunks) or manifest.chunks != len(chunks) or manifest.documents != len(documents):
        raise IndexMismatchError(
            f"index {path.name} is inconsistent: {vectors.ntotal} vectors, {len(chunks)} chunks, "
            f"{len(documents)} documents; the manifest says {manifest.chunks} and {manifest.documents}"
        )
    return Index(path, manifest, documents, chunks, vectors, BM25.load(path))


def write(
    root: Path, documents: list[Document], chunks: list[Chunk], vectors: np.ndarray, bm25: BM25, manifest: Manifest
) -> Index:
    """Write a new version and make it live; returns it, loaded. The caller holds `write_lock`."""
    root.mkdir(parents=True, exist_ok=True)
    name = version_name()  # sorts by creation time, which is what pruning relies on
    temporary = root / f".tmp-{name}"
    temporary.mkdir()
    index, kind = make_faiss(vectors, manifest.dim)
    faiss.write_index(index, str(temporary / "vectors.faiss"))
    _write_lines(temporary / "chunks.jsonl", (asdict(c) for c in chunks))
    _write_lines(temporary / "documents.jsonl", (asdict(d) for d in documents))
    bm25.save(temporary)
    manifest = replace(
        manifest, format=FORMAT, version=name, index_type=kind, documents=len(documents), chunks=len(chunks)
    )
    (temporary / "manifest.json").write_text(
        json.dumps(manifest.to_json(), ensure_ascii=False, indent=2), encoding="utf-8"
    )
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
    return Index(root / name, manifest, {d.doc_id: d for d in documents}, chunks, index, bm25)


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
    return Document(
        **{
            **record,
            "sources": tuple(Source(**s) for s in record["sources"]),
            "entities": tuple(tuple(forms) for forms in record.get("entities", ())),
        }
    )
