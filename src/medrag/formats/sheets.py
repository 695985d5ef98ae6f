"""Spreadsheets: .xlsx through openpyxl (read-only, streamed) and .csv; each sheet a section, each row a
sentence naming its columns."""

import csv
import datetime
import io
from pathlib import Path

from ..errors import BadInputError, MedragError, TooLargeError
from .base import Extracted, Limits, Writer, row_sentences
from .office import check_zip, damaged


def extract_xlsx(data: bytes, label: str, limits: Limits, progress) -> Extracted:
    import openpyxl

    check_zip(data, label, limits)
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as error:
        raise damaged(label, error) from error
    out = Writer(label, limits)
    try:
        sheets = workbook.worksheets
        for number, sheet in enumerate(sheets, start=1):
            # A sheet's declared size is checked first: a million rows are refused before one is read.
            declared = sheet.max_row or 0
            if declared > limits.rows:
                raise _too_many(label, sheet.title, declared, limits)
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
