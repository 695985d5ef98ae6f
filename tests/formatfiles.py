"""Real files of every format, built the way people make them: python-docx, python-pptx, openpyxl,
Chromium printing HTML with CJK fonts to PDF, and a scan made by rasterising such a PDF."""

import csv
import io
import subprocess
import tempfile
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
# The media type a client sends with each kind of file these helpers build.
MEDIA = {
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv",
    "pdf": "application/pdf",
    "png": "image/png",
}
STYLE = """<style>body{font-family:"Noto Sans CJK SC","Noto Serif CJK SC",sans-serif;font-size:12pt}
h1{font-size:22pt}h2{font-size:16pt}table{border-collapse:collapse}td,th{border:1px solid #000;padding:4px}
.page{page-break-before:always}</style>"""


def docx_file(title: str, blocks: list[tuple]) -> bytes:
    """A Word file: ("heading", level, text), ("text", text) and ("table", rows) blocks under a Title."""
    import docx

    document = docx.Document()
    document.add_paragraph(title, style="Title")
    for block in blocks:
        if block[0] == "heading":
            document.add_heading(block[2], level=block[1])
        elif block[0] == "text":
            document.add_paragraph(block[1])
        else:
            rows = block[1]
            table = document.add_table(rows=len(rows), cols=len(rows[0]))
            for i, row in enumerate(rows):
                for j, value in enumerate(row):
                    table.cell(i, j).text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def pptx_file(slides: list[tuple[str, list[str], str]]) -> bytes:
    """A deck: each slide (title, bullet lines, speaker notes)."""
    import pptx

    deck = pptx.Presentation()
    for title, lines, notes in slides:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        body = slide.placeholders[1].text_frame
        body.text = lines[0]
        for line in lines[1:]:
            body.add_paragraph().text = line
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def xlsx_file(sheets: dict[str, list[list]]) -> bytes:
    """A workbook with a sheet of rows (the first the header) for each name."""
    import openpyxl

    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def csv_file(rows: list[list]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode("utf-8")


def printed_pdf(title: str, body: str) -> bytes:
    """An HTML article printed to PDF by headless Chromium with the Noto CJK fonts; `<div class=page>`
    starts a new page."""
    html = f'<html><head><meta charset="utf-8"><title>{title}</title>{STYLE}</head><body>{body}</body></html>'
    with tempfile.TemporaryDirectory() as folder:
        page, pdf = Path(folder) / "article.html", Path(folder) / "article.pdf"
        page.write_text(html, encoding="utf-8")
        subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-pdf-header-footer",
                f"--user-data-dir={folder}/profile",
                f"--print-to-pdf={pdf}",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        return pdf.read_bytes()


def page_images(pdf: bytes, dpi: int = 200) -> list:
    """Each page of a PDF as a greyscale image, as a scanner would give it."""
    import pypdfium2

    document = pypdfium2.PdfDocument(pdf)
    return [document[i].render(scale=dpi / 72).to_pil().convert("L") for i in range(len(document))]


def scanned_pdf(pdf: bytes, dpi: int = 200) -> bytes:
    """A PDF of page images only (no text layer): `pdf` printed and scanned."""
    images = page_images(pdf, dpi)
    out = io.BytesIO()
    images[0].save(out, format="PDF", save_all=True, append_images=images[1:], resolution=dpi)
    return out.getvalue()


def png_file(pdf: bytes, dpi: int = 200) -> bytes:
    """The first page of a PDF as a PNG photo of it."""
    out = io.BytesIO()
    page_images(pdf, dpi)[0].save(out, format="PNG")
    return out.getvalue()


def many_rows_xlsx(rows: int, declared: bool = True) -> bytes:
    """A workbook whose one sheet has `rows` rows, written straight as XML (openpyxl would take minutes);
    without `declared`, the sheet says nothing of its size."""
    import zipfile

    base = xlsx_file({"Sheet": [["a"]]})
    dimension = f'<dimension ref="A1:A{rows}"/>' if declared else ""
    body = "".join(f'<row r="{i}"><c r="A{i}"><v>{i}</v></c></row>' for i in range(1, rows + 1))
    sheet = (
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f"{dimension}<sheetData>{body}</sheetData></worksheet>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(base)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for name in source.namelist():
            data = sheet.encode() if name == "xl/worksheets/sheet1.xml" else source.read(name)
            target.writestr(name, data)
    return out.getvalue()


def bomb_docx(inflated: int) -> bytes:
    """A Word file whose document part inflates to `inflated` bytes of spaces from a few hundred KB."""
    import zipfile

    base = docx_file("t", [("text", "x")])
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(base)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for name in source.namelist():
            if name != "word/document.xml":
                target.writestr(name, source.read(name))
        with target.open("word/document.xml", "w", force_zip64=True) as part:
            block = b" " * 2**20
            for _ in range(inflated // len(block)):
                part.write(block)
    return out.getvalue()


def blank_pdf(pages: int) -> bytes:
    """A PDF of `pages` empty pages."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(612, 792)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def encrypted_pdf(source: bytes) -> bytes:
    """`source` encrypted with a user password."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(source)))
    writer.encrypt("secret")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def huge_png(side: int) -> bytes:
    """A one-colour PNG of side × side pixels: a few KB that decode to side² pixels."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("L", (side, side), 255).save(out, format="PNG", optimize=True)
    return out.getvalue()
