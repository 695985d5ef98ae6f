"""The question's vector: encoded while the question is analysed, and repeated questions served from the LRU."""

from dataclasses import fields

import numpy as np

from medrag.corpus import from_text
from medrag.embedding import FakeEmbedder
from medrag.indexing import update
from medrag.pipeline import Options, Pipeline
from medrag.settings import Settings
from medrag.stores import FaissStore


class Counting(FakeEmbedder):
    """The fake embedder, noting each question it encodes."""

    def __init__(self):
        super().__init__()
        self.questions: list[str] = []

    def embed(self, texts, *, query=False):
        if query:
            self.questions += texts
        return super().embed(texts, query=query)


def answers(tmp_path, cache: int):
    embedder = Counting()
    update(tmp_path, embedder, add=[from_text("# 蓝鲸\n蓝鲸体长可达三十三米。", path="whale.md")], size=120, overlap=20)
    settings = Settings(index_dir=tmp_path, query_cache_size=cache)
    pipeline = Pipeline(
        FaissStore(tmp_path), embedder, Options(**{f.name: getattr(settings, f.name) for f in fields(Options)})
    )

    def ask(question: str):
        *_, answer = pipeline.stream(pipeline.snapshot(), question, None, "hybrid", (), incremental=False)
        return answer

    return ask, embedder, pipeline


def test_a_repeated_question_is_encoded_once_and_its_vector_is_the_encoders(tmp_path):
    ask, embedder, pipeline = answers(tmp_path, cache=8)
    first = ask("藍鯨體長可達多少米？")  # Traditional, full-width: normalised (NFKC, Simplified) before it is encoded
    again = ask(" 蓝鲸体长可达多少米？ ")
    assert embedder.questions == ["蓝鲸体长可达多少米?"]
    assert [c.hit.chunk.chunk_id for c in first.citations] == [c.hit.chunk.chunk_id for c in again.citations]
    assert np.array_equal(
        pipeline.query_vector("蓝鲸体长可达多少米?"), FakeEmbedder().embed(["蓝鲸体长可达多少米?"])[0]
    )
    pipeline.close()


def test_without_the_cache_every_question_is_encoded(tmp_path):
    ask, embedder, pipeline = answers(tmp_path, cache=0)
    ask("蓝鲸体长可达多少米？")
    ask("蓝鲸体长可达多少米？")
    assert embedder.questions == ["蓝鲸体长可达多少米?"] * 2
    pipeline.close()
