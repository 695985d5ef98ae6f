"""Load → chunk → embed → store: build an index, or make a new version with documents added or removed."""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import chunking, corpus, entities
from .chunking import searchable_text
from .embedding import Embedder
from .errors import BadInputError, IndexCorruptError, IndexMismatchError, IndexMissingError
from .fetching import Fetcher
from .stores import FaissStore, IndexView, Manifest, Store, Waiting
from .types import Chunk, Document

Progress = Callable[[int, int], None]
# Chunks embedded between two progress reports.
PROGRESS_STEP = 16


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


@dataclass(frozen=True)
class Change:
    """What an update did: the live version after it, and per document id what happened to it."""

    version: str | None
    outcomes: dict[str, str]  # "added", "replaced", "unchanged", "duplicate of <id>", "removed", "reindexed"
    view: IndexView | None = None  # the new version, ready to serve; None when nothing was written


def update(
    index: Store | Path,
    embedder: Embedder,
    *,
    add: Sequence[Document] = (),
    remove: Sequence[str] = (),
    rebuild: bool = False,
    size: int,
    overlap: int,
    progress: Progress | None = None,
    waiting: Waiting | None = None,
) -> Change:
    """Write a new index version: the live one minus `remove` (and older copies of `add`), plus `add`.

    A document replaces an earlier one with the same id (same URL or file name); content already
    indexed is skipped, so the same text is never indexed twice. `rebuild` chunks and embeds every
    document again (after a model or chunker change). The index's write lock is held throughout, so
    concurrent writers take turns; nothing is written unless every document was chunked and embedded.
    `index` is a store, or a folder for the default FAISS store; `progress(done, total)` hears how many
    chunks are embedded after every `PROGRESS_STEP`.
    """
    target = FaissStore(index) if isinstance(index, Path) else index
    with target.lock(waiting):
        return _update(target, embedder, add, remove, rebuild, size, overlap, progress)


def _update(
    target: Store,
    embedder: Embedder,
    add: Sequence[Document],
    remove: Sequence[str],
    rebuild: bool,
    size: int,
    overlap: int,
    progress: Progress | None,
) -> Change:
    started = time.perf_counter()
    # A rebuild embeds everything again, so the live version may come from another model.
    model_id = None if rebuild else embedder.model_id
    try:
        live = target.load(model_id)
    except (IndexMissingError, IndexCorruptError):
        # The live version is missing or damaged: build on the newest whole one (the one the service
        # serves meanwhile), so nothing it holds is lost; only an empty store starts from nothing.
        try:
            live = target.recover(model_id)
        except IndexMissingError:
            if target.versions():
                raise
            live = None
    documents = dict(live.documents) if live else {}
    unknown = [doc_id for doc_id in remove if doc_id not in documents]
    if unknown:
        raise BadInputError(f"no such document: {', '.join(unknown)}")

    outcomes = {doc_id: "removed" for doc_id in remove}
    dropped = set(remove)
    hashes = {d.content_hash: d.doc_id for d in documents.values() if d.doc_id not in dropped}
    fresh: list[Document] = []
    for document in add:
        if document.doc_id in outcomes and outcomes[document.doc_id] != "removed":
            continue  # the same id twice in one change: the first copy counts
        owner = hashes.get(document.content_hash)
        if owner is not None:
            outcomes[document.doc_id] = "unchanged" if owner == document.doc_id else f"duplicate of {owner}"
            continue
        if document.doc_id in documents and document.doc_id not in dropped:
            outcomes[document.doc_id] = "replaced"
            hashes.pop(documents[document.doc_id].content_hash, None)
            dropped.add(document.doc_id)
        else:
            outcomes[document.doc_id] = "added"
        hashes[document.content_hash] = document.doc_id
        fresh.append(document)

    if live is not None and (rebuild or live.manifest.chunker != {"size": size, "overlap": overlap}):
        # Every document is chunked and embedded again: asked for, or the chunker changed since.
        kept = [d for d in documents.values() if d.doc_id not in dropped]
        outcomes.update({d.doc_id: "reindexed" for d in kept if d.doc_id not in outcomes})
        fresh = kept + fresh
        dropped |= set(documents)
    elif not fresh and not dropped:
        return Change(live.version if live else None, outcomes)  # nothing changes: no new version

    phase = time.perf_counter()
    # Names are found once per document, when it is indexed (a re-index finds them again).
    fresh = [replace(d, entities=entities.extract(d)) for d in fresh]
    seconds = {"entities": time.perf_counter() - phase}
    phase = time.perf_counter()
    new_chunks = [(c, d) for d in fresh for c in chunk_document(d, size, overlap)]
    seconds["chunk"] = time.perf_counter() - phase
    phase = time.perf_counter()
    total = len(new_chunks)
    if progress:
        progress(0, total)
    vectors = [np.zeros((0, embedder.dim), dtype=np.float32)]
    for i in range(0, total, PROGRESS_STEP):
        part = new_chunks[i : i + PROGRESS_STEP]
        vectors.append(embedder.embed([searchable_text(c, d) for c, d in part]))
        if progress:
            progress(min(i + PROGRESS_STEP, total), total)
    seconds["embed"] = time.perf_counter() - phase
    phase = time.perf_counter()
    sentences = sentence_vectors(embedder, [c for c, _ in new_chunks])
    seconds["embed_sentences"] = time.perf_counter() - phase
    manifest = Manifest(
        model_id=embedder.model_id,
        dim=embedder.dim,
        chunker={"size": size, "overlap": overlap},
        built_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        build_seconds=round(time.perf_counter() - started, 3),
        # Where the time of this build went, for the ingestion benchmark (the store adds its own phases).
        phase_seconds={name: round(value, 3) for name, value in seconds.items()},
        new_chunks=total,
    )
    view = target.write(
        live,
        add=fresh,
        chunks=[c for c, _ in new_chunks],
        vectors=np.vstack(vectors),
        sentences=sentences,
        remove=dropped & set(documents),
        manifest=manifest,
    )
    return Change(view.version, outcomes, view)


def sentence_vectors(embedder: Embedder, chunks: Sequence[Chunk]) -> list[np.ndarray]:
    """Per chunk, the vectors of the sentences the reader may quote (with their headings), embedded now
    so that answering a question embeds nothing but the question."""
    texts = [[chunking.sentence_context(c, s, e) for s, e in chunking.reader_sentences(c.text)] for c in chunks]
    flat = [text for own in texts for text in own]
    matrix = embedder.embed(flat) if flat else np.zeros((0, embedder.dim), dtype=np.float32)
    ends = np.cumsum([len(own) for own in texts])
    return [matrix[end - len(own) : end] for own, end in zip(texts, ends, strict=True)]


def start(target: Store, embedder: Embedder, *, size: int, overlap: int) -> Change:
    """An empty first version, so a new knowledge base answers (with nothing) before its first document."""
    manifest = Manifest(
        model_id=embedder.model_id,
        dim=embedder.dim,
        chunker={"size": size, "overlap": overlap},
        built_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    empty = np.zeros((0, embedder.dim), dtype=np.float32)
    with target.lock():
        view = target.write(None, add=[], chunks=[], vectors=empty, sentences=[], remove=set(), manifest=manifest)
    return Change(view.version, {}, view)


@dataclass(frozen=True)
class Migration:
    """What `migrate` copied, and the target's live version after it."""

    documents: int
    chunks: int
    source: str
    version: str


def migrate(source: FaissStore, target: Store) -> Migration:
    """Copy the live FAISS version into another store, vectors and all (nothing is embedded again).

    Everything in the target is replaced at once: it switches to the copy only when the copy is whole,
    and the copy is checked against the source's counts.
    """
    index = source.load()
    with target.lock():
        try:
            base = target.load()
        except IndexMissingError:
            base = None
        copied = target.write(
            base,
            add=list(index.documents.values()),
            chunks=index.chunks,
            vectors=index.all_vectors(),
            sentences=index.sentence_vectors(index.chunks),
            remove=set(base.documents) if base else set(),
            manifest=replace(index.manifest, migrated_from=index.version),
        )
    expected = (len(index.documents), len(index.chunks))
    if (copied.manifest.documents, copied.manifest.chunks) != expected:
        raise IndexMismatchError(
            f"the copy holds {copied.manifest.documents} documents and {copied.manifest.chunks} chunks, "
            f"not {expected[0]} and {expected[1]}: run `medrag migrate` again"
        )
    return Migration(documents=expected[0], chunks=expected[1], source=str(index.path), version=copied.version)


def document_from_url(fetcher: Fetcher, url: str) -> Document:
    """Fetch a URL through the SSRF guard and turn the page into a `Document` that keeps the URL."""
    fetched = fetcher.fetch(url)
    kind = corpus.kind_of(None, fetched.media_type or sniff(fetched.body))
    return corpus.load_bytes(fetched.body, kind, url=url, charset=fetched.charset)


def sniff(body: bytes) -> str:
    """A media type for a response that declared none."""
    if body.startswith(b"%PDF-"):
        return "application/pdf"
    return "text/html" if b"<html" in body[:2048].lower() else "text/plain"
