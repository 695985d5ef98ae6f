"""Filtered dense search on FAISS: an id selector (what the store does) against over-fetching and filtering.

Synthetic normalised vectors in documents of 10 chunks; a filter keeps a share of the documents.
Both ways are exact for a flat index: over-fetching searches k * 4 first and doubles until k allowed
hits are found (or everything was searched). Per share: median and p95 milliseconds of one query,
and recall@10 of each against brute force over the allowed rows. The unfiltered search is the
baseline of each run.

    .venv/bin/python benchmarks/filters.py --chunks 50000 --queries 100
"""

import argparse
import json
import time
from pathlib import Path

import faiss
import numpy as np

HERE = Path(__file__).resolve().parent
DIM = 384
K = 10
PER_DOCUMENT = 10


def selector_search(index: faiss.Index, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
    params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(rows))
    return index.search(query, K, params=params)[1][0]


def overfetch_search(index: faiss.Index, query: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    depth = K * 4
    while True:
        ids = index.search(query, min(depth, index.ntotal))[1][0]
        kept = ids[allowed[ids]][:K]
        if len(kept) == K or depth >= index.ntotal:
            return kept
        depth *= 2


def timed(function, queries) -> tuple[list[float], list[np.ndarray]]:
    times, results = [], []
    for query in queries:
        started = time.perf_counter()
        results.append(function(query))
        times.append((time.perf_counter() - started) * 1000)
    return times, results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--shares", type=float, nargs="+", default=[0.001, 0.01, 0.1, 0.5])
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((args.chunks, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = faiss.IndexFlatIP(DIM)
    index.add(vectors)
    queries = [v.reshape(1, -1) for v in rng.standard_normal((args.queries, DIM)).astype(np.float32)]
    documents = args.chunks // PER_DOCUMENT
    baseline, _ = timed(lambda q: index.search(q, K)[1][0], queries)
    results = {"chunks": args.chunks, "queries": args.queries, "unfiltered_p50_ms": float(np.median(baseline))}
    rows_out = []
    for share in args.shares:
        kept_documents = rng.choice(documents, max(1, int(documents * share)), replace=False)
        rows = np.sort((kept_documents[:, None] * PER_DOCUMENT + np.arange(PER_DOCUMENT)).ravel()).astype(np.int64)
        allowed = np.zeros(args.chunks, dtype=bool)
        allowed[rows] = True
        truth = [set(rows[np.argsort(-(vectors[rows] @ q[0]))[:K]].tolist()) for q in queries]
        row = {"share": share}
        for name, function in (
            ("selector", lambda q, rows=rows: selector_search(index, q, rows)),
            ("overfetch", lambda q, allowed=allowed: overfetch_search(index, q, allowed)),
        ):
            times, found = timed(function, queries)
            recall = np.mean([len(truth[i] & set(found[i].tolist())) / K for i in range(len(queries))])
            row[name] = {
                "p50_ms": round(float(np.median(times)), 3),
                "p95_ms": round(float(np.percentile(times, 95)), 3),
                "recall@10": round(float(recall), 4),
                "vs_unfiltered": round(float(np.median(times) / np.median(baseline)), 2),
            }
        rows_out.append(row)
        print(json.dumps(row))
    results["shares"] = rows_out
    out = HERE / "results" / "filters.json"
    out.write_text(json.dumps(results, indent=2), encoding="utf-8")
    plot(results, HERE / "results" / "filters.png")


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shares = [row["share"] for row in results["shares"]]
    figure, axis = plt.subplots(figsize=(6, 4))
    for name in ("selector", "overfetch"):
        axis.plot(shares, [row[name]["p50_ms"] for row in results["shares"]], marker="o", label=name)
    axis.axhline(results["unfiltered_p50_ms"], color="grey", linestyle="--", label="unfiltered")
    axis.set_xscale("log")
    axis.set_xlabel("share of documents the filter keeps")
    axis.set_ylabel("p50 ms per query (k=10)")
    axis.set_title(f"Filtered dense search, {results['chunks']} chunks, flat IP")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
