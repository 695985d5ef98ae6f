"""Fusing a dense and a lexical ranking into one: reciprocal-rank fusion, or blended normalised scores.

Both take best-first rankings and return the k best fused hits; each hit keeps the score it had in
each ranking it was in (`dense_score`, `lexical_score`), and its `score` is the fused one.
"""

from .types import Hit


def rrf(dense: list[Hit], lexical: list[Hit], k: int, rrf_k: int) -> list[Hit]:
    """Reciprocal-rank fusion: score = sum over the rankings of 1 / (rrf_k + rank), ranks from 1."""
    fused: dict[str, float] = {}
    for ranking in (dense, lexical):
        for rank, hit in enumerate(ranking, start=1):
            fused[hit.chunk.chunk_id] = fused.get(hit.chunk.chunk_id, 0.0) + 1.0 / (rrf_k + rank)
    return fused_hits(fused, dense, lexical, k)


def weighted(dense: list[Hit], lexical: list[Hit], k: int, dense_weight: float) -> list[Hit]:
    """Min-max normalised scores of each ranking, blended: dense_weight * dense + (1 - dense_weight) * lexical."""
    fused: dict[str, float] = {}
    for ranking, weight in ((dense, dense_weight), (lexical, 1 - dense_weight)):
        if not ranking:
            continue
        low, high = min(h.score for h in ranking), max(h.score for h in ranking)
        for hit in ranking:
            share = (hit.score - low) / (high - low) if high > low else 1.0
            fused[hit.chunk.chunk_id] = fused.get(hit.chunk.chunk_id, 0.0) + weight * share
    return fused_hits(fused, dense, lexical, k)


def fused_hits(fused: dict[str, float], dense: list[Hit], lexical: list[Hit], k: int) -> list[Hit]:
    """The k best fused scores as hits, with each ranking's own score where the chunk was in it."""
    chunks = {h.chunk.chunk_id: h.chunk for h in (*dense, *lexical)}
    dense_scores = {h.chunk.chunk_id: h.dense_score for h in dense}
    lexical_scores = {h.chunk.chunk_id: h.lexical_score for h in lexical}
    ranked = sorted(fused.items(), key=lambda item: -item[1])[:k]
    return [
        Hit(chunk=chunks[i], score=score, dense_score=dense_scores.get(i), lexical_score=lexical_scores.get(i, 0.0))
        for i, score in ranked
    ]
