"""Dense (FAISS) and lexical (BM25) retrieval, fused into one ranking.

Scores: every `Hit.score` is higher-is-better. With RRF fusion it is sum(1 / (rrf_k + rank)) over
the two rankings; `dense_score` is the cosine similarity and `lexical_score` the raw BM25 score.
"""

from typing import Literal

import numpy as np

from .embedding import Embedder
from .lexical import tokenize
from .store import Index
from .textnorm import normalize
from .types import Hit

Mode = Literal["hybrid", "dense", "bm25"]
# How far down each ranking candidates are drawn before fusion.
CANDIDATES = 50
# Reciprocal-rank fusion constant; measured in benchmarks/toyhom.py (10 beat 60).
RRF_K = 10


class Retriever:
    def __init__(self, index: Index, embedder: Embedder, *, fusion: str = "rrf", rrf_k: int = RRF_K,
                 dense_weight: float = 0.5):
        self.index = index
        self.embedder = embedder
        self.fusion = fusion
        self.rrf_k = rrf_k
        self.dense_weight = dense_weight

    def embed_query(self, question: str) -> np.ndarray:
        return self.embedder.embed([normalize(question)], query=True)[0]

    def search(self, question: str, k: int = 5, mode: Mode = "hybrid",
               query_vector: np.ndarray | None = None) -> list[Hit]:
        """The k best chunks for the question."""
        if not self.index.chunks:
            return []
        depth = max(CANDIDATES, k)
        dense: dict[int, float] = {}
        lexical: dict[int, float] = {}
        if mode in ("hybrid", "dense"):
            vector = self.embed_query(question) if query_vector is None else query_vector
            rows, scores = self.index.dense_search(vector, depth)
            dense = dict(zip(rows.tolist(), scores.tolist()))
        if mode in ("hybrid", "bm25"):
            all_scores = self.index.bm25.scores(tokenize(question))
            top = _top(all_scores, depth)
            lexical = {int(r): float(all_scores[r]) for r in top if all_scores[r] > 0}
        if mode == "dense":
            ranked = sorted(dense.items(), key=lambda item: -item[1])
        elif mode == "bm25":
            ranked = sorted(lexical.items(), key=lambda item: -item[1])
        else:
            ranked = self._fuse(dense, lexical)
        hits = []
        for row, score in ranked[:k]:
            hits.append(Hit(
                chunk=self.index.chunks[row],
                score=float(score),
                dense_score=dense.get(row),
                lexical_score=lexical.get(row, 0.0) if mode != "dense" else None,
            ))
        return hits

    def _fuse(self, dense: dict[int, float], lexical: dict[int, float]) -> list[tuple[int, float]]:
        fused: dict[int, float] = {}
        if self.fusion == "rrf":
            for ranking in (dense, lexical):
                for rank, row in enumerate(sorted(ranking, key=lambda r: -ranking[r])):
                    fused[row] = fused.get(row, 0.0) + 1.0 / (self.rrf_k + rank + 1)
        else:
            for ranking, weight in ((dense, self.dense_weight), (lexical, 1 - self.dense_weight)):
                if not ranking:
                    continue
                low, high = min(ranking.values()), max(ranking.values())
                for row, value in ranking.items():
                    share = (value - low) / (high - low) if high > low else 1.0
                    fused[row] = fused.get(row, 0.0) + weight * share
        return sorted(fused.items(), key=lambda item: -item[1])


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    if len(scores) <= k:
        return np.argsort(-scores)
    part = np.argpartition(-scores, k)[:k]
    return part[np.argsort(-scores[part])]
