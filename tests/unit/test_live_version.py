"""The live-version check asked before every question: stats, not a file read, and still sees every writer."""

import os
import subprocess
import sys
import time
from pathlib import Path

from medrag.corpus import from_text
from medrag.indexing import update
from medrag.stores import FaissStore
from medrag.stores import faiss as store

ROOT = Path(__file__).resolve().parents[2]

# Another process writes one more document with the fake embedder, as `medrag add` would.
WRITER = """
import sys
from pathlib import Path
from medrag.corpus import from_text
from medrag.embedding import FakeEmbedder
from medrag.indexing import update
from medrag.stores import FaissStore
change = update(FaissStore(Path(sys.argv[1])), FakeEmbedder(), add=[from_text("# 乙\\n第二份文件。", path="b.md")],
                size=120, overlap=20)
print(change.version)
"""


def settle(root: Path) -> None:
    """Date CURRENT and the folder a second back, as if the last write were long ago."""
    past = time.time_ns() - 1_000_000_000
    for path in (root / "CURRENT", root):
        os.utime(path, ns=(past, past))


def test_a_settled_pointer_is_read_once_and_a_write_by_another_process_is_seen(tmp_path, fake_embedder, monkeypatch):
    first = update(
        FaissStore(tmp_path), fake_embedder, add=[from_text("# 甲\n第一份文件。", path="a.md")], size=120, overlap=20
    )
    settle(tmp_path)
    reader = FaissStore(tmp_path)
    reads = []
    original = store.current_path
    monkeypatch.setattr(store, "current_path", lambda root: reads.append(root) or original(root))
    assert [reader.live_version() for _ in range(50)] == [first.version] * 50
    assert len(reads) == 1

    written = subprocess.run(
        [sys.executable, "-c", WRITER, str(tmp_path)],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert written != first.version
    assert reader.live_version() == written
    assert len(reads) == 2


def test_a_fresh_pointer_is_read_again_until_it_settles(tmp_path, fake_embedder, monkeypatch):
    # Written just now: a second change within the same clock tick would leave the stats unchanged.
    first = update(
        FaissStore(tmp_path), fake_embedder, add=[from_text("# 甲\n第一份文件。", path="a.md")], size=120, overlap=20
    )
    reader = FaissStore(tmp_path)
    reads = []
    original = store.current_path
    monkeypatch.setattr(store, "current_path", lambda root: reads.append(root) or original(root))
    assert reader.live_version() == reader.live_version() == first.version
    assert len(reads) == 2
    settle(tmp_path)
    assert reader.live_version() == reader.live_version() == first.version
    assert len(reads) == 3


def test_an_operator_rewriting_current_in_place_and_removing_the_live_folder_are_seen(tmp_path, fake_embedder):
    target = FaissStore(tmp_path)
    one = update(target, fake_embedder, add=[from_text("# 甲\n第一份文件。", path="a.md")], size=120, overlap=20)
    two = update(target, fake_embedder, add=[from_text("# 乙\n第二份文件。", path="b.md")], size=120, overlap=20)
    settle(tmp_path)
    reader = FaissStore(tmp_path)
    assert reader.live_version() == two.version
    (tmp_path / "CURRENT").write_text(one.version, encoding="utf-8")  # in place: same inode and length, a newer time
    assert reader.live_version() == one.version
    settle(tmp_path)
    assert reader.live_version() == one.version
    for file in (tmp_path / one.version).iterdir():
        file.unlink()
    (tmp_path / one.version).rmdir()
    assert reader.live_version() is None
