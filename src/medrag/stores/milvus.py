"""The Milvus store: the index in Milvus (a standalone server, a cluster, or Milvus Lite) via pymilvus.

Each version is a pair of collections; the alias `<name>` names the live chunks collection:

    <name>_<stamp>            one row per chunk: chunk_id (primary key), doc_id, text, place (JSON:
                              start, end, section, links), dense (HNSW, inner product), lexical (the
                              searchable text, normalised and lower-cased, analysed by Milvus's jieba
                              tokenizer), sparse (its BM25 vector, computed by Milvus), terms (our own
                              `lexical.tokenize` tokens, counted for the answerer's idf, so its
                              scores are the FAISS store's); the manifest is a collection property
    <name>_<stamp>_documents  the documents as JSON, cut in parts that fit a VARCHAR

Adding and removing documents changes the live pair in place and then gives the manifest a new
version name, which tells every reader (every API replica) to reload. A change that replaces every
document (a re-index, a migration) fills a new pair and switches the alias, so readers never see
it half-built. Milvus has no multi-row transactions: an interrupted write is repaired by running
it again (chunks are deleted by document before they are inserted, and a document's record is
written after its chunks).
"""

import base64
import json
import re
import time
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from ..chunking import searchable_text
from ..errors import ConfigError, ConflictError, IndexMismatchError, IndexMissingError, StoreUnavailableError
from ..lexical import SEPARATORS, STOPWORDS, tokenize
from ..textnorm import normalize
from ..types import Chunk, Document, Hit, Source
from .base import Manifest, VersionState, Waiting, check, version_name, write_lock
from .catalog import DEFAULT, SHIPPED, KnowledgeBase

# 2: the reader's sentence vectors stored with each chunk.
FORMAT = 2
MANIFEST = "medrag.manifest"
# Milvus's limits: a VARCHAR holds 65,535 bytes, an array 4,096 elements.
VARCHAR_BYTES = 65_535
TERMS_CAPACITY = 4096
TERM_BYTES = 256
# Documents are stored as ASCII JSON (non-ASCII escaped), so a part of this many characters always fits.
PART_CHARS = 60_000
BATCH = 256
CHUNK_FIELDS = ["chunk_id", "doc_id", "text", "place"]
# HNSW as the FAISS store builds above its exact limit (efSearch 256: recall@10 .94 at 1M chunks,
# benchmarks/scale.py).
HNSW = {"M": 32, "efConstruction": 80}
EF_SEARCH = 256
ANALYZER = {"tokenizer": "jieba", "filter": [{"type": "stop", "stop_words": sorted(STOPWORDS)}]}
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,190}")


def literal(value: str) -> str:
    """A string literal for a Milvus filter expression."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def expression(allowed: Collection[str] | None) -> str:
    """The boolean expression that keeps a search to these documents' chunks; empty for all documents."""
    return "" if allowed is None else f"doc_id in [{', '.join(literal(i) for i in sorted(allowed))}]"


def lexical_text(text: str) -> str:
    """What Milvus's analyzer gets: normalised, lower-cased and without punctuation, as `lexical.tokenize` keeps it.

    jieba splits at punctuation anyway, so spaces in its place segment the words the same way, and
    the analyzer then sees the tokens the FAISS store's BM25 counts.
    """
    return SEPARATORS.sub(" ", normalize(text).lower())


class MilvusStore:
    """The index in Milvus at `uri`: http(s)://host:port for a server, or a local Milvus Lite path ending in .db."""

    def __init__(
        self, uri: str, name: str = "medrag", *, lock_dir: Path, token: str | None = None, keep_versions: int = 3
    ):
        try:
            import pymilvus  # noqa: F401
        except ImportError:
            raise ConfigError("MEDRAG_STORE=milvus needs pymilvus: pip install 'medrag[milvus]'") from None
        if not NAME.fullmatch(name):
            raise ConfigError(
                f"MEDRAG_MILVUS_COLLECTION: {name!r} is not a Milvus name (letters, digits, _; not a digit first)"
            )
        self.uri = uri
        self.name = name
        self.lock_dir = lock_dir
        self.token = token
        self.keep_versions = keep_versions
        self._client = None

    @property
    def client(self):
        """The pymilvus client, connected on first use (a Milvus Lite path starts its engine in this process)."""
        if self._client is None:
            from pymilvus import MilvusClient

            with self.calls():
                self._client = MilvusClient(uri=self.uri, token=self.token or "")
        return self._client

    @contextmanager
    def calls(self) -> Iterator[None]:
        """Milvus's failures as one clear error, never a bare traceback."""
        from grpc import RpcError
        from pymilvus.exceptions import MilvusException

        try:
            yield
        except (MilvusException, RpcError) as error:
            message = getattr(error, "message", None) or str(error)
            raise StoreUnavailableError(f"Milvus at {self.uri} failed: {message}") from error

    def live_version(self) -> str | None:
        live = self._live()
        return live[1].version if live else None

    def load(self, model_id: str | None = None) -> "MilvusIndex":
        live = self._live()
        if live is None:
            raise IndexMissingError(
                f"no index in Milvus at {self.uri} (collection {self.name}): build it with "
                "`medrag ingest` or copy a FAISS index there with `medrag migrate --to milvus`"
            )
        collection, manifest = live
        check(manifest, f"Milvus collection {collection}", FORMAT, model_id)
        with self.calls():
            self.client.load_collection(collection)
            self.client.load_collection(f"{collection}_documents")
            documents, counts = self._documents(collection)
        return MilvusIndex(self, collection, manifest, documents, counts)

    def versions(self) -> list[str]:
        # Only the live collection counts: the older ones are kept for readers still on them.
        live = self.live_version()
        return [live] if live else []

    def recover(self, model_id: str | None = None) -> "MilvusIndex":
        raise IndexMissingError(f"the Milvus store keeps no older version to fall back to (Milvus at {self.uri})")

    def verify(self) -> list[VersionState]:
        raise ConfigError("`medrag verify` checks FAISS index folders; the Milvus store does not support it")

    def repair(self) -> str:
        raise ConfigError("`medrag repair` repairs FAISS index folders; the Milvus store does not support it")

    def destroy(self) -> None:
        with self.calls():
            if self.name in self.client.list_aliases().get("aliases", []):
                self.client.drop_alias(self.name)
            pattern = re.compile(rf"{re.escape(self.name)}_v_\w+")
            for collection in self.client.list_collections():
                if pattern.fullmatch(collection):
                    self.client.drop_collection(collection)

    def lock(self, waiting: Waiting | None = None) -> AbstractContextManager[None]:
        # Milvus has no locks: writers on this machine (the service, the CLI) take turns on a lock file.
        # Writers on other machines must not write at the same time (docs/scale-out.md).
        return write_lock(self.lock_dir, waiting)

    def write(
        self,
        base: "MilvusIndex | None",
        *,
        add: Sequence[Document],
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        sentences: Sequence[np.ndarray],
        remove: Collection[str],
        manifest: Manifest,
    ) -> "MilvusIndex":
        rows, records = _rows(add, chunks, vectors, sentences)  # checked before anything is written
        live = self._live()
        version = version_name()
        replaced = {d.doc_id for d in add}
        with self.calls():
            if live is None or len(remove) >= live[1].documents:
                collection = f"{self.name}_{re.sub(r'[^A-Za-z0-9]', '_', version)}"
                self._create(collection, manifest.dim)
                documents, counts = {}, {}
            else:
                collection = live[0]
                if live[1].dim != manifest.dim:
                    raise IndexMismatchError(
                        f"vectors of dimension {manifest.dim} cannot join collection "
                        f"{collection} of dimension {live[1].dim}: rebuild with `medrag reindex`"
                    )
                self._delete(collection, set(remove) | replaced)
                gone = set(remove) | replaced
                documents = {i: d for i, d in base.documents.items() if i not in gone} if base else {}
                counts = {i: n for i, n in base.counts.items() if i not in gone} if base else {}
            self._insert(collection, rows, records)
            documents.update((d.doc_id, d) for d in add)
            counts.update(Counter(c.doc_id for c in chunks))
            manifest = replace(
                manifest,
                format=FORMAT,
                version=version,
                index_type="milvus-hnsw32-ip",
                collection=collection,
                documents=self._count(f"{collection}_documents", "part == 0"),
                chunks=self._count(collection),
            )
            self.client.alter_collection_properties(
                collection, {MANIFEST: json.dumps(manifest.to_json(), ensure_ascii=False)}
            )
            if live is None or live[0] != collection:
                self._switch(collection)
        return MilvusIndex(self, collection, manifest, documents, counts)

    def _live(self) -> tuple[str, Manifest] | None:
        """The live chunks collection and its manifest, or None before the first write."""
        with self.calls():
            if self.name not in self.client.list_aliases().get("aliases", []):
                return None
            description = self.client.describe_collection(self.name)
        manifest = description.get("properties", {}).get(MANIFEST)
        return (description["collection_name"], Manifest.from_json(json.loads(manifest))) if manifest else None

    def _create(self, collection: str, dim: int) -> None:
        from pymilvus import DataType, Function, FunctionType

        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("chunk_id", DataType.VARCHAR, is_primary=True, max_length=VARCHAR_BYTES)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=VARCHAR_BYTES)
        schema.add_field("text", DataType.VARCHAR, max_length=VARCHAR_BYTES)
        schema.add_field("place", DataType.JSON)
        schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dim)
        # The reader's sentence vectors: float32 rows, base64 (read by chunk id, never searched).
        schema.add_field("sentences", DataType.VARCHAR, max_length=VARCHAR_BYTES)
        schema.add_field(
            "lexical", DataType.VARCHAR, max_length=VARCHAR_BYTES, enable_analyzer=True, analyzer_params=ANALYZER
        )
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_field(
            "terms", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=TERMS_CAPACITY, max_length=TERM_BYTES
        )
        schema.add_function(
            Function(
                name="bm25",
                function_type=FunctionType.BM25,
                input_field_names=["lexical"],
                output_field_names=["sparse"],
            )
        )
        indexes = self.client.prepare_index_params()
        indexes.add_index("dense", index_type="HNSW", metric_type="IP", params=HNSW)
        # BM25 with the FAISS store's k1 and b.
        indexes.add_index(
            "sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params={"bm25_k1": 1.2, "bm25_b": 0.75}
        )
        indexes.add_index("doc_id", index_type="INVERTED")
        # Strong consistency: a reader sees every write acknowledged before its query.
        self.client.create_collection(collection, schema=schema, consistency_level="Strong")
        if not self.client.get_server_version().startswith("milvus_lite"):
            # A server counts terms from this index; Milvus Lite has none for arrays and scans them.
            indexes.add_index("terms", index_type="INVERTED")
        # Loading waits for the indexes (of an empty collection), so creating them need not poll.
        self.client.create_index(collection, indexes, sync=False)
        self.client.load_collection(collection)

        # A numeric key: pymilvus's query iterator pages by key and does not escape string keys.
        documents = self.client.create_schema(auto_id=True, enable_dynamic_field=False)
        documents.add_field("key", DataType.INT64, is_primary=True)
        documents.add_field("doc_id", DataType.VARCHAR, max_length=VARCHAR_BYTES)
        documents.add_field("part", DataType.INT64)
        documents.add_field("chunks", DataType.INT64)
        documents.add_field("data", DataType.VARCHAR, max_length=VARCHAR_BYTES)
        # Milvus wants a vector field in every collection; this one is never searched.
        documents.add_field("unused", DataType.FLOAT_VECTOR, dim=2)
        indexes = self.client.prepare_index_params()
        indexes.add_index("unused", index_type="FLAT", metric_type="L2")
        indexes.add_index("doc_id", index_type="INVERTED")
        self.client.create_collection(f"{collection}_documents", schema=documents, consistency_level="Strong")
        self.client.create_index(f"{collection}_documents", indexes, sync=False)
        self.client.load_collection(f"{collection}_documents")

    def _delete(self, collection: str, doc_ids: set[str]) -> None:
        ids = sorted(doc_ids)
        for start in range(0, len(ids), BATCH):
            condition = f"doc_id in [{', '.join(literal(i) for i in ids[start : start + BATCH])}]"
            self.client.delete(collection, filter=condition)
            self.client.delete(f"{collection}_documents", filter=condition)

    def _insert(self, collection: str, rows: list[dict], records: list[dict]) -> None:
        """Chunks first: a document's record says all its chunks are in."""
        for start in range(0, len(rows), BATCH):
            self.client.insert(collection, rows[start : start + BATCH])
        for start in range(0, len(records), BATCH):
            self.client.insert(f"{collection}_documents", records[start : start + BATCH])

    def _switch(self, collection: str) -> None:
        """Point the alias at `collection`, then drop all but the newest few versions."""
        if self.name in self.client.list_aliases().get("aliases", []):
            self.client.alter_alias(collection, self.name)
        else:
            self.client.create_alias(collection, self.name)
        # Replicas still reading an older version keep it for a while, as with the FAISS store's folders.
        pattern = re.compile(rf"{re.escape(self.name)}_v_\w+")
        versions = sorted(
            c
            for c in self.client.list_collections()
            if pattern.fullmatch(c) and not c.endswith("_documents") and c != collection
        )
        for old in versions[: max(0, len(versions) - (self.keep_versions - 1))]:
            self.client.drop_collection(old)
            self.client.drop_collection(f"{old}_documents")

    def _count(self, collection: str, condition: str = "") -> int:
        return int(self.client.query(collection, filter=condition, output_fields=["count(*)"])[0]["count(*)"])

    def _documents(self, collection: str) -> tuple[dict[str, Document], dict[str, int]]:
        parts: dict[str, dict[int, str]] = {}
        counts: dict[str, int] = {}
        iterator = self.client.query_iterator(
            f"{collection}_documents",
            batch_size=1000,
            filter="part >= 0",
            output_fields=["doc_id", "part", "chunks", "data"],
        )
        try:
            while rows := iterator.next():
                for row in rows:
                    parts.setdefault(row["doc_id"], {})[row["part"]] = row["data"]
                    counts[row["doc_id"]] = row["chunks"]
        finally:
            iterator.close()
        documents = {}
        for doc_id, pieces in parts.items():
            record = json.loads("".join(pieces[i] for i in sorted(pieces)))
            record["sources"] = tuple(Source(**s) for s in record["sources"])
            record["entities"] = tuple(tuple(forms) for forms in record.get("entities", ()))
            record["pages"] = tuple(record.get("pages", ()))
            record["tags"] = tuple(record.get("tags", ()))
            documents[doc_id] = Document(**record)
        return documents, counts


class MilvusIndex:
    """One version of the index in Milvus (an `IndexView`): the documents as loaded, searches on its collection."""

    def __init__(
        self,
        owner: MilvusStore,
        collection: str,
        manifest: Manifest,
        documents: dict[str, Document],
        counts: dict[str, int],
    ):
        self.owner = owner
        self.collection = collection
        self.manifest = manifest
        self.documents = documents
        self.counts = counts
        self._frequencies: dict[str, int] = {}

    @property
    def version(self) -> str:
        return self.manifest.version

    def chunk_counts(self) -> dict[str, int]:
        return dict(self.counts)

    def dense_search(self, vector: np.ndarray, k: int, *, allowed: Collection[str] | None = None) -> list[Hit]:
        if allowed is not None and not allowed:
            return []
        with self.owner.calls():
            found = self.owner.client.search(
                self.collection,
                data=[np.asarray(vector, np.float32).tolist()],
                anns_field="dense",
                limit=k,
                output_fields=CHUNK_FIELDS,
                search_params=self._dense_parameters(k),
                filter=expression(allowed),
            )
        return [
            Hit(chunk=_chunk(h["entity"]), score=float(h["distance"]), dense_score=float(h["distance"]))
            for h in found[0]
        ]

    def lexical_search(self, text: str, k: int, *, allowed: Collection[str] | None = None) -> list[Hit]:
        if allowed is not None and not allowed:
            return []
        with self.owner.calls():
            found = self.owner.client.search(
                self.collection,
                data=[lexical_text(text)],
                anns_field="sparse",
                limit=k,
                output_fields=CHUNK_FIELDS,
                search_params={"metric_type": "BM25"},
                filter=expression(allowed),
            )
        # Milvus Lite reports BM25 as a negative distance, the server as a positive score.
        return [
            Hit(chunk=_chunk(h["entity"]), score=abs(float(h["distance"])), lexical_score=abs(float(h["distance"])))
            for h in found[0]
        ]

    def term_statistics(self, terms: Iterable[str]) -> tuple[int, dict[str, int]]:
        terms = list(terms)
        with self.owner.calls():
            for term in set(terms) - self._frequencies.keys():
                self._frequencies[term] = self.owner._count(self.collection, f"array_contains(terms, {literal(term)})")
        return self.manifest.chunks, {term: self._frequencies[term] for term in terms}

    def sentence_vectors(self, chunks: Sequence[Chunk]) -> list[np.ndarray]:
        ids = list(dict.fromkeys(c.chunk_id for c in chunks))
        if not ids:
            return []
        with self.owner.calls():
            found = self.owner.client.query(
                self.collection,
                filter=f"chunk_id in [{', '.join(literal(i) for i in ids)}]",
                output_fields=["chunk_id", "sentences"],
            )
        packed = {row["chunk_id"]: row["sentences"] for row in found}
        dim = self.manifest.dim
        return [np.frombuffer(base64.b64decode(packed[c.chunk_id]), dtype=np.float32).reshape(-1, dim) for c in chunks]

    @staticmethod
    def _dense_parameters(k: int) -> dict:
        return {"metric_type": "IP", "params": {"ef": max(EF_SEARCH, k)}}


def _rows(
    add: Sequence[Document], chunks: Sequence[Chunk], vectors: np.ndarray, sentences: Sequence[np.ndarray]
) -> tuple[list[dict], list[dict]]:
    """The chunks' rows and the documents' records; a chunk over Milvus's limits is a clear error."""
    documents = {d.doc_id: d for d in add}
    rows = []
    for chunk, vector, own in zip(chunks, np.asarray(vectors, dtype=np.float32), sentences, strict=True):
        searchable = searchable_text(chunk, documents[chunk.doc_id])
        # Tokens over Milvus's element size are dropped: never a real word, and then they count as unseen.
        terms = sorted(t for t in set(tokenize(searchable)) if len(t.encode()) <= TERM_BYTES)
        if len(terms) > TERMS_CAPACITY:
            raise ConfigError(
                f"chunk {chunk.chunk_id} has {len(terms)} distinct terms and Milvus holds "
                f"{TERMS_CAPACITY}: lower MEDRAG_CHUNK_SIZE"
            )
        row = {
            "chunk_id": chunk.chunk_id,
            "doc_id": chunk.doc_id,
            "text": chunk.text,
            "place": {
                "start": chunk.start,
                "end": chunk.end,
                "section": list(chunk.section),
                "links": list(chunk.links),
            },
            "dense": vector.tolist(),
            "sentences": base64.b64encode(np.ascontiguousarray(own, dtype=np.float32).tobytes()).decode(),
            "lexical": lexical_text(searchable),
            "terms": terms,
        }
        for field in ("chunk_id", "doc_id", "text", "lexical", "sentences"):
            if len(row[field].encode()) > VARCHAR_BYTES:
                raise ConfigError(
                    f"chunk {chunk.chunk_id}: its {field} is over Milvus's {VARCHAR_BYTES} bytes: "
                    "lower MEDRAG_CHUNK_SIZE"
                )
        rows.append(row)
    counts = Counter(chunk.doc_id for chunk in chunks)
    records = []
    for document in add:
        data = json.dumps(asdict(document))  # ASCII: every character is one byte
        for part, start in enumerate(range(0, len(data), PART_CHARS)):
            records.append(
                {
                    "doc_id": document.doc_id,
                    "part": part,
                    "chunks": counts[document.doc_id],
                    "data": data[start : start + PART_CHARS],
                    "unused": [0.0, 0.0],
                }
            )
    return rows, records


def _chunk(entity: dict) -> Chunk:
    place = entity["place"]
    return Chunk(
        chunk_id=entity["chunk_id"],
        doc_id=entity["doc_id"],
        text=entity["text"],
        start=place["start"],
        end=place["end"],
        section=tuple(place["section"]),
        links=tuple(place["links"]),
    )


class MilvusCatalog:
    """The knowledge bases' records in the collection `<name>_kbs`, so every replica sharing the Milvus sees them."""

    def __init__(self, uri: str, name: str = "medrag", *, token: str | None = None):
        self.store = MilvusStore(uri, name, lock_dir=Path("."), token=token)
        self.collection = f"{name}_kbs"

    def records(self) -> list[KnowledgeBase]:
        records = sorted(self._rows(""), key=lambda record: record.name)
        shipped = next((r for r in records if r.name == DEFAULT), SHIPPED)
        return [shipped] + [r for r in records if r.name != DEFAULT]

    def get(self, name: str) -> KnowledgeBase | None:
        found = self._rows(f"name == {literal(name)}")
        return found[0] if found else (SHIPPED if name == DEFAULT else None)

    def create(self, record: KnowledgeBase) -> KnowledgeBase:
        if record.name == DEFAULT or self.get(record.name) is not None:
            raise ConflictError(f"there is a knowledge base {record.name} already")
        record = KnowledgeBase(**{**record.to_json(), "created_at": record.created_at or time.time()})
        with self.store.calls():
            self._ensure()
            data = json.dumps(record.to_json())
            self.store.client.insert(self.collection, [{"name": record.name, "data": data, "unused": [0.0, 0.0]}])
        return record

    def delete(self, name: str) -> None:
        with self.store.calls():
            if self.store.client.has_collection(self.collection):
                self.store.client.delete(self.collection, filter=f"name == {literal(name)}")

    def _rows(self, condition: str) -> list[KnowledgeBase]:
        with self.store.calls():
            if not self.store.client.has_collection(self.collection):
                return []
            rows = self.store.client.query(
                self.collection, filter=condition or 'name != ""', output_fields=["data"], limit=16_384
            )
        return [KnowledgeBase.from_json(json.loads(row["data"])) for row in rows]

    def _ensure(self) -> None:
        from pymilvus import DataType

        client = self.store.client
        if client.has_collection(self.collection):
            return
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("name", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("data", DataType.VARCHAR, max_length=VARCHAR_BYTES)
        schema.add_field("unused", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector in every collection
        indexes = client.prepare_index_params()
        indexes.add_index("unused", index_type="FLAT", metric_type="L2")
        client.create_collection(self.collection, schema=schema, consistency_level="Strong")
        client.create_index(self.collection, indexes, sync=False)
        client.load_collection(self.collection)
