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
    """Okapi BM25 (k1, b) with idf = ln(1 + (N - df + 0.5) / (df + 0.5))."""

    def __init__(self, vocabulary: dict[str, int], weights: sparse.csc_matrix, idf: np.ndarray):
        self.vocabulary = vocabulary
        self.weights = weights  # documents x terms, each cell the term's full BM25 contribution
        self.idf = idf

    @classmethod
    def build(cls, token_lists: list[list[str]], k1: float = 1.2, b: float = 0.75) -> "BM25":
        vocabulary: dict[str, int] = {}
        rows, cols, counts = [], [], []
        lengths = np.zeros(len(token_lists), dtype=np.float32)
        for row, tokens in enumerate(token_lists):
            lengths[row] = len(tokens)
            for token, count in Counter(tokens).items():
                rows.append(row)
                cols.append(vocabulary.setdefault(token, len(vocabulary)))
                counts.append(count)
        n_docs = len(token_lists)
        tf = sparse.csr_matrix(
            (np.asarray(counts, dtype=np.float32), (rows, cols)), shape=(n_docs, len(vocabulary))
        )
        df = np.bincount(np.asarray(cols, dtype=np.int64), minlength=len(vocabulary)).astype(np.float32)
        idf = np.log1p((n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
        average = float(lengths.mean()) if n_docs else 1.0
        norm = k1 * (1 - b + b * lengths / max(average, 1e-9))
        tf = tf.tocoo()
        values = tf.data * (k1 + 1) / (tf.data + norm[tf.row]) * idf[tf.col]
        weights = sparse.csc_matrix((values.astype(np.float32), (tf.row, tf.col)), shape=tf.shape)
        return cls(vocabulary, weights, idf)

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
        sparse.save_npz(path / "bm25.npz", self.weights)
        np.save(path / "bm25_idf.npy", self.idf)
        terms = [""] * len(self.vocabulary)
        for term, index in self.vocabulary.items():
            terms[index] = term
        (path / "bm25_terms.txt").write_text("\n".join(terms), encoding="utf-8")

    @classmethod
    def load(cls, path) -> "BM25":
        weights = sparse.load_npz(path / "bm25.npz").tocsc()
        idf = np.load(path / "bm25_idf.npy")
        text = (path / "bm25_terms.txt").read_text(encoding="utf-8")
        terms = text.split("\n") if text else []
        return cls({term: i for i, term in enumerate(terms)}, weights, idf)
