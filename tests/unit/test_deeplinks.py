"""Deep links: a document's URL with a text fragment for the quoted sentence, encoded as the spec says."""

from urllib.parse import unquote

import pytest

from medrag.deeplinks import EDGE, LONGEST_EDGE, WHOLE, deep_link, edges

URL = "https://example.org/news/1"


def test_a_chinese_sentence_is_percent_encoded_as_utf8():
    assert deep_link(URL, "参数规模：1000亿参数，行业领先。") == (
        "https://example.org/news/1#:~:text="
        "%E5%8F%82%E6%95%B0%E8%A7%84%E6%A8%A1%EF%BC%9A1000%E4%BA%BF%E5%8F%82%E6%95%B0%EF%BC%8C"
        "%E8%A1%8C%E4%B8%9A%E9%A2%86%E5%85%88%E3%80%82"
    )


def test_dash_comma_and_ampersand_are_encoded_and_spaces_are_percent_20():
    assert deep_link(URL, "HIV-1, HBV & HCV tests.") == (
        "https://example.org/news/1#:~:text=HIV%2D1%2C%20HBV%20%26%20HCV%20tests."
    )


def test_only_unreserved_characters_stay_as_they_are():
    link = deep_link(URL, "a~b_c.d (e) #f? 'g' \"h\" /i/ +j= k%")
    assert link == (
        "https://example.org/news/1#:~:text=a~b_c.d%20%28e%29%20%23f%3F%20%27g%27%20%22h%22%20%2Fi%2F%20%2Bj%3D%20k%25"
    )


def test_a_long_chinese_sentence_becomes_its_first_and_last_words():
    sentence = "中国在这一领域的研究和实践近年来取得了显著进展，为医疗行业的智能化和精准化提供了重要支持。"
    assert len(sentence) > WHOLE
    assert deep_link(URL, sentence) == (
        "https://example.org/news/1#:~:text="
        "%E4%B8%AD%E5%9B%BD%E5%9C%A8%E8%BF%99%E4%B8%80%E9%A2%86%E5%9F%9F%E7%9A%84%E7%A0%94%E7%A9%B6"
        "%E5%92%8C%E5%AE%9E%E8%B7%B5%E8%BF%91%E5%B9%B4%E6%9D%A5%E5%8F%96%E5%BE%97%E4%BA%86%E6%98%BE"
        "%E8%91%97%E8%BF%9B%E5%B1%95%EF%BC%8C"
        ","
        "%E4%B8%BA%E5%8C%BB%E7%96%97%E8%A1%8C%E4%B8%9A%E7%9A%84%E6%99%BA%E8%83%BD%E5%8C%96%E5%92%8C"
        "%E7%B2%BE%E5%87%86%E5%8C%96%E6%8F%90%E4%BE%9B%E4%BA%86%E9%87%8D%E8%A6%81%E6%94%AF%E6%8C%81%E3%80%82"
    )


def test_a_long_sentence_is_cut_between_chinese_and_latin_never_inside_chinese_words():
    sentence = (
        "MedGPT由中国互联网医疗公司医联于2023年5月25日正式发布，是国内首款自主研发的医疗大语言模型，被称为“AI医生”。"
    )
    assert edges(sentence) == ("MedGPT由中国互联网医疗公司医联于", "被称为“AI医生”。")


def test_a_long_english_sentence_is_cut_at_spaces_not_inside_numbers_or_hyphenated_words():
    sentence = (
        "In 2023 the hospital screened 1,000 patients for type-2 diabetes, and 12.5% of them needed follow-up care."
    )
    assert deep_link(URL, sentence) == "https://example.org/news/1#:~:text=In%202023%20the,follow%2Dup%20care."
    assert edges("Screened: 1,000,000 adults, of which 12.5% had diabetes or pre-diabetes (type-2).") == (
        "Screened: 1,000,000",
        "pre-diabetes (type-2).",
    )


@pytest.mark.parametrize(
    "sentence",
    [
        "没有任何标点的一句很长很长的中文句子它一直写下去直到超过了四十个字符的长度限制为止也没有停下来。",
        "Pneumonoultramicroscopicsilicovolcanoconiosis-and-more-and-more words here",
    ],
)
def test_a_long_sentence_without_a_cut_near_its_ends_goes_whole(sentence):
    assert edges(sentence) == (sentence,)


def test_the_end_must_not_be_found_earlier_in_the_sentence():
    sentence = "the same words again, the same words again, and finally the same words again"
    assert edges(sentence) == (sentence,)


def test_edges_are_within_their_bounds():
    start, end = edges("中国在这一领域的研究和实践近年来取得了显著进展，为医疗行业的智能化和精准化提供了重要支持。")
    assert EDGE <= len(start) <= LONGEST_EDGE and EDGE <= len(end) <= LONGEST_EDGE


def test_whitespace_is_collapsed_as_a_browser_renders_it():
    assert deep_link("http://example.org/a", "  two\n  lines\t") == "http://example.org/a#:~:text=two%20lines"


def test_the_urls_own_fragment_is_kept_and_an_old_text_directive_replaced():
    assert deep_link("https://example.org/a#section-2", "One.") == "https://example.org/a#section-2:~:text=One."
    assert deep_link("https://example.org/a#top:~:text=old", "One.") == "https://example.org/a#top:~:text=One."
    assert deep_link("https://example.org/a#:~:text=old", "One.") == "https://example.org/a#:~:text=One."
    assert deep_link("https://example.org/a?q=1&r=2", "One.") == "https://example.org/a?q=1&r=2#:~:text=One."


@pytest.mark.parametrize(
    "url, text",
    [
        (None, "One."),
        ("", "One."),
        ("ftp://example.org/a", "One."),
        ("javascript:alert(1)", "One."),
        ("/relative/path", "One."),
        ("https://example.org/a", " \n "),
    ],
)
def test_no_link_without_an_http_url_or_a_text(url, text):
    assert deep_link(url, text) is None


def test_the_directive_decodes_back_to_the_quote():
    sentence = "剂量：每日两次、每次 5 毫克（饭后），儿童减半 & 孕妇禁用 - 见说明书。"
    link = deep_link(URL, sentence)
    directive = link.split("#:~:text=", 1)[1]
    assert set(directive) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~%,")
    assert [unquote(part) for part in directive.split(",")] == list(edges(sentence))


def test_a_pdf_quote_links_to_its_page_not_a_text_fragment():
    assert (
        deep_link("https://a.example/r.pdf#x", "白鹭模型减少了候诊时间。", page=3) == "https://a.example/r.pdf#page=3"
    )
    assert deep_link("file:///r.pdf", "白鹭", page=3) is None
