"""Which documents of an index version a `Filter` lets a question see: one function for every store.

The stores take the answer as a set of document ids (FAISS masks rows, Milvus searches with a
`doc_id in [...]` expression), so both return the same hits for the same filter.
"""

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from .query import language
from .types import Document, Filter

DATE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")
# What a document's language is judged from: its title and the start of its text.
SAMPLE_CHARS = 2000


def span(date: str) -> tuple[str, str] | None:
    """The first and last day a document's date may mean (a year covers the whole year); None without one."""
    found = DATE.match(date.strip())
    if not found:
        return None
    year, month, day = found.groups()
    if day:
        return f"{year}-{month}-{day}", f"{year}-{month}-{day}"
    if month:
        return f"{year}-{month}-01", f"{year}-{month}-31"
    return f"{year}-01-01", f"{year}-12-31"


def site_of(document: Document) -> set[str]:
    """A document's publisher and its URL's host (without `www.`), lower-cased."""
    names = {document.publisher.strip().lower()} if document.publisher.strip() else set()
    if document.url:
        host = (urlsplit(document.url).hostname or "").lower()
        if host:
            names |= {host, host.removeprefix("www.")}
    return names


def matches(document: Document, wanted: Filter) -> bool:
    if wanted.doc_ids and document.doc_id not in wanted.doc_ids:
        return False
    if wanted.tags and not set(wanted.tags) & set(document.tags):
        return False
    if wanted.sites and not {site.strip().lower().removeprefix("www.") for site in wanted.sites} & site_of(document):
        return False
    if wanted.languages and language(document.title + "\n" + document.text[:SAMPLE_CHARS]) not in wanted.languages:
        return False
    if wanted.date_from or wanted.date_to:
        days = span(document.date)
        if days is None:
            return False
        if wanted.date_from and days[1] < (span(wanted.date_from) or ("", ""))[0]:
            return False
        if wanted.date_to and days[0] > (span(wanted.date_to) or ("", ""))[1]:
            return False
    return True


def allowed(documents: Mapping[str, Document], wanted: Filter | None) -> frozenset[str] | None:
    """The ids of the documents the filter lets through; None when there is no filter (all of them)."""
    if wanted is None or wanted == Filter():
        return None
    return frozenset(doc_id for doc_id, document in documents.items() if matches(document, wanted))
