"""Index updates: dedup, replacement by URL, removal that sticks, all-or-nothing writes, one writer at a time."""

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from medrag import corpus, indexing
from medrag.embedding import FakeEmbedder
from medrag.errors import BadInputError
from medrag.lexical import BM25
from medrag.query import analyse
from medrag.retrieval import Retriever
from medrag.settings import Settings
from medrag.stores import Manifest
from medrag.stores import faiss as store

SIZE, OVERLAP = 120, 20
WHALE = "# 蓝鲸模型\n\n蓝鲸医疗模型由北极星医院发布，参数规模为42亿。它覆盖内科常见疾病。"
FALCON = "# 猎鹰模型\n\n猎鹰诊断助手由南湖大学研发，主要用于影像报告的自动生成。"
HERON = "# 苍鹭模型\n\n苍鹭问诊系统由东山医院上线，每天服务三千名门诊患者。"


def retriever_for(index, embedder) -> Retriever:
    settings = Settings()
    return Retriever(
        index,
        embedder,
        fusion=settings.fusion,
        rrf_k=settings.rrf_k,
        candidates=settings.candidates,
        dense_weight=settings.dense_weight,
    )


def update(root, embedder=None, **change):
    return indexing.update(root, embedder or FakeEmbedder(), size=SIZE, overlap=OVERLAP, **change)


def texts_of(root) -> str:
    return "\n".join(c.text for c in store.load(root).chunks)


def test_same_content_is_indexed_once(tmp_path):
    first = corpus.from_text(WHALE, path="whale.md")
    copy = corpus.from_text(WHALE, path="copy-of-whale.md")
    change = update(tmp_path, add=[first, copy])
    assert change.outcomes == {first.doc_id: "added", copy.doc_id: f"duplicate of {first.doc_id}"}
    again = update(tmp_path, add=[corpus.from_text(WHALE, url="https://elsewhere.example/whale")])
    assert list(again.outcomes.values()) == [f"duplicate of {first.doc_id}"]
    index = store.load(tmp_path)
    assert list(index.documents) == [first.doc_id]
    assert texts_of(tmp_path).count("北极星医院") == 1


def test_unchanged_document_makes_no_new_version(tmp_path):
    document = corpus.from_text(WHALE, path="whale.md")
    live = update(tmp_path, add=[document]).version
    change = update(tmp_path, add=[corpus.from_text(WHALE, path="whale.md")])
    assert change.outcomes == {document.doc_id: "unchanged"}
    assert change.version == live == store.current_path(tmp_path).name


def test_new_content_at_the_same_url_replaces_the_old_chunks(tmp_path):
    url = "https://news.example/whale"
    old = corpus.from_text(WHALE, url=url)
    update(tmp_path, add=[old, corpus.from_text(FALCON, path="falcon.md")])
    new = corpus.from_text(WHALE.replace("42亿", "70亿").replace("北极星医院", "南极星医院"), url=url)
    assert new.doc_id == old.doc_id
    assert update(tmp_path, add=[new]).outcomes == {old.doc_id: "replaced"}
    index = store.load(tmp_path)
    assert index.documents[old.doc_id].content_hash == new.content_hash
    assert "北极星医院" not in texts_of(tmp_path) and "南极星医院" in texts_of(tmp_path)
    assert index.bm25.scores(["北极星"]).max(initial=0) == 0
    assert len(index.documents) == 2 and index.vectors.ntotal == len(index.chunks)


def test_a_removed_document_is_never_retrieved_again(tmp_path):
    embedder = FakeEmbedder()
    whale, falcon = corpus.from_text(WHALE, path="whale.md"), corpus.from_text(FALCON, path="falcon.md")
    update(tmp_path, embedder, add=[whale, falcon])
    retriever = retriever_for(store.load(tmp_path), embedder)
    assert any(h.chunk.doc_id == whale.doc_id for h in retriever.search(analyse("蓝鲸医疗模型 北极星医院"), 5))

    assert update(tmp_path, embedder, remove=[whale.doc_id]).outcomes == {whale.doc_id: "removed"}
    index = store.load(tmp_path)
    assert whale.doc_id not in index.documents
    assert all(c.doc_id == falcon.doc_id for c in index.chunks)
    retriever = retriever_for(index, embedder)
    for mode in ("hybrid", "dense", "bm25"):
        # Its own text as the query: the strongest possible match, if anything of it were left.
        hits = retriever.search(analyse(WHALE), 10, mode)
        assert all(h.chunk.doc_id != whale.doc_id for h in hits)


def test_removing_the_last_document_leaves_an_empty_loadable_index(tmp_path):
    whale = corpus.from_text(WHALE, path="whale.md")
    update(tmp_path, add=[whale])
    update(tmp_path, remove=[whale.doc_id])
    index = store.load(tmp_path)
    assert index.documents == {} and index.chunks == [] and index.vectors.ntotal == 0
    assert retriever_for(index, FakeEmbedder()).search(analyse("蓝鲸"), 5) == []


def test_removing_an_unknown_document_changes_nothing(tmp_path):
    live = update(tmp_path, add=[corpus.from_text(WHALE, path="whale.md")]).version
    with pytest.raises(BadInputError, match="no such document: nope"):
        update(tmp_path, remove=["nope"])
    assert store.current_path(tmp_path).name == live


class BrokenEmbedder(FakeEmbedder):
    """Fails on its second batch, as a crash half-way through embedding would."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def embed(self, texts, *, query=False):
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("embedder died")
        return super().embed(texts, query=query)


def test_a_failure_half_way_indexes_nothing(tmp_path):
    live = update(tmp_path, add=[corpus.from_text(WHALE, path="whale.md")]).version
    long = corpus.from_text(
        "\n\n".join(f"第{i}段：猎鹰诊断助手的第{i}项功能用于影像报告。" * 3 for i in range(40)), path="long.md"
    )
    with pytest.raises(RuntimeError, match="embedder died"):
        update(tmp_path, BrokenEmbedder(), add=[long])
    assert store.current_path(tmp_path).name == live
    assert list(store.load(tmp_path).documents) == [corpus.from_text(WHALE, path="whale.md").doc_id]


class OtherModel(FakeEmbedder):
    model_id = "fake/other-model"


def test_rebuild_embeds_everything_again_with_the_new_model(tmp_path):
    update(tmp_path, add=[corpus.from_text(WHALE, path="whale.md"), corpus.from_text(FALCON, path="falcon.md")])
    before = store.load(tmp_path)
    seen = []
    change = update(tmp_path, OtherModel(dim=32), rebuild=True, progress=lambda done, total: seen.append((done, total)))
    after = store.load(tmp_path, "fake/other-model")
    assert after.manifest.dim == 32 and after.vectors.ntotal == len(before.chunks)
    assert (
        change.outcomes
        == {doc_id: "reindexed" for doc_id in before.documents}
        == {d: "reindexed" for d in after.documents}
    )
    assert seen[-1] == (len(before.chunks), len(before.chunks))


def test_a_second_writer_waits_for_the_lock(tmp_path):
    waited = []
    holding = threading.Event()
    release = threading.Event()

    def hold():
        with store.write_lock(tmp_path):
            holding.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(5)
    writer = threading.Thread(
        target=lambda: update(
            tmp_path, add=[corpus.from_text(WHALE, path="whale.md")], waiting=lambda: waited.append(time.monotonic())
        )
    )
    writer.start()
    time.sleep(0.3)
    assert waited and store.current_path(tmp_path) is None  # blocked, nothing written
    release.set()
    writer.join(10)
    holder.join(5)
    assert store.current_path(tmp_path) is not None


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from medrag import corpus, indexing
    from medrag.embedding import FakeEmbedder

    class Slow(FakeEmbedder):
        def embed(self, texts, *, query=False):
            time.sleep(0.4)  # long enough that two unlocked writers would both read the same live version
            return super().embed(texts, query=query)

    root, name, text = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    indexing.update(root, Slow(), add=[corpus.from_text(text, path=name)], size=120, overlap=20)
""")


def test_concurrent_writer_processes_take_turns_and_lose_nothing(tmp_path):
    update(tmp_path, add=[corpus.from_text(WHALE, path="whale.md")])
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), name, text])
        for name, text in (("falcon.md", FALCON), ("heron.md", HERON))
    ]
    assert [w.wait(60) for w in writers] == [0, 0]
    index = store.load(tmp_path)
    assert {d.path for d in index.documents.values()} == {"whale.md", "falcon.md", "heron.md"}
    assert index.vectors.ntotal == len(index.chunks) == index.manifest.chunks


LOOP_WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    import numpy as np
    from medrag.stores import faiss as store
    from medrag.lexical import BM25
    from medrag.stores import Manifest
    from medrag.types import Chunk

    root = Path(sys.argv[1])
    rng = np.random.default_rng(0)
    n = 0
    while True:  # write version after version until killed
        n += 1
        rows = 10_000 + n
        chunks = [Chunk(chunk_id=f"d:{i:06d}", doc_id="d", text=f"t{i}", start=0, end=1) for i in range(rows)]
        vectors = rng.standard_normal((rows, 64)).astype(np.float32)
        bm25 = BM25.build([["t"]] * rows)
        with store.write_lock(root):
            print("writing", flush=True)
            sentences = [vectors[i : i + 1] for i in range(rows)]
            manifest = Manifest(model_id="m", dim=64, chunker={})
            store.write(root, [], chunks, vectors, sentences, bm25, manifest, keep_versions=3)
""")


def test_sigkill_at_any_point_of_a_write_leaves_a_whole_version(tmp_path):
    """Kill a process that writes versions back to back at random moments; each time one whole version is live."""
    rng = random.Random(4)
    half_written = switched = 0
    for attempt in range(6):
        before = (set(tmp_path.glob(".tmp-*")), store.current_path(tmp_path))
        writer = subprocess.Popen([sys.executable, "-c", LOOP_WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        for _ in range(2 if attempt == 0 else 1):  # the first time, let one version land before killing
            assert writer.stdout.readline() == "writing\n"
        time.sleep(rng.uniform(0, 0.45))  # a write takes about a third of a second: some kills land after it
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        half_written += bool(set(tmp_path.glob(".tmp-*")) - before[0])
        switched += store.current_path(tmp_path) != before[1]
        index = store.load(tmp_path)
        # Every version has its own row count, so a mix of two versions would show here.
        assert index.vectors.ntotal == len(index.chunks) == index.manifest.chunks
        assert np.isfinite(index.all_vectors()).all()
    print(f"of 6 kills, {half_written} left a half-written version, {switched} came after a switch")
    assert half_written > 0  # some kills did land in the middle of writing a version
    with store.write_lock(tmp_path):  # the next write clears whatever a kill left half-written
        store.write(
            tmp_path,
            [],
            [],
            np.zeros((0, 64), np.float32),
            [],
            BM25.build([]),
            Manifest(model_id="m", dim=64, chunker={}),
            keep_versions=3,
        )
    assert not list(tmp_path.glob(".tmp-*")) and len(list(tmp_path.glob("v-*"))) <= 3
