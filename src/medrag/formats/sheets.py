"""Spreadsheets: .xlsx through openpyxl (read-only, streamed) and .csv; each sheet a section, each row a
sentence naming its columns."""

import csv
import datetime
import io
import re
import zipfile
from pathlib import Path

from ..errors import BadInputError, MedragError, TooLargeError
from .base import Extracted, Limits, Writer, row_sentences
from .office import check_zip, damaged

# How much of a sheet's XML is read for its `<dimension ref="A1:D1000000">`, and the last row it names.
HEAD = 4096
DIMENSION = re.compile(r'<(?:\w+:)?dimension\s+ref="[A-Z]*\d*:?[A-Z]*(\d+)"')
ROW = re.compile(rb"<(?:\w{1,8}:)?row[\s/>]")
ROW_TAIL = 16  # longer than any match of ROW


def extract_xlsx(data: bytes, label: str, limits: Limits, progress) -> Extracted:
    import openpyxl

    check_zip(data, label, limits)
    check_dimensions(data, label, limits)
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as error:
        raise damaged(label, error) from error
    out = Writer(label, limits)
    try:
        sheets = workbook.worksheets
        for number, sheet in enumerate(sheets, start=1):
            rows = []
            for count, row in enumerate(sheet.iter_rows(values_only=True), start=1):
                if count > limits.rows:
                    raise _too_many(label, sheet.title, count, limits)
                rows.append([_cell(value) for value in row])
            _sheet(out, sheet.title, rows)
            progress(number, len(sheets))
        title = workbook.properties.title or ""
    except MedragError:
        raise
    except Exception as error:
        raise damaged(label, error) from error
    finally:
        workbook.close()
    return Extracted(out.text, title=title.strip())


def check_dimensions(data: bytes, label: str, limits: Limits) -> None:
    """Refuse a workbook a sheet of which has more rows than allowed, before openpyxl reads it.

    The `<dimension>` element sits at the head of a sheet's XML. Without one, openpyxl would parse the
    whole sheet to size it before the first row, so the sheet's `<row>` elements are counted here,
    in a scan of its bytes (the zip's limits bound how many).
    """
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for part in archive.namelist():
            if not (part.startswith("xl/worksheets/") and part.endswith(".xml")):
                continue
            with archive.open(part) as stream:
                head = stream.read(HEAD)
                match = DIMENSION.search(head.decode("utf-8", errors="replace"))
                rows = int(match.group(1)) if match else _count_rows(head, stream)
            if rows > limits.rows:
                raise _too_many(label, part.rsplit("/", 1)[-1], rows, limits)


def _count_rows(head: bytes, stream) -> int:
    """The `<row>` elements of a sheet's XML, read in pieces; a match near a piece's end waits for the next."""
    count, buffer = 0, head
    while True:
        piece = stream.read(2**20)
        buffer += piece
        cut = len(buffer) if not piece else len(buffer) - ROW_TAIL
        count += sum(1 for match in ROW.finditer(buffer) if match.start() < cut)
        if not piece:
            return count
        buffer = buffer[cut:]


def extract_csv(data: bytes, label: str, limits: Limits, progress) -> Extracted:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise BadInputError(f"{label}: not UTF-8 text ({error})") from error
    rows = []
    try:
        for count, row in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
            if count > limits.rows:
                raise _too_many(label, Path(label).stem, count, limits)
            rows.append(row)
    except csv.Error as error:
        raise BadInputError(f"{label}: malformed CSV ({error})") from error
    out = Writer(label, limits)
    _sheet(out, Path(label).stem, rows)
    progress(1, 1)
    return Extracted(out.text)


def _sheet(out: Writer, name: str, rows: list[list[str]]) -> None:
    sentences = row_sentences(rows)
    if sentences:
        out.heading(2, name)
        for sentence in sentences:
            out.add(sentence)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime.datetime) and value.time() == datetime.time():
        return value.date().isoformat()
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return str(value)


def _too_many(label: str, sheet: str, rows: int, limits: Limits) -> TooLargeError:
    return TooLargeError(
        f"{label}: sheet {sheet!r} has {rows} rows or more; the limit is {limits.rows} (MEDRAG_MAX_SHEET_ROWS)"
    )
