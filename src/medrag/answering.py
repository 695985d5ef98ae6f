"""Extractive answers: the sentences of the retrieved passages that answer the question, or a refusal.

No language model is needed. Each sentence of the top passages is described by a few features —
how similar it is to the question (e5 cosine, with its heading for context), how much of what the
question asks it covers (BM25-weighted terms, bigram credit for Chinese), whether it is about the
entity the question names (in the sentence, its headings or the sentence before it) or about
another one, whether it holds the kind of answer asked for (a number, a date, a list …), whether
the question's own figures appear in the passage — and a logistic model trained offline
(`benchmarks/train_reader.py`, weights in `reader.json`) turns them into the probability that the
sentence answers the question. The most probable one or two sentences become the answer, each with
an `[n]` marker bound to its passage; below the threshold the answer is `found: false`.
Reference-list entries and bare links are sources, never answers.
"""

import json
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Protocol

import numpy as np

from .chunking import sentence_spans
from .embedding import Embedder
from .entities import Lexicon
from .lexical import idf
from .query import CJK_RUN, TYPED, holds, language
from .textnorm import normalize
from .types import Answer, Chunk, Citation, Hit, Query, Question, Quote

NOT_FOUND = {
    "zh": "抱歉，语料库中没有找到能回答这个问题的内容。",
    "en": "Sorry, the corpus holds no passage that answers this question.",
}
LIST_MARK = re.compile(r"\s*(?:[-*+]|\d+[.)、])\s+")
NAME = re.compile(r"[A-Z][A-Za-z0-9-]+|[A-Za-z]*\d[A-Za-z0-9.%-]*")
NUMBER = re.compile(r"\d+(?:\.\d+)?")
URL = re.compile(r"https?://\S+")
REFERENCE_SECTIONS = frozenset({"参考文献", "参考资料", "references", "bibliography", "引用", "资料来源"})
# "1. 搜狐. (2024). 标题 …": a reference-list entry.
REFERENCE_ENTRY = re.compile(r"^\s*(?:\d+[.、)]\s*)?[^.。\n]{1,40}\.\s*\(\d{4}\)\.")
# The features the model reads, in the order of its weights.
FEATURES = (
    "dense",
    "dense_gap",
    "cross_lingual",
    "dense_cross",
    "cover_sentence",
    "cover_context",
    "cover_passage",
    "entities_asked",
    "entity_missing",
    "entity_in_sentence",
    "other_entity",
    "unknown_name",
    "type_missing",
    "type_match",
    "premise_mismatch",
    "passage_rank",
    "length",
)
DECISION_FEATURES = (*FEATURES, "rank", "rank_lead", "dense_lead")


class TermStatistics(Protocol):
    """How common words are in the index (an `IndexView` is one)."""

    def term_statistics(self, terms: Iterable[str]) -> tuple[int, dict[str, int]]:
        """The number of chunks, and per term how many chunks contain it."""
        ...


class Answerer(Protocol):
    """Writes an answer from retrieved passages; both the extractive and the LLM answerer are one."""

    def stream(
        self, question: Question, hits: list[Hit], query_vector: np.ndarray, *, incremental: bool = True
    ) -> Iterator[str | Answer]:
        """Pieces of the answer text as they are written, then the `Answer` (its text is the pieces joined).

        `incremental=False` tells the answerer that nobody waits for the pieces (one request, no stream).
        """
        ...


def final(pieces: Iterator[str | Answer]) -> Answer:
    """The `Answer` at the end of an answerer's stream."""
    *_, answer = pieces
    if not isinstance(answer, Answer):
        raise AssertionError("an answerer's stream must end with its Answer")
    return answer


def match(term: str, passage: str) -> float:
    """1 when the term is in the passage; for longer Chinese terms, the share of its bigrams that are."""
    if term in passage:
        return 1.0
    if len(term) >= 3 and CJK_RUN.fullmatch(term):
        bigrams = [term[i : i + 2] for i in range(len(term) - 1)]
        return sum(b in passage for b in bigrams) / len(bigrams)
    return 0.0


def is_reference(chunk: Chunk, sentence: str) -> bool:
    """A reference-list entry or a bare link: a source to cite, not a sentence that answers."""
    if any(normalize(part).strip().lower() in REFERENCE_SECTIONS for part in chunk.section):
        return True
    if REFERENCE_ENTRY.match(sentence):
        return True
    rest = URL.sub("", sentence)
    return rest != sentence and len(re.sub(r"[\W_]", "", rest)) < 6


@dataclass(frozen=True)
class Logistic:
    """Logistic regression over standardised features: P = sigmoid(w · (x - mean) / scale + b)."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    intercept: float

    @classmethod
    def from_json(cls, record: dict, features: tuple[str, ...]) -> "Logistic":
        if tuple(record["features"]) != features:
            raise ValueError(f"reader weights for features {record['features']}, this reader computes {features}")
        return cls(
            features=features,
            mean=np.asarray(record["mean"], dtype=np.float64),
            scale=np.asarray(record["scale"], dtype=np.float64),
            weights=np.asarray(record["weights"], dtype=np.float64),
            intercept=float(record["intercept"]),
        )

    def logit(self, rows: np.ndarray) -> np.ndarray:
        return ((rows - self.mean) / self.scale) @ self.weights + self.intercept

    def probability(self, rows: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.logit(rows)))


@dataclass(frozen=True)
class ReaderModel:
    """Two trained stages: `rank` orders a question's sentences; `decide` gives the probability that the
    best of them answers the question, from its features, its rank score and its lead over the next."""

    rank: Logistic
    decide: Logistic
    threshold: float  # on `decide`'s probability, chosen on questions the model never trained on

    @classmethod
    def from_json(cls, record: dict) -> "ReaderModel":
        return cls(
            rank=Logistic.from_json(record["rank"], FEATURES),
            decide=Logistic.from_json(record["decide"], DECISION_FEATURES),
            threshold=float(record["threshold"]),
        )


def decision_row(best: "Candidate", runner_up: "Candidate | None") -> np.ndarray:
    """The question-level features: the best sentence's own, its rank score, its lead in rank and in similarity."""
    dense = FEATURES.index("dense")
    lead = best.rank - runner_up.rank if runner_up else 5.0
    dense_lead = best.features[dense] - runner_up.features[dense] if runner_up else 0.1
    return np.concatenate([best.features, [best.rank, min(lead, 5.0), dense_lead]])


@cache
def shipped_model() -> ReaderModel:
    """The weights that ship with the package (`reader.json`, written by benchmarks/train_reader.py)."""
    text = resources.files("medrag").joinpath("reader.json").read_text(encoding="utf-8")
    return ReaderModel.from_json(json.loads(text))


@dataclass(frozen=True)
class Candidate:
    hit_index: int
    text: str
    start: int  # the sentence's offsets in its passage's text
    end: int
    features: np.ndarray
    rank: float = 0.0  # the ranking stage's logit


class SentenceVectors:
    """A bounded cache of sentence embeddings: popular passages are scored without re-embedding."""

    def __init__(self, embedder: Embedder, size: int = 20_000):
        self.embedder = embedder
        self.size = size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            return self._get(texts)

    def _get(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            for text, vector in zip(missing, self.embedder.embed(missing), strict=True):
                self._cache[text] = vector
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        for text in texts:
            self._cache.move_to_end(text)
        return np.vstack([self._cache[t] for t in texts])


class ExtractiveAnswerer:
    """Answers from the passages' own sentences; refuses when no sentence is likely to answer."""

    def __init__(
        self,
        embedder: Embedder,
        statistics: TermStatistics,
        lexicon: Lexicon,
        *,
        model: ReaderModel,
        min_evidence: float | None,
        vectors: SentenceVectors,
        passages: int = 3,
        max_sentences: int = 2,
    ):
        self.embedder = embedder
        self.vectors = vectors
        self.statistics = statistics
        self.lexicon = lexicon
        self.model = model
        self.min_evidence = model.threshold if min_evidence is None else min_evidence
        self.passages = passages
        self.max_sentences = max_sentences

    def stream(
        self, question: Question, hits: list[Hit], query_vector: np.ndarray, *, incremental: bool = True
    ) -> Iterator[str | Answer]:
        """The answer one cited sentence at a time (each with its marker), then the `Answer`."""
        answer = self.answer(question.query, hits, query_vector)
        yield from pieces(answer.text)
        yield answer

    def answer(self, query: Query, hits: list[Hit], query_vector: np.ndarray) -> Answer:
        ranked = self.ranked(query, hits, query_vector)
        lang = query.language
        evidence = self.evidence(ranked)
        if evidence < self.min_evidence:
            return Answer(text=NOT_FOUND[lang], found=False, evidence=evidence)
        best = ranked[0]
        chosen = [best]
        # A second sentence only when it ranks nearly as well, so answers stay short and on point; a
        # list may be spread over sentences, so there the margin is wider.
        margin = 1.5 if query.answer_type == "list" else 0.5
        for other in ranked[1 : self.max_sentences]:
            if other.rank >= best.rank - margin and other.text != best.text:
                chosen.append(other)
        numbers: dict[int, int] = {}
        parts = []
        for candidate in chosen:
            n = numbers.setdefault(candidate.hit_index, len(numbers) + 1)
            parts.append(f"{candidate.text}[{n}]")
        quotes: dict[int, Quote] = {}
        for candidate in chosen:
            quotes.setdefault(candidate.hit_index, Quote(candidate.text, candidate.start, candidate.end))
        citations = tuple(Citation(n=n, hit=hits[i], quote=quotes[i]) for i, n in numbers.items())
        separator = "" if lang == "zh" else " "
        return Answer(text=separator.join(parts), found=True, citations=citations, evidence=evidence)

    def evidence(self, ranked: list[Candidate]) -> float:
        """The probability that the best-ranked sentence answers the question (0 without candidates)."""
        if not ranked:
            return 0.0
        row = decision_row(ranked[0], ranked[1] if len(ranked) > 1 else None)
        return float(self.model.decide.probability(row[None, :])[0])

    def ranked(self, query: Query, hits: list[Hit], query_vector: np.ndarray) -> list[Candidate]:
        """The candidate sentences with the ranking stage's score, best first."""
        candidates = self.candidates(query, hits, query_vector)
        if not candidates:
            return []
        logits = self.model.rank.logit(np.vstack([c.features for c in candidates]))
        ranked = [
            Candidate(c.hit_index, c.text, c.start, c.end, c.features, float(r))
            for c, r in zip(candidates, logits.tolist(), strict=True)
        ]
        # Within a near tie the better-retrieved passage wins.
        return sorted(ranked, key=lambda c: (-round(c.rank, 2), c.hit_index))

    def candidates(self, query: Query, hits: list[Hit], query_vector: np.ndarray) -> list[Candidate]:
        """Sentences of the top passages with their features (in `FEATURES` order); references left out."""
        asked_in = query.language
        attributes = self.weigh(list(query.attributes or query.terms))
        every_term = self.weigh(list(query.terms))
        asked = set(query.entities)
        unknown = self.unknown(query)
        figures = premise_figures(query)
        typed = query.answer_type in TYPED
        rows = []
        for index, hit in enumerate(hits[: self.passages]):
            chunk = hit.chunk
            heading = " > ".join(chunk.section)
            context = normalize(" ".join(chunk.section)).lower()
            passage = f"{context} {normalize(chunk.text).lower()}"
            in_heading = set(self.lexicon.names(normalize(heading)))
            mismatch = sum(f not in passage for f in figures) / len(figures) if figures else 0.0
            previous = ""
            for start, end in sentence_spans(chunk.text):
                mark = LIST_MARK.match(chunk.text, start, end)
                if mark:
                    start = mark.end()
                sentence = chunk.text[start:end]
                own = normalize(sentence)
                before, previous = previous, own
                if len(sentence) < 4 or is_reference(chunk, sentence):
                    continue
                cross_lingual = language(sentence) != asked_in
                lowered = own.lower()
                in_sentence = set(self.lexicon.names(own))
                around = in_sentence | in_heading | set(self.lexicon.names(before))
                values = {
                    "cross_lingual": float(cross_lingual),
                    "cover_sentence": self.coverage(attributes, lowered, cross_lingual),
                    "cover_context": self.coverage(attributes, f"{context} {before.lower()} {lowered}", cross_lingual),
                    "cover_passage": self.coverage(every_term, passage, cross_lingual),
                    "entities_asked": float(bool(asked)),
                    "entity_missing": len(asked - around) / len(asked) if asked else 0.0,
                    "entity_in_sentence": len(asked & in_sentence) / len(asked) if asked else 0.0,
                    "other_entity": float(bool(asked) and not (asked & in_sentence) and bool(in_sentence - asked)),
                    "unknown_name": float(unknown),
                    "type_missing": float(typed and not holds(query.answer_type, own)),
                    "type_match": float(typed and holds(query.answer_type, own)),
                    "premise_mismatch": mismatch,
                    "passage_rank": index / self.passages,
                    "length": math.log1p(len(sentence)) / 5,
                }
                rows.append((index, sentence, start, end, normalize(f"{heading}：{sentence}"), values))
        if not rows:
            return []
        similarities = (self.vectors.get([r[4] for r in rows]) @ query_vector).tolist()
        top = max(similarities)
        result = []
        for (index, sentence, start, end, _, values), dense in zip(rows, similarities, strict=True):
            values.update(dense=dense, dense_gap=dense - top, dense_cross=dense * values["cross_lingual"])
            result.append(Candidate(index, sentence, start, end, np.array([values[f] for f in FEATURES])))
        return result

    def unknown(self, query: Query) -> bool:
        """Whether the question names something the corpus never mentions (a name it has no word for)."""
        if not query.unknown_names:
            return False
        forms = [name.lower() for name in query.unknown_names]
        _, frequencies = self.statistics.term_statistics(forms)
        return any(frequencies[form] == 0 for form in forms)

    def weigh(self, terms: list[tuple[str, float]]) -> list[tuple[str, float, bool]]:
        """Each term with its weight (part-of-speech weight x idf) and whether the corpus has it as written.

        The index is asked once per question; a term the corpus never saw gets the highest idf.
        """
        chunks, frequencies = self.statistics.term_statistics(
            {form for term, _ in terms for form in (term, term.lower())}
        )
        return [
            (term, weight * idf(chunks, frequencies[term.lower()]), frequencies[term] > 0) for term, weight in terms
        ]

    def coverage(self, terms: list[tuple[str, float, bool]], passage: str, cross_lingual: bool) -> float:
        """Share of the question's weight found in the passage.

        Across languages only terms that can match at all count: words the corpus contains
        (model names, numbers) and capitalised names, which a translation would keep.
        """
        found = total = 0.0
        for term, weight, known in terms:
            if cross_lingual and not (known or NAME.fullmatch(term)):
                continue
            total += weight
            found += weight * match(term.lower(), passage)
        return found / total if total else 0.0


def premise_figures(query: Query) -> list[str]:
    """Figures the question states (years, counts), outside the names it gives: its premises."""
    text = query.normalized.lower()
    for name in (*query.entities, *query.unknown_names):
        text = text.replace(name.lower(), " ")
    return list(dict.fromkeys(NUMBER.findall(text)))


def pieces(text: str) -> list[str]:
    """`text` cut after each `[n]` marker; the pieces join back to exactly `text`."""
    return [piece for piece in re.split(r"(?<=\[\d\])|(?<=\[\d\d\])", text) if piece]
