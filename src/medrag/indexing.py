"""Load → chunk → embed → store: build an index, or make a new version with documents added or removed."""

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import chunking, store
from .embedding import Embedder
from .errors import IndexMissingError
from .lexical import BM25, tokenize
from .textnorm import normalize
from .types import Chunk, Document

Progress = Callable[[int, int], None]


def chunk_document(document: Document, size: int, overlap: int) -> list[Chunk]:
    return [
        Chunk(
            chunk_id=f"{document.doc_id}:{i:04d}",
            doc_id=document.doc_id,
            text=piece.text,
            start=piece.start,
            end=piece.end,
            section=piece.section,
            links=piece.links,
        )
        for i, piece in enumerate(chunking.split(document.text, size, overlap))
    ]


def searchable_text(chunk: Chunk, document: Document) -> str:
    """What gets embedded and tokenised: the passage with its title and heading path as context.

    A bullet such as "参数规模：1000亿参数" only says whose parameters they are in its headings.
    """
    context = " > ".join((document.title, *chunk.section))
    return normalize(f"{context}\n{chunk.text}")


def update(root: Path, embedder: Embedder, *, add: list[Document] = (), remove: list[str] = (),
           size: int, overlap: int, progress: Progress | None = None) -> Path:
    """Write a new index version: the live one minus `remove` (and older copies of `add`), plus `add`.

    A document replaces an earlier one with the same id (same URL or file name); content already
    indexed under another id is skipped, so the same text is never indexed twice.
    """
    started = time.perf_counter()
    try:
        live = store.load(root, embedder.model_id)
        documents = dict(live.documents)
        rows = {c.chunk_id: i for i, c in enumerate(live.chunks)}
        kept_chunks = list(live.chunks)
        kept_vectors = live.all_vectors()
        settings_changed = live.manifest["chunker"] != {"size": size, "overlap": overlap}
    except IndexMissingError:
        documents, rows, kept_chunks = {}, {}, []
        kept_vectors = np.zeros((0, embedder.dim), dtype=np.float32)
        settings_changed = False

    dropped = set(remove) | {d.doc_id for d in add}
    hashes = {d.content_hash: d.doc_id for d in documents.values() if d.doc_id not in dropped}
    fresh: list[Document] = []
    for document in add:
        if document.content_hash in hashes or document.doc_id in {f.doc_id for f in fresh}:
            continue
        hashes[document.content_hash] = document.doc_id
        fresh.append(document)
    if settings_changed:
        # The chunker changed since the live version: every document is chunked and embedded again.
        fresh = [d for d in documents.values() if d.doc_id not in dropped] + fresh
        dropped |= set(documents)
    for doc_id in dropped:
        documents.pop(doc_id, None)

    survivors = [c for c in kept_chunks if c.doc_id not in dropped]
    vectors = [kept_vectors[[rows[c.chunk_id] for c in survivors]]] if survivors else []
    chunks = list(survivors)
    new_chunks = [(c, d) for d in fresh for c in chunk_document(d, size, overlap)]
    total = len(new_chunks)
    if progress:
        progress(0, total)
    batch = 16
    for i in range(0, total, batch):
        part = new_chunks[i : i + batch]
        vectors.append(embedder.embed([searchable_text(c, d) for c, d in part]))
        if progress:
            progress(min(i + batch, total), total)
    chunks += [c for c, _ in new_chunks]
    for document in fresh:
        documents[document.doc_id] = document

    matrix = np.vstack(vectors) if vectors else np.zeros((0, embedder.dim), dtype=np.float32)
    bm25 = BM25.build([tokenize(searchable_text(c, documents[c.doc_id])) for c in chunks])
    manifest = {
        "model_id": embedder.model_id,
        "dim": embedder.dim,
        "chunker": {"size": size, "overlap": overlap},
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "build_seconds": round(time.perf_counter() - started, 3),
    }
    return store.write(root, list(documents.values()), chunks, matrix, bm25, manifest)
