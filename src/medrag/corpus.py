"""Turn files, uploads and fetched pages into `Document`s: title, identity, content hash, cited articles.

Markdown and plain text are taken as they are; HTML goes through trafilatura (article text as
markdown, title, site name, date); PDF through pypdf (text of every page).
"""

import hashlib
import io
import re
from pathlib import Path

from .errors import BadInputError, UnsupportedTypeError
from .types import Document, Source

# File name suffixes and media types of the kinds of document that can be indexed.
SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".html": "html", ".htm": "html", ".pdf": "pdf"}
MEDIA_TYPES = {
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/plain": "text",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/pdf": "pdf",
}
# Markdown is plain text to a browser: either name goes with either media type.
TEXTUAL = {"markdown", "text"}
TITLE = re.compile(r"^#[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
INLINE_LINK = re.compile(r"\(\[([^\[\]]+?),\s*(\d{4})\]\((https?://[^()\s]+)\)")
REFERENCE_HEADING = re.compile(
    r"^#{1,6}[ \t]+(参考文献|参考资料|References|Bibliography)\s*$", re.MULTILINE | re.IGNORECASE
)
# "1. 搜狐. (2024). 标题. [https://...](https://...)" — publisher, year, title, URL.
REFERENCE = re.compile(
    r"^\s*\d+[.)、]\s*(?P<publisher>[^.\n]+?)\.\s*\((?P<year>\d{4})\)\.\s*(?P<title>.+?)\s*"
    r"\[[^\]]*\]\((?P<url>https?://[^()\s]+)\)\s*$",
    re.MULTILINE,
)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def document_id(identity: str, name: str) -> str:
    """A stable, readable id: a slug of the name plus a hash of the identity (URL or file name)."""
    slug = re.sub(r"[^0-9a-zA-Z]+", "-", name).strip("-").lower()[:24] or "doc"
    return f"{slug}-{hashlib.sha256(identity.encode('utf-8')).hexdigest()[:8]}"


def parse_sources(text: str) -> tuple[Source, ...]:
    """Cited articles: the reference list where there is one, plus inline `([publisher, year](url))` links."""
    found: dict[str, Source] = {}
    heading = REFERENCE_HEADING.search(text)
    if heading:
        for match in REFERENCE.finditer(text, heading.end()):
            title = match.group("title").rstrip(".。 ")
            found[match.group("url")] = Source(
                url=match.group("url"),
                title=title,
                publisher=match.group("publisher").strip(),
                year=match.group("year"),
            )
    for match in INLINE_LINK.finditer(text):
        publisher, year, url = match.groups()
        found.setdefault(url, Source(url=url, publisher=publisher.strip(), year=year))
    return tuple(found.values())


def from_text(
    text: str, *, title: str = "", url: str | None = None, path: str | None = None, publisher: str = "", date: str = ""
) -> Document:
    """Build a `Document` from text already in hand."""
    if not text.strip():
        raise BadInputError("the document has no text")
    heading = TITLE.search(text)
    title = title or (heading.group(1).replace("**", "").strip() if heading else "")
    title = title or (Path(path).stem if path else "")
    name = Path(path).stem if path else (title or "doc")
    identity = url or (f"file:{Path(path).name}" if path else f"text:{content_hash(text)}")
    return Document(
        doc_id=document_id(identity, name),
        title=title,
        text=text,
        content_hash=content_hash(text),
        url=url,
        path=path,
        publisher=publisher,
        date=date,
        sources=parse_sources(text),
    )


def kind_of(name: str | None, media_type: str | None) -> str:
    """The kind of a file ("markdown", "text", "html" or "pdf") from its name and declared media type.

    Either may be missing, but what is given must be supported, and the two must agree.
    """
    suffix = Path(name).suffix.lower() if name else ""
    media = (media_type or "").split(";")[0].strip().lower()
    if media == "application/octet-stream":
        media = ""  # says nothing about the content
    by_name = SUFFIXES.get(suffix)
    by_type = MEDIA_TYPES.get(media)
    if suffix and by_name is None:
        raise UnsupportedTypeError(f"{name}: unsupported file type {suffix}; use one of {', '.join(SUFFIXES)}")
    if media and by_type is None:
        raise UnsupportedTypeError(
            f"{name or 'the content'}: unsupported content type {media}; use one of {', '.join(MEDIA_TYPES)}"
        )
    if by_name and by_type and by_name != by_type and not {by_name, by_type} <= TEXTUAL:
        raise UnsupportedTypeError(f"{name}: declared as {media}, which does not match its {suffix} name")
    kind = by_name or by_type
    if kind is None:
        raise UnsupportedTypeError(f"{name or 'the content'}: unknown file type; name it .md, .txt, .html or .pdf")
    return kind


def load_bytes(
    data: bytes, kind: str, *, name: str | None = None, url: str | None = None, charset: str | None = None
) -> Document:
    """A `Document` from the raw bytes of a file of the given kind."""
    label = name or url or "the content"
    if kind == "pdf":
        return from_pdf(data, path=name, url=url)
    if data.startswith(b"%PDF-") or b"\x00" in data[:4096]:
        raise UnsupportedTypeError(f"{label}: binary content, not {kind}")
    if kind == "html":
        return from_html(data, path=name, url=url)
    try:
        text = data.decode(charset or "utf-8-sig")
    except (UnicodeDecodeError, LookupError) as error:
        raise BadInputError(f"{label}: not {charset or 'UTF-8'} text ({error})") from error
    return from_text(text.replace("\r\n", "\n"), path=name, url=url)


def from_html(html: bytes | str, *, path: str | None = None, url: str | None = None) -> Document:
    """The article in an HTML page, as markdown, with its title, site name and date."""
    import trafilatura

    label = path or url or "the page"
    # Precision over recall: navigation and boilerplate would otherwise be retrieved as "evidence".
    extracted = trafilatura.bare_extraction(
        html,
        url=url,
        with_metadata=True,
        include_formatting=True,
        favor_precision=True,
        include_comments=False,
        include_tables=True,
    )
    text = (extracted.text or "").strip() if extracted is not None else ""
    if not text:
        raise BadInputError(f"{label}: no article text could be extracted from the HTML")
    return from_text(
        text,
        title=extracted.title or "",
        url=url,
        path=path,
        publisher=extracted.sitename or "",
        date=extracted.date or "",
    )


def from_pdf(data: bytes, *, path: str | None = None, url: str | None = None) -> Document:
    """The text of every page of a PDF; its title from the PDF's metadata when it has one."""
    from pypdf import PdfReader

    label = path or url or "the PDF"
    if not data.startswith(b"%PDF-"):
        raise UnsupportedTypeError(f"{label}: not a PDF (it does not start with %PDF-)")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise BadInputError(f"{label}: the PDF is encrypted")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = (reader.metadata.title or "") if reader.metadata else ""
    except BadInputError:
        raise
    except Exception as error:  # pypdf raises many types for a damaged file
        raise BadInputError(f"{label}: malformed PDF ({error})") from error
    text = "\n\n".join(page.strip() for page in pages if page.strip())
    if not text:
        raise BadInputError(f"{label}: the PDF has no extractable text (a scan needs OCR first)")
    return from_text(text, title=title.strip(), url=url, path=path)


def load_file(path: Path) -> Document:
    """Load a markdown, text, HTML or PDF file."""
    return load_bytes(path.read_bytes(), kind_of(path.name, None), name=str(path))


def files_in(path: Path) -> list[Path]:
    """A file, or the supported files inside a folder, in a stable order."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    if path.exists():
        return [path]
    raise BadInputError(f"{path}: no such file or folder")


def load_paths(paths: list[Path]) -> list[Document]:
    """Load files and the supported files inside folders, in a stable order."""
    files = [file for path in paths for file in files_in(path)]
    return [load_file(file) for file in files]
