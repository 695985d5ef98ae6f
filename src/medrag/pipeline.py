"""The question-answering pipeline over the live index version, reloaded when a new one appears."""

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from . import answering, store
from .answering import Answerer, ExtractiveAnswerer, SentenceVectors, final
from .conversation import standalone
from .embedding import Embedder
from .errors import BadInputError
from .generation import GenerativeAnswerer
from .llm import ChatClient
from .retrieval import RRF_K, Mode, Retriever
from .types import Answer, Hit, Question, Turn


@dataclass(frozen=True)
class Snapshot:
    """Everything one query needs, from one index version; a query keeps its snapshot to the end."""

    index: store.IndexView
    retriever: Retriever
    answerer: Answerer


class Pipeline:
    def __init__(
        self,
        index: store.Store | Path,
        embedder: Embedder,
        *,
        top_k: int = 5,
        fusion: str = "rrf",
        rrf_k: int = RRF_K,
        min_evidence: float = 0.6,
        max_question_chars: int = 500,
        llm: ChatClient | None = None,
    ):
        self.store = store.as_store(index)
        self.embedder = embedder
        self.llm = llm
        # Sentence vectors stay valid across index versions: they depend only on the text.
        self.vectors = SentenceVectors(embedder)
        self.top_k = top_k
        self.fusion = fusion
        self.rrf_k = rrf_k
        self.min_evidence = min_evidence
        self.max_question_chars = max_question_chars
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()

    def snapshot(self) -> Snapshot:
        """The live version, loading it first if the store names a version not yet loaded."""
        live = self.store.live_version()
        snapshot = self._snapshot
        if snapshot is not None and (live is None or live == snapshot.index.version):
            return snapshot
        with self._lock:
            if self._snapshot is None or self.store.live_version() != self._snapshot.index.version:
                index = self.store.load(self.embedder.model_id)
                if self._snapshot is None:
                    answering.warm_up()
                answerer: Answerer = ExtractiveAnswerer(
                    self.embedder, index, min_evidence=self.min_evidence, vectors=self.vectors
                )
                if self.llm is not None:
                    answerer = GenerativeAnswerer(answerer, self.llm)
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

    def search(
        self, question: str, k: int | None = None, mode: Mode = "hybrid", snapshot: Snapshot | None = None
    ) -> list[Hit]:
        question = self.check_question(question)
        return (snapshot or self.snapshot()).retriever.search(question, k or self.top_k, mode)

    def check_history(self, history: Sequence[Turn]) -> tuple[Turn, ...]:
        for turn in history:
            if turn.role not in ("user", "assistant"):
                raise BadInputError(f"a history turn's role must be 'user' or 'assistant', not {turn.role!r}")
        return tuple(turn for turn in history if turn.content.strip())

    def ask(
        self,
        question: str,
        top_k: int | None = None,
        mode: Mode = "hybrid",
        history: Sequence[Turn] = (),
        snapshot: Snapshot | None = None,
    ) -> Answer:
        return final(self.stream(question, top_k, mode, history, incremental=False, snapshot=snapshot))

    def stream(
        self,
        question: str,
        top_k: int | None = None,
        mode: Mode = "hybrid",
        history: Sequence[Turn] = (),
        *,
        incremental: bool = True,
        snapshot: Snapshot | None = None,
    ) -> Iterator[str | Answer]:
        """Pieces of the answer as they are written, then the `Answer`; bad input fails here, before any piece.

        `snapshot` (the live version by default) lets a caller describe the cited documents from the
        same index version that answered, even if a new version lands meanwhile.
        """
        question = self.check_question(question)
        history = self.check_history(history)
        snapshot = snapshot or self.snapshot()
        return self._stream(snapshot, question, history, top_k or self.top_k, mode, incremental)

    def _stream(
        self, snapshot: Snapshot, question: str, history: tuple[Turn, ...], top_k: int, mode: Mode, incremental: bool
    ) -> Iterator[str | Answer]:
        started = time.perf_counter()
        query = standalone(question, history, self.llm, self.max_question_chars)
        rewritten = time.perf_counter()
        vector = snapshot.retriever.embed_query(query)
        embedded = time.perf_counter()
        hits = snapshot.retriever.search(query, top_k, mode, query_vector=vector)
        retrieved = time.perf_counter()
        for item in snapshot.answerer.stream(Question(question, query, history), hits, vector, incremental=incremental):
            if not isinstance(item, Answer):
                yield item
                continue
            done = time.perf_counter()
            timings = {
                "embed": round((embedded - rewritten) * 1000, 2),
                "retrieve": round((retrieved - embedded) * 1000, 2),
                "answer": round((done - retrieved) * 1000, 2),
                "total": round((done - started) * 1000, 2),
            }
            if history:
                timings["rewrite"] = round((rewritten - started) * 1000, 2)
            yield replace(item, query=query, timings_ms=timings)
