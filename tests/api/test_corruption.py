"""A damaged index: it serves the newest whole version, degraded, loses nothing.

Each case damages a copy of one index (a small corpus built by a real server, plus a document added
over HTTP), asks a question of every document the version served should hold, and ends with
`medrag repair`, after which the index is whole again. Every case runs through the real pipeline
and model in this process; one case of each kind of damage also runs through a real `medrag serve`,
whose /healthz and log are checked too. (A server for each of the 35 cases cost 90 s of the suite.)
"""

import shutil
from dataclasses import fields

import httpx
import pytest

from medrag import cli
from medrag.pipeline import Options, Pipeline
from medrag.settings import Settings
from medrag.stores import FaissStore
from tests import http_jobs
from tests.unit.test_recovery import FILES as VERSION_FILES

from ..conftest import Server

pytestmark = pytest.mark.slow

TOKEN = "corruption-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CORPUS_FILES = {
    "whale.md": "# 蓝鲸医疗模型\n\n蓝鲸医疗模型由北极星医院于2031年发布，参数规模为42亿。",
    "heron.md": "# 苍鹭问诊系统\n\n苍鹭问诊系统由东山医院上线，每天服务三千名门诊患者。",
}
ADDED = "# 雪豹康复机器人\n\n雪豹康复机器人由西岭康复医院研制，用于中风患者的上肢康复训练。"
# A question for each document, and what its answer says.
QUESTIONS = {
    "whale.md": ("蓝鲸医疗模型由哪家医院发布？", "北极星医院"),
    "heron.md": ("苍鹭问诊系统由哪家医院上线？", "东山医院"),
    "added": ("雪豹康复机器人由哪家医院研制？", "西岭康复医院"),
}
# The manifest and every file it records (the list tests/unit/test_recovery.py checks it against).
FILES = ["manifest.json", *sorted(VERSION_FILES)]


def damage_file(path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "emptied":
        path.write_bytes(b"")
    elif how == "garbled":  # the same size, bytes in the middle overwritten
        middle = len(data) // 2
        path.write_bytes(data[:middle] + b"\xff\x00" * 4 + data[middle + 8 :])
    else:
        path.unlink()


CASES = [(f"{name}-{how}", name, how) for name in FILES for how in ("truncated", "emptied", "garbled", "deleted")]
CASES += [
    ("current-missing", None, "missing"),
    ("current-empty", None, "empty"),
    ("current-dangling", None, "dangling"),
]
CASES += [("live-folder-deleted", None, "folder")]
# Through a real server: a damaged file, a pointer naming no version, and the live folder gone.
SERVED_CASES = ["vectors.faiss-garbled", "chunks.jsonl-truncated", "current-dangling", "live-folder-deleted"]


def finish(http: httpx.Client, response: httpx.Response) -> dict:
    return http_jobs.finish(http, response, AUTH)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """An index of two versions: the small corpus (built by `medrag serve`), then one document added over HTTP."""
    root = tmp_path_factory.mktemp("corruption")
    corpus_dir = root / "corpus"
    corpus_dir.mkdir()
    for name, text in CORPUS_FILES.items():
        (corpus_dir / name).write_text(text, encoding="utf-8")
    index_dir = root / "index"
    server = Server(index_dir, env={"MEDRAG_ADMIN_TOKEN": TOKEN}, corpus_dir=corpus_dir).wait()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            first = http.get("/healthz").json()["index"]["version"]
            job = finish(http, http.post("/documents", json={"title": "雪豹", "text": ADDED}, headers=AUTH))
            assert job["state"] == "done", job
            (added,) = job["outcomes"]
    finally:
        server.stop()
    assert (index_dir / "CURRENT").read_text(encoding="utf-8") == job["version"]
    return {"index": index_dir, "corpus": corpus_dir, "older": first, "live": job["version"], "added": added}


def damaged_copy(built, tmp_path, name, how):
    """A copy of the built index with one kind of damage; the version it should serve, and its versions."""
    index_dir = tmp_path / "index"
    shutil.copytree(built["index"], index_dir)
    live = index_dir / built["live"]
    current = index_dir / "CURRENT"
    if name is not None:
        damage_file(live / name, how)
    elif how == "missing":
        current.unlink()
    elif how == "empty":
        current.write_text("", encoding="utf-8")
    elif how == "dangling":
        current.write_text("v-20000101T000000.000000-000000", encoding="utf-8")
    else:
        shutil.rmtree(live)
    # The live version whole (only CURRENT damaged): it is served with the added document.
    served = built["live"] if name is None and how != "folder" else built["older"]
    return index_dir, served, sorted(p.name for p in index_dir.glob("v-*"))


def expected_documents(built, served) -> set[str]:
    return {"whale.md", "heron.md"} | ({"added"} if served == built["live"] else set())


def repair(index_dir, served, monkeypatch, capsys) -> None:
    """`medrag repair` run in this process (a child would spend most of its time importing)."""
    monkeypatch.setenv("MEDRAG_INDEX_DIR", str(index_dir))
    assert cli.main(["repair"]) == 0
    assert f"live version: {served}" in capsys.readouterr().err


@pytest.mark.parametrize(("name", "how"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_a_damaged_index_is_served_from_the_newest_whole_version(
    built, real_embedder, tmp_path, monkeypatch, capsys, name, how
):
    index_dir, served, versions = damaged_copy(built, tmp_path, name, how)
    settings = Settings()
    options = Options(**{f.name: getattr(settings, f.name) for f in fields(Options)})
    pipeline = Pipeline(FaissStore(index_dir), real_embedder, options)
    try:
        snapshot = pipeline.snapshot()
        assert snapshot.index.version == served
        assert pipeline.degraded is not None and "medrag repair" in pipeline.degraded
        documents = snapshot.index.documents
        assert len(documents) == len(expected_documents(built, served))
        if served == built["live"]:
            assert built["added"] in documents
        for key in expected_documents(built, served):
            question, answer = QUESTIONS[key]
            *_, reply = pipeline.stream(snapshot, question, None, "hybrid", (), incremental=False)
            assert reply.found and answer in reply.text, (key, reply)
        assert sorted(p.name for p in index_dir.glob("v-*")) == versions  # nothing pruned
        repair(index_dir, served, monkeypatch, capsys)
        assert pipeline.snapshot().index.version == served and pipeline.degraded is None
    finally:
        pipeline.close()


@pytest.mark.parametrize(
    ("name", "how"),
    [case[1:] for case in CASES if case[0] in SERVED_CASES],
    ids=[case[0] for case in CASES if case[0] in SERVED_CASES],
)
def test_a_real_server_on_a_damaged_index_says_degraded_answers_and_is_repaired(
    built, tmp_path, monkeypatch, capsys, name, how
):
    index_dir, served, versions = damaged_copy(built, tmp_path, name, how)
    server = Server(index_dir, corpus_dir=built["corpus"]).wait()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            health = http.get("/healthz").json()
            assert health["status"] == "degraded", health
            assert health["index"]["version"] == served and "medrag repair" in health["detail"]
            documents = {d["doc_id"]: d for d in http.get("/documents").json()}
            assert len(documents) == len(expected_documents(built, served))
            for key in expected_documents(built, served):
                question, answer = QUESTIONS[key]
                reply = http.post("/ask", json={"question": question}).json()
                assert reply["found"] and answer in reply["answer"], (key, reply)
            if served == built["live"]:
                assert built["added"] in documents
            assert sorted(p.name for p in index_dir.glob("v-*")) == versions  # nothing pruned
            repair(index_dir, served, monkeypatch, capsys)
            assert http.get("/healthz").json()["status"] == "ok"
    finally:
        server.stop()
    server.log = open(server.log.name, encoding="utf-8")  # noqa: SIM115
    with server.log:
        log = server.log.read()
    assert log.count("index degraded") == 1, log  # logged once, at error level
    assert "ERROR medrag.pipeline: index degraded" in log
