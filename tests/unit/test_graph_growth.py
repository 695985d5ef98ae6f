"""Above the exact-search limit, adding documents grows the live HNSW graph instead of building a new one."""

import faiss

from medrag.corpus import from_text
from medrag.indexing import update
from medrag.stores import FaissStore
from medrag.stores import faiss as store


def document(i: int):
    return from_text(
        f"# 文{i}\n第{i}份文件：蓝鲸{i}号的体长是{i}米。\n\n第二段：北极星医院第{i}次试验。", path=f"{i}.md"
    )


def test_adding_grows_the_graph_and_removing_builds_it_again(tmp_path, fake_embedder, monkeypatch):
    monkeypatch.setattr(store, "EXACT_LIMIT", 2)
    built = []
    original = store.make_faiss
    monkeypatch.setattr(store, "make_faiss", lambda vectors, dim: built.append(len(vectors)) or original(vectors, dim))
    target = FaissStore(tmp_path)
    first = update(target, fake_embedder, add=[document(i) for i in range(4)], size=40, overlap=5)
    assert store.load(tmp_path).manifest.index_type == store.GRAPH and len(built) == 1

    before = store.load(tmp_path)
    added = update(target, fake_embedder, add=[document(9)], size=40, overlap=5)
    assert len(built) == 1  # grown, not built
    after = store.load(tmp_path)
    assert after.version == added.version != first.version
    assert after.manifest.index_type == store.GRAPH and isinstance(after.vectors, faiss.IndexHNSWFlat)
    assert (
        after.vectors.ntotal
        == len(after.chunks)
        == len(before.chunks) + sum(c.doc_id == document(9).doc_id for c in after.chunks)
    )
    # The old rows keep their vectors, the new ones are found by their own vectors.
    assert (after.all_vectors()[: len(before.chunks)] == before.all_vectors()).all()
    new_rows = [row for row, c in enumerate(after.chunks) if c.doc_id == document(9).doc_id]
    for row in new_rows:
        assert after.dense_search(after.vector(row), 1)[0].chunk == after.chunks[row]
    assert after.vectors.hnsw.efSearch == before.vectors.hnsw.efSearch

    update(target, fake_embedder, remove=[document(0).doc_id], size=40, overlap=5)
    assert len(built) == 2  # a node cannot leave a graph: built again
    assert document(0).doc_id not in store.load(tmp_path).documents
