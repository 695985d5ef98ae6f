"""Turn files, uploads and fetched pages into `Document`s: title, identity, content hash, cited articles.

Markdown and plain text are taken as they are; HTML goes through trafilatura (article text as
markdown, title, site name, date); PDF through pypdf (text of every page).
"""

import hashlib
import io
import json
import re
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import BadInputError, ParseTimeoutError, TooLargeError, UnsupportedTypeError
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
    check_bytes(data, kind, label)
    if kind == "html":
        return from_html(data, path=name, url=url)
    try:
        text = data.decode(charset or "utf-8-sig")
    except (UnicodeDecodeError, LookupError) as error:
        raise BadInputError(f"{label}: not {charset or 'UTF-8'} text ({error})") from error
    return from_text(text.replace("\r\n", "\n"), path=name, url=url)


def from_html(html: bytes | str, *, path: str | None = None, url: str | None = None) -> Document:
    """The article in an HTML page, as markdown, with its title, site name and date."""
    return from_text(url=url, path=path, **extract_html(html, path or url or "the page", url))


def extract_html(html: bytes | str, label: str, url: str | None = None) -> dict[str, str]:
    """The article text (markdown), title, site name and date of an HTML page."""
    import trafilatura

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
    return {
        "text": text,
        "title": extracted.title or "",
        "publisher": extracted.sitename or "",
        "date": extracted.date or "",
    }


def from_pdf(data: bytes, *, path: str | None = None, url: str | None = None) -> Document:
    """The text of every page of a PDF; its title from the PDF's metadata when it has one."""
    return from_text(url=url, path=path, **extract_pdf(data, path or url or "the PDF"))


@dataclass(frozen=True)
class Limits:
    """Bounds on parsing one PDF or HTML file (Settings' max_document_chars, max_decompressed_bytes, ...)."""

    chars: int = 2_000_000
    decompressed: int = 64 * 2**20
    pages: int = 500
    seconds: float = 60.0


def extract_pdf(data: bytes, label: str, limits: Limits | None = None) -> dict[str, str]:
    """The text of every page of a PDF and its title, stopped with `TooLargeError` past `limits`."""
    from pypdf import PdfReader
    from pypdf.errors import LimitReachedError

    if not data.startswith(b"%PDF-"):
        raise UnsupportedTypeError(f"{label}: not a PDF (it does not start with %PDF-)")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise BadInputError(f"{label}: the PDF is encrypted")
        if limits and len(reader.pages) > limits.pages:
            raise TooLargeError(
                f"{label}: {len(reader.pages)} pages; the limit is {limits.pages} (MEDRAG_MAX_PDF_PAGES)"
            )
        pages: list[str] = []
        inflated = chars = 0
        for page in reader.pages:
            if limits:
                # Inflating a page's contents is cheap next to extracting its text: a page built to
                # inflate to a huge content stream is refused before its text is extracted.
                contents = page.get_contents()
                inflated += len(contents.get_data()) if contents is not None else 0
                if inflated > limits.decompressed:
                    raise TooLargeError(
                        f"{label}: the page contents inflate past {limits.decompressed} bytes "
                        "(MEDRAG_MAX_DECOMPRESSED_BYTES)"
                    )
            pages.append(page.extract_text() or "")
            chars += len(pages[-1])
            if limits and chars > limits.chars:
                raise TooLargeError(f"{label}: more than {limits.chars} characters of text (MEDRAG_MAX_DOCUMENT_CHARS)")
        title = (reader.metadata.title or "") if reader.metadata else ""
    except BadInputError:
        raise
    except LimitReachedError as error:  # pypdf's own bound on a stream's inflated size
        raise TooLargeError(f"{label}: {error}") from error
    except Exception as error:  # pypdf raises many types for a damaged file
        raise BadInputError(f"{label}: malformed PDF ({error})") from error
    text = "\n\n".join(page.strip() for page in pages if page.strip())
    if not text:
        raise BadInputError(f"{label}: the PDF has no extractable text (a scan needs OCR first)")
    return {"text": text, "title": title.strip()}


def check_bytes(data: bytes, kind: str, label: str) -> None:
    """The cheap checks of an upload, done before it is queued: its bytes look like its kind."""
    if kind == "pdf":
        if not data.startswith(b"%PDF-"):
            raise UnsupportedTypeError(f"{label}: not a PDF (it does not start with %PDF-)")
    elif data.startswith(b"%PDF-") or b"\x00" in data[:4096]:
        raise UnsupportedTypeError(f"{label}: binary content, not {kind}")


def parse_isolated(data: bytes, kind: str, name: str, limits: Limits, *, url: str | None = None) -> Document:
    """A PDF or HTML file (an upload named `name`, or a page fetched from `url`) parsed in a child process,
    killed past `limits.seconds`.

    pypdf and trafilatura cannot be interrupted inside a thread, and one page can take minutes; a
    child process can be killed, and its memory goes with it.
    """
    check_bytes(data, kind, name)
    command = [sys.executable, "-m", "medrag.corpus", kind, name, json.dumps(asdict(limits)), url or ""]
    try:
        child = subprocess.run(command, input=data, capture_output=True, timeout=limits.seconds, check=False)
    except subprocess.TimeoutExpired:
        raise ParseTimeoutError(
            f"{name}: parsing took longer than {limits.seconds:g} s (MEDRAG_PARSE_TIMEOUT)"
        ) from None
    try:
        reply = json.loads(child.stdout)
    except ValueError:
        raise BadInputError(f"{name}: the parser stopped ({child.stderr.decode(errors='replace')[-300:]})") from None
    if "error" in reply:
        error = next((kind for kind in PARSE_ERRORS if kind.code == reply["error"]), BadInputError)
        raise error(reply["detail"])
    if len(reply["text"]) > limits.chars:
        raise TooLargeError(f"{name}: more than {limits.chars} characters of text (MEDRAG_MAX_DOCUMENT_CHARS)")
    return from_text(path=None if url else name, url=url, **reply)


PARSE_ERRORS = (TooLargeError, UnsupportedTypeError, BadInputError)


def _child(kind: str, name: str, limits: str, url: str) -> None:
    """`python -m medrag.corpus KIND NAME LIMITS URL`: the bytes on stdin, the extracted fields as JSON on stdout."""
    data = sys.stdin.buffer.read()
    extract = extract_pdf if kind == "pdf" else lambda data, name, _: extract_html(data, name, url or None)
    try:
        reply = extract(data, name, Limits(**json.loads(limits)))
    except BadInputError as error:
        reply = {"error": error.code, "detail": str(error)}
    sys.stdout.write(json.dumps(reply))


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


if __name__ == "__main__":
    _child(*sys.argv[1:])
