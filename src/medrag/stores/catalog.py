"""The knowledge bases: what each is called and says about itself, and where its index lives.

Each knowledge base is a store of its own (FAISS: a folder; Milvus: collections behind its own
alias). `default` is the index folder itself, as it was before knowledge bases, so an existing
index is served as `default` without being moved; every other one is `kbs/<name>/` inside it, with
its record in `kbs/<name>/kb.json`. With Milvus the records are kept in Milvus (`MilvusCatalog`),
so every replica sees every knowledge base.
"""

import json
import os
import re
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Protocol

from ..errors import BadInputError, ConflictError, StorageError

DEFAULT = "default"
NAME = re.compile(r"[a-z0-9_-]{1,64}")


@dataclass(frozen=True)
class KnowledgeBase:
    """A knowledge base's record; `embed_model` None means the service's model."""

    name: str
    title: str = ""
    description: str = ""
    embed_model: str | None = None
    private: bool = False
    created_at: float = 0.0

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, record: dict) -> "KnowledgeBase":
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in record.items() if key in known})


SHIPPED = KnowledgeBase(DEFAULT, title="default", description="The documents shipped with medrag.")


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise BadInputError(f"{name!r} is not a knowledge base name: 1 to 64 characters of a-z, 0-9, '_' and '-'")
    return name


class Catalog(Protocol):
    """Where the knowledge bases' records are kept."""

    def records(self) -> list[KnowledgeBase]:
        """Every knowledge base, `default` first."""
        ...

    def get(self, name: str) -> KnowledgeBase | None: ...

    def create(self, record: KnowledgeBase) -> KnowledgeBase:
        """Add a record; ConflictError when the name is taken."""
        ...

    def delete(self, name: str) -> None: ...


def folder(index_dir: Path, name: str) -> Path:
    """A knowledge base's folder: the index folder for `default`, `kbs/<name>/` inside it for the others."""
    return index_dir if name == DEFAULT else index_dir / "kbs" / check_name(name)


class FolderCatalog:
    """The records as `kb.json` files in the knowledge bases' folders."""

    def __init__(self, index_dir: Path):
        self.index_dir = index_dir

    def records(self) -> list[KnowledgeBase]:
        others = sorted((self.index_dir / "kbs").glob("*/kb.json")) if (self.index_dir / "kbs").is_dir() else []
        records = [self._read(path) for path in others]
        return [self.get(DEFAULT) or SHIPPED] + [r for r in records if r is not None and r.name != DEFAULT]

    def get(self, name: str) -> KnowledgeBase | None:
        path = folder(self.index_dir, name) / "kb.json"
        record = self._read(path) if path.is_file() else None
        return record or (SHIPPED if name == DEFAULT else None)

    def create(self, record: KnowledgeBase) -> KnowledgeBase:
        home = folder(self.index_dir, record.name)
        if record.name == DEFAULT or (home / "kb.json").is_file():
            raise ConflictError(f"there is a knowledge base {record.name} already")
        record = KnowledgeBase(**{**record.to_json(), "created_at": record.created_at or time.time()})
        try:
            home.mkdir(parents=True, exist_ok=True)
            temporary = home / ".kb.json.tmp"
            temporary.write_text(json.dumps(record.to_json(), ensure_ascii=False), encoding="utf-8")
            os.replace(temporary, home / "kb.json")
        except OSError as error:
            raise StorageError(f"the knowledge base {record.name} could not be recorded: {error}") from error
        return record

    def delete(self, name: str) -> None:
        (folder(self.index_dir, name) / "kb.json").unlink(missing_ok=True)

    @staticmethod
    def _read(path: Path) -> KnowledgeBase | None:
        try:
            return KnowledgeBase.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None
