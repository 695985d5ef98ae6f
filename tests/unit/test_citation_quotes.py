"""A citation's quote and deep link as the API renders them, without a model or an index."""

from dataclasses import replace

from medrag import corpus
from medrag.api.schemas import citation_out
from medrag.chunking import clean
from medrag.indexing import chunk_document
from medrag.types import Hit, Quote

TEXT = "# 白鹭\n\n**白鹭-2型**检测仪由[东湖医院](https://example.org/donghu)研制。它于2031年投入使用。\n"
SENTENCE = "白鹭-2型检测仪由东湖医院研制。"
URL = "https://example.org/egret"


def setup(url: str | None = URL):
    document = corpus.from_text(TEXT, url=url)
    [chunk] = chunk_document(document, 300, 60)
    start = chunk.text.index(SENTENCE)
    return document, Hit(chunk, 1.0), Quote(SENTENCE, start, start + len(SENTENCE))


def test_the_quote_carries_its_offsets_in_the_passage_and_the_document():
    document, hit, quote = setup()
    out = citation_out(1, hit, document, quote=quote)
    assert out.quote.text == SENTENCE
    assert hit.chunk.text[out.quote.passage_start : out.quote.passage_end] == SENTENCE
    raw = TEXT[out.quote.document_start : out.quote.document_end]
    assert raw == "白鹭-2型**检测仪由[东湖医院](https://example.org/donghu)研制。"
    assert clean(raw) == SENTENCE
    assert out.deep_link == URL + "#:~:text=" + (
        "%E7%99%BD%E9%B9%AD%2D2%E5%9E%8B%E6%A3%80%E6%B5%8B%E4%BB%AA%E7%94%B1%E4%B8%9C%E6%B9%96%E5%8C%BB%E9%99%A2"
        "%E7%A0%94%E5%88%B6%E3%80%82"
    )


def test_without_a_quote_there_is_no_quote_and_no_deep_link():
    document, hit, _ = setup()
    out = citation_out(1, hit, document)
    assert out.quote is None and out.deep_link is None and out.url == URL


def test_a_quote_that_is_not_where_it_says_is_dropped():
    document, hit, quote = setup()
    for wrong in (replace(quote, start=quote.start + 1), replace(quote, end=quote.start), replace(quote, text="别的")):
        out = citation_out(1, hit, document, quote=wrong)
        assert out.quote is None and out.deep_link is None


def test_a_local_file_or_a_url_that_is_not_http_gets_no_deep_link():
    for url in (None, "file:///tmp/egret.md"):
        document, hit, quote = setup(url)
        out = citation_out(1, hit, document, quote=quote)
        assert out.quote.text == SENTENCE and out.deep_link is None


def test_without_the_document_the_quote_has_no_document_offsets():
    document, hit, quote = setup()
    for other in (None, replace(document, text="另一份文档的文字。" * 20)):
        out = citation_out(1, hit, other, quote=quote)
        assert out.quote.passage_start == quote.start
        assert out.quote.document_start is None and out.quote.document_end is None
