"""`medrag serve --workers 2`: two processes answer from one index, neither writes, both serve a new version."""

import shutil
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from medrag import indexing
from medrag.corpus import from_text
from medrag.stores import FaissStore
from tests.conftest import Server

pytestmark = pytest.mark.slow

TOKEN = "workers-token"
NEW = "# 鲸鱼\n\n蓝鲸是地球上体型最大的动物，成年蓝鲸体长可达三十三米。"


def healths(url: str, count: int = 16) -> list[dict]:
    """`count` /healthz answers, each over its own connection, several at once (so both workers answer)."""

    def one(_: int) -> dict:
        with httpx.Client(timeout=30) as client:
            return client.get(f"{url}/healthz").json()

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


def seen(url: str, want_processes: int = 2, rounds: int = 30) -> dict[int, str]:
    """The version each process reports, once `want_processes` of them have answered."""
    versions: dict[int, str] = {}
    for _ in range(rounds):
        versions.update((body["process"], body["index"]["version"]) for body in healths(url))
        if len(versions) >= want_processes:
            break
    return versions


def test_two_workers_answer_refuse_writes_and_both_serve_a_version_written_by_another_process(
    real_index, real_embedder, tmp_path
):
    index_dir = tmp_path / "index"
    shutil.copytree(real_index, index_dir)
    server = Server(index_dir, env={"MEDRAG_ADMIN_TOKEN": TOKEN}, args=("--workers", "2")).wait()
    try:
        answer = httpx.post(f"{server.url}/ask", json={"question": "MedGPT的参数规模是多少？"}, timeout=60).json()
        assert answer["found"] and "1000亿" in answer["answer"]
        before = seen(server.url)
        assert len(before) == 2 and len(set(before.values())) == 1

        refused = httpx.post(
            f"{server.url}/documents",
            json={"text": NEW, "title": "鲸鱼"},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30,
        )
        assert refused.status_code == 403 and refused.json()["code"] == "writes_disabled"
        assert "--workers" in refused.json()["detail"]

        # Another process writes (as `medrag add` would); every worker serves it from its next request.
        change = indexing.update(
            FaissStore(index_dir),
            real_embedder,
            add=[from_text(NEW, title="鲸鱼", path="whale.md")],
            size=300,
            overlap=60,
        )
        assert change.version not in before.values()
        after = seen(server.url)
        assert len(after) == 2 and set(after.values()) == {change.version}
        for _ in range(4):
            answer = httpx.post(f"{server.url}/ask", json={"question": "蓝鲸体长可达多少米？"}, timeout=60).json()
            assert answer["found"] and "三十三米" in answer["answer"]
    finally:
        server.stop()
