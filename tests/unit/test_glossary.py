"""The reader's English–Chinese word bridge over the real CC-CEDICT data file."""

from medrag import glossary


def test_english_words_translate_to_chinese_words():
    assert "化疗" in glossary.translations("chemotherapy")
    assert "指引" in glossary.translations("guidelines")  # a plural finds its singular
    assert "训练" in glossary.translations("trained")  # so does a past tense
    assert "公司" in glossary.translations("Company")  # a gloss listed with others ("company; firm")
    assert glossary.translations("qwertyuiop") == ()


def test_chinese_words_translate_to_english_words():
    assert "chemotherapy" in glossary.translations("化疗")


def test_translations_are_words_not_explanations_or_idioms():
    for word in ("cancer", "hospital", "data", "privacy"):
        forms = glossary.translations(word)
        assert forms and all(2 <= len(form) <= glossary.MAX_CHINESE for form in forms), word


def test_synonyms_pair_words_that_share_a_specific_translation():
    assert "患者" in glossary.synonyms("病人")
    assert "试验" in glossary.synonyms("实验")
    assert "病人" not in glossary.synonyms("病人")
    assert glossary.synonyms("patient") == ()  # only Chinese words have synonyms here


def test_a_word_of_many_senses_translates_to_nothing():
    assert len(glossary.dictionary().english["first"]) > glossary.MAX_TRANSLATIONS
    assert glossary.translations("first") == ()  # 第一, 首次, 初次 … would match nearly any sentence


def test_a_word_of_many_senses_bridges_nothing():
    # "first" has more than MAX_SENSES translations: 初次 is not made a synonym of 第一 through it.
    assert len(glossary.dictionary().english["first"]) > glossary.MAX_SENSES
    assert "第一" not in glossary.synonyms("初次")


def test_organisations_are_known_by_their_names_in_both_languages():
    assert glossary.organisation("微软") == ("microsoft",)
    assert "谷歌" in glossary.organisation("Google")
    assert glossary.organisation("医院") == ()  # a common noun
    assert glossary.organisation("美国") == ()  # a place, not an organisation


def test_ordinary_words_are_told_from_names():
    # jieba tags 谢谢 as a person's name; the dictionary knows it only as "thanks".
    assert glossary.ordinary("谢谢") and glossary.ordinary("团队")
    assert not glossary.ordinary("华为") and not glossary.ordinary("中央社") and not glossary.ordinary("医联")


def test_english_inflections_are_taken_off():
    assert "certify" in glossary.stems("certified") and "study" in glossary.stems("studies")
    assert "base" in glossary.stems("based") and "train" in glossary.stems("training")
