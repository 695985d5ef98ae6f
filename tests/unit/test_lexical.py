"""BM25 over jieba tokens and the shared text normalisation."""

import numpy as np

from medrag.lexical import BM25, tokenize
from medrag.textnorm import normalize


def test_traditional_and_full_width_text_normalises_to_simplified_ascii():
    assert normalize("醫院與ＧＰＴ４") == "医院与GPT4"


def test_tokens_drop_punctuation_and_function_words_and_match_across_scripts():
    assert tokenize("MedGPT的參數規模是多少？") == tokenize("MedGPT的参数规模是多少?")
    tokens = tokenize("MedGPT的参数规模是多少？")
    assert "medgpt" in tokens and "参数" in tokens
    assert "的" not in tokens and "？" not in tokens and "多少" not in tokens


def test_bm25_ranks_the_matching_document_first_and_rare_terms_weigh_more():
    documents = [tokenize(t) for t in ["高血压患者可以吃党参", "糖尿病的饮食控制", "高血压的药物治疗和饮食"]]
    bm25 = BM25.build(documents)
    scores = bm25.scores(tokenize("党参 高血压"))
    assert int(np.argmax(scores)) == 0
    assert bm25.idf_of("党参") > bm25.idf_of("高血压")
    assert bm25.idf_of("从未出现") > bm25.idf_of("党参")
    assert not bm25.scores(tokenize("完全无关的词")).any()


def test_bm25_survives_a_save_and_load(tmp_path):
    bm25 = BM25.build([tokenize("医学模型"), tokenize("语言模型")])
    bm25.save(tmp_path)
    loaded = BM25.load(tmp_path)
    query = tokenize("医学")
    assert np.allclose(loaded.scores(query), bm25.scores(query))
    assert loaded.vocabulary == bm25.vocabulary


def test_keeping_and_extending_equals_building_from_scratch():
    texts = ["高血压患者可以吃党参", "糖尿病的饮食控制", "高血压的药物治疗和饮食", "党参补气"]
    tokens = [tokenize(t) for t in texts]
    whole = BM25.build([tokens[0], tokens[2], tokens[3]])
    pieced = BM25.build(tokens[:3]).keep([0, 2]).extend([tokens[3]])
    for query in ("党参", "高血压 饮食", "糖尿病"):
        assert np.allclose(pieced.scores(tokenize(query)), whole.scores(tokenize(query)))
        assert pieced.idf_of(tokenize(query)[0]) == whole.idf_of(tokenize(query)[0])
    assert pieced.document_frequency("糖尿病") == 0  # a dropped document's terms no longer count
