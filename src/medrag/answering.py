"""Extractive answers: the sentences of the retrieved passages that answer the question, or a refusal.

No language model is needed. Rules first: a question naming something the corpus never mentions, a
passage lacking a figure the question states, a sentence not about the entity asked (neither it,
its headings nor the sentence before name it) and reference-list entries are never answers. Each
remaining sentence of the top passages is described by a few features (`FEATURES`: e5 similarity
with its headings, coverage of the asked attribute, whether it holds the kind of answer asked for …)
and a logistic model trained offline (benchmarks/train_reader.py, weights in `reader.json`) gives
the probability that it answers the question. The most probable one or two sentences become the
answer, each followed by an `[n]` marker bound to its passage; below `min_evidence` (a probability)
the answer is `found: false`.
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
from .textnorm import neutralise_markers, normalize
from .types import Answer, Chunk, Citation, Hit, Query, Question, Quote

NOT_FOUND = {
    "zh": "抱歉，语料库中没有找到能回答这个问题的内容。",
    "en": "Sorry, the corpus holds no passage that answers this question.",
}
LIST_MARK = re.compile(r"\s*(?:[-*+]|\d+[.)、])\s+")
NAME = re.compile(r"[A-Z][A-Za-z0-9-]+|[A-Za-z]*\d[A-Za-z0-9.%-]*")
URL = re.compile(r"https?://\S+")
REFERENCE_SECTIONS = frozenset({"参考文献", "参考资料", "references", "bibliography", "资料来源"})
# "1. 搜狐. (2024). 标题 …": a reference-list entry.
REFERENCE_ENTRY = re.compile(r"^\s*(?:\d+[.、)]\s*)?[^.。\n]{1,40}\.\s*\(\d{4}\)\.")
# A name that looks like a model's (a digit or a capital inside it: GPT-5, MedGPT) or is Chinese: when
# the corpus has no such word at all, the question is about something the corpus does not cover.
# (A capitalised English word alone, Australia or Chinese, says too little.)
SPECIFIC_NAME = re.compile(r"\d|[a-z][A-Z]|[\u3400-\u9fff]")
# Figures a question states as premises: two digits or more (years, counts).
FIGURE = re.compile(r"\d{2,}(?:\.\d+)?")
# What the model reads of a sentence, in the order of its weights (see ExtractiveAnswerer.candidates).
FEATURES = (
    "dense",  # e5 cosine of the question and the sentence with its headings
    "cross_lingual",  # the sentence is not in the question's language
    "dense_cross",  # dense x cross_lingual: across languages the cosines sit lower
    "dense_lead",  # dense minus the best other sentence's
    "cover_sentence",  # share of the asked attribute's weight (terms besides the entities) in the sentence
    "cover_context",  # the same over the headings, the sentence before and the sentence
    "cover_passage",  # share of all the question's weight in the passage
    "missing_key",  # the largest share of the attribute's weight held by one term the context lacks
    "bigrams",  # share of the attribute's Chinese character pairs in the sentence (paraphrase, partial words)
    "type_asked",  # the question asks for a kind of answer a sentence can show (a date, a number ...)
    "type_match",  # ... and the sentence holds one
    "entity_asked",  # the question names an entity of the corpus
    "entity_in_sentence",  # ... and the sentence itself names it (not only its headings)
    "passage_rank",  # the passage's place among those read, 0 for the first
)
# dense_lead of the only sentence read: a typical lead of a question's best sentence.
DENSE_LEAD_ALONE = 0.02
# A second sentence joins the answer when its probability is at most this far below the best one's.
SECOND_SENTENCE_MARGIN = 0.1


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
    answer = None
    for answer in pieces:  # noqa: B007 (the last item is the one wanted)
        pass
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


@dataclass(frozen=True)
class Candidate:
    hit_index: int
    text: str
    start: int  # the sentence's offsets in its passage's text
    end: int
    features: np.ndarray  # in the order of FEATURES
    evidence: float  # the model's probability that this sentence answers the question


@dataclass(frozen=True)
class ReaderModel:
    """Logistic regression over standardised features: the probability that a sentence answers a question.

    Trained offline by benchmarks/train_reader.py on data that is not an evaluation set; the weights,
    the standardisation and the threshold ship in `reader.json`.
    """

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    intercept: float
    threshold: float  # chosen on questions the model never trained on

    @classmethod
    def from_json(cls, record: dict) -> "ReaderModel":
        if tuple(record["features"]) != FEATURES:
            raise ValueError(f"reader weights are for features {record['features']}, this reader has {FEATURES}")
        return cls(
            mean=np.asarray(record["mean"], dtype=float),
            scale=np.asarray(record["scale"], dtype=float),
            weights=np.asarray(record["weights"], dtype=float),
            intercept=float(record["intercept"]),
            threshold=float(record["threshold"]),
        )

    def logit(self, features: np.ndarray) -> float:
        return float(((features - self.mean) / self.scale) @ self.weights + self.intercept)

    def probability(self, features: np.ndarray) -> float:
        return 1 / (1 + math.exp(-self.logit(features)))


@cache
def shipped_model() -> ReaderModel:
    """The weights that ship with the package (`reader.json`, written by benchmarks/train_reader.py)."""
    text = resources.files("medrag").joinpath("reader.json").read_text(encoding="utf-8")
    return ReaderModel.from_json(json.loads(text))


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
            for text, vector in zip(missing, self.embedder.embed(missing), strict=False):
                self._cache[text] = vector
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        for text in texts:
            self._cache.move_to_end(text)
        return np.vstack([self._cache[t] for t in texts])


class ExtractiveAnswerer:
    """Answers from the passages' own sentences; refuses when no sentence is likely enough to answer."""

    def __init__(
        self,
        embedder: Embedder,
        statistics: TermStatistics,
        lexicon: Lexicon,
        *,
        min_evidence: float | None = None,
        passages: int = 3,
        max_sentences: int = 2,
        vectors: SentenceVectors | None = None,
        model: "ReaderModel | None" = None,
    ):
        self.embedder = embedder
        self.vectors = vectors or SentenceVectors(embedder)
        self.statistics = statistics
        self.lexicon = lexicon
        self.model = model or shipped_model()
        # A probability: the model's own threshold (chosen on questions it never trained on) unless set.
        self.min_evidence = self.model.threshold if min_evidence is None else min_evidence
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
        candidates = self.candidates(query, hits, query_vector)
        lang = query.language
        if not candidates or candidates[0].evidence < self.min_evidence:
            best = candidates[0].evidence if candidates else 0.0
            return Answer(text=NOT_FOUND[lang], found=False, evidence=best)
        best = candidates[0]
        chosen = [best]
        for other in candidates[1:]:
            if len(chosen) >= self.max_sentences:
                break
            # A second sentence only when it is nearly as likely, so answers stay short and on point.
            close = other.evidence >= max(self.min_evidence, best.evidence - SECOND_SENTENCE_MARGIN)
            if close and other.text not in {c.text for c in chosen}:
                chosen.append(other)
        numbers: dict[int, int] = {}
        parts = []
        for candidate in chosen:
            n = numbers.setdefault(candidate.hit_index, len(numbers) + 1)
            # Brackets in the document are neutralised, so every marker in the answer is one placed here.
            parts.append(f"{neutralise_markers(candidate.text)}[{n}]")
        quotes: dict[int, Quote] = {}
        for candidate in chosen:
            quotes.setdefault(candidate.hit_index, Quote(candidate.text, candidate.start, candidate.end))
        citations = tuple(Citation(n=n, hit=hits[i], quote=quotes[i]) for i, n in numbers.items())
        separator = "" if lang == "zh" else " "
        return Answer(text=separator.join(parts), found=True, citations=citations, evidence=best.evidence)

    def candidates(self, query: Query, hits: list[Hit], query_vector: np.ndarray) -> list[Candidate]:
        """Sentences of the top passages that can answer the question, most probable first.

        Left out before any scoring: reference-list entries and bare links (sources, not answers);
        sentences not about every entity the question names (neither the sentence, its headings nor the
        sentence before it names it, so a fact about another model is never given for this one);
        passages that lack a figure the question states (a year, a count: its premise); and everything
        when the question names a model or organisation the corpus never mentions. The rest are scored
        by the trained model (`reader.json`): the probability that the sentence answers the question.
        """
        if self.unknown(query):
            return []
        asked = set(query.entities)
        figures = premise_figures(query)
        terms = self.weigh(list(query.terms))
        covered = {term for term, _ in query.attributes}
        attributes = [t for t in terms if t[0] in covered] or terms
        typed = query.answer_type in TYPED
        pairs = attribute_bigrams(query)
        rows = []
        for index, hit in enumerate(hits[: self.passages]):
            chunk = hit.chunk
            heading = " > ".join(chunk.section)
            context = normalize(" ".join(chunk.section)).lower()
            passage = f"{context} {normalize(chunk.text).lower()}"
            if any(figure not in passage for figure in figures):
                continue
            around = set(self.lexicon.names(normalize(heading)))
            previous = ""
            for start, end in sentence_spans(chunk.text):
                mark = LIST_MARK.match(chunk.text, start, end)
                if mark:
                    start = mark.end()
                while end > start and chunk.text[end - 1].isspace():
                    end -= 1
                sentence = chunk.text[start:end]
                before, previous = previous, normalize(sentence)  # the sentence before, and this one
                if len(sentence) < 4 or is_reference(chunk, sentence):
                    continue
                own_names = set(self.lexicon.names(previous))
                if not asked <= around | own_names | set(self.lexicon.names(before)):
                    continue
                cross = language(sentence) != query.language
                own = previous.lower()
                features = {
                    "cross_lingual": float(cross),
                    "cover_sentence": self.coverage(attributes, own, cross),
                    "cover_context": self.coverage(attributes, f"{context} {before.lower()} {own}", cross),
                    "cover_passage": self.coverage(terms, passage, cross),
                    "missing_key": self.missing(attributes, f"{context} {before.lower()} {own}", cross),
                    "bigrams": bigram_share(pairs, own),
                    "type_asked": float(typed),
                    "type_match": float(typed and holds(query.answer_type, own)),
                    "entity_asked": float(bool(asked)),
                    "entity_in_sentence": float(bool(asked & own_names)),
                    "passage_rank": index / self.passages,
                }
                rows.append((index, sentence, start, end, normalize(f"{heading}：{sentence}"), features))
        if not rows:
            return []
        similarities = (self.vectors.get([r[4] for r in rows]) @ query_vector).tolist()
        result = []
        for position, (row, dense) in enumerate(zip(rows, similarities, strict=True)):
            index, sentence, start, end, _, features = row
            others = similarities[:position] + similarities[position + 1 :]
            features["dense"] = dense
            features["dense_cross"] = dense * features["cross_lingual"]
            # How far above the best other sentence: a question's answer stands out from its neighbours.
            features["dense_lead"] = dense - max(others) if others else DENSE_LEAD_ALONE
            vector = np.array([features[name] for name in FEATURES])
            result.append(Candidate(index, sentence, start, end, vector, self.model.probability(vector)))
        return sorted(result, key=lambda c: (-c.evidence, c.hit_index))

    def unknown(self, query: Query) -> bool:
        """Whether the question names a model or organisation the corpus has no word for at all."""
        names = [name.lower() for name in query.unknown_names if SPECIFIC_NAME.search(name)]
        if not names:
            return False
        _, frequencies = self.statistics.term_statistics(names)
        return any(frequencies[name] == 0 for name in names)

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

    def missing(self, terms: list[tuple[str, float, bool]], text: str, cross_lingual: bool) -> float:
        """The largest share of the terms' weight that one term absent from `text` holds (0 when none is)."""
        usable = [(t, w) for t, w, known in terms if not cross_lingual or known or NAME.fullmatch(t)]
        total = sum(w for _, w in usable)
        absent = [w for t, w in usable if match(t.lower(), text) < 0.5]
        return max(absent) / total if absent and total else 0.0

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


def attribute_bigrams(query: Query) -> set[str]:
    """The Chinese character pairs of what the question asks about: its attribute terms' runs, joined."""
    text = "".join(term.lower() for term, _ in query.attributes)
    return {run[i : i + 2] for run in CJK_RUN.findall(text) for i in range(len(run) - 1)}


def bigram_share(pairs: set[str], sentence: str) -> float:
    return sum(pair in sentence for pair in pairs) / len(pairs) if pairs else 0.0


def is_reference(chunk: Chunk, sentence: str) -> bool:
    """A reference-list entry or a bare link: a source to cite, not a sentence that answers."""
    if any(normalize(part).strip().lower() in REFERENCE_SECTIONS for part in chunk.section):
        return True
    if REFERENCE_ENTRY.match(sentence):
        return True
    rest = URL.sub("", sentence)
    return rest != sentence and len(re.sub(r"[\W_]", "", rest)) < 6


def premise_figures(query: Query) -> list[str]:
    """Figures the question states outside the names it gives (Llama 3's 3 is a name, 2022 a premise)."""
    text = query.normalized.lower()
    for name in (*query.entities, *query.unknown_names):
        text = text.replace(name.lower(), " ")
    return list(dict.fromkeys(FIGURE.findall(text)))


def pieces(text: str) -> list[str]:
    """`text` cut after each `[n]` marker; the pieces join back to exactly `text`."""
    return [piece for piece in re.split(r"(?<=\[\d\])|(?<=\[\d\d\])", text) if piece]
