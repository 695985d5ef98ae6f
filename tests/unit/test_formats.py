"""Files, uploads and fetched pages into `Document`s: markdown, text, HTML (trafilatura), PDF (pypdf)."""

import json
from pathlib import Path

import pytest

from medrag import corpus
from medrag.errors import BadInputError, UnsupportedTypeError

ROOT = Path(__file__).resolve().parents[2]

ARTICLE = """<html><head><title>蓝鲸医疗模型发布 - 北极星新闻</title>
<meta property="og:site_name" content="北极星新闻"><meta name="date" content="2024-03-04"></head>
<body><nav>首页 | 新闻 | 关于</nav><article><h1>蓝鲸医疗模型发布</h1>
<p>蓝鲸医疗模型由北极星医院于2031年3月发布，参数规模为42亿，覆盖内科和外科的常见疾病。</p>
<h2>临床试验</h2><p>北极星医院在三个院区开展了临床试验，共纳入一万两千名患者，诊断一致性达到九成。</p>
</article><footer>版权所有</footer></body></html>"""


@pytest.mark.parametrize(
    "name, media_type, kind",
    [
        ("a.md", None, "markdown"),
        ("a.MARKDOWN", "text/plain", "markdown"),
        ("a.txt", "text/markdown", "text"),
        ("a.html", "text/html; charset=utf-8", "html"),
        ("a.htm", "application/octet-stream", "html"),
        ("a.pdf", "application/pdf", "pdf"),
        (None, "application/pdf", "pdf"),
        (None, "text/html", "html"),
    ],
)
def test_kind_from_name_and_media_type(name, media_type, kind):
    assert corpus.kind_of(name, media_type) == kind


@pytest.mark.parametrize(
    "name, media_type, message",
    [
        ("a.exe", None, "unsupported file type .exe"),
        ("a.doc", "application/pdf", "unsupported file type .doc"),
        ("a.docx", "application/pdf", "declared as application/pdf, which does not match its .docx name"),
        ("a.md", "image/gif", "unsupported content type image/gif"),
        ("a.pdf", "text/plain", "declared as text/plain, which does not match its .pdf name"),
        ("a.html", "application/pdf", "does not match"),
        ("a.txt", "text/html", "does not match"),
        ("noext", None, "unknown file type"),
        (None, None, "unknown file type"),
    ],
)
def test_unsupported_or_mismatched_types_are_refused(name, media_type, message):
    with pytest.raises(UnsupportedTypeError, match=message):
        corpus.kind_of(name, media_type)


def test_html_article_text_title_site_and_date():
    document = corpus.load_bytes(ARTICLE.encode(), "html", url="https://news.example/a/1")
    assert document.title == "蓝鲸医疗模型发布"
    assert document.publisher == "北极星新闻"
    assert document.date == "2024-03-04"
    assert document.url == "https://news.example/a/1"
    assert "参数规模为42亿" in document.text and "## 临床试验" in document.text
    assert "首页" not in document.text and "版权所有" not in document.text  # navigation and footer dropped


def test_html_without_article_text_is_refused():
    with pytest.raises(BadInputError, match="no article text"):
        corpus.load_bytes(b"<html><head><title>x</title></head><body></body></html>", "html", name="empty.html")


def test_pdf_text_and_title(pdf):
    document = corpus.load_bytes(
        pdf(["The Bluewhale model has 4.2 billion parameters."], title="Bluewhale"), "pdf", name="bluewhale.pdf"
    )
    assert document.title == "Bluewhale"
    assert document.text == "The Bluewhale model has 4.2 billion parameters."
    assert document.doc_id.startswith("bluewhale-")


@pytest.mark.parametrize(
    "data, error, message",
    [
        (b"%PDF-1.4\n1 0 obj garbage", BadInputError, "malformed PDF"),
        (b"hello, not a pdf", UnsupportedTypeError, "not a PDF"),
    ],
)
def test_bad_pdfs_are_refused(data, error, message):
    with pytest.raises(error, match=message):
        corpus.load_bytes(data, "pdf", name="x.pdf")


def test_pdf_without_text_is_refused(pdf):
    with pytest.raises(BadInputError, match="no extractable text"):
        corpus.load_bytes(pdf([]), "pdf", name="scan.pdf")


@pytest.mark.parametrize(
    "data, error, message",
    [
        (b"\xff\xfe\x00h\x00i", UnsupportedTypeError, "binary content"),
        (b"%PDF-1.4 pretending to be text", UnsupportedTypeError, "binary content"),
        (b"caf\xe9 au lait", BadInputError, "not UTF-8"),
        (b"   \n\n ", BadInputError, "no text"),
    ],
)
def test_bad_text_is_refused(data, error, message):
    with pytest.raises(error, match=message):
        corpus.load_bytes(data, "text", name="x.txt")


def test_text_uses_the_declared_charset_and_drops_a_bom():
    assert (
        corpus.load_bytes("蓝鲸模型".encode("gb18030"), "text", url="http://x.example/", charset="gb18030").text
        == "蓝鲸模型"
    )
    assert corpus.load_bytes("\ufeff# 标题\n正文".encode(), "markdown", name="a.md").title == "标题"


def test_sources_manifest_lists_the_reports_cited_articles():
    manifest = json.loads((ROOT / "corpus" / "sources.json").read_text(encoding="utf-8"))["sources"]
    report = corpus.load_file(ROOT / "corpus" / "report.md")
    assert [s["url"] for s in manifest] == [s.url for s in report.sources]
    assert all(s["title"] and s["publisher"] and s["year"] for s in manifest)
