"""Dense and lexical retrieval over any store, fused into one ranking.

Scores: every `Hit.score` is higher-is-better. With RRF fusion it is sum(1 / (rrf_k + rank)) over
the two rankings; `dense_score` is the cosine similarity and `lexical_score` the raw BM25 score.

The fusion is done here, for every store (`fusion.py`), not inside the store: the lexical ranking
needs no vector, so the pipeline asks for it (`lexical`) while the question is being encoded and
hands it to `search`. (Milvus could fuse on the server in one call; one way of fusing for both
stores, with the lexical call hidden behind the encoder, was worth more than that round trip.)
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

    def lexical(self, query: Query, k: int, mode: Mode = "hybrid", allowed: Collection[str] | None = None) -> list[Hit]:
        """The lexical ranking `search` fuses for this query and mode (none for dense search)."""
        if mode == "dense":
            return []
        depth = k if mode == "bm25" else max(self.candidates, k)
        return self.index.lexical_search(query.normalized, depth, allowed=allowed)

    def search(
        self,
        query: Query,
        k: int,
        mode: Mode = "hybrid",
        query_vector: np.ndarray | None = None,
        allowed: Collection[str] | None = None,
        lexical: list[Hit] | None = None,
    ) -> list[Hit]:
        """The k best chunks for the query, from the documents `allowed` names (None: all of them).

        `lexical` is `self.lexical(query, k, mode, allowed)` when the caller has it already.
        """
        if lexical is None:
            lexical = self.lexical(query, k, mode, allowed)
        if mode == "bm25":
            return lexical
        vector = self.embed_query(query) if query_vector is None else query_vector
        if mode == "dense":
            return self.index.dense_search(vector, k, allowed=allowed)
        dense = self.index.dense_search(vector, max(self.candidates, k), allowed=allowed)
        if self.fusion == "rrf":
            return fusion.rrf(dense, lexical, k, self.rrf_k)
        return fusion.weighted(dense, lexical, k, self.dense_weight)
