"""The service on Milvus: a FAISS index migrated with `medrag migrate`, served by two API replicas over HTTP.

Milvus here is `milvus-lite server` on 127.0.0.1, reached over the network as a Milvus server is.
"""

import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from medrag.evaluation import evaluate, format_table, load_questions
from medrag.stores import faiss as store

from ..conftest import DATA, Server, free_port

pytestmark = pytest.mark.slow
TOKEN = "replica-admin-token"


def medrag(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "medrag.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def milvus_env(milvus_server, real_index, tmp_path_factory) -> dict[str, str]:
    """A copy of the real FAISS index, migrated into its own collection on the Milvus server."""
    index_dir = tmp_path_factory.mktemp("milvus-service") / "index"
    shutil.copytree(real_index, index_dir)
    env = {
        "MEDRAG_INDEX_DIR": str(index_dir),
        "MEDRAG_MILVUS_URI": milvus_server.uri,
        "MEDRAG_MILVUS_COLLECTION": f"service_{secrets.token_hex(4)}",
    }
    # A second knowledge base on FAISS, which the migration copies too (record, documents, vectors).
    assert medrag("kb", "create", "wards", "--title", "Wards", env=env).returncode == 0
    added = medrag("add", "--kb", "wards", str(DATA / "widget"), env=env)
    assert added.returncode == 0, added.stderr
    migrated = medrag("migrate", "--to", "milvus", env=env)
    assert migrated.returncode == 0, migrated.stderr
    source = store.load(index_dir)
    assert f"default: copied 1 document(s) and {len(source.chunks)} chunk(s)" in migrated.stderr
    wards = store.load(index_dir / "kbs" / "wards")
    assert f"wards: copied {len(wards.documents)} document(s) and {len(wards.chunks)} chunk(s)" in migrated.stderr
    assert "set MEDRAG_STORE=milvus to serve from it" in migrated.stderr
    return {**env, "MEDRAG_STORE": "milvus"}


@pytest.fixture(scope="module")
def replicas(milvus_env):
    """Two API replicas on one Milvus collection; the first may write documents."""
    index_dir = Path(milvus_env["MEDRAG_INDEX_DIR"])
    writer = Server(index_dir, env={**milvus_env, "MEDRAG_ADMIN_TOKEN": TOKEN})
    reader = Server(index_dir, env=milvus_env)
    running = [writer.wait(), reader.wait()]
    yield running
    for server in running:
        server.stop()


def scores(url: str):
    items = load_questions(DATA / "qa_public.jsonl")

    def ask(question):
        return httpx.post(f"{url}/ask", json={"question": question}, timeout=60).json()

    def search(question, k):
        return httpx.get(f"{url}/search", params={"q": question, "k": k}, timeout=60).json()["hits"]

    return evaluate(items, ask, search)


def test_the_public_set_scores_the_same_on_milvus_as_on_faiss(server, replicas, capsys):
    on_faiss, on_milvus = scores(server.url), scores(replicas[1].url)
    faiss_summary, milvus_summary = on_faiss.summary(), on_milvus.summary()
    with capsys.disabled():  # the figures belong in the CI log, pass or fail
        print("\n" + format_table({"faiss": faiss_summary, "milvus": milvus_summary}))
        for name, report in (("faiss", on_faiss), ("milvus", on_milvus)):
            for item in report.items:
                if not item.correct:
                    print(f"[{name}] missed {item.id}: {item.question} -> {item.answer}")
    for metric in ("answer_accuracy", "refusal_accuracy", "cited_evidence", "evidence_hit@5"):
        assert milvus_summary[metric] == faiss_summary[metric] >= 0.9, metric
    # The answerer's evidence score, which decides refusals, is the same on both stores, question by question.
    assert [i.found for i in on_milvus.items] == [i.found for i in on_faiss.items]
    assert [i.evidence for i in on_milvus.items] == pytest.approx([i.evidence for i in on_faiss.items], abs=1e-6)


def test_health_names_the_milvus_collection_and_where_it_came_from(replicas, milvus_env, real_index):
    health = httpx.get(f"{replicas[1].url}/healthz", timeout=10).json()
    manifest = health["index"]
    assert health["status"] == "ok" and manifest["index_type"] == "milvus-hnsw32-ip"
    assert manifest["collection"].startswith(milvus_env["MEDRAG_MILVUS_COLLECTION"] + "_v_")
    assert manifest["migrated_from"] == store.load(real_index).version


def test_a_document_added_through_one_replica_is_answered_by_the_other(replicas):
    writer, reader = replicas
    question = "佐维斯医疗模型是哪一年发布的？"
    assert httpx.post(f"{reader.url}/ask", json={"question": question}, timeout=60).json()["found"] is False
    text = "# 佐维斯医疗模型\n佐维斯医疗模型由北辰研究院于2031年发布，专门用于罕见病的辅助诊断。"
    created = httpx.post(
        f"{writer.url}/documents",
        json={"title": "佐维斯医疗模型", "text": text},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )
    assert created.status_code == 202, created.text
    job_url = f"{writer.url}{created.headers['Location']}"
    deadline = time.monotonic() + 60
    while (job := httpx.get(job_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).json())[
        "state"
    ] != "done":
        assert job["state"] != "failed" and time.monotonic() < deadline, job
        time.sleep(0.2)
    # The other replica was told nothing: it sees the new version on its next question.
    answer = httpx.post(f"{reader.url}/ask", json={"question": question}, timeout=60).json()
    assert answer["found"] and "2031" in answer["answer"]
    assert answer["citations"][0]["title"] == "佐维斯医疗模型"
    assert httpx.get(f"{reader.url}/healthz", timeout=10).json()["index"]["version"] == job["version"]
    listed = {d["doc_id"]: d for d in httpx.get(f"{reader.url}/documents", timeout=10).json()}
    assert len(listed) == 2 and all(d["chunks"] >= 1 for d in listed.values())


def test_every_knowledge_base_is_migrated_and_seen_by_every_replica(replicas, milvus_env):
    writer, reader = replicas
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert [kb["name"] for kb in httpx.get(f"{reader.url}/kbs", timeout=10).json()] == ["default", "wards"]
    answer = httpx.post(f"{reader.url}/ask", json={"question": "Zorvex 的推荐剂量是多少？", "kb": "wards"}, timeout=60)
    assert answer.json()["found"] is True and "5 毫克" in answer.json()["answer"], answer.text
    assert (
        httpx.post(f"{reader.url}/ask", json={"question": "Zorvex 的推荐剂量是多少？"}, timeout=60).json()["found"]
        is False
    )
    # A knowledge base made through one replica is served by the other, from collections behind its own alias.
    assert httpx.post(f"{writer.url}/kbs", json={"name": "night-shift"}, headers=auth, timeout=30).status_code == 201
    text = "# 夜班交接\n夜班护士在早上七点半向白班护士交接病房记录。"
    created = httpx.post(
        f"{writer.url}/documents", params={"kb": "night-shift"}, json={"title": "夜班交接", "text": text}, headers=auth
    )
    assert created.status_code == 202, created.text
    deadline = time.monotonic() + 60
    while (job := httpx.get(f"{writer.url}{created.headers['Location']}", headers=auth, timeout=10).json())[
        "state"
    ] != "done":
        assert job["state"] != "failed" and time.monotonic() < deadline, job
        time.sleep(0.2)
    assert "night-shift" in [kb["name"] for kb in httpx.get(f"{reader.url}/kbs", timeout=10).json()]
    asked = {"question": "夜班护士在几点交接病房记录？", "kb": "night-shift"}
    answer = httpx.post(f"{reader.url}/ask", json=asked, timeout=60).json()
    assert answer["found"] is True and "七点半" in answer["answer"], answer
    from pymilvus import MilvusClient

    # A connection of its own, down to the TCP socket. pymilvus shares one client per URI, and gRPC
    # shares sockets between channels with the same options; this process's earlier socket has sat
    # idle while the servers worked, and milvus-lite closed it mid-call in CI ("too_many_pings"), twice.
    client = MilvusClient(
        uri=milvus_env["MEDRAG_MILVUS_URI"], dedicated=True, grpc_options={"grpc.use_local_subchannel_pool": 1}
    )
    aliases = client.list_aliases().get("aliases", [])
    name = milvus_env["MEDRAG_MILVUS_COLLECTION"]
    assert {name, f"{name}_kb_wards", f"{name}_kb_night_1shift"} <= set(aliases)
    # Deleting it through one replica drops its collections and leaves the others' alone.
    before = client.describe_collection(name)["collection_name"]
    assert httpx.delete(f"{writer.url}/kbs/night-shift", headers=auth, timeout=30).status_code == 202
    while [c for c in client.list_collections() if c.startswith(f"{name}_kb_night_1shift")]:
        assert time.monotonic() < deadline + 60, "the deleted knowledge base's collections are still there"
        time.sleep(0.2)
    assert f"{name}_kb_night_1shift" not in client.list_aliases().get("aliases", [])
    assert client.describe_collection(name)["collection_name"] == before
    assert "night-shift" not in [kb["name"] for kb in httpx.get(f"{reader.url}/kbs", timeout=10).json()]
    client.close()


def test_migrate_without_a_milvus_says_what_to_set(real_index, tmp_path):
    migrated = medrag("migrate", "--to", "milvus", env={"MEDRAG_INDEX_DIR": str(real_index), "MEDRAG_MILVUS_URI": ""})
    assert migrated.returncode == 2
    assert "set MEDRAG_MILVUS_URI" in migrated.stderr


def test_a_milvus_that_cannot_be_reached_is_a_clean_503(tmp_path):
    from fastapi.testclient import TestClient

    from medrag.api.app import create_app
    from medrag.settings import Settings

    port = free_port()  # nothing listens there
    settings = Settings(store="milvus", milvus_uri=f"http://127.0.0.1:{port}", index_dir=tmp_path)
    with TestClient(create_app(settings)) as client:
        response = client.post("/ask", json={"question": "MedGPT有多少参数？"})
        assert response.status_code == 503
        assert response.json()["code"] == "store_unavailable"
        assert f"Milvus at http://127.0.0.1:{port} failed" in response.json()["detail"]
        health = client.get("/healthz").json()
        assert (health["status"], health["code"]) == ("no_index", "store_unavailable")


def test_the_command_line_builds_and_asks_on_milvus_lite(tmp_path):
    env = {
        "MEDRAG_STORE": "milvus",
        "MEDRAG_MILVUS_URI": str(tmp_path / "milvus.db"),
        "MEDRAG_INDEX_DIR": str(tmp_path / "index"),
    }
    built = medrag("ingest", str(DATA / "widget"), env=env)
    assert built.returncode == 0, built.stderr
    assert "added" in built.stdout and (tmp_path / "milvus.db").is_dir()
    assert not (tmp_path / "index" / "CURRENT").exists()  # nothing went to the FAISS store
    asked = medrag("ask", "Zorvex 的推荐剂量是多少？", env=env)
    assert asked.returncode == 0, asked.stderr
    assert "5 毫克" in asked.stdout and "Zorvex 测试药物说明" in asked.stdout
