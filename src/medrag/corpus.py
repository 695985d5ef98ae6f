"""Turn files into `Document`s: title, identity, content hash and the articles they cite."""

import hashlib
import re
from pathlib import Path

from .errors import BadInputError
from .types import Document, Source

TEXT_SUFFIXES = {".md", ".markdown", ".txt"}
TITLE = re.compile(r"^#[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
INLINE_LINK = re.compile(r"\(\[([^\[\]]+?),\s*(\d{4})\]\((https?://[^()\s]+)\)")
REFERENCE_HEADING = re.compile(r"^#{1,6}[ \t]+(参考文献|参考资料|References|Bibliography)\s*$", re.MULTILINE | re.IGNORECASE)
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


def from_text(text: str, *, title: str = "", url: str | None = None, path: str | None = None,
              publisher: str = "", date: str = "") -> Document:
    """Build a `Document` from text already in hand."""
    if not text.strip():
        raise BadInputError("the document has no text")
    heading = TITLE.search(text)
    title = title or (heading.group(1).replace("**", "").strip() if heading else "")
    name = Path(path).stem if path else (title or "doc")
    identity = url or (f"file:{Path(path).name}" if path else f"text:{content_hash(text)}")
    return Document(
        doc_id=document_id(identity, name),
        title=title or name,
        text=text,
        content_hash=content_hash(text),
        url=url,
        path=path,
        publisher=publisher,
        date=date,
        sources=parse_sources(text),
    )


def load_file(path: Path) -> Document:
    """Load a markdown or plain-text file."""
    if path.suffix.lower() not in TEXT_SUFFIXES:
        raise BadInputError(f"{path.name}: unsupported file type {path.suffix or '(none)'}; use one of {sorted(TEXT_SUFFIXES)}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise BadInputError(f"{path.name}: not UTF-8 text ({error.reason} at byte {error.start})") from error
    return from_text(text.replace("\r\n", "\n"), path=str(path))


def load_paths(paths: list[Path]) -> list[Document]:
    """Load files and the supported files inside folders, in a stable order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES))
        elif path.exists():
            files.append(path)
        else:
            raise BadInputError(f"{path}: no such file or folder")
    return [load_file(file) for file in files]
