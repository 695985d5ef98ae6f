"""The question-answering pipeline over the live index version, reloaded when a new one appears."""

import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from . import answering, store
from .answering import ExtractiveAnswerer
from .embedding import Embedder
from .errors import BadInputError
from .retrieval import Mode, Retriever
from .types import Answer, Hit


@dataclass(frozen=True)
class Snapshot:
    """Everything one query needs, from one index version; a query keeps its snapshot to the end."""

    index: store.Index
    retriever: Retriever
    answerer: ExtractiveAnswerer


class Pipeline:
    def __init__(self, index_dir: Path, embedder: Embedder, *, top_k: int = 5, fusion: str = "rrf",
                 rrf_k: int = 60, min_evidence: float = 0.6, max_question_chars: int = 500):
        self.index_dir = index_dir
        self.embedder = embedder
        self.top_k = top_k
        self.fusion = fusion
        self.rrf_k = rrf_k
        self.min_evidence = min_evidence
        self.max_question_chars = max_question_chars
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()

    def snapshot(self) -> Snapshot:
        """The live version, loading it first if CURRENT names a version not yet loaded."""
        current = store.current_path(self.index_dir)
        snapshot = self._snapshot
        if snapshot is not None and (current is None or current == snapshot.index.path):
            return snapshot
        with self._lock:
            if self._snapshot is None or store.current_path(self.index_dir) != self._snapshot.index.path:
                index = store.load(self.index_dir, self.embedder.model_id)
                if self._snapshot is None:
                    answering.warm_up()
                answerer = ExtractiveAnswerer(self.embedder, index.bm25, min_evidence=self.min_evidence)
                if self._snapshot is not None:
                    # Sentence vectors stay valid across versions: they depend only on the text.
                    answerer.vectors = self._snapshot.answerer.vectors
                retriever = Retriever(index, self.embedder, fusion=self.fusion, rrf_k=self.rrf_k)
                self._snapshot = Snapshot(index, retriever, answerer)
            return self._snapshot

    def check_question(self, question: str) -> str:
        question = question.strip()
        if not question:
            raise BadInputError("the question is empty")
        if len(question) > self.max_question_chars:
            raise BadInputError(f"the question has {len(question)} characters; the limit is {self.max_question_chars}")
        return question

    def search(self, question: str, k: int | None = None, mode: Mode = "hybrid") -> list[Hit]:
        question = self.check_question(question)
        return self.snapshot().retriever.search(question, k or self.top_k, mode)

    def ask(self, question: str, top_k: int | None = None, mode: Mode = "hybrid") -> Answer:
        question = self.check_question(question)
        snapshot = self.snapshot()
        started = time.perf_counter()
        vector = snapshot.retriever.embed_query(question)
        embedded = time.perf_counter()
        hits = snapshot.retriever.search(question, top_k or self.top_k, mode, query_vector=vector)
        retrieved = time.perf_counter()
        answer = snapshot.answerer.answer(question, hits, vector)
        done = time.perf_counter()
        timings = {
            "embed": round((embedded - started) * 1000, 2),
            "retrieve": round((retrieved - embedded) * 1000, 2),
            "answer": round((done - retrieved) * 1000, 2),
            "total": round((done - started) * 1000, 2),
        }
        return replace(answer, timings_ms=timings)
