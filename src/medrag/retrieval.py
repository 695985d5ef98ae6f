"""Dense and lexical retrieval over any store, fused into one ranking.

Scores: every `Hit.score` is higher-is-better. With RRF fusion it is sum(1 / (rrf_k + rank)) over
the two rankings; `dense_score` is the cosine similarity and `lexical_score` the raw BM25 score
(a store that fuses inside itself, Milvus, reports only the fused score).
"""

from typing import Literal

import numpy as np

from .embedding import Embedder
from .store import IndexView, fused_hits
from .textnorm import normalize
from .types import Hit

Mode = Literal["hybrid", "dense", "bm25"]
# How far down each ranking candidates are drawn before fusion.
CANDIDATES = 50
# Reciprocal-rank fusion constant; measured in benchmarks/toyhom.py (10 beat 60).
RRF_K = 10


class Retriever:
    def __init__(
        self,
        index: IndexView,
        embedder: Embedder,
        *,
        fusion: str = "rrf",
        rrf_k: int = RRF_K,
        dense_weight: float = 0.5,
    ):
        self.index = index
        self.embedder = embedder
        self.fusion = fusion
        self.rrf_k = rrf_k
        self.dense_weight = dense_weight

    def embed_query(self, question: str) -> np.ndarray:
        return self.embedder.embed([normalize(question)], query=True)[0]

    def search(
        self, question: str, k: int = 5, mode: Mode = "hybrid", query_vector: np.ndarray | None = None
    ) -> list[Hit]:
        """The k best chunks for the question."""
        if mode == "bm25":
            return self.index.lexical_search(question, k)
        vector = self.embed_query(question) if query_vector is None else query_vector
        if mode == "dense":
            return self.index.dense_search(vector, k)
        depth = max(CANDIDATES, k)
        if self.fusion == "rrf":
            return self.index.hybrid_search(question, vector, k, depth=depth, rrf_k=self.rrf_k)
        return self._weighted(self.index.dense_search(vector, depth), self.index.lexical_search(question, depth), k)

    def _weighted(self, dense: list[Hit], lexical: list[Hit], k: int) -> list[Hit]:
        """Min-max normalised scores of each ranking, blended by `dense_weight`."""
        fused: dict[str, float] = {}
        for ranking, weight in ((dense, self.dense_weight), (lexical, 1 - self.dense_weight)):
            if not ranking:
                continue
            low, high = min(h.score for h in ranking), max(h.score for h in ranking)
            for hit in ranking:
                share = (hit.score - low) / (high - low) if high > low else 1.0
                fused[hit.chunk.chunk_id] = fused.get(hit.chunk.chunk_id, 0.0) + weight * share
        return fused_hits(fused, dense, lexical, k)
