"""The two stores side by side: what one document's write and one query cost as the index grows.

The FAISS store writes a whole new version for every change (its vectors, chunk records and BM25
matrix), so a write costs time in proportion to the index; the Milvus store changes only the
document's rows. Both are timed through the `Store` protocol with the same synthetic chunks:
real report sentences under varied titles, random unit vectors (dim 384; no embedding is timed).
Milvus here is `milvus-lite server` on loopback (pure Python, one process): its absolute figures
say nothing of a Milvus server's speed, only how each cost grows with the index.

    .venv/bin/python benchmarks/stores.py --sizes 1000 5000 20000
"""

import argparse
import json
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from medrag import corpus, fusion, indexing
from medrag.errors import IndexMissingError
from medrag.stores import FaissStore, Manifest
from medrag.stores.milvus import MilvusStore

HERE = Path(__file__).resolve().parent
DIM = 384
DOCUMENT_CHUNKS = 10


def documents(n_chunks: int, rng: np.random.Generator):
    """Documents of about DOCUMENT_CHUNKS chunks each, with their chunks and vectors."""
    report = corpus.load_paths([HERE.parent / "corpus"])[0]
    sentences = [s for s in report.text.replace("\n", "。").split("。") if len(s) > 8]
    made, chunks = [], []
    while len(chunks) < n_chunks:
        picked = rng.choice(len(sentences), 40)
        text = f"# 文档{len(made)}\n" + "\n\n".join(
            "。".join(sentences[i] for i in picked[j : j + 4]) + "。" for j in range(0, 40, 4)
        )
        document = corpus.from_text(text, path=f"synthetic-{len(made)}.md")
        made.append(document)
        chunks += indexing.chunk_document(document, 300, 60)
    vectors = rng.standard_normal((len(chunks), DIM)).astype(np.float32)
    return made, chunks, vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def manifest() -> Manifest:
    return Manifest(model_id="synthetic", dim=DIM, chunker={"size": 300, "overlap": 60})


def timed_write(target, add, chunks, vectors, remove=()) -> float:
    started = time.perf_counter()
    with target.lock():  # as indexing does: the live version is loaded under the lock, then written from
        try:
            base = target.load()
        except IndexMissingError:
            base = None
        target.write(base, add=add, chunks=chunks, vectors=vectors, remove=set(remove), manifest=manifest())
    return time.perf_counter() - started


def measure(target, n_chunks: int, rng: np.random.Generator, queries: int) -> dict:
    made, chunks, vectors = documents(n_chunks, rng)
    load_seconds = timed_write(target, made, chunks, vectors)
    one = corpus.from_text(made[0].text.replace("文档0", "新文档"), path="one-more.md")
    one_chunks = indexing.chunk_document(one, 300, 60)
    add_seconds = timed_write(target, [one], one_chunks, vectors[: len(one_chunks)])
    remove_seconds = timed_write(target, [], [], np.zeros((0, DIM), np.float32), remove=[one.doc_id])
    started = time.perf_counter()
    view = target.load()
    reload_seconds = time.perf_counter() - started
    timings: dict[str, list[float]] = {"dense": [], "lexical": [], "hybrid": [], "term_statistics": []}
    questions = ["MedGPT的参数规模", "华佗GPT由哪个团队发布", "医疗大模型的准确率", "灵医智惠"]
    for i in range(queries):
        question = questions[i % len(questions)]
        vector = vectors[rng.integers(len(vectors))]
        for name, call in (
            ("dense", lambda vector=vector: view.dense_search(vector, 50)),
            ("lexical", lambda question=question: view.lexical_search(question, 50)),
            (
                "hybrid",
                lambda question=question, vector=vector: fusion.rrf(
                    view.dense_search(vector, 50), view.lexical_search(question, 50), 5, 10
                ),
            ),
            ("term_statistics", lambda question=question, i=i: view.term_statistics([f"{question}{i}", "医疗"])),
        ):
            started = time.perf_counter()
            call()
            timings[name].append((time.perf_counter() - started) * 1000)
    return {
        "chunks": len(chunks),
        "documents": len(made),
        "first_write_s": round(load_seconds, 3),
        "add_one_document_s": round(add_seconds, 3),
        "remove_one_document_s": round(remove_seconds, 3),
        "reload_s": round(reload_seconds, 3),
        **{f"{name}_p50_ms": round(statistics.median(values), 2) for name, values in timings.items()},
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "stores.json")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="medrag-stores-"))
    port = free_port()
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "milvus-lite"),
            "server",
            "--data-dir",
            str(scratch / "milvus"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rows = []
    try:
        time.sleep(3)
        for n in args.sizes:
            for kind in ("faiss", "milvus-lite-server"):
                if kind == "faiss":
                    target = FaissStore(scratch / f"faiss-{n}")
                else:
                    target = MilvusStore(
                        f"http://127.0.0.1:{port}", f"bench_{secrets.token_hex(3)}", lock_dir=scratch / f"lock-{n}"
                    )
                row = {"store": kind, **measure(target, n, np.random.default_rng(n), args.queries)}
                print(json.dumps(row), flush=True)
                rows.append(row)
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(scratch, ignore_errors=True)
    args.out.write_text(json.dumps({"dim": DIM, "queries": args.queries, "rows": rows}, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
