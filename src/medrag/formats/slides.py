"""PowerPoint (.pptx) through python-pptx: each slide a section under its title, its text, tables and notes."""

import io

from ..errors import MedragError
from .base import Extracted, Limits, Writer
from .office import check_zip, damaged


def extract(data: bytes, label: str, limits: Limits, progress) -> Extracted:
    import pptx

    check_zip(data, label, limits)
    try:
        presentation = pptx.Presentation(io.BytesIO(data))
        out = Writer(label, limits)
        slides = list(presentation.slides)
        for number, slide in enumerate(slides, start=1):
            title_shape = slide.shapes.title
            title = title_shape.text_frame.text.strip() if title_shape is not None else ""
            out.heading(2, title or f"幻灯片 {number}")
            for shape in _shapes(slide.shapes):
                if title_shape is not None and shape.shape_id == title_shape.shape_id:
                    continue
                if shape.has_text_frame:
                    for paragraph in shape.text_frame.paragraphs:
                        out.add("".join(run.text for run in paragraph.runs) or paragraph.text)
                if getattr(shape, "has_table", False):
                    out.table([[cell.text for cell in row.cells] for row in shape.table.rows])
            if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
                notes = slide.notes_slide.notes_text_frame.text.strip()
                for line in notes.splitlines():
                    out.add(line)
            progress(number, len(slides))
        title = presentation.core_properties.title or ""
    except MedragError:
        raise
    except Exception as error:  # python-pptx raises many types for a damaged part
        raise damaged(label, error) from error
    return Extracted(out.text, title=title.strip())


def _shapes(shapes):
    """The shapes of a slide, the members of groups included, in order."""
    for shape in shapes:
        if shape.shape_type is not None and hasattr(shape, "shapes"):  # a group
            yield from _shapes(shape.shapes)
        else:
            yield shape
