"""Extractive answers: the sentences of the retrieved passages that best answer the question.

No language model is needed. Each sentence of the top passages is scored by the cosine similarity
of its embedding (with its heading for context) to the question's, and by how much of the
question's weight (BM25 idf) it covers. The best one or two sentences become the answer, each
followed by an `[n]` marker bound to its passage. The evidence of the best sentence decides whether
to answer at all: below `min_evidence` the answer is `found: false`. Evidence is the probability,
from a logistic model (`calibration`) over the sentence's similarity, how much of what the question
asks about (its terms without the entities it names) the sentence itself holds, and how far it stands
above every other sentence read (`distinct`), that its answer is right; `benchmarks/train_reader.py`
fits it and chooses the threshold out of fold.
Words are also matched by their dictionary translations and synonyms (`glossary`), so an English or
paraphrased question can cover a Chinese sentence. docs/design.md gives every rule and its reason.
"""

import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .calibration import EvidenceModel
from .chunking import reader_sentences
from .embedding import Embedder
from .entities import Lexicon, Mention, is_model
from .glossary import organisation, synonyms, translations
from .lexical import idf
from .query import CITATION, CJK_RUN, asks_source, holds, holds_count, language
from .textnorm import neutralise_markers, normalize
from .types import Answer, Chunk, Citation, Document, Hit, Query, Question, Quote, Source

NOT_FOUND = {
    "zh": "抱歉，语料库中没有找到能回答这个问题的内容。",
    "en": "Sorry, the corpus holds no passage that answers this question.",
}
NAME = re.compile(r"[A-Z][A-Za-z0-9-]+|[A-Za-z]*\d[A-Za-z0-9.%-]*")
URL = re.compile(r"https?://\S+")
REFERENCE_SECTIONS = frozenset({"参考文献", "参考资料", "references", "bibliography", "资料来源"})
# "1. 搜狐. (2024). 标题 …": a reference-list entry.
REFERENCE_ENTRY = re.compile(r"^\s*(?:\d+[.、)]\s*)?[^.。\n]{1,40}\.\s*\(\d{4}\)\.")
# A name that looks like a model's (a digit or a capital inside it: GPT-5, MedGPT) or is Chinese: when
# the corpus has no such word at all, the question is about something the corpus does not cover.
# (A capitalised English word alone, Australia or Chinese, says too little.)
SPECIFIC_NAME = re.compile(r"\d|[a-z][A-Z]|[\u3400-\u9fff]")
# An acronym (FDA, WHO): in a Chinese question it is written as the corpus would write it, so a
# corpus without it does not cover what is asked. (In an English one it may be a translation: US.)
ACRONYM = re.compile(r"[A-Z]{2,6}")
# What a sentence may open with before its subject: a list marker, a "label：", a date ("2023年12月，").
SUBJECT_OPENING = re.compile(
    r"^\s*(?:(?:[-*]|\d+[.、)])\s*)?(?:[^：:，,。]{1,12}[：:])?\s*(?:\d{4}年(?:\d{1,2}月)?(?:\d{1,2}日)?[，,]?)?"
)
# Figures a question states as premises: two digits or more (years, counts).
FIGURE = re.compile(r"\d{2,}(?:\.\d+)?")
# Answer types a sentence visibly holds or lacks (a figure, a date): a sentence lacking it does not answer.
VISIBLE_TYPES = frozenset({"title", "source", "date", "quantity"})
# "(搜狐, 2024)", "(搜狐, 2024; 智源社区, 2024)": the cited publishers and years.
CITED = re.compile(r"([^()（）,，;；]{1,40})[,，]\s*(\d{4})")
# How an answer gives a cited article's title, by the question's language.
TITLED = {
    "zh": "{publisher}（{year}）的文章题为《{title}》",
    "en": 'The article of {publisher} ({year}) is titled "{title}"',
}
# The credit a word gets when the text has a synonym of it rather than the word (a paraphrase).
SYNONYM_CREDIT = 0.7
# How many passages the reader keeps as read (ExtractiveAnswerer.passage), a few kB each.
PASSAGES_KEPT = 4096


class IndexReading(Protocol):
    """What the reader reads of an index version besides the hits (an `IndexView` is one)."""

    documents: dict[str, Document]

    def term_statistics(self, terms: Iterable[str]) -> tuple[int, dict[str, int]]:
        """The number of chunks, and per term how many chunks contain it."""
        ...

    def sentence_vectors(self, chunks: Sequence[Chunk]) -> list[np.ndarray]:
        """Per chunk, the vectors of its `reader_sentences`, made when the chunk was indexed."""
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
class Term:
    """A question's term as the reader weighs it."""

    text: str
    weight: float
    known: bool  # the corpus has it as written
    translations: tuple[str, ...]  # its dictionary translations (glossary.translations)
    synonyms: tuple[str, ...]  # words sharing a specific translation with it (glossary.synonyms)
    noun: bool  # a noun, name or foreign word (the full part-of-speech weight): what a question asks about


def as_written(term: Term) -> bool:
    """Whether a term can match text in another language as it is written (a name, a number, a word the corpus has)."""
    return term.known or bool(NAME.fullmatch(term.text))


def matchable(term: Term) -> bool:
    """Whether a term can match text in another language at all."""
    return as_written(term) or bool(term.translations)


@dataclass(frozen=True)
class Sentence:
    """A passage's sentence as the reader reads it before any question."""

    start: int  # its offsets in its passage's text
    end: int
    text: str
    normalized: str
    named: frozenset[str]  # the entities it names
    subject: str | None  # the model it opens with (after a "label：" and a date): what it is about
    reference: bool  # a reference-list entry or a bare link: a source to cite, not an answer
    language: str


@dataclass(frozen=True)
class Passage:
    """A passage as the reader reads it before any question: its headings and its sentences."""

    context: str  # its headings, normalised and lower-cased
    text: str  # its headings and text, normalised and lower-cased
    around: frozenset[str]  # the entities its headings name
    sentences: tuple[Sentence, ...]

    @classmethod
    def of(cls, chunk: Chunk, lexicon: Lexicon) -> "Passage":
        context = normalize(" ".join(chunk.section)).lower()
        sentences = []
        for start, end in reader_sentences(chunk.text):
            text = chunk.text[start:end]
            normalized = normalize(text)
            mentions = lexicon.find(normalized)
            named = frozenset(m.name for m in mentions)
            opening = subject(normalized, mentions)
            sentences.append(
                Sentence(
                    start,
                    end,
                    text,
                    normalized,
                    named,
                    opening if opening in models(named) else None,
                    is_reference(chunk, text),
                    language(text),
                )
            )
        around = frozenset(lexicon.names(normalize(" > ".join(chunk.section))))
        return cls(context, f"{context} {normalize(chunk.text).lower()}", around, tuple(sentences))


@dataclass(frozen=True)
class Candidate:
    hit_index: int
    text: str
    start: int  # the sentence's offsets in its passage's text
    end: int
    rank: float
    evidence: float  # the evidence model's probability over `features`
    features: tuple[float, ...]  # in the order of calibration.FEATURES
    source: Source | None = None  # asked for a title: the cited article whose title answers


class ExtractiveAnswerer:
    """Answers from the passages' own sentences; refuses when the evidence is weak."""

    def __init__(
        self,
        embedder: Embedder,
        index: IndexReading,
        lexicon: Lexicon,
        *,
        model: EvidenceModel,
        min_evidence: float | None = None,
        passages: int = 3,
        max_sentences: int = 2,
    ):
        self.embedder = embedder  # the LLM answerer's support checks embed with it; this reader does not
        self.index = index
        self.lexicon = lexicon
        self.model = model
        self.min_evidence = model.threshold if min_evidence is None else min_evidence  # None: the model's
        self.passages = passages
        self.max_sentences = max_sentences
        self._titled: dict[str, dict[tuple[str, str], Source]] = {}  # see titled_sources
        self._passages: dict[str, Passage] = {}  # see passage
        self._passages_lock = threading.Lock()

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
        if best.source is not None:  # the title of the article the sentence cites: it alone answers
            return self.titled(query, best, hits)
        chosen = [best]
        for other in candidates[1:]:
            if len(chosen) >= self.max_sentences:
                break
            # A second sentence only when it is nearly as good, so answers stay short and on point.
            close = other.rank >= best.rank - 0.05 and other.evidence >= self.min_evidence
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

    def titled(self, query: Query, best: Candidate, hits: list[Hit]) -> Answer:
        """The title of the article `best` cites, with the citing sentence as the passage's quote."""
        source = best.source
        assert source is not None
        text = TITLED[query.language].format(publisher=source.publisher, year=source.year, title=source.title)
        quote = Quote(best.text, best.start, best.end)
        citation = Citation(n=1, hit=hits[best.hit_index], quote=quote)
        return Answer(text=f"{neutralise_markers(text)}[1]", found=True, citations=(citation,), evidence=best.evidence)

    def named_sources(self, query: Query, hits: list[Hit]) -> list[Source]:
        """The cited articles (with a title) of the hits' documents whose publisher the question names."""
        asked = query.normalized.lower()
        found: list[Source] = []
        for hit in hits:
            for (publisher, _), source in self.titled_sources(hit.chunk.doc_id).items():
                if publisher and publisher in asked and source not in found:
                    found.append(source)
        return found

    def titled_sources(self, doc_id: str) -> dict[tuple[str, str], Source]:
        """A document's cited articles with a title, by (normalised publisher, year); made once per document."""
        sources = self._titled.get(doc_id)
        if sources is None:
            document = self.index.documents.get(doc_id)
            cited = document.sources if document is not None else ()
            sources = {(normalize(s.publisher).lower(), s.year): s for s in cited if s.title}
            self._titled[doc_id] = sources
        return sources

    def cited(self, chunk: Chunk, text: str) -> list[Source]:
        """The articles with a title that the in-text citations of `text` (part of `chunk`) name."""
        sources = self.titled_sources(chunk.doc_id)
        found = []
        for citation in CITATION.findall(text):
            for publisher, year in CITED.findall(citation.strip("()（）")):
                source = sources.get((normalize(publisher).strip().lower(), year))
                if source is not None and source not in found:
                    found.append(source)
        return found

    def candidates(self, query: Query, hits: list[Hit], query_vector: np.ndarray) -> list[Candidate]:
        """Sentences of the top passages that can answer the question, best evidence first.

        Left out: reference-list entries and bare links (sources, not answers); sentences not about
        every entity the question names (neither the sentence, its headings nor the sentence before it
        names it, so a fact about another model is never given for this one); sentences without the date,
        figure or citation the question asks for; passages that lack a figure the question states (a year,
        a count: its premise); and everything when the question names a model or organisation the corpus
        never mentions.
        """
        if self.unknown(query):
            return []
        asked_in = query.language
        asked = set(query.entities)
        asked_models = models(asked)
        figures = premise_figures(query)
        terms = self.weigh(list(query.terms))
        # What the question asks about: its terms without the names of the entities it asks it of.
        asked_about = {term for term, _ in query.attributes}
        attributes = [term for term in terms if term.text in asked_about]
        nouns = [term for term in attributes if term.noun]
        kind = query.answer_type if query.answer_type in VISIBLE_TYPES else None
        source_words = frozenset(term.text for term in attributes if asks_source(term.text))
        excluded = [term.lower() for term in query.excluded]
        cites = kind in ("source", "title")  # the rest of the passage may hold the citation asked for
        # Asked for a title, every passage retrieved may hold the citation, and the publishers the
        # question names (by a name of theirs in it) narrow the articles to theirs.
        top = hits if kind == "title" else hits[: self.passages]
        named_sources = self.named_sources(query, top) if kind == "title" else []
        read_all = [self.passage(hit.chunk) for hit in top]
        # Each passage's sentence cosines, in one product per passage.
        cosines_all = [
            (vectors @ query_vector).tolist() for vectors in self.index.sentence_vectors([h.chunk for h in top])
        ]
        # Every sentence read (references aside) on its band, whatever the filters below say of it: the
        # sentence about another model that a question swapped the model of is among them.
        bands: dict[str, float] = {}
        for read, cosines in zip(read_all, cosines_all, strict=True):
            for facts, cosine in zip(read.sentences, cosines, strict=True):
                if not facts.reference:
                    value = band(cosine, facts.language != asked_in)
                    bands[facts.text] = max(value, bands.get(facts.text, value))
        result = []
        for index, (hit, read, cosines) in enumerate(zip(top, read_all, cosines_all, strict=True)):
            chunk = hit.chunk
            if any(figure not in read.text for figure in figures):
                continue
            context, passage = read.context, read.text
            named_before: frozenset[str] = frozenset()  # the entities the sentence before names
            for facts, dense in zip(read.sentences, cosines, strict=True):
                start, sentence, normalized = facts.start, facts.text, facts.normalized
                named, named_before = read.around | facts.named | named_before, facts.named
                if facts.reference:
                    continue
                if asked_models and facts.subject is not None and facts.subject not in asked_models:
                    continue  # the sentence is about another model than the one asked about
                # Asked for a figure or a date, and none here: whatever else it says, it does not answer. (A
                # citation may close the paragraph instead of each sentence: for a source or a title, the
                # rest of the passage counts.)
                if kind is not None and not holds(kind, chunk.text[start:] if cites else normalized.lower()):
                    continue
                if kind == "quantity" and query.counted and not holds_count(normalized):
                    continue  # asked 多少种 (how many kinds), and no count of anything here
                # Asked for a title, the sentence answers through an article it cites, whose publisher
                # and title count as the sentence's words (and may name the entity asked).
                readings: list[tuple[str, Source | None]] = [(normalized, None)]
                if kind == "title":
                    cited = self.cited(chunk, chunk.text[start:])
                    readings = [
                        (f"{normalized} {normalize(f'{s.publisher} {s.title}')}", s)
                        for s in cited
                        if not named_sources or s in named_sources
                    ]
                for reading, source in readings:
                    extra = set(self.lexicon.names(reading)) if source is not None else set()
                    if not asked <= named | extra:
                        continue
                    cross_lingual = facts.language != asked_in
                    # Terms in the sentence itself count fully, terms only in its headings half; across
                    # languages the matchable terms are mostly names and translations, which headings
                    # carry too.
                    own = reading.lower()
                    local = self.coverage(terms, f"{context} {own}", cross_lingual)
                    if not cross_lingual:
                        local = 0.5 * (local + self.coverage(terms, own, cross_lingual))
                    # Asked for a source, the sentence's citation gives it: the words asking for it are answered.
                    given = source_words if cites else frozenset()
                    if source is not None and nouns and self.coverage(nouns, own, cross_lingual, given) <= 0.5:
                        continue  # most of what is asked is not this article's (MedLM的论文: a paper, not it)
                    if any(term in own for term in excluded):
                        local *= 0.5  # the sentence gives what the question sets aside
                    # Evidence: the sentence must hold the attribute asked, not just its passage (a
                    # passage about the entity holds most questions' words somewhere). Where no attribute
                    # word can match (across languages, with no translation) or the question names only
                    # its entity, the passage's coverage of all the question's terms stands in.
                    if attributes and (not cross_lingual or any(matchable(term) for term in attributes)):
                        support = self.coverage(attributes, own, cross_lingual, given)
                        if nouns and not self.coverage(nouns, own, cross_lingual, given):
                            support = 0.0  # only its verbs match (支持 in 决策支持): the thing asked is not here
                    else:
                        support = self.coverage(terms, passage, cross_lingual)
                    similarity = rescale(dense, cross_lingual)
                    if similarity == 0.0:
                        continue  # at or below the band of unrelated text: whatever words match, no answer
                    # Not against itself: the same sentence in an overlapping passage, or cut short at its edge.
                    others = (v for t, v in bands.items() if t not in sentence and sentence not in t)
                    margin = distinct(band(dense, cross_lingual), others)
                    # Within a close call the better-retrieved passage wins.
                    prior = max(0.0, 1 - index / self.passages)
                    features = (similarity, support, margin)
                    result.append(
                        Candidate(
                            index,
                            sentence,
                            start,
                            facts.end,
                            rank=0.45 * similarity + 0.45 * local + 0.1 * prior,
                            evidence=self.model.probability(features),
                            features=features,
                            source=source,
                        )
                    )
        return sorted(result, key=lambda c: (-c.evidence, -c.rank))

    def passage(self, chunk: Chunk) -> Passage:
        """What the reader reads of a passage whatever the question, made once per index version (the
        answerer lives as long as its version); the last PASSAGES_KEPT passages made are kept."""
        read = self._passages.get(chunk.chunk_id)
        if read is None:
            read = Passage.of(chunk, self.lexicon)
            with self._passages_lock:
                self._passages[chunk.chunk_id] = read
                while len(self._passages) > PASSAGES_KEPT:
                    del self._passages[next(iter(self._passages))]
        return read

    def unknown(self, query: Query) -> bool:
        """Whether the question names a model, organisation or acronym the corpus has no word for at all."""
        names = [
            name
            for name in query.unknown_names
            if SPECIFIC_NAME.search(name) or (query.language == "zh" and ACRONYM.fullmatch(name))
        ]
        if not names:
            return False
        # An organisation counts as known under its name in either language (谷歌 as Google).
        forms = {name: (name.lower(), *organisation(name)) for name in names}
        _, frequencies = self.index.term_statistics({form for group in forms.values() for form in group})
        return any(all(frequencies[form] == 0 for form in group) for group in forms.values())

    def weigh(self, terms: list[tuple[str, float]]) -> list[Term]:
        """Each term with its weight (part-of-speech weight x idf), whether the corpus has it, its
        dictionary translations and synonyms, and whether it is a noun.

        The index is asked once per question; a term the corpus never saw gets the highest idf.
        """
        chunks, frequencies = self.index.term_statistics({term.lower() for term, _ in terms})
        return [
            Term(
                term,
                weight * idf(chunks, frequencies[term.lower()]),
                frequencies[term.lower()] > 0,
                translations(term),
                synonyms(term),
                weight >= 1.0,
            )
            for term, weight in terms
        ]

    def coverage(
        self, terms: list[Term], passage: str, cross_lingual: bool, given: frozenset[str] = frozenset()
    ) -> float:
        """Share of the question's weight found in the passage.

        A term is looked for as written and, unless the corpus has it as written or it is a name, by its
        dictionary translations too. Across languages only what can match counts: words the corpus
        contains (model names, numbers), capitalised names (a translation keeps them), translations.
        Terms in `given` count as found (the words asking for a source, when the text cites one).
        """
        found = total = 0.0
        for term in terms:
            if term.text in given:
                total += term.weight
                found += term.weight
                continue
            forms = (term.text.lower(),)
            if not as_written(term):
                # A word the corpus lacks may be in the question's other language (医联 in an English
                # question); across languages it can only match by its translations.
                forms = term.translations if cross_lingual else (*forms, *term.translations)
                if not forms:
                    continue
            total += term.weight
            found += term.weight * max(
                max(match(form, passage) for form in forms),
                SYNONYM_CREDIT if any(form in passage for form in term.synonyms) else 0.0,
            )
        return found / total if total else 0.0


def subject(sentence: str, mentions: list[Mention]) -> str | None:
    """The entity a (normalised) sentence opens with, after a "label：" and a date: what it is about."""
    opening = SUBJECT_OPENING.match(sentence)
    return mentions[0].name if mentions and opening and mentions[0].start == opening.end() else None


def models(names: Iterable[str]) -> set[str]:
    """The names among these that look like a model's (a digit or an inner capital: MedGPT, Med-PaLM 2).

    A sentence that opens with another model is about that model; one that opens with an organisation
    (医联, Google) may still be about the model its heading names.
    """
    return {name for name in names if is_model(name)}


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


def band(cosine: float, cross_lingual: bool) -> float:
    """An e5 cosine on the scale of its band: 0 at unrelated text, 1 at a direct answer (unclipped).

    e5 cosines live in a narrow band: unrelated text scores about 0.75-0.80 and a direct answer
    about 0.90-0.93 in the same language; across languages the whole band sits about 0.06 lower.
    """
    low, high = (0.74, 0.86) if cross_lingual else (0.80, 0.93)
    return (cosine - low) / (high - low)


def rescale(cosine: float, cross_lingual: bool) -> float:
    """Map an e5 cosine to [0, 1] (its `band`, clipped)."""
    return min(1.0, max(0.0, band(cosine, cross_lingual)))


def distinct(own: float, others: Iterable[float]) -> float:
    """How far a sentence's `band` stands above the best of the other sentences read, in [-1, 1].

    A sentence chosen because it names the entity asked about, while the question asks something the
    passages do not say, is seldom closer to the question than the sentences around it; the sentence
    that answers usually is (the margin between the best and the second-best reading, as readers that
    may answer "no answer" use it). Bands count from 0 up (below it everything is unrelated text, and
    its differences are noise) and are not capped above (two sentences that both reach 1 still
    differ). With no other sentence read, it stands above unrelated text (0) by its own band.
    """
    best_other = max(others, default=0.0)
    return max(-1.0, min(1.0, max(0.0, own) - max(0.0, best_other)))
