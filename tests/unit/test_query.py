"""Question analysis over the shipped report's entity list: the entities named and the answer type asked for.

The questions are written for this table (简体, 繁體, English), none taken from an evaluation file.
"""

from pathlib import Path

import pytest

from medrag import corpus
from medrag.entities import Lexicon, extract
from medrag.query import analyse, holds, holds_count

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lexicon() -> Lexicon:
    return Lexicon(list(extract(corpus.load_paths([ROOT / "corpus"])[0])))


CASES = [
    # (question, entities named, answer type)
    ("MedGPT是哪一年推出的？", {"MedGPT"}, "date"),
    ("MedGPT什么时候上线的", {"MedGPT"}, "date"),
    ("MedGPT何時發布？", {"MedGPT"}, "date"),
    ("When did MedGPT come out?", {"MedGPT"}, "date"),
    ("What year was MedLM introduced?", {"MedLM"}, "date"),
    ("中醫大附醫哪個月引入MedLM？", {"中国医药大学附设医院", "MedLM"}, "date"),
    ("MMed-Llama 3哪天开源的", {"MMed-Llama 3"}, "date"),
    ("介绍MedGPT的那篇报道，标题叫什么？", {"MedGPT"}, "title"),
    ("What was the headline about MedLM?", {"MedLM"}, "title"),
    ("On what day did MedLM reach the hospital?", {"MedLM"}, "date"),
    ("MedGPT的参数有多少？", {"MedGPT"}, "quantity"),
    ("MedGPT有幾個參數？", {"MedGPT"}, "quantity"),
    ("How many parameters does MedGPT have?", {"MedGPT"}, "quantity"),
    ("How much medical text went into MedGPT's pretraining?", {"MedGPT"}, "quantity"),
    ("MMed-Llama 3支持几种语言？", {"MMed-Llama 3"}, "quantity"),
    ("MMed-Llama 3支援幾種語言？", {"MMed-Llama 3"}, "quantity"),
    ("What accuracy did MMed-Llama 3 reach on MMedBench?", {"MMed-Llama 3", "MMedBench"}, "quantity"),
    ("Llama 3在MMedBench上的得分是多少", {"Llama 3", "MMedBench"}, "quantity"),
    ("GPT-4在MMedBench上的准确率？", {"GPT-4", "MMedBench"}, "quantity"),
    ("Med-PaLM 2的通过率是多少？", {"Med-PaLM 2"}, "quantity"),
    ("Med-PaLM 2的通過率為多少？", {"Med-PaLM 2"}, "quantity"),
    ("What percentage of the US licensing exam did Med-PaLM 2 pass?", {"Med-PaLM 2"}, "quantity"),
    ("MedGPT覆盖百分之多少的ICD-10病种？", {"MedGPT", "国际疾病分类"}, "quantity"),
    ("MedGPT和医生的诊断一致性多高？", {"MedGPT"}, "quantity"),
    ("MMedC包含多少对问答？", {"MMedC"}, "quantity"),
    ("MedGPT的临床试验有多少个学科参与", {"MedGPT"}, "quantity"),
    ("MedGPT的数据包括哪些类型？", {"MedGPT"}, "list"),
    ("MedGPT的數據包括哪些類型？", {"MedGPT"}, "list"),
    ("MMed-Llama 3有哪几个应用场景？", {"MMed-Llama 3"}, "list"),
    ("MedLM有哪些应用方向", {"MedLM"}, "list"),
    ("列举MedLM的应用方向", {"MedLM"}, "list"),
    ("Which languages does MMed-Llama 3 cover?", {"MMed-Llama 3"}, "list"),
    ("What are the application areas of MedLM?", {"MedLM"}, "list"),
    ("List the challenges Chinese medical models face", set(), "list"),
    ("哪些医院参加了MedGPT的临床试验？", {"MedGPT"}, "list"),
    ("MedGPT是哪家公司开发的？", {"MedGPT"}, "organisation"),
    ("MedGPT是哪家公司開發的？", {"MedGPT"}, "organisation"),
    ("MMed-Llama 3由谁研发", {"MMed-Llama 3"}, "organisation"),
    ("Who developed MMed-Llama 3?", {"MMed-Llama 3"}, "organisation"),
    ("Which company released MedGPT?", {"MedGPT"}, "organisation"),
    ("Which hospital partnered with Google Cloud?", {"Google Cloud"}, "organisation"),
    ("MedLM是与哪个医院合作的", {"MedLM"}, "organisation"),
    ("中医大附医与哪家企业合作？", {"中国医药大学附设医院"}, "organisation"),
    ("MedLM的数据存在哪里？", {"MedLM"}, "place"),
    ("Where is MedLM's medical data kept?", {"MedLM"}, "place"),
    ("MedLM的資料存放在哪裡？", {"MedLM"}, "place"),
    ("为什么要缩短医疗人员查找资料的时间？", set(), "reason"),
    ("Why did the hospital adopt MedLM?", {"MedLM"}, "reason"),
    ("為什麼MedLM要整合多模態數據？", {"MedLM"}, "reason"),
    ("MedLM是否通过了HIPAA认证？", {"MedLM", "HIPAA"}, "yesno"),
    ("MedLM有沒有通過HIPAA認證？", {"MedLM", "HIPAA"}, "yesno"),
    ("Does MedLM keep data inside the country?", {"MedLM"}, "yesno"),
    ("Is MedGPT based on GPT-4?", {"MedGPT", "GPT-4"}, "yesno"),
    ("MedGPT能看病吗", {"MedGPT"}, "yesno"),
    ("MedGPT是什么？", {"MedGPT"}, "definition"),
    ("什么是MMedBench", {"MMedBench"}, "definition"),
    ("What is MMedC?", {"MMedC"}, "definition"),
    ("介绍一下MedLM", {"MedLM"}, "definition"),
    ("MedLM是什麼？", {"MedLM"}, "definition"),
    ("MedLM基于哪个模型构建？", {"MedLM"}, "other"),
    ("MedLM以哪个模型为底座", {"MedLM"}, "other"),
    ("中国医学语言模型面临的挑战", set(), "other"),
    ("大语言模型在医疗中的应用", {"大语言模型"}, "other"),
    ("LLM在医疗领域的热点", {"大语言模型"}, "other"),
    ("medgpt的参数规模", {"MedGPT"}, "other"),
    ("Tell me about Google Cloud and MedLM", {"Google Cloud", "MedLM"}, "other"),
]


@pytest.mark.parametrize("question, names, kind", CASES)
def test_entities_and_answer_type(lexicon, question, names, kind):
    query = analyse(question, lexicon)
    assert set(query.entities) == names
    assert query.answer_type == kind


def test_there_are_enough_cases_in_each_script():
    scripts = {"zh-Hant": 0, "en": 0, "zh-Hans": 0}
    for question, _, _ in CASES:
        if question.isascii():
            scripts["en"] += 1
        elif any(c in question for c in "麼幾個為發開參數類應與裡沒過認證資國據種醫哪個通"):
            scripts["zh-Hant"] += 1
        else:
            scripts["zh-Hans"] += 1
    assert len(CASES) >= 60 and min(scripts.values()) >= 10, scripts


def test_names_the_corpus_lacks_are_kept_apart(lexicon):
    query = analyse("华为的Med-PaLM 3在清华大学团队中用了多少GPU？", lexicon)
    assert "Med-PaLM 3" in query.unknown_names and "清华大学团队" in query.unknown_names
    assert query.entities == ()  # Med-PaLM 2 is a different model


def test_names_match_with_or_without_their_separators(lexicon):
    assert analyse("gpt4和medpalm2谁更强", lexicon).entities == ("GPT-4", "Med-PaLM 2")
    assert analyse("MMed Llama3的准确率", lexicon).entities == ("MMed-Llama 3",)
    query = analyse("GPT-4o的准确率", lexicon)
    assert "GPT-4" not in query.entities  # a longer name is another model


def test_colloquial_question_words_are_written_out(lexicon):
    assert analyse("MedGPT啥时候发布的", lexicon).answer_type == "date"
    assert analyse("MedLM咋用", lexicon).normalized == "MedLM怎么用"


def test_what_a_question_sets_aside_is_not_what_it_asks(lexicon):
    query = analyse("除了癌症治疗之外，MedLM还用在哪些方面？", lexicon)
    assert set(query.excluded) == {"癌症", "治疗"}
    assert not {term for term, _ in query.attributes} & {"癌症", "治疗"}
    assert analyse("MedLM用在哪些方面？", lexicon).excluded == ()


def test_attributes_leave_out_the_names(lexicon):
    query = analyse("MMed-Llama 3在MMedBench上的准确率是多少？", lexicon)
    attributes = {term for term, _ in query.attributes}
    assert "准确率" in attributes and not attributes & {"MMed", "Llama", "MMedBench"}


def test_a_question_asking_for_a_source(lexicon):
    assert analyse("这个数据出自哪家媒体的报道？", lexicon).answer_type == "source"
    assert analyse("Which publication reported MedGPT's trial?", lexicon).answer_type == "source"
    assert analyse("哪家公司开发了MedGPT？", lexicon).answer_type == "organisation"


def test_the_language_is_the_one_most_of_the_question_is_in():
    from medrag.query import language

    assert language("What does Medlinker (医联) make?") == "en"
    assert language("MMed-Llama 3在MMedBench上的准确率") == "zh"
    assert language("MedGPT") == "en"


def test_a_citation_year_is_no_figure_or_date():
    from medrag.query import holds

    assert not holds("quantity", "为医生提供临床决策支持 (数位时代, 2023)。")
    assert not holds("date", "为医生提供临床决策支持 (数位时代, 2023)。")
    assert holds("source", "为医生提供临床决策支持 (数位时代, 2023)。")
    assert holds("quantity", "覆盖6种语言 (智源社区, 2024)。")


def test_the_vector_and_the_analysis_read_the_same_text(lexicon):
    from medrag.query import standard

    question = " MedGPT啥时候發布的？"
    assert analyse(question, lexicon).normalized == standard(question) == "MedGPT什么时候发布的?"


def test_courtesies_are_neither_names_nor_terms(lexicon):
    polite = analyse("麻烦问一下，MedGPT有多少参数？谢谢", lexicon)
    plain = analyse("MedGPT有多少参数？", lexicon)
    assert polite.unknown_names == () and polite.entities == plain.entities
    assert polite.attributes == plain.attributes


def test_a_phrase_asking_for_an_organisation_names_none(lexicon):
    assert analyse("MMed-Llama 3是哪个学校的团队做的？", lexicon).unknown_names == ()
    assert "清华大学团队" in analyse("清华大学团队发布了什么？", lexicon).unknown_names


def test_a_count_asked_with_a_classifier_needs_one_in_the_answer():
    assert analyse("MMed-Llama 3支持几种语言").counted == "种"
    assert analyse("MedGPT有多少个参数").counted == ""  # 个: 1000亿参数 drops it
    assert holds_count("覆盖英语、中文、西班牙语等6种语言") and holds_count("全亚洲第一家")
    assert not holds_count("准确率达到67.75，超越Llama 3（62.79）")


def test_numbers_written_in_chinese_numerals_are_figures():
    for sentence in ("研发团队共有二十八人。", "平均每人节省二十分钟", "为一万二千名居民做了检查"):
        assert holds("quantity", sentence), sentence
    assert not holds("quantity", "诊断一致性高，统一了标准")


def test_a_question_in_taiwan_wording_is_read_in_mainland_words(lexicon):
    # Characters alone would give 资料 and 软体; the corpus writes 数据 and 软件.
    assert "医疗数据" in analyse("醫療資料怎麼保護？", lexicon).normalized
    assert "软件" in analyse("這個軟體是誰開發的？", lexicon).normalized
    assert analyse("医疗资料怎么保护？", lexicon).normalized == "医疗资料怎么保护?"  # Simplified stays as written


@pytest.fixture(scope="module")
def corpus_lexicon() -> Lexicon:
    """The shipped corpus's entities with its text, which says who made which model."""
    return Lexicon.of(corpus.load_paths([ROOT / "corpus"]))


DESCRIBED = [
    # (question, entities asked): a model described by its maker, in 简体, 繁體 and English.
    ("交大团队做的那个多语种模型支持几种语言？", {"MMed-Llama 3"}),
    ("上海交大的多語言模型有多少參數？", {"MMed-Llama 3"}),
    ("Which model did Google build for the hospital?", {"MedLM"}),
    # No word for a model: the organisation itself is asked about.
    ("上海交通大学团队有多少人？", {"上海交通大学团队"}),
    # A model named: the maker stays what it is.
    ("交大的模型和GPT-4比怎么样", {"GPT-4", "上海交通大学团队"}),
]


@pytest.mark.parametrize("question, entities", DESCRIBED)
def test_a_model_described_by_its_maker_is_the_model_asked(corpus_lexicon, question, entities):
    query = analyse(question, corpus_lexicon)
    assert set(query.entities) == entities
    assert not query.unknown_names  # 交大 is the corpus's 上海交通大学团队, not a name it lacks


def test_abbreviations_stand_for_the_one_name_they_shorten(corpus_lexicon):
    assert corpus_lexicon.abbreviated("交大") == "上海交通大学团队"  # nested forms: the longest
    assert corpus_lexicon.abbreviated("华西") == "四川大学华西医院"
    assert corpus_lexicon.abbreviated("医院") is None  # in several unrelated names


def test_a_maker_of_several_models_makes_none():
    texts = (
        "甲乙公司开发了AlphaNet1。甲乙公司还发布了BetaNet2。",
        "丙丁大学研发的GammaNet3很快。丙丁大学与甲乙公司合作。",
    )
    groups = [("甲乙公司",), ("丙丁大学",), ("AlphaNet1",), ("BetaNet2",), ("GammaNet3",)]
    assert Lexicon(groups, texts).makers == {"丙丁大学": "GammaNet3"}
