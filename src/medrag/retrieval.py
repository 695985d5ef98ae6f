"""Dense and lexical retrieval over any store, fused into one ranking.

Scores: every `Hit.score` is higher-is-better. With RRF fusion it is sum(1 / (rrf_k + rank)) over
the two rankings; `dense_score` is the cosine similarity and `lexical_score` the raw BM25 score
(a store that fuses inside itself, Milvus, reports only the fused score).
"""

from collections.abc import Collection
from typing import Literal

import numpy as np

from . import fusion
from .embedding import Embedder
from .stores import IndexView
from .types import Hit, Query

Mode = Literal["hybrid", "dense", "bm25"]


class Retriever:
    """Searches one index version; `candidates` is how far down each ranking fusion looks."""

    def __init__(
        self, index: IndexView, embedder: Embedder, *, fusion: str, rrf_k: int, candidates: int, dense_weight: float
    ):
        self.index = index
        self.embedder = embedder
        self.fusion = fusion
        self.rrf_k = rrf_k
        self.candidates = candidates
        self.dense_weight = dense_weight

    def embed_query(self, query: Query) -> np.ndarray:
        return self.embedder.embed([query.normalized], query=True)[0]

    def search(
        self,
        query: Query,
        k: int,
        mode: Mode = "hybrid",
        query_vector: np.ndarray | None = None,
        allowed: Collection[str] | None = None,
    ) -> list[Hit]:
        """The k best chunks for the query, from the documents `allowed` names (None: all of them)."""
        text = query.normalized
        if mode == "bm25":
            return self.index.lexical_search(text, k, allowed=allowed)
        vector = self.embed_query(query) if query_vector is None else query_vector
        if mode == "dense":
            return self.index.dense_search(vector, k, allowed=allowed)
        depth = max(self.candidates, k)
        if self.fusion == "rrf":
            return self.index.hybrid_search(text, vector, k, depth=depth, rrf_k=self.rrf_k, allowed=allowed)
        dense = self.index.dense_search(vector, depth, allowed=allowed)
        lexical = self.index.lexical_search(text, depth, allowed=allowed)
        return fusion.weighted(dense, lexical, k, self.dense_weight)
