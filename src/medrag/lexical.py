"""BM25 over jieba tokens, as a sparse matrix built once so a query is one sparse row sum."""

import logging
import math
import re
from collections import Counter

import jieba
import numpy as np
from scipy import sparse

from .textnorm import normalize

jieba.setLogLevel(logging.WARNING)

WORD = re.compile(r"[\w.%+-]+", re.UNICODE)
# Whatever can never be part of a token.
SEPARATORS = re.compile(r"[^\w.%+-]+", re.UNICODE)
# Function words that carry no topic; kept short on purpose (BM25's idf handles the rest).
STOPWORDS = frozenset(
    "的 了 和 与 及 是 在 有 为 对 中 等 也 而 或 被 将 把 其 之 于 以 这 那 这些 那些 一个 哪 哪些 哪家 什么 多少 "
    "怎么 怎样 如何 吗 呢 吧 啊 个 what which who whom how many much is are was were the a an of in on "
    "to for and or does do did with by at from as it its that this".split()
)


def tokenize(text: str) -> list[str]:
    """Lower-cased search tokens of normalised text: jieba's search mode for Chinese, words for the rest."""
    tokens = []
    for token in jieba.cut_for_search(normalize(text).lower()):
        token = token.strip()
        if token and WORD.fullmatch(token) and token not in STOPWORDS:
            tokens.append(token)
    return tokens


def idf(chunks: int, frequency: int) -> float:
    """BM25's inverse document frequency of a term found in `frequency` of `chunks` chunks."""
    return math.log1p((chunks - frequency + 0.5) / (frequency + 0.5))


class BM25:
    """Okapi BM25 (k1, b) with idf = ln(1 + (N - df + 0.5) / (df + 0.5)).

    The term counts are the stored state; weights and idf derive from them. A new index version
    keeps the surviving chunks' rows and counts only the new chunks, so adding a document costs
    tokenising that document, not the whole corpus again.
    """

    def __init__(self, vocabulary: dict[str, int], counts: sparse.csr_matrix, k1: float = 1.2, b: float = 0.75):
        self.vocabulary = vocabulary
        self.counts = counts  # documents x terms, how often each term occurs in each document
        n_docs = counts.shape[0]
        df = np.diff(counts.tocsc().indptr).astype(np.float32)
        self.idf = np.log1p((n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
        lengths = np.asarray(counts.sum(axis=1), dtype=np.float32).ravel()
        average = float(lengths.mean()) if n_docs else 1.0
        norm = k1 * (1 - b + b * lengths / max(average, 1e-9))
        tf = counts.tocoo()
        values = tf.data * (k1 + 1) / (tf.data + norm[tf.row]) * self.idf[tf.col]
        # documents x terms, each cell the term's full BM25 contribution
        self.weights = sparse.csc_matrix((values.astype(np.float32), (tf.row, tf.col)), shape=tf.shape)

    @classmethod
    def build(cls, token_lists: list[list[str]]) -> "BM25":
        return cls({}, sparse.csr_matrix((0, 0), dtype=np.float32)).extend(token_lists)

    def keep(self, rows: list[int]) -> "BM25":
        """The same statistics over only these documents (rows), in this order."""
        return BM25(self.vocabulary, self.counts[rows])

    def extend(self, token_lists: list[list[str]]) -> "BM25":
        """These statistics plus new documents, appended after the existing ones."""
        vocabulary = dict(self.vocabulary)
        rows, cols, values = [], [], []
        for row, tokens in enumerate(token_lists):
            for token, count in Counter(tokens).items():
                rows.append(row)
                cols.append(vocabulary.setdefault(token, len(vocabulary)))
                values.append(count)
        shape = (len(token_lists), len(vocabulary))
        added = sparse.csr_matrix((np.asarray(values, dtype=np.float32), (rows, cols)), shape=shape)
        old = self.counts.copy()
        old.resize((old.shape[0], len(vocabulary)))
        return BM25(vocabulary, sparse.vstack([old, added], format="csr"))

    def scores(self, query_tokens: list[str]) -> np.ndarray:
        """BM25 score of every document for the query (repeated query terms count once)."""
        columns = [self.vocabulary[t] for t in dict.fromkeys(query_tokens) if t in self.vocabulary]
        if not columns:
            return np.zeros(self.weights.shape[0], dtype=np.float32)
        return np.asarray(self.weights[:, columns].sum(axis=1)).ravel()

    def idf_of(self, token: str) -> float:
        """idf of a token; a token the corpus never saw gets the idf of df = 0."""
        return idf(self.weights.shape[0], self.document_frequency(token))

    def document_frequency(self, token: str) -> int:
        """How many documents contain the token: its column's non-zero cells (a present term never weighs 0)."""
        column = self.vocabulary.get(token)
        return 0 if column is None else int(self.weights.indptr[column + 1] - self.weights.indptr[column])

    def save(self, path) -> None:
        sparse.save_npz(path / "bm25_counts.npz", self.counts)
        terms = [""] * len(self.vocabulary)
        for term, index in self.vocabulary.items():
            terms[index] = term
        (path / "bm25_terms.txt").write_text("\n".join(terms), encoding="utf-8")

    @classmethod
    def load(cls, path) -> "BM25":
        counts = sparse.load_npz(path / "bm25_counts.npz").tocsr()
        text = (path / "bm25_terms.txt").read_text(encoding="utf-8")
        terms = text.split("\n") if text else []
        return cls({term: i for i, term in enumerate(terms)}, counts)
