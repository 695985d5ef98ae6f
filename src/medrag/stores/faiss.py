"""The default store: versions of (FAISS vectors, chunks, documents, BM25, manifest) in a folder.

Layout under the index folder:

    CURRENT                 name of the live version (replaced atomically)
    LOCK                    held (flock) by the one process writing a new version
    v-<time>-<rand>/        one complete version: manifest.json, vectors.faiss, chunks.jsonl,
                            documents.jsonl, bm25_counts.npz, bm25_terms.txt, sentences.npy
                            (the reader's sentence vectors, memory-mapped) and sentence_rows.npy
                            (chunk i's sentences are rows sentence_rows[i]:sentence_rows[i + 1])

A version is written under a temporary name, flushed to disk, renamed into place, and only
then named in CURRENT; so a crash at any point leaves the previous version live and whole.
Writers hold LOCK from reading the live version to switching CURRENT, so two writers (the
service and the CLI, say) never interleave and neither loses the other's change.

Each manifest records the size and SHA-256 of the version's other files, and loading checks them,
so a damaged file is an `IndexCorruptError`. When CURRENT is missing or names a damaged or missing
version, `recover` finds the newest whole version, and writes build on it; pruning keeps the newest
`keep_versions` whole versions, the one a write started from and any newer one.
"""

import json
import os
import shutil
import time
import zipfile
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, replace
from pathlib import Path

import faiss
import numpy as np

from ..chunking import searchable_text
from ..errors import IndexBusyError, IndexCorruptError, IndexMismatchError, IndexMissingError
from ..lexical import BM25, tokenize
from ..types import Chunk, Document, Hit, Source
from .base import (
    Manifest,
    VersionState,
    Waiting,
    check,
    check_files,
    file_record,
    version_name,
    write_lock,
)

# 2: BM25 stored as term counts (bm25_counts.npz), not weights; 3: the reader's sentence vectors stored.
FORMAT = 3
# Exact search up to this many vectors; beyond it an HNSW graph keeps queries in milliseconds
# (recall against exact search is measured in benchmarks/).
EXACT_LIMIT = 200_000
GRAPH = "hnsw32-ip"
# A loaded version's vectors (flat, or an HNSW graph's storage) are mapped from the file, read-only: the
# processes serving one version share its pages, and a version pruned meanwhile stays readable to them.
# Such an index must never be added to (faiss aborts the process); every write builds a new one.
MAPPED = faiss.IO_FLAG_MMAP_IFC
# File times advance in clock ticks (a few ms); a stat younger than this may share a tick with a later change.
SETTLED_NS = 50_000_000


class FaissStore:
    """The index folder: immutable versions, switched atomically (see the module docstring)."""

    def __init__(self, root: Path, keep_versions: int = 3):
        self.root = root
        self.keep_versions = keep_versions
        # The live version's name and the stats it was read under (`_pointer_stats`).
        self._live: tuple[tuple, str | None] | None = None

    def live_version(self) -> str | None:
        """The name in CURRENT; read again only when CURRENT or the folder changed since the last read.

        Asked before every question, so it costs two stats, not a file read. Any writer, in this
        process or another, replaces CURRENT (a new inode, a new folder entry) and adds or removes
        version folders (the folder's mtime), so a change shows in the stats. A stat taken in the same
        clock tick as the change it follows could miss a second change in that tick, so such a read
        is not kept (as git treats "racy" index entries).
        """
        stats = _pointer_stats(self.root)
        known = self._live
        if known is not None and known[0] == stats:
            return known[1]
        path = current_path(self.root)
        name = path.name if path else None
        if stats is not None and time.time_ns() - max(stats[1], stats[4]) > SETTLED_NS:
            self._live = (stats, name)
        else:
            self._live = None
        return name

    def load(self, model_id: str | None = None) -> "Index":
        return load(self.root, model_id)

    def lock(self, waiting: Waiting | None = None) -> AbstractContextManager[None]:
        return write_lock(self.root, waiting)

    def versions(self) -> list[str]:
        return [path.name for path in _versions(self.root)]

    def recover(self, model_id: str | None = None) -> "Index":
        return recover(self.root, model_id)

    def verify(self) -> list[VersionState]:
        live = self.live_version()
        return [VersionState(path.name, problem(path), path.name == live) for path in reversed(_versions(self.root))]

    def repair(self) -> str:
        with self.lock():
            live = current_path(self.root)
            if live is not None and problem(live) is None:
                return live.name
            for path in reversed(_versions(self.root)):
                if problem(path) is None:
                    _point(self.root, path.name)
                    return path.name
        raise IndexCorruptError(f"no whole version in {self.root}/ to repair from: rebuild with `medrag ingest`")

    def destroy(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def write(
        self,
        base: "Index | None",
        *,
        add: Sequence[Document],
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        sentences: Sequence[np.ndarray],
        remove: Collection[str],
        manifest: Manifest,
    ) -> "Index":
        documents = {d.doc_id: d for d in base.documents.values() if d.doc_id not in remove} if base else {}
        survivors = [c for c in base.chunks if c.doc_id not in remove] if base else []
        parts = []
        kept_sentences: list[np.ndarray] = []
        if survivors:
            rows = {c.chunk_id: i for i, c in enumerate(base.chunks)}
            parts.append(base.all_vectors()[[rows[c.chunk_id] for c in survivors]])
            kept_sentences = base.sentence_vectors(survivors)
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
        # A graph is grown by the new vectors when nothing was removed from it (HNSW cannot drop a node);
        # otherwise, and for exact search (cheap to fill), the new version's index is built afresh.
        grows = (
            base is not None
            and base.manifest.index_type == GRAPH
            and len(survivors) == len(base.chunks)
            and len(everything) > EXACT_LIMIT
        )
        return write(
            self.root,
            list(documents.values()),
            everything,
            np.vstack(parts),
            [*kept_sentences, *sentences],
            bm25,
            manifest,
            keep_versions=self.keep_versions,
            base=base.version if base else None,
            grow=base.path / "vectors.faiss" if grows else None,
        )


class Index:
    """One loaded, immutable FAISS index version (an `IndexView`)."""

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        documents: dict[str, Document],
        chunks: list[Chunk],
        vectors: faiss.Index,
        sentences: np.ndarray,
        sentence_rows: np.ndarray,
        bm25: BM25,
    ):
        self.path = path
        self.manifest = manifest
        self.documents = documents
        self.chunks = chunks
        self.vectors = vectors
        self.sentences = sentences  # memory-mapped when loaded from disk
        self.sentence_rows = sentence_rows
        self.row_of = {c.chunk_id: i for i, c in enumerate(chunks)}
        self.bm25 = bm25
        self._rows: dict[str, np.ndarray] | None = None  # chunk rows per document, made on the first filter

    @property
    def version(self) -> str:
        return self.manifest.version

    def chunk_counts(self) -> dict[str, int]:
        return Counter(c.doc_id for c in self.chunks)

    def rows(self, allowed: Collection[str]) -> np.ndarray:
        """The rows of the chunks of these documents, ascending."""
        if self._rows is None:
            by_document: dict[str, list[int]] = {}
            for row, chunk in enumerate(self.chunks):
                by_document.setdefault(chunk.doc_id, []).append(row)
            self._rows = {doc_id: np.asarray(rows, dtype=np.int64) for doc_id, rows in by_document.items()}
        parts = [self._rows[doc_id] for doc_id in allowed if doc_id in self._rows]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

    def dense_search(self, vector: np.ndarray, k: int, *, allowed: Collection[str] | None = None) -> list[Hit]:
        rows = None if allowed is None else self.rows(allowed)
        k = min(k, self.vectors.ntotal if rows is None else len(rows))
        if k == 0:
            return []
        query = vector.reshape(1, -1).astype(np.float32)
        if rows is None:
            scores, ids = self.vectors.search(query, k)
        else:
            # Only the allowed rows are searched (benchmarks/filters.py measured this against over-fetching).
            selector = faiss.IDSelectorBatch(rows)
            hnsw = isinstance(self.vectors, faiss.IndexHNSW)
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=self.vectors.hnsw.efSearch) if hnsw else None
            scores, ids = self.vectors.search(query, k, params=params or faiss.SearchParameters(sel=selector))
        return [
            Hit(chunk=self.chunks[row], score=float(score), dense_score=float(score))
            for row, score in zip(ids[0].tolist(), scores[0].tolist(), strict=True)
            if row >= 0
        ]

    def lexical_search(self, text: str, k: int, *, allowed: Collection[str] | None = None) -> list[Hit]:
        if not self.chunks:
            return []
        scores = self.bm25.scores(tokenize(text))
        if allowed is not None:
            kept = np.zeros(len(scores), dtype=bool)
            kept[self.rows(allowed)] = True
            scores = np.where(kept, scores, 0.0)  # a zero score is never a hit
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

    def term_statistics(self, terms: Iterable[str]) -> tuple[int, dict[str, int]]:
        return len(self.chunks), {term: self.bm25.document_frequency(term) for term in terms}

    def sentence_vectors(self, chunks: Sequence[Chunk]) -> list[np.ndarray]:
        starts = self.sentence_rows
        return [
            np.asarray(self.sentences[starts[i] : starts[i + 1]]) for i in (self.row_of[c.chunk_id] for c in chunks)
        ]

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
        kind = GRAPH
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index, kind


def _pointer_stats(root: Path) -> tuple | None:
    """What changes when any writer points CURRENT elsewhere or adds or removes a version; None without CURRENT."""
    try:
        folder = os.stat(root)
        pointer = os.stat(root / "CURRENT")
    except OSError:
        return None
    return (folder.st_ino, folder.st_mtime_ns, pointer.st_ino, pointer.st_size, pointer.st_mtime_ns)


def current_path(root: Path) -> Path | None:
    pointer = root / "CURRENT"
    if not pointer.is_file():
        return None
    name = pointer.read_text(encoding="utf-8", errors="replace").strip()
    return root / name if name.startswith("v-") and "/" not in name and (root / name).is_dir() else None


def _versions(root: Path) -> list[Path]:
    """The version folders, oldest first (names sort by creation time)."""
    return sorted(path for path in root.glob("v-*") if path.is_dir()) if root.is_dir() else []


def _pointer_problem(root: Path) -> str:
    """Why CURRENT names no version (when `current_path` is None)."""
    pointer = root / "CURRENT"
    if not pointer.is_file():
        return f"{pointer} is missing"
    name = pointer.read_text(encoding="utf-8", errors="replace").strip()
    return f"{pointer} names {name}, which does not exist" if name else f"{pointer} is empty"


def load(root: Path, model_id: str | None = None) -> Index:
    """Load the live version; with `model_id`, refuse an index built by another model."""
    for _ in range(3):
        path = current_path(root)
        if path is None:
            if _versions(root):
                raise IndexMissingError(f"no live version: {_pointer_problem(root)}; run `medrag repair`")
            raise IndexMissingError(
                f"no index in {root}/: build it with `medrag ingest` (or start with `medrag serve`)"
            )
        try:
            return _load(path, model_id)
        except IndexCorruptError:
            if path.is_dir():
                raise
            continue  # pruned by a writer while we read it: a newer version is live by now
    raise IndexBusyError(f"index in {root}/ changed under the reader three times; try again")


def recover(root: Path, model_id: str | None = None) -> Index:
    """The newest version that loads and passes its checks; IndexMissingError when none does."""
    problems = []
    for path in reversed(_versions(root)):
        try:
            return _load(path, model_id)
        except IndexCorruptError as error:
            problems.append(str(error))
    if problems:
        raise IndexMissingError(f"no whole version in {root}/: {'; '.join(problems)}")
    raise IndexMissingError(f"no index in {root}/: build it with `medrag ingest` (or start with `medrag serve`)")


def problem(path: Path) -> str | None:
    """What is wrong with this version folder, or None when it is whole (the model is not checked)."""
    try:
        manifest = _manifest(path)
        if manifest.files:
            check(manifest, f"index {path.name}", FORMAT, None)
            check_files(path, manifest)
        else:  # written before manifests recorded their files: whole if it loads
            _load(path, None)
    except IndexMismatchError as error:  # IndexCorruptError among them
        return str(error)
    return None


def _manifest(path: Path) -> Manifest:
    try:
        record = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:  # missing, unreadable, not UTF-8, not JSON
        raise IndexCorruptError(f"index {path.name} is damaged: manifest.json: {error}") from error
    if not isinstance(record, dict):
        raise IndexCorruptError(f"index {path.name} is damaged: manifest.json is not an object")
    return Manifest.from_json(record)


def _load(path: Path, model_id: str | None) -> Index:
    manifest = _manifest(path)
    check(manifest, f"index {path.name}", FORMAT, model_id)
    check_files(path, manifest)
    try:
        chunks = [_chunk(json.loads(line)) for line in _lines(path / "chunks.jsonl")]
        documents = {d.doc_id: d for d in (_document(json.loads(line)) for line in _lines(path / "documents.jsonl"))}
        vectors = faiss.read_index(str(path / "vectors.faiss"), MAPPED)
        sentences = np.load(path / "sentences.npy", mmap_mode="r")
        sentence_rows = np.load(path / "sentence_rows.npy")
        bm25 = BM25.load(path)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, EOFError, zipfile.BadZipFile) as error:
        # faiss reports a missing or truncated file as RuntimeError; a version with recorded
        # checksums rarely gets here, one written before them does.
        raise IndexCorruptError(f"index {path.name} is damaged: {type(error).__name__}: {error}") from error
    if vectors.ntotal != len(chunks) or manifest.chunks != len(chunks) or manifest.documents != len(documents):
        raise IndexCorruptError(
            f"index {path.name} is inconsistent: {vectors.ntotal} vectors, {len(chunks)} chunks, "
            f"{len(documents)} documents; the manifest says {manifest.chunks} and {manifest.documents}"
        )
    if bm25.counts.shape != (len(chunks), len(bm25.vocabulary)):
        raise IndexCorruptError(
            f"index {path.name} is inconsistent: BM25 counts of shape {bm25.counts.shape} for "
            f"{len(chunks)} chunks and {len(bm25.vocabulary)} terms"
        )
    if sentence_rows.shape != (len(chunks) + 1,) or sentence_rows[-1] != len(sentences):
        raise IndexCorruptError(
            f"index {path.name} is inconsistent: sentence rows of shape {sentence_rows.shape} for "
            f"{len(chunks)} chunks and {len(sentences)} sentence vectors"
        )
    return Index(path, manifest, documents, chunks, vectors, sentences, sentence_rows, bm25)


def write(
    root: Path,
    documents: list[Document],
    chunks: list[Chunk],
    vectors: np.ndarray,
    sentences: Sequence[np.ndarray],
    bm25: BM25,
    manifest: Manifest,
    *,
    keep_versions: int,
    base: str | None = None,
    grow: Path | None = None,
) -> Index:
    """Write a new version and make it live; returns it, loaded. The caller holds `write_lock`.

    `base` is the version the change was made from, which pruning keeps (with any newer one). `grow`
    is its HNSW file, when its vectors are the first rows of `vectors`: the graph is read and the rest
    added to it, instead of building a graph over every vector again.
    """
    root.mkdir(parents=True, exist_ok=True)
    name = version_name()  # sorts by creation time, which is what pruning relies on
    temporary = root / f".tmp-{name}"
    temporary.mkdir()
    if grow is not None:
        index, kind = faiss.read_index(str(grow)), GRAPH  # into memory: a mapped index cannot grow
        index.add(np.ascontiguousarray(vectors[index.ntotal :], dtype=np.float32))
    else:
        index, kind = make_faiss(vectors, manifest.dim)
    faiss.write_index(index, str(temporary / "vectors.faiss"))
    sentence_rows = np.cumsum([0, *(len(s) for s in sentences)], dtype=np.int64)
    matrix = np.vstack([np.zeros((0, manifest.dim), dtype=np.float32), *sentences]).astype(np.float32)
    np.save(temporary / "sentences.npy", matrix)
    np.save(temporary / "sentence_rows.npy", sentence_rows)
    _write_lines(temporary / "chunks.jsonl", (asdict(c) for c in chunks))
    _write_lines(temporary / "documents.jsonl", (asdict(d) for d in documents))
    bm25.save(temporary)
    files = {file.name: file_record(file) for file in sorted(temporary.iterdir())}
    manifest = replace(
        manifest,
        format=FORMAT,
        version=name,
        index_type=kind,
        documents=len(documents),
        chunks=len(chunks),
        files=files,
    )
    (temporary / "manifest.json").write_text(
        json.dumps(manifest.to_json(), ensure_ascii=False, indent=2), encoding="utf-8"
    )
    for file in temporary.iterdir():
        _fsync(file)
    os.rename(temporary, root / name)
    _fsync(root)
    _point(root, name)
    _prune(root, keep_versions, base=base or name, whole={name, base})
    return Index(root / name, manifest, {d.doc_id: d for d in documents}, chunks, index, matrix, sentence_rows, bm25)


def _point(root: Path, name: str) -> None:
    """Make `name` the live version: CURRENT is replaced atomically. The caller holds `write_lock`."""
    pointer = root / f".CURRENT-{name}"
    pointer.write_text(name, encoding="utf-8")
    _fsync(pointer)
    os.replace(pointer, root / "CURRENT")
    _fsync(root)


def _prune(root: Path, keep_versions: int, base: str, whole: Collection[str | None]) -> None:
    """Remove leftovers of interrupted writes, and the versions older than `base` beyond the newest whole ones.

    The newest `keep_versions` whole versions stay (readers that started on them may still use them);
    so do `base` and every version newer than it, whole or not, and a damaged version never counts as
    one of the whole ones. `whole` names versions known to be whole (just written, or just loaded).
    """
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    for stale in root.glob(".CURRENT-*"):
        stale.unlink(missing_ok=True)
    kept = 0
    for path in reversed(_versions(root)):
        if path.name >= base:
            kept += path.name in whole or problem(path) is None
        elif kept < keep_versions and (path.name in whole or problem(path) is None):
            kept += 1
        else:
            shutil.rmtree(path, ignore_errors=True)


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
            "pages": tuple(record.get("pages", ())),
            "tags": tuple(record.get("tags", ())),
        }
    )
