"""One question end to end over the live index version: check, rewrite, analyse, embed, retrieve, answer.

The pipeline keeps a `Snapshot` of the live version and makes a new one when the store names a new
version (or a writer hands it one). A question holds its snapshot to the end, so a version switch
never mixes two versions in one answer.
"""

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from . import calibration, filters, glossary, query
from .answering import Answerer, ExtractiveAnswerer
from .conversation import standalone
from .embedding import Embedder
from .entities import Lexicon
from .errors import BadInputError, IndexCorruptError, IndexMissingError
from .generation import GenerativeAnswerer
from .llm import ChatClient
from .retrieval import Mode, Retriever
from .stores import IndexView, Store
from .types import Answer, Filter, Hit, Question, Turn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """Everything one question needs, from one index version."""

    index: IndexView
    retriever: Retriever
    answerer: Answerer
    lexicon: Lexicon


@dataclass(frozen=True)
class Options:
    """How questions are answered; every value comes from `Settings`."""

    top_k: int
    fusion: str
    rrf_k: int
    candidates: int
    dense_weight: float
    min_evidence: float | None  # None: the evidence model's own threshold
    max_question_chars: int
    history_turns: int
    # Bounds on one question's cost: earlier messages, and characters of the question and those together.
    max_history_turns: int
    max_request_chars: int
    llm_min_evidence: float
    llm_min_support: float
    query_cache_size: int


class Pipeline:
    def __init__(self, store: Store, embedder: Embedder, options: Options, llm: ChatClient | None = None):
        self.store = store
        self.embedder = embedder
        self.options = options
        self.llm = llm
        self.evidence_model = calibration.load()
        self._query_vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._vectors_lock = threading.Lock()
        # Questions are analysed here while the asking thread encodes them. That way round the analysis
        # really overlaps the encoding: the asking thread enters the encoder (which releases the GIL)
        # within microseconds, whereas an encoder thread woken while the asker analysed waited for the
        # GIL until the analysis was over. Threads are made as callers need them.
        self._analysing = ThreadPoolExecutor(max_workers=64, thread_name_prefix="medrag-analyse")
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()
        # Why the version served is not the live one (None when it is), and the live version that
        # could not be loaded, so it is not tried again on every question.
        self.degraded: str | None = None
        self._refused: str | None = None

    def snapshot(self) -> Snapshot:
        """The live version, loading it first if the store names a version not yet loaded.

        When the store names no live version, or one that is damaged, the newest whole version is
        served instead and `degraded` says why.
        """
        snapshot = self._snapshot
        if snapshot is not None and self._serves(self.store.live_version(), snapshot):
            return snapshot
        with self._lock:
            if self._snapshot is None or not self._serves(self.store.live_version(), self._snapshot):
                self._snapshot = self._make(self._load())
            return self._snapshot

    def close(self) -> None:
        self._analysing.shutdown(wait=False)

    def install(self, index: IndexView) -> None:
        """Serve this version, just written by this process, without loading it again."""
        with self._lock:
            if self._snapshot is None or self._snapshot.index.version != index.version:
                self._snapshot = self._make(index)
            self.degraded = self._refused = None

    def _serves(self, live: str | None, snapshot: Snapshot) -> bool:
        """Whether `snapshot` is still the version to serve while the store names `live`."""
        if live == snapshot.index.version:
            self.degraded = self._refused = None  # live again (`medrag repair` pointed at it)
            return True
        if live is None and self.degraded is None:
            self._degrade(f"the store names no live version any more; serving {snapshot.index.version}")
        return live is None or live == self._refused

    def _load(self) -> IndexView:
        """The live version, or the newest whole one when the live one is missing or damaged."""
        model_id = self.embedder.model_id
        try:
            index = self.store.load(model_id)
        except (IndexMissingError, IndexCorruptError) as error:
            live = self.store.live_version()
            try:
                index = self.store.recover(model_id)
            except IndexMissingError:
                raise error from None  # no whole version at all
            self._refused = live
            self._degrade(f"{error}; serving {index.version}, the newest whole version (run `medrag repair`)")
            return index
        self.degraded = self._refused = None
        return index

    def _degrade(self, reason: str) -> None:
        if reason != self.degraded:
            log.error("index degraded: %s", reason)
        self.degraded = reason

    def _make(self, index: IndexView) -> Snapshot:
        if self._snapshot is None:
            query.warm_up()
            glossary.warm_up()
        options = self.options
        lexicon = Lexicon.of(index.documents.values())
        answerer: Answerer = ExtractiveAnswerer(
            self.embedder, index, lexicon, model=self.evidence_model, min_evidence=options.min_evidence
        )
        if self.llm is not None:
            answerer = GenerativeAnswerer(
                answerer,
                self.llm,
                history_turns=options.history_turns,
                min_evidence=options.llm_min_evidence,
                min_support=options.llm_min_support,
            )
        retriever = Retriever(
            index,
            self.embedder,
            fusion=options.fusion,
            rrf_k=options.rrf_k,
            candidates=options.candidates,
            dense_weight=options.dense_weight,
        )
        return Snapshot(index, retriever, answerer, lexicon)

    def check_question(self, question: str) -> str:
        question = question.strip()
        if not question:
            raise BadInputError("the question is empty")
        if len(question) > self.options.max_question_chars:
            raise BadInputError(
                f"the question has {len(question)} characters; the limit is {self.options.max_question_chars}"
            )
        return question

    def check_history(self, history: Sequence[Turn], question: str = "") -> tuple[Turn, ...]:
        limits = self.options
        if len(history) > limits.max_history_turns:
            raise BadInputError(
                f"the history has {len(history)} messages; the limit is {limits.max_history_turns}"
                " (send only the recent ones)"
            )
        size = len(question) + sum(len(turn.content) for turn in history)
        if size > limits.max_request_chars:
            raise BadInputError(
                f"the question and its history have {size} characters together; the limit is {limits.max_request_chars}"
            )
        for turn in history:
            if turn.role not in ("user", "assistant"):
                raise BadInputError(f"a history turn's role must be 'user' or 'assistant', not {turn.role!r}")
        return tuple(turn for turn in history if turn.content.strip())

    def search(
        self, snapshot: Snapshot, question: str, k: int | None, mode: Mode, wanted: Filter | None = None
    ) -> list[Hit]:
        analysed = query.analyse(self.check_question(question), snapshot.lexicon)
        allowed = filters.allowed(snapshot.index.documents, wanted)
        vector = None if mode == "bm25" else self.query_vector(analysed.normalized)
        return snapshot.retriever.search(analysed, k or self.options.top_k, mode, query_vector=vector, allowed=allowed)

    def query_vector(self, key: str) -> np.ndarray:
        """The embedding of a normalised question; repeated ones come from a bounded LRU.

        A vector depends only on the text and the model, so the cache outlives index versions.
        """
        with self._vectors_lock:
            vector = self._query_vectors.get(key)
            if vector is not None:
                self._query_vectors.move_to_end(key)
                return vector
        vector = self.embedder.embed([key], query=True)[0]
        if self.options.query_cache_size:
            with self._vectors_lock:
                self._query_vectors[key] = vector
                while len(self._query_vectors) > self.options.query_cache_size:
                    self._query_vectors.popitem(last=False)
        return vector

    def stream(
        self,
        snapshot: Snapshot,
        question: str,
        top_k: int | None,
        mode: Mode,
        history: Sequence[Turn],
        *,
        incremental: bool,
        wanted: Filter | None = None,
    ) -> Iterator[str | Answer]:
        """Pieces of the answer as they are written, then the `Answer`; bad input fails here, before any piece.

        With a filter, only the documents it lets through are searched; none at all is a refusal, not an error.
        """
        question = self.check_question(question)
        history = self.check_history(history, question)
        allowed = filters.allowed(snapshot.index.documents, wanted)
        return self._stream(snapshot, question, history, top_k or self.options.top_k, mode, incremental, allowed)

    def _stream(
        self,
        snapshot: Snapshot,
        question: str,
        history: tuple[Turn, ...],
        top_k: int,
        mode: Mode,
        incremental: bool,
        allowed: frozenset[str] | None = None,
    ) -> Iterator[str | Answer]:
        started = time.perf_counter()
        text = standalone(
            question,
            history,
            self.llm,
            max_chars=self.options.max_question_chars,
            history_turns=self.options.history_turns,
        )
        rewritten = time.perf_counter()
        # The vector needs only the standard text (`query.standard`, as `query.analyse` makes it): the
        # analysis and the lexical ranking, which needs no vector, run on a helper thread while this
        # one encodes; "embed" is the encoding and any wait for them left after it, "analyse" their time.
        analysing = self._analysing.submit(_timed, _lexical, snapshot, text, top_k, mode, allowed)
        vector = self.query_vector(query.standard(text))  # the reader needs it in every mode
        (analysed, lexical), analyse_seconds = analysing.result()
        embedded = time.perf_counter()
        hits = snapshot.retriever.search(analysed, top_k, mode, query_vector=vector, allowed=allowed, lexical=lexical)
        retrieved = time.perf_counter()
        asked = Question(question, analysed, history)
        for item in snapshot.answerer.stream(asked, hits, vector, incremental=incremental):
            if not isinstance(item, Answer):
                yield item
                continue
            done = time.perf_counter()
            timings = {
                "analyse": round(analyse_seconds * 1000, 2),
                "embed": round((embedded - rewritten) * 1000, 2),
                "retrieve": round((retrieved - embedded) * 1000, 2),
                "answer": round((done - retrieved) * 1000, 2),
                "total": round((done - started) * 1000, 2),
            }
            if history:
                timings["rewrite"] = round((rewritten - started) * 1000, 2)
            yield replace(item, query=text, timings_ms=timings)


def _lexical(snapshot: Snapshot, text: str, top_k: int, mode: Mode, allowed: frozenset[str] | None):
    """The question analysed, and the lexical ranking its search fuses."""
    analysed = query.analyse(text, snapshot.lexicon)
    return analysed, snapshot.retriever.lexical(analysed, top_k, mode, allowed)


def _timed(function, *args):
    """What `function(*args)` returns, and the seconds it took."""
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started
