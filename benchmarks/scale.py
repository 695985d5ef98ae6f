"""Retrieval latency, memory and recall against index size: 1k to 1M chunks.

Vectors above the real corpus size are synthetic but shaped like real ones: each is a real
multilingual-e5 passage vector (from the Toyhom index, when built) plus Gaussian noise,
re-normalised, so neighbourhoods are clustered as in real data rather than uniform. Queries come
from the same distribution. BM25 runs over synthetic token lists drawn from the Toyhom vocabulary
with its real term frequencies.

For each size and FAISS index type: build seconds, index bytes, query p50/p99 (k=10, one query at
a time, as the service runs them) and recall@10 against exact search.

    .venv/bin/python benchmarks/scale.py --sizes 1000 10000 100000 1000000
    .venv/bin/python benchmarks/scale.py --growth 250000      # a write adding 7 chunks: grow vs rebuild

`--growth N` measures what the FAISS store does when a write adds one document (7 chunks) to an
N-chunk HNSW version: build the graph over every vector again (as before), or read the base version's
graph and add the new vectors (now); each then written to disk, and searched (p50, recall@10).
"""

import argparse
import json
import time
from pathlib import Path

import faiss
import numpy as np

from medrag.lexical import BM25
from medrag.stores import faiss as store

HERE = Path(__file__).resolve().parent
DIM = 384


def base_vectors(index_dir: Path, rng: np.random.Generator) -> np.ndarray:
    if store.current_path(index_dir) is not None:
        return store.load(index_dir).all_vectors()
    vectors = rng.standard_normal((5000, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def synthetic(bases: np.ndarray, n: int, rng: np.random.Generator, noise: float = 0.03) -> np.ndarray:
    out = np.empty((n, DIM), dtype=np.float32)
    step = 100_000
    for start in range(0, n, step):
        size = min(step, n - start)
        block = bases[rng.integers(0, len(bases), size)] + rng.normal(0, noise, (size, DIM)).astype(np.float32)
        out[start : start + size] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def make(kind: str, vectors: np.ndarray) -> faiss.Index:
    n = len(vectors)
    if kind == "flat-ip":
        index = faiss.IndexFlatIP(DIM)
    elif kind == "hnsw32-ip":
        index = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = 96
    else:
        lists = max(16, min(4096, int(4 * np.sqrt(n))))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(DIM), DIM, lists, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors[: min(n, 50 * lists)])
        index.nprobe = 16
    index.add(vectors)
    return index


def timed_queries(index: faiss.Index, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, list[float]]:
    ids = np.empty((len(queries), k), dtype=np.int64)
    times = []
    for i, query in enumerate(queries):
        started = time.perf_counter()
        _, found = index.search(query.reshape(1, -1), k)
        times.append((time.perf_counter() - started) * 1000)
        ids[i] = found[0]
    return ids, times


def bm25_figures(n: int, vocabulary: list[str], weights: np.ndarray, rng: np.random.Generator, queries: int) -> dict:
    lengths = rng.integers(20, 80, n)
    draws = rng.choice(len(vocabulary), int(lengths.sum()), p=weights)
    token_lists, position = [], 0
    for length in lengths:
        token_lists.append([vocabulary[t] for t in draws[position : position + length]])
        position += length
    started = time.perf_counter()
    bm25 = BM25.build(token_lists)
    build = time.perf_counter() - started
    times = []
    for _ in range(queries):
        query = [vocabulary[t] for t in rng.choice(len(vocabulary), 6, p=weights)]
        started = time.perf_counter()
        scores = bm25.scores(query)
        np.argpartition(-scores, 50)[:50]
        times.append((time.perf_counter() - started) * 1000)
    return {
        "build_seconds": round(build, 2),
        "query_p50_ms": round(float(np.percentile(times, 50)), 3),
        "query_p99_ms": round(float(np.percentile(times, 99)), 3),
        "matrix_mib": round((bm25.weights.data.nbytes + bm25.weights.indices.nbytes) / 2**20, 1),
    }


def growth(n: int, bases: np.ndarray, rng: np.random.Generator, queries: int, folder: Path) -> dict:
    """One write of 7 chunks onto an n-chunk HNSW version: the graph built again, against the graph grown."""
    vectors = synthetic(bases, n, rng)
    added = synthetic(bases, 7, rng)
    probes = synthetic(bases, queries, rng)
    everything = np.vstack([vectors, added])
    exact = faiss.IndexFlatIP(DIM)
    exact.add(everything)
    truth, _ = timed_queries(exact, probes)
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    base, _ = store.make_faiss(vectors, DIM)
    faiss.write_index(base, str(folder / "base.faiss"))
    first_build = time.perf_counter() - started
    del base
    result = {"chunks": n, "added": len(added), "first_build_seconds": round(first_build, 1)}
    for name in ("rebuild", "grow"):
        started = time.perf_counter()
        if name == "rebuild":
            index, _ = store.make_faiss(everything, DIM)
        else:
            index = faiss.read_index(str(folder / "base.faiss"))
            index.add(added)
        faiss.write_index(index, str(folder / f"{name}.faiss"))
        seconds = time.perf_counter() - started
        ids, times = timed_queries(index, probes)
        result[name] = {
            "seconds": round(seconds, 2),
            "query_p50_ms": round(float(np.percentile(times, 50)), 3),
            "query_p99_ms": round(float(np.percentile(times, 99)), 3),
            "recall@10": round(float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, truth, strict=True)])), 4),
        }
        print(json.dumps({name: result[name]}), flush=True)
        del index
    result["grow_over_rebuild_seconds"] = round(result["grow"]["seconds"] / result["rebuild"]["seconds"], 4)
    for file in folder.glob("*.faiss"):
        file.unlink()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--kinds", nargs="+", default=["flat-ip", "hnsw32-ip", "ivf-flat"])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--toyhom-index", type=Path, default=HERE / ".cache" / "toyhom-index")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--growth", type=int, help="only measure a write of 7 chunks onto an HNSW index this large")
    args = parser.parse_args()

    faiss.omp_set_num_threads(2)
    rng = np.random.default_rng(7)
    bases = base_vectors(args.toyhom_index, rng)
    if store.current_path(args.toyhom_index) is not None:
        lexical = store.load(args.toyhom_index).bm25
        terms = sorted(lexical.vocabulary, key=lexical.vocabulary.get)
        frequency = np.asarray((lexical.weights > 0).sum(axis=0)).ravel().astype(np.float64)
    else:
        terms = [f"t{i}" for i in range(20_000)]
        frequency = 1.0 / np.arange(1, len(terms) + 1)
    weights = frequency / frequency.sum()
    if args.growth:
        report = growth(args.growth, bases, rng, args.queries, HERE / ".cache" / "growth")
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "scale_growth.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
        plot_growth(report, args.out / "scale_growth.png")
        return

    rows = []
    for n in args.sizes:
        vectors = synthetic(bases, n, rng)
        queries = synthetic(bases, args.queries, rng)
        exact_ids = None
        for kind in args.kinds:
            started = time.perf_counter()
            index = make(kind, vectors)
            build = time.perf_counter() - started
            # HNSW is measured at several search depths: its recall/latency trade-off is the choice.
            depths = [32, 96, 256] if kind == "hnsw32-ip" else [None]
            for depth in depths:
                if depth is not None:
                    index.hnsw.efSearch = depth
                ids, times = timed_queries(index, queries)
                if kind == "flat-ip":
                    exact_ids = ids
                recall = None
                if exact_ids is not None:
                    recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, exact_ids, strict=False)]))
                name = kind if depth is None else f"{kind} ef={depth}"
                chosen = "flat-ip" if n <= store.EXACT_LIMIT else "hnsw32-ip ef=256"
                row = {
                    "chunks": n,
                    "index": name,
                    "build_seconds": round(build, 2),
                    "index_mib": round(len(faiss.serialize_index(index)) / 2**20, 1),
                    "query_p50_ms": round(float(np.percentile(times, 50)), 3),
                    "query_p99_ms": round(float(np.percentile(times, 99)), 3),
                    "recall@10": None if recall is None else round(recall, 4),
                    "chosen_by_store": name == chosen,
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
            del index
        rows.append({"chunks": n, "index": "bm25", **bm25_figures(n, terms, weights, rng, args.queries)})
        print(json.dumps(rows[-1]), flush=True)
        del vectors

    args.out.mkdir(parents=True, exist_ok=True)
    report = {"dim": DIM, "queries": args.queries, "exact_limit": store.EXACT_LIMIT, "rows": rows}
    (args.out / "scale.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    plot(rows, args.out / "scale.png")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(14, 4))
    for kind in dict.fromkeys(r["index"] for r in rows):
        mine = [r for r in rows if r["index"] == kind]
        sizes = [r["chunks"] for r in mine]
        left.plot(sizes, [r["query_p50_ms"] for r in mine], "-o", label=kind)
        if kind != "bm25":
            middle.plot(sizes, [r["index_mib"] for r in mine], "-o", label=kind)
            if mine[0]["recall@10"] is not None:
                right.plot(sizes, [r["recall@10"] for r in mine], "-o", label=kind)
    left.set(xscale="log", yscale="log", xlabel="chunks", ylabel="p50 ms per query", title="query latency (k=10)")
    middle.set(xscale="log", yscale="log", xlabel="chunks", ylabel="MiB", title="index size")
    right.set(xscale="log", xlabel="chunks", ylabel="recall@10 vs exact", title="recall", ylim=(0, 1.02))
    for axis in (left, middle, right):
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def plot_growth(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    axis.bar(
        ["build again", "grow"], [report["rebuild"]["seconds"], report["grow"]["seconds"]], color=["grey", "tab:blue"]
    )
    axis.set(
        ylabel="seconds", yscale="log", title=f"a write of {report['added']} chunks onto {report['chunks']:,} (HNSW)"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
