"""Word (.docx) through python-docx: heading styles become headings, tables become rows."""

import io
import re

from ..errors import MedragError
from .base import Extracted, Limits, Writer
from .office import check_zip, damaged

# Built-in heading styles by their English or Chinese names ("Heading 2", "标题 2").
HEADING_STYLE = re.compile(r"^(?:heading|标题)\s*(\d)$", re.IGNORECASE)


def extract(data: bytes, label: str, limits: Limits, progress) -> Extracted:
    import docx
    from docx.table import Table

    check_zip(data, label, limits)
    try:
        document = docx.Document(io.BytesIO(data))
        out = Writer(label, limits)
        title = document.core_properties.title or ""
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                out.table([[cell.text for cell in row.cells] for row in block.rows])
                continue
            style = block.style.name if block.style is not None else ""
            text = block.text.strip()
            heading = HEADING_STYLE.match(style)
            if style == "Title":
                title = title or text
                out.heading(1, text)
            elif heading:
                # Level 1 is the document's title in markdown: "Heading 1" is the first level of sections.
                out.heading(int(heading.group(1)) + 1, text)
            else:
                out.add(text)
    except MedragError:
        raise
    except Exception as error:  # python-docx raises many types for a damaged part
        raise damaged(label, error) from error
    progress(1, 1)
    return Extracted(out.text, title=title.strip())
