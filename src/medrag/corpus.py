"""Turn files, uploads and fetched pages into `Document`s: title, identity, content hash, cited articles.

Markdown and plain text are taken as they are; HTML goes through trafilatura (article text as
markdown, title, site name, date); PDF, Word, PowerPoint, spreadsheets and images through `formats`
(markdown with headings, tables as rows, PDF pages). Every text is folded (`textnorm.fold`) before it
is stored; a file's content hash is that of its bytes as they came (of the text as written, for
markdown and text), so cleaning never makes a known file look new.
"""

import hashlib
import json
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from . import formats
from .errors import BadInputError, ParseTimeoutError, TooLargeError, UnsupportedTypeError
from .formats import Limits
from .textnorm import fold
from .types import Document, Source

# File name suffixes and media types of the kinds of document that can be indexed.
SUFFIXES = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".docx": "docx",
    ".pptx": "pptx",
    ".xlsx": "xlsx",
    ".csv": "csv",
    ".png": "image",
    ".jpg": "image",
    ".jpeg": "image",
}
MEDIA_TYPES = {
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/plain": "text",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/csv": "csv",
    "image/png": "image",
    "image/jpeg": "image",
}
# Kinds parsed in a child process (`parse_isolated`): everything but markdown and plain text.
ISOLATED = {"html", *formats.KINDS}
# The first bytes of each binary kind: an Office file is a zip, an image says what it is.
MAGIC = {
    "pdf": (b"%PDF-",),
    "docx": (b"PK\x03\x04",),
    "pptx": (b"PK\x03\x04",),
    "xlsx": (b"PK\x03\x04",),
    "image": (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"),
}
# An encrypted Office file (and a pre-2007 .doc/.ppt/.xls) is an OLE compound file, not a zip.
OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
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
    text: str,
    *,
    title: str = "",
    url: str | None = None,
    path: str | None = None,
    publisher: str = "",
    date: str = "",
    pages: Sequence[int] = (),
    digest: str | None = None,
) -> Document:
    """Build a `Document` from text already in hand; `digest` is the hash of the bytes it came from."""
    if not text.strip():
        raise BadInputError("the document has no text")
    digest = digest or content_hash(text)
    text, title = fold(text), fold(title)
    heading = TITLE.search(text)
    title = title or (heading.group(1).replace("**", "").strip() if heading else "")
    title = title or (Path(path).stem if path else "")
    name = Path(path).stem if path else (title or "doc")
    identity = url or (f"file:{Path(path).name}" if path else f"text:{digest}")
    return Document(
        doc_id=document_id(identity, name),
        title=title,
        text=text,
        content_hash=digest,
        pages=tuple(pages),
        url=url,
        path=path,
        publisher=publisher,
        date=date,
        sources=parse_sources(text),
    )


def kind_of(name: str | None, media_type: str | None) -> str:
    """The kind of a file (a value of `SUFFIXES`) from its name and declared media type.

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
        raise UnsupportedTypeError(f"{name or 'the content'}: unknown file type; name it {', '.join(SUFFIXES)}")
    return kind


def load_bytes(
    data: bytes, kind: str, *, name: str | None = None, url: str | None = None, charset: str | None = None
) -> Document:
    """A `Document` from the raw bytes of a file of the given kind."""
    label = name or url or "the content"
    check_bytes(data, kind, label)
    if kind in formats.KINDS:
        return from_extracted(formats.extract(kind, data, label, Limits()), data, path=name, url=url)
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


def from_extracted(extracted: formats.Extracted, data: bytes, *, path: str | None, url: str | None) -> Document:
    """The `Document` of a file a format parser read; its hash is that of the file's bytes."""
    return from_text(
        extracted.text,
        title=extracted.title,
        path=path,
        url=url,
        pages=extracted.pages,
        digest=hashlib.sha256(data).hexdigest(),
    )


def check_bytes(data: bytes, kind: str, label: str) -> None:
    """The cheap checks of an upload, done before it is queued: its bytes look like its kind."""
    if kind in MAGIC:
        if data.startswith(OLE) and kind in ("docx", "pptx", "xlsx"):
            raise BadInputError(
                f"{label}: an encrypted Office file (or an old binary .doc/.ppt/.xls one), which cannot be read"
            )
        if not data.startswith(MAGIC[kind]):
            if kind == "pdf":
                raise UnsupportedTypeError(f"{label}: not a PDF (it does not start with %PDF-)")
            raise UnsupportedTypeError(f"{label}: its bytes are not those of a {kind} file")
    elif data.startswith(b"%PDF-") or b"\x00" in data[:4096]:
        raise UnsupportedTypeError(f"{label}: binary content, not {kind}")


def parse_isolated(
    data: bytes,
    kind: str,
    name: str,
    limits: Limits,
    *,
    url: str | None = None,
    progress: formats.Progress | None = None,
    failed: Callable[[str, str], None] | None = None,
) -> Document:
    """A file of one of the `ISOLATED` kinds (an upload named `name`, or a page fetched from `url`) parsed
    in a child process, killed past `limits.seconds` (plus `limits.ocr_seconds` once it starts OCR).

    The parsers cannot be interrupted inside a thread, and one page can take minutes; a child process
    can be killed, and its memory goes with it. `progress(done, total)` hears of each page parsed;
    `failed(where, why)` of each page that could not be read (the document is made of the others).
    """
    check_bytes(data, kind, name)
    command = [sys.executable, "-m", "medrag.corpus", kind, name, json.dumps(asdict(limits)), url or ""]
    with tempfile.TemporaryFile() as errors:
        child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors)
        lines: list[bytes] = []
        ocr = threading.Event()
        reader = threading.Thread(target=_read_replies, args=(child.stdout, lines, progress, ocr), daemon=True)
        reader.start()
        started = time.monotonic()
        try:
            try:
                child.stdin.write(data)
                child.stdin.close()
            except BrokenPipeError:
                pass  # the child stopped early: what it said is read below
            while child.poll() is None:
                seconds = limits.seconds + (limits.ocr_seconds if ocr.is_set() else 0)
                if time.monotonic() - started > seconds:
                    child.kill()
                    child.wait()
                    names = "MEDRAG_PARSE_TIMEOUT" + (" + MEDRAG_OCR_TIMEOUT" if ocr.is_set() else "")
                    raise ParseTimeoutError(f"{name}: parsing took longer than {seconds:g} s ({names})")
                time.sleep(0.05)
        finally:
            reader.join(timeout=10)
        errors.seek(0)
        stderr = errors.read()[-300:].decode(errors="replace")
    try:
        reply = json.loads(lines[-1])
    except (ValueError, IndexError):
        raise BadInputError(f"{name}: the parser stopped ({stderr or f'exit status {child.returncode}'})") from None
    if "error" in reply:
        error = next((kind for kind in PARSE_ERRORS if kind.code == reply["error"]), BadInputError)
        raise error(reply["detail"])
    if len(reply["text"]) > limits.chars:
        raise TooLargeError(f"{name}: more than {limits.chars} characters of text (MEDRAG_MAX_DOCUMENT_CHARS)")
    for where, why in reply.pop("failures", {}).items():
        if failed is not None:
            failed(where, why)
    digest = hashlib.sha256(data).hexdigest() if kind in formats.KINDS else None
    return from_text(path=None if url else name, url=url, digest=digest, **reply)


def _read_replies(stream, lines: list[bytes], progress: formats.Progress | None, ocr: threading.Event) -> None:
    """The child's lines: progress reports, passed on, the news that OCR started, then its reply."""
    for line in stream:
        if line.startswith(b'{"ocr"'):
            ocr.set()
        elif line.startswith(b'{"progress"'):
            if progress is not None:
                progress(*json.loads(line)["progress"])
        else:
            lines.append(line)


PARSE_ERRORS = (TooLargeError, UnsupportedTypeError, BadInputError)


def _child(kind: str, name: str, limits: str, url: str) -> None:
    """`python -m medrag.corpus KIND NAME LIMITS URL`: the bytes on stdin; on stdout a JSON line for each
    page parsed, then one with the extracted fields (or the error)."""
    data = sys.stdin.buffer.read()
    bounds = Limits(**json.loads(limits))
    # Memory is bounded here, after the bytes are read: past it an allocation fails and the child stops.
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    memory = bounds.memory if hard == resource.RLIM_INFINITY else min(bounds.memory, hard)
    resource.setrlimit(resource.RLIMIT_AS, (memory, hard))

    def progress(done: int, total: int) -> None:
        sys.stdout.write(json.dumps({"progress": [done, total]}) + "\n")
        sys.stdout.flush()

    def ocr_starts() -> None:
        sys.stdout.write('{"ocr": true}\n')
        sys.stdout.flush()

    try:
        if kind == "html":
            reply = extract_html(data, name, url or None)
        else:
            extracted = formats.extract(kind, data, name, bounds, progress, ocr_starts)
            reply = {
                "text": extracted.text,
                "title": extracted.title,
                "pages": extracted.pages,
                "failures": extracted.failures,
            }
    except BadInputError as error:
        reply = {"error": error.code, "detail": str(error)}
    except MemoryError:
        reply = {
            "error": TooLargeError.code,
            "detail": f"{name}: parsing needs more than {memory} bytes (MEDRAG_MAX_PARSE_MEMORY)",
        }
    except Exception as error:  # a library that could not load or allocate within the memory allowed
        reply = {
            "error": BadInputError.code,
            "detail": f"{name}: the parser failed ({type(error).__name__}: {str(error)[:200]}); "
            f"it had {memory} bytes of memory (MEDRAG_MAX_PARSE_MEMORY)",
        }
    sys.stdout.write(json.dumps(reply) + "\n")


def load_file(path: Path) -> Document:
    """Load a file of any kind `SUFFIXES` names."""
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
