"""`medrag add`, `add --cited`, `remove` and `reindex` (real model, real index, loopback sites)."""

import json
import threading

import pytest

from medrag import cli
from medrag.stores import faiss as store

pytestmark = pytest.mark.slow

WHALE = "# 蓝鲸医疗模型\n\n蓝鲸医疗模型由北极星医院于2031年发布，参数规模为42亿。"
ARTICLE = """<html><head><title>苍鹭问诊系统上线</title></head><body><article><h1>苍鹭问诊系统上线</h1>
<p>苍鹭问诊系统由东山医院上线，每天服务三千名门诊患者，平均候诊时间缩短了四十分钟。</p></article></body></html>"""


@pytest.fixture
def env(tmp_path, monkeypatch):
    """MEDRAG_* for a fresh index and corpus folder; fetching may reach 127.0.0.1 only."""
    monkeypatch.setenv("MEDRAG_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("MEDRAG_CORPUS_DIR", str(tmp_path / "corpus"))
    monkeypatch.setenv("MEDRAG_FETCH_ALLOW", "127.0.0.1/32")
    (tmp_path / "corpus").mkdir()
    return tmp_path


def test_add_files_and_urls_each_failure_on_its_own(env, loopback_site, capsys, pdf):
    site = loopback_site()
    site.routes["/heron"] = (200, {"Content-Type": "text/html"}, ARTICLE.encode())
    hidden = loopback_site("127.0.0.2")
    (env / "whale.md").write_text(WHALE, encoding="utf-8")
    (env / "bluewhale.pdf").write_bytes(pdf(["The Bluewhale model was released by Polaris Hospital."]))
    code = cli.main(
        [
            "add",
            str(env / "whale.md"),
            str(env / "bluewhale.pdf"),
            f"{site.url}/heron",
            f"{site.url}/missing",
            f"{hidden.url}/",
            "http://no-such-host.invalid/a",
            "ftp://example.org/x",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 1
    assert f"{site.url}/missing: the server answered HTTP 404" in err
    assert f"{hidden.url}/: refused to fetch 127.0.0.2: a loopback address" in err
    assert "http://no-such-host.invalid/a: cannot resolve host no-such-host.invalid" in err
    assert "ftp://example.org/x: only http and https" in err
    assert "3 document(s) loaded, 4 failed" in err
    assert hidden.connections == 0
    documents = store.load(env / "index").documents.values()
    assert sorted(d.url or d.path for d in documents) == sorted(
        [str(env / "whale.md"), str(env / "bluewhale.pdf"), f"{site.url}/heron"]
    )
    assert out.count("added") == 3


def test_add_cited_fetches_the_manifest_and_offline_failures_change_nothing(env, loopback_site, capsys):
    site = loopback_site()
    site.routes["/heron"] = (200, {"Content-Type": "text/html"}, ARTICLE.encode())
    sources = [
        {"url": f"{site.url}/heron", "title": "苍鹭", "publisher": "东山日报", "year": "2024"},
        {"url": "http://no-such-host.invalid/1", "title": "甲", "publisher": "甲报", "year": "2023"},
        {"url": "https://unreachable.invalid/2", "title": "乙", "publisher": "乙报", "year": "2023"},
    ]
    manifest = env / "corpus" / "sources.json"
    manifest.write_text(json.dumps({"sources": sources[1:]}), encoding="utf-8")
    assert cli.main(["add", "--cited"]) == 1  # offline: every URL fails, each with its own message
    err = capsys.readouterr().err
    assert "no-such-host.invalid/1: cannot resolve host" in err and "unreachable.invalid/2: cannot resolve host" in err
    assert store.current_path(env / "index") is None  # nothing written

    manifest.write_text(json.dumps({"sources": sources}), encoding="utf-8")
    assert cli.main(["add", "--cited"]) == 1
    (document,) = store.load(env / "index").documents.values()
    assert document.url == f"{site.url}/heron" and document.title == "苍鹭问诊系统上线"
    assert (document.publisher, document.date) == ("东山日报", "2024")  # from the manifest


def test_remove_and_reindex(env, capsys):
    (env / "whale.md").write_text(WHALE, encoding="utf-8")
    (env / "falcon.txt").write_text("猎鹰诊断助手由南湖大学研发，用于自动生成影像报告。", encoding="utf-8")
    assert cli.main(["add", str(env / "whale.md"), str(env / "falcon.txt")]) == 0
    index = store.load(env / "index")
    whale = next(d.doc_id for d in index.documents.values() if d.path.endswith("whale.md"))
    capsys.readouterr()

    assert cli.main(["remove", whale]) == 0
    assert f"removed  {whale}" in capsys.readouterr().out
    assert whale not in store.load(env / "index").documents
    assert cli.main(["remove", whale]) == 2
    assert f"no such document: {whale}" in capsys.readouterr().err

    before = store.load(env / "index")
    assert cli.main(["reindex"]) == 0
    out, err = capsys.readouterr()
    after = store.load(env / "index")
    assert after.version != before.version and "reindexed" in out and "embedding" in err
    assert [c.chunk_id for c in after.chunks] == [c.chunk_id for c in before.chunks]


def test_a_cli_writer_waits_for_the_lock(env, capsys):
    (env / "whale.md").write_text(WHALE, encoding="utf-8")
    held, release = threading.Event(), threading.Event()

    def hold():
        with store.write_lock(env / "index"):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    threading.Timer(1.0, release.set).start()
    assert cli.main(["add", str(env / "whale.md")]) == 0
    holder.join()
    assert "another writer holds the index lock; waiting" in capsys.readouterr().err
    assert len(store.load(env / "index").documents) == 1


def test_nothing_to_add_is_a_clear_error(env, capsys):
    assert cli.main(["add"]) == 2
    assert "nothing to add" in capsys.readouterr().err
    assert cli.main(["add", "--cited"]) == 2
    assert "no sources manifest" in capsys.readouterr().err
