"""The chunker: headings, sentences, sizes, offsets and link markup."""

from hypothesis import given, settings
from hypothesis import strategies as st

from medrag.chunking import HEADING, RULE, clean, links_in, sentence_spans, split, visible_len

from ..conftest import CORPUS

REPORT = (CORPUS / "report.md").read_text(encoding="utf-8")

# Text built from the pieces that matter to a Chinese markdown chunker.
PIECES = st.sampled_from(
    [
        "医学",
        "模型",
        "MedGPT",
        "数据",
        "参数",
        "1000亿",
        " ",
        "，",
        "、",
        "。",
        "！",
        "？",
        "；",
        "…",
        "\n",
        "\n\n",
        "## 标题\n",
        "### 小节\n",
        "- ",
        "**",
        "[搜狐](https://www.sohu.com/a/1)",
        "(搜狐, 2024)",
        "abc. Def",
        "---\n",
    ]
)
TEXT = st.lists(PIECES, min_size=0, max_size=120).map("".join)
SIZES = st.tuples(st.integers(min_value=8, max_value=120), st.integers(min_value=0, max_value=60)).filter(
    lambda pair: pair[1] < pair[0]
)


def is_structure(sentence: str) -> bool:
    """Headings, horizontal rules and bare emphasis marks are structure, not sentences."""
    return bool(HEADING.match(sentence) or RULE.match(sentence) or not clean(sentence).strip())


@settings(max_examples=300, deadline=None)
@given(TEXT, SIZES)
def test_chunks_are_non_empty_bounded_and_map_back_to_the_source(text, sizes):
    size, overlap = sizes
    for piece in split(text, size, overlap):
        assert piece.text.strip(), "empty chunk"
        assert visible_len(text[piece.start : piece.end]) <= size
        assert clean(text[piece.start : piece.end]) == piece.text
        assert links_in(text[piece.start : piece.end]) == piece.links


@settings(max_examples=300, deadline=None)
@given(TEXT, SIZES)
def test_a_sentence_that_fits_is_never_split(text, sizes):
    size, overlap = sizes
    pieces = split(text, size, overlap)
    for start, end in sentence_spans(text):
        if is_structure(text[start:end]):
            continue
        if visible_len(text[start:end]) <= size:
            assert any(p.start <= start and end <= p.end for p in pieces), text[start:end]


@settings(max_examples=200, deadline=None)
@given(TEXT, SIZES)
def test_every_sentence_character_lands_in_some_chunk(text, sizes):
    size, overlap = sizes
    pieces = split(text, size, overlap)
    for start, end in sentence_spans(text):
        if is_structure(text[start:end]):
            continue
        for position in range(start, end):
            if not text[position].isspace():
                assert any(p.start <= position < p.end for p in pieces)


def test_report_chunks_carry_heading_paths_and_cited_urls():
    pieces = split(REPORT, 300, 60)
    medgpt = [p for p in pieces if "1000亿参数" in p.text]
    assert medgpt, "the parameter count is in some chunk"
    piece = medgpt[0]
    assert piece.section == (
        "中国医学语言模型的代表性成果",
        "1. MedGPT：国内首个自研医疗大语言模型",
        "发布背景与技术特点",
    )
    assert piece.links == ("https://www.sohu.com/a/752216224_121695294",)
    assert "https://" not in piece.text and "**" not in piece.text
    assert "(搜狐, 2024)" in piece.text  # the link's label stays as text


def test_link_markup_does_not_count_towards_size():
    sentence = "MedGPT发布了。" + "([搜狐, 2024](https://www.sohu.com/a/752216224_121695294))" * 3
    assert visible_len(sentence) == len("MedGPT发布了。") + 3 * len("(搜狐, 2024)")
    pieces = split(sentence, 60, 0)
    assert len(pieces) == 1 and pieces[0].links == ("https://www.sohu.com/a/752216224_121695294",)


def test_overlap_repeats_trailing_sentences():
    text = "".join(f"第{i}句话在这里。" for i in range(20))
    pieces = split(text, 40, 15)
    assert len(pieces) > 2
    for first, second in zip(pieces, pieces[1:], strict=False):
        assert second.start < first.end, "consecutive chunks overlap"
        assert second.start > first.start, "and still move forward"


def test_an_over_long_sentence_is_cut_at_commas():
    text = "，".join(["医学语言模型"] * 30) + "。"
    pieces = split(text, 50, 0)
    assert len(pieces) > 1
    assert all(visible_len(text[p.start : p.end]) <= 50 for p in pieces)
    assert all(p.text.endswith(("，", "。")) for p in pieces[:-1])


def test_chinese_sentence_ends():
    text = "第一句。第二句！第三句？第四句；第五句……结尾"
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        "第一句。",
        "第二句！",
        "第三句？",
        "第四句；",
        "第五句……",
        "结尾",
    ]


def test_overlap_must_be_smaller_than_size():
    import pytest

    with pytest.raises(ValueError, match=r"overlap \(10\) must be smaller than size \(10\)"):
        split("文本", 10, 10)
