"""Loading documents and reading the articles they cite."""

import pytest

from medrag.corpus import from_text, load_file, load_paths, parse_sources
from medrag.errors import BadInputError

from ..conftest import CORPUS


def test_report_lists_its_six_cited_articles_with_metadata():
    document = load_file(CORPUS / "report.md")
    assert document.title == "中国医学语言模型发展现状与前景分析"
    assert document.url is None
    by_url = {s.url: s for s in document.sources}
    assert len(by_url) == 6
    sohu = by_url["https://www.sohu.com/a/752216224_121695294"]
    assert (sohu.publisher, sohu.year) == ("搜狐", "2024")
    assert sohu.title == "数智医疗 | 国内首个自研医疗大语言模型——MedGPT"
    assert by_url["https://news.gbimonthly.com/tw/article/show.php?num=63570"].publisher == "环球生技月刊"


def test_inline_citations_without_a_reference_list_are_sources_too():
    sources = parse_sources("某模型发布 ([新华社, 2025](https://example.org/a))。")
    assert [(s.url, s.publisher, s.year) for s in sources] == [("https://example.org/a", "新华社", "2025")]


def test_ids_are_stable_per_file_name_and_hash_changes_with_content(tmp_path):
    path = tmp_path / "note.md"
    path.write_text("# 标题\n内容一。", encoding="utf-8")
    first = load_file(path)
    path.write_text("# 标题\n内容二。", encoding="utf-8")
    second = load_file(path)
    assert first.doc_id == second.doc_id and first.doc_id.startswith("note-")
    assert first.content_hash != second.content_hash


def test_bad_files_get_clear_errors(tmp_path):
    (tmp_path / "empty.md").write_text("  \n", encoding="utf-8")
    with pytest.raises(BadInputError, match="no text"):
        load_file(tmp_path / "empty.md")
    (tmp_path / "data.bin").write_bytes(b"\x00\x01")
    with pytest.raises(BadInputError, match="unsupported file type .bin"):
        load_file(tmp_path / "data.bin")
    (tmp_path / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(BadInputError, match="not UTF-8"):
        load_file(tmp_path / "latin.txt")
    with pytest.raises(BadInputError, match="no such file"):
        load_paths([tmp_path / "missing.md"])


def test_text_documents_take_the_title_from_the_first_heading():
    document = from_text("# **报告**\n正文。")
    assert document.title == "报告"
