"""`raw_span`: a range of a passage's clean text back to its span in the raw markdown."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medrag.chunking import LINK, clean, raw_span, sentence_spans, split

from ..conftest import CORPUS

REPORT = (CORPUS / "report.md").read_text(encoding="utf-8")

LABELS = st.sampled_from(["搜狐", "搜狐, 2024", "**新华**网", "a_b", "", "**", "a*", "*b", "__x__", "深度 报道"])
URLS = st.sampled_from(["https://www.sohu.com/a/1", "http://example.org/x_y*z", "https://a.b/**"])
LINKS = st.builds(lambda label, url: f"[{label}]({url})", LABELS, URLS)
# Markdown with what `clean` removes, lone marks it keeps, and brackets that are not links.
PIECES = st.one_of(
    st.sampled_from(
        [
            "医学",
            "模型",
            "MedGPT",
            "1000亿",
            " ",
            "，",
            "。",
            "\n",
            "**",
            "__",
            "*",
            "_",
            "[",
            "]",
            "(",
            ")",
            "[注]",
            "a-b",
        ]
    ),
    LINKS,
)
MARKDOWN = st.lists(PIECES, max_size=40).map("".join)


@st.composite
def markdown_and_range(draw):
    raw = draw(MARKDOWN)
    size = len(clean(raw))
    start = draw(st.integers(0, size))
    end = draw(st.integers(start, size))
    return raw, start, end


def label_ranges(raw: str) -> list[tuple[int, int]] | None:
    """The clean range of each link's label, or None when a run of `*` or `_` runs across a label's edge.

    Across an edge (`*[*a](u)`) a mark pairs one character outside the label with one inside, and
    which of the two stays visible is a matter of reading; `raw_span` counts the one `clean` keeps.
    """
    linked, edges, position = "", [], 0
    for match in LINK.finditer(raw):
        linked += raw[position : match.start()]
        edges.append(len(linked))
        linked += match.group(1)
        edges.append(len(linked))
        position = match.end()
    linked += raw[position:]
    if any(0 < p < len(linked) and linked[p - 1] == linked[p] and linked[p] in "*_" for p in edges):
        return None
    return [(len(clean(raw[: m.start()])), len(clean(raw[: m.end()]))) for m in LINK.finditer(raw)]


@settings(max_examples=1000, deadline=None)
@given(markdown_and_range())
def test_the_span_covers_the_range_and_cuts_no_markup(case):
    raw, start, end = case
    s, e = raw_span(raw, start, end)
    assert 0 <= s <= e <= len(raw)
    before, inside, after = clean(raw[:s]), clean(raw[s:e]), clean(raw[e:])
    assert before + inside + after == clean(raw), "the span cuts markup in half"
    assert len(before) <= start, "the span starts after the range"
    if start < end:
        assert end <= len(before) + len(inside), "the span ends before the range"
    else:
        assert s == e


@settings(max_examples=1000, deadline=None)
@given(markdown_and_range())
def test_the_span_is_exact_unless_the_range_cuts_a_label(case):
    raw, start, end = case
    labels = label_ranges(raw)
    if labels is None or any(a < start < b or a < end < b for a, b in labels):
        return
    s, e = raw_span(raw, start, end)
    assert clean(raw[s:e]) == clean(raw)[start:end]
    assert len(clean(raw[:s])) == start


@pytest.mark.parametrize(
    "raw, start, end, span",
    [
        ("a **bold** c", 2, 6, "bold"),  # the marks around the range stay out
        ("**参数规模**：1000亿参数。", 0, 13, "参数规模**：1000亿参数。"),
        ("见[搜狐](https://www.sohu.com/a/1)报道", 1, 3, "[搜狐](https://www.sohu.com/a/1)"),  # a whole label
        ("见[搜狐](https://www.sohu.com/a/1)报道", 2, 3, "[搜狐](https://www.sohu.com/a/1)"),  # cuts it: the whole link
        ("见[搜狐](https://www.sohu.com/a/1)报道", 0, 1, "见"),
        ("[a*](http://u.cn)*b", 0, 1, "[a*](http://u.cn)*"),  # a mark pairing across the link comes in whole
        ("[a*](http://u.cn)[*b](http://v.cn)", 1, 2, "[a*](http://u.cn)[*b](http://v.cn)"),  # ... even its link
    ],
)
def test_examples_at_link_and_emphasis_boundaries(raw, start, end, span):
    s, e = raw_span(raw, start, end)
    assert raw[s:e] == span


def test_an_empty_range_sits_before_its_character_or_the_markup_around_it():
    assert raw_span("见**搜狐**", 1, 1) == (3, 3)
    assert raw_span("见**搜狐**", 3, 3) == (7, 7)
    assert raw_span("见[搜狐](https://www.sohu.com/a/1)", 2, 2) == (1, 1)


def test_every_sentence_of_the_report_maps_back_to_its_markdown():
    widened = 0
    for piece in split(REPORT, 300, 60):
        raw = REPORT[piece.start : piece.end]
        labels = label_ranges(raw)
        assert labels is not None
        for start, end in sentence_spans(piece.text):
            s, e = raw_span(raw, start, end)
            visible = clean(REPORT[piece.start + s : piece.start + e])
            if any(a < start < b or a < end < b for a, b in labels):
                widened += 1  # a sentence end inside a label ("show.php?num=…" in the references)
                assert piece.text[start:end] in visible
            else:
                assert visible == piece.text[start:end]
    assert widened < 5


def test_a_range_outside_the_text_is_refused():
    with pytest.raises(ValueError, match=r"range \[2, 5\) is outside the 3 visible characters"):
        raw_span("**abc**", 2, 5)
