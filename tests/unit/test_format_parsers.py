"""Format parsers in-process on real files (python-docx, python-pptx, openpyxl, Chromium's PDF), the text
cleaning, and the layout rules, without a server."""

import io
import zipfile

import pytest

from medrag import corpus, formats
from medrag.errors import BadInputError, TooLargeError
from medrag.formats.base import Writer, row_sentences
from medrag.formats.layout import Line, heading_levels, write
from medrag.textnorm import fold, join_line, join_spaced
from medrag.types import Document
from tests import formatfiles

LIMITS = formats.Limits()


def test_fold_maps_radicals_and_compatibility_forms_but_keeps_chinese_punctuation():
    assert fold("⾏⾸次，ＡＢＣ１２３（注）？ﬁ") == "行首次，ABC123（注）？fi"
    assert fold("plain ascii") == "plain ascii"


def test_spaces_beside_chinese_go_and_lines_join():
    assert join_spaced("选取了 532 名患者 ， 共 3 组 and two words") == "选取了532名患者，共3组and two words"
    assert join_line("devel-", "oped") == "developed"
    assert join_line("白鹭", "模型") == "白鹭模型"
    assert join_line("the", "team") == "the team"
    assert join_line("1-", "2") == "1-2"


def test_rows_become_sentences_naming_their_columns():
    assert row_sentences([["科室", "人数"], ["内科", "42"], ["", ""], ["外科", ""]]) == [
        "科室：内科，人数：42。",
        "科室：外科。",
    ]
    assert row_sentences([["只有一行", "两格"]]) == ["只有一行，两格。"]


def line(text, size, top, bold=False, x0=50.0):
    return Line(text, size, bold, top, top + size, x0)


def test_headings_by_size_the_title_used_once_and_pages_as_offsets():
    pages = [
        [line("标题", 22, 10), line("第一节", 16, 50), line("正文第一行", 12, 80), line("接着一行。", 12, 93)],
        [line("第二节", 16, 10), line("正文。", 12, 40)],
    ]
    out = Writer("t", LIMITS)
    starts = write(pages, out)
    assert out.text == "# 标题\n\n## 第一节\n\n正文第一行接着一行。\n\n## 第二节\n\n正文。"
    assert starts == [0, out.text.index("## 第二节")]


def test_without_a_single_largest_line_every_heading_is_a_section():
    levels = heading_levels([line("一节", 16, 0), line("二节", 16, 0), line("正文" * 20, 12, 0)])
    assert levels(line("一节", 16, 0)) == 2 and levels(line("正文", 12, 0)) == 0


def test_a_document_finds_the_page_of_an_offset():
    document = Document("d", "t", "x" * 30, "h", pages=(0, 10, 20))
    assert [document.page_at(offset) for offset in (0, 9, 10, 29)] == [1, 1, 2, 3]
    assert Document("d", "t", "x", "h").page_at(0) is None


def test_word_headings_and_tables():
    data = formatfiles.docx_file(
        "手册",
        [("heading", 1, "部署"), ("heading", 2, "东院"), ("text", "正文。"), ("table", [["列", "值"], ["甲", "1"]])],
    )
    extracted = formats.extract("docx", data, "a.docx", LIMITS)
    assert extracted.text == "# 手册\n\n## 部署\n\n### 东院\n\n正文。\n\n列：甲，值：1。"
    assert extracted.title == "手册"


def test_slides_titles_text_and_notes():
    data = formatfiles.pptx_file([("第一页", ["要点一", "要点二"], "讲者备注。")])
    assert formats.extract("pptx", data, "a.pptx", LIMITS).text == "## 第一页\n\n要点一\n\n要点二\n\n讲者备注。"


def test_sheets_are_sections_and_rows_are_sentences():
    data = formatfiles.xlsx_file({"表一": [["名称", "数量"], ["甲", 3], ["乙", 4.0]]})
    text = formats.extract("xlsx", data, "a.xlsx", LIMITS).text
    assert text == "## 表一\n\n名称：甲，数量：3。\n\n名称：乙，数量：4。"
    assert formats.extract("csv", b"a,b\n1,2\n", "库存.csv", LIMITS).text == "## 库存\n\na：1，b：2。"


def test_too_many_rows_are_refused():
    data = formatfiles.xlsx_file({"s": [["a"]] + [[i] for i in range(50)]})
    with pytest.raises(TooLargeError, match="MEDRAG_MAX_SHEET_ROWS"):
        formats.extract("xlsx", data, "a.xlsx", formats.Limits(rows=10))


def test_a_zip_that_inflates_past_the_limit_is_refused_before_parsing():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b"\0" * 2_000_000)
    with pytest.raises(TooLargeError, match="MEDRAG_MAX_DECOMPRESSED_BYTES"):
        formats.extract("docx", out.getvalue(), "bomb.docx", formats.Limits(decompressed=1_000_000))


def test_an_encrypted_office_file_is_refused_by_its_first_bytes():
    with pytest.raises(BadInputError, match="encrypted Office file"):
        corpus.check_bytes(corpus.OLE + b"\0" * 100, "docx", "secret.docx")


@pytest.mark.slow
def test_a_printed_pdf_has_headings_pages_and_clean_text():
    data = formatfiles.printed_pdf(
        "报告",
        "<h1>报告</h1><h2>方法</h2><p>选取了 532 名患者，行首次随访。</p>"
        "<div class=page></div><h2>讨论</h2><p>结论。</p>",
    )
    document = corpus.load_bytes(data, "pdf", name="report.pdf")
    assert document.text == "# 报告\n\n## 方法\n\n选取了532名患者，行首次随访。\n\n## 讨论\n\n结论。"
    assert document.page_at(document.text.index("结论")) == 2 and document.page_at(0) == 1


@pytest.mark.slow
def test_a_photo_of_a_page_is_read_by_ocr():
    printed = formatfiles.printed_pdf("t", "<h2>筛查范围</h2><p>黑鹳筛查项目在南湖县做了眼底检查。</p>")
    page = formatfiles.page_images(printed)[0]
    photo = io.BytesIO()
    page.crop((0, 0, page.width, page.height // 5)).convert("RGB").save(photo, format="JPEG", quality=85)
    assert corpus.kind_of("photo.jpg", "image/jpeg") == "image"
    extracted = formats.extract("image", photo.getvalue(), "photo.jpg", LIMITS)
    # The heading is the one line set larger, used once: the title. OCR may misread a rare character.
    heading, body = extracted.text.split("\n\n")
    assert heading == "# 筛查范围" and "筛查项目在南湖县做了眼底检查" in body, extracted.text
