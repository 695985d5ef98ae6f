"""Damaged index versions: checksums in the manifest, recovery to the newest whole version, verify, repair, pruning."""

import json
from dataclasses import fields

import pytest

from medrag import cli
from medrag.corpus import from_text
from medrag.errors import IndexCorruptError, IndexMissingError
from medrag.indexing import update
from medrag.pipeline import Options, Pipeline
from medrag.settings import Settings
from medrag.stores import FaissStore
from medrag.stores import faiss as store

FILES = {
    "vectors.faiss",
    "chunks.jsonl",
    "documents.jsonl",
    "bm25_counts.npz",
    "bm25_terms.txt",
    "sentences.npy",
    "sentence_rows.npy",
}


def write(root, embedder, i: int, keep_versions: int = 3):
    """A new version with one more document (doc i)."""
    target = FaissStore(root, keep_versions)
    change = update(
        target, embedder, add=[from_text(f"# 文{i}\n第{i}份文件的内容。", path=f"{i}.md")], size=120, overlap=20
    )
    return root / change.version


def truncate(path, name: str = "vectors.faiss") -> None:
    data = (path / name).read_bytes()
    (path / name).write_bytes(data[: len(data) // 2])


def test_the_manifest_records_size_and_sha256_of_every_file(tmp_path, fake_embedder):
    path = write(tmp_path, fake_embedder, 1)
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    assert set(manifest["files"]) == FILES
    for name, record in manifest["files"].items():
        assert record["size"] == (path / name).stat().st_size and len(record["sha256"]) == 64


@pytest.mark.parametrize("name", sorted(FILES))
def test_a_truncated_file_is_corruption_with_a_stable_code(tmp_path, fake_embedder, name):
    truncate(write(tmp_path, fake_embedder, 1), name)
    with pytest.raises(IndexCorruptError, match=f"{name} has .* bytes") as caught:
        store.load(tmp_path)
    assert caught.value.code == "index_corrupt"


def test_a_garbled_manifest_is_corruption(tmp_path, fake_embedder):
    path = write(tmp_path, fake_embedder, 1)
    (path / "manifest.json").write_bytes(b"\x00\xffnot json")
    with pytest.raises(IndexCorruptError, match="manifest.json"):
        store.load(tmp_path)
    (path / "manifest.json").write_text("[]", encoding="utf-8")
    with pytest.raises(IndexCorruptError, match="not an object"):
        store.load(tmp_path)


@pytest.mark.parametrize("name", sorted(FILES))
def test_a_version_without_recorded_files_is_checked_by_loading(tmp_path, fake_embedder, name):
    path = write(tmp_path, fake_embedder, 1)
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    del manifest["files"]
    (path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert store.load(tmp_path).path == path and store.problem(path) is None
    truncate(path, name)  # each reader's own error (faiss's RuntimeError, a bad zip, bad JSON) is corruption
    with pytest.raises(IndexCorruptError, match="damaged|inconsistent"):
        store.load(tmp_path)
    assert store.problem(path) is not None


def test_recover_loads_the_newest_whole_version(tmp_path, fake_embedder):
    first = write(tmp_path, fake_embedder, 1)
    second = write(tmp_path, fake_embedder, 2)
    assert FaissStore(tmp_path).recover().path == second
    truncate(second)
    assert FaissStore(tmp_path).recover().path == first
    truncate(first, "chunks.jsonl")
    with pytest.raises(IndexMissingError, match="no whole version"):
        FaissStore(tmp_path).recover()


@pytest.mark.parametrize("pointer", ["missing", "empty", "dangling"])
def test_without_a_live_version_a_write_builds_on_the_newest_whole_one(tmp_path, fake_embedder, pointer):
    write(tmp_path, fake_embedder, 1)
    write(tmp_path, fake_embedder, 2)
    current = tmp_path / "CURRENT"
    {"missing": current.unlink, "empty": lambda: current.write_text(""), "dangling": lambda: current.write_text("v-x")}[
        pointer
    ]()
    with pytest.raises(IndexMissingError, match="medrag repair"):
        store.load(tmp_path)
    third = write(tmp_path, fake_embedder, 3)
    assert store.load(tmp_path).path == third
    assert {d.title for d in store.load(tmp_path).documents.values()} == {"文1", "文2", "文3"}


def test_a_write_over_a_damaged_live_version_keeps_every_document_of_the_served_one(tmp_path, fake_embedder):
    first = write(tmp_path, fake_embedder, 1)
    second = write(tmp_path, fake_embedder, 2)
    truncate(second)
    third = write(tmp_path, fake_embedder, 3)
    assert {d.title for d in store.load(tmp_path).documents.values()} == {"文1", "文3"}
    assert first.is_dir() and second.is_dir() and third.is_dir()  # the damaged one is newer than the base: kept


def test_no_whole_version_refuses_the_write_rather_than_starting_empty(tmp_path, fake_embedder):
    truncate(write(tmp_path, fake_embedder, 1))
    with pytest.raises(IndexMissingError, match="no whole version"):
        write(tmp_path, fake_embedder, 2)


def test_pruning_keeps_k_whole_versions_and_never_counts_a_damaged_one(tmp_path, fake_embedder):
    paths = [write(tmp_path, fake_embedder, i, keep_versions=2) for i in range(3)]
    assert sorted(tmp_path.glob("v-*")) == paths[1:]
    truncate(paths[1])  # older than the live one, damaged: not one of the 2 whole ones
    paths.append(write(tmp_path, fake_embedder, 3, keep_versions=2))
    assert sorted(tmp_path.glob("v-*")) == [paths[2], paths[3]]
    paths.append(write(tmp_path, fake_embedder, 4, keep_versions=2))
    paths.append(write(tmp_path, fake_embedder, 5, keep_versions=2))
    assert sorted(tmp_path.glob("v-*")) == paths[-2:]


def test_pruning_never_removes_the_base_or_a_newer_version(tmp_path, fake_embedder):
    paths = [write(tmp_path, fake_embedder, i, keep_versions=2) for i in range(2)]
    truncate(paths[1])
    (tmp_path / "CURRENT").unlink()
    paths.append(write(tmp_path, fake_embedder, 2, keep_versions=1))  # built on paths[0], the one served
    assert sorted(tmp_path.glob("v-*")) == paths  # the base and the damaged one newer than it stay


def test_verify_reports_every_version_newest_first(tmp_path, fake_embedder):
    first = write(tmp_path, fake_embedder, 1)
    second = write(tmp_path, fake_embedder, 2)
    truncate(second, "documents.jsonl")
    states = FaissStore(tmp_path).verify()
    assert [(s.version, s.problem is None, s.live) for s in states] == [
        (second.name, False, True),
        (first.name, True, False),
    ]
    assert "documents.jsonl has" in states[0].problem


def test_repair_points_current_at_the_newest_whole_version(tmp_path, fake_embedder):
    first = write(tmp_path, fake_embedder, 1)
    second = write(tmp_path, fake_embedder, 2)
    target = FaissStore(tmp_path)
    assert target.repair() == second.name  # the live one is whole: nothing changes
    truncate(second)
    assert target.repair() == first.name == target.live_version()
    assert not list(tmp_path.glob(".CURRENT-*"))  # replaced atomically, no leftover
    (tmp_path / "CURRENT").unlink()
    assert target.repair() == first.name
    truncate(first)
    with pytest.raises(IndexCorruptError, match="no whole version"):
        target.repair()


def pipeline_over(root, embedder) -> Pipeline:
    settings = Settings()
    options = Options(**{f.name: getattr(settings, f.name) for f in fields(Options)})
    return Pipeline(FaissStore(root), embedder, options)


def test_the_pipeline_serves_the_newest_whole_version_degraded_until_repaired(tmp_path, fake_embedder, caplog):
    first = write(tmp_path, fake_embedder, 1)
    second = write(tmp_path, fake_embedder, 2)
    truncate(second)
    pipeline = pipeline_over(tmp_path, fake_embedder)
    with caplog.at_level("ERROR", logger="medrag.pipeline"):
        assert pipeline.snapshot().index.version == first.name
        assert pipeline.snapshot().index.version == first.name  # not loaded again, not logged again
    assert "vectors.faiss has" in pipeline.degraded and "medrag repair" in pipeline.degraded
    assert len(caplog.records) == 1
    FaissStore(tmp_path).repair()
    assert pipeline.snapshot().index.version == first.name and pipeline.degraded is None


def test_the_pipeline_without_any_version_says_there_is_no_index(tmp_path, fake_embedder):
    with pytest.raises(IndexMissingError, match="no index"):
        pipeline_over(tmp_path, fake_embedder).snapshot()


def test_cli_verify_and_repair(tmp_path, fake_embedder, monkeypatch, capsys):
    monkeypatch.setenv("MEDRAG_INDEX_DIR", str(tmp_path))
    first = write(tmp_path, fake_embedder, 1)
    second = write(tmp_path, fake_embedder, 2)
    assert cli.main(["verify"]) == 0
    truncate(second)
    assert cli.main(["verify"]) == 1
    out = capsys.readouterr().out
    assert f"{second.name}  damaged  (live)" in out and f"{first.name}  ok" in out
    assert cli.main(["repair"]) == 0
    assert f"live version: {first.name}" in capsys.readouterr().err
    assert cli.main(["verify"]) == 0
    (tmp_path / "CURRENT").unlink()
    assert cli.main(["verify"]) == 1
    assert "run `medrag repair`" in capsys.readouterr().err
