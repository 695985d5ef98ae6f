"""Knowledge bases over HTTP against a real server: isolation, filters, /v1 models, private ones and read tokens."""

import json
import shutil
import time

import httpx
import pytest

from ..conftest import Server

pytestmark = pytest.mark.slow

TOKEN = "kb-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
QINGLAN = (
    "# 青岚医院远程会诊\n\n青岚医院的远程会诊平台于2023年上线。青岚医院的远程会诊平台每月服务约4200名患者，"
    "覆盖周边十二个乡镇卫生院。"
)
YUNSHAN = "# 云杉诊所智能分诊\n\n云杉诊所的智能分诊系统把患者的平均候诊时间缩短到18分钟。云杉诊所位于山城。"
SECRET = "# 白桦医院药房\n\n白桦医院药房的自动发药机每小时能发出600份处方。"
ORIGIN = "https://clinic.example"


@pytest.fixture(scope="module")
def running(real_index, tmp_path_factory):
    index_dir = tmp_path_factory.mktemp("kbs") / "index"
    shutil.copytree(real_index, index_dir)
    server = Server(index_dir, env={"MEDRAG_ADMIN_TOKEN": TOKEN, "MEDRAG_READ_TOKEN_TTL": "3600"}).wait()
    server.index_dir = index_dir
    yield server
    server.stop()


def finished(server, job: dict, kb: str) -> dict:
    for _ in range(600):
        state = httpx.get(f"{server.url}/jobs/{job['job_id']}", params={"kb": kb}, headers=AUTH).json()
        if state["state"] in ("done", "failed", "cancelled"):
            return state
        time.sleep(0.1)
    raise AssertionError(f"job {job['job_id']} did not finish")


def add(server, kb: str, title: str, text: str, url: str, tags: list[str]) -> str:
    posted = httpx.post(
        f"{server.url}/documents",
        params={"kb": kb},
        json={"title": title, "text": text, "url": url, "tags": tags},
        headers=AUTH,
        timeout=30,
    )
    assert posted.status_code == 202, posted.text
    assert posted.headers["location"] == f"/jobs/{posted.json()['job_id']}?kb={kb}"
    state = finished(server, posted.json(), kb)
    assert state["state"] == "done", state
    # The job is the knowledge base's own: another one does not know it.
    assert httpx.get(f"{server.url}/jobs/{posted.json()['job_id']}", headers=AUTH).status_code == 404
    (doc_id,) = state["outcomes"]
    return doc_id


def ask(server, question: str, h: dict | None = None, **body) -> httpx.Response:
    return httpx.post(f"{server.url}/ask", json={"question": question, **body}, timeout=60, headers=h or {})


@pytest.fixture(scope="module")
def clinics(running):
    created = httpx.post(
        f"{running.url}/kbs", json={"name": "clinics", "title": "Clinics", "description": "two clinics"}, headers=AUTH
    )
    assert created.status_code == 201, created.text
    qinglan = add(running, "clinics", "青岚医院远程会诊", QINGLAN, "https://www.qinglan.example/care", ["telecare"])
    yunshan = add(running, "clinics", "云杉诊所智能分诊", YUNSHAN, "https://yunshan.example/triage", ["triage"])
    return {"qinglan": qinglan, "yunshan": yunshan}


def test_knowledge_bases_are_listed_created_once_and_named_strictly(running, clinics):
    listed = httpx.get(f"{running.url}/kbs").json()
    assert [kb["name"] for kb in listed] == ["default", "clinics"]
    assert listed[1] | {"created_at": 0} == {
        "name": "clinics",
        "title": "Clinics",
        "description": "two clinics",
        "embed_model": None,
        "private": False,
        "created_at": 0,
    }
    again = httpx.post(f"{running.url}/kbs", json={"name": "clinics"}, headers=AUTH)
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    for bad in ("Clinics", "a/b", "x" * 65, ""):
        assert httpx.post(f"{running.url}/kbs", json={"name": bad}, headers=AUTH).status_code == 422
    assert httpx.post(f"{running.url}/kbs", json={"name": "nope"}).status_code == 401
    # A new one answers, with nothing, before its first document.
    assert httpx.post(f"{running.url}/kbs", json={"name": "empty"}, headers=AUTH).status_code == 201
    assert httpx.get(f"{running.url}/documents", params={"kb": "empty"}).json() == []
    assert httpx.get(f"{running.url}/search", params={"q": "医院", "kb": "empty"}).json()["hits"] == []
    nothing = ask(running, "青岚医院每月服务多少患者？", kb="empty")
    assert nothing.status_code == 200 and nothing.json()["found"] is False
    assert httpx.delete(f"{running.url}/kbs/empty", headers=AUTH).status_code == 202
    # A knowledge base's model is one the operator offers (MEDRAG_EMBED_MODELS), never one a request names.
    other = httpx.post(f"{running.url}/kbs", json={"name": "other", "embed_model": "someone/model"}, headers=AUTH)
    assert other.status_code == 422 and "not offered here" in other.json()["detail"]
    missing = ask(running, "青岚医院每月服务多少患者？", kb="nowhere")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


def test_each_question_is_answered_only_from_its_own_knowledge_base(running, clinics):
    own = ask(running, "青岚医院的远程会诊平台每月服务多少患者？", kb="clinics").json()
    assert own["found"] is True and "4200" in own["answer"], own
    assert {c["doc_id"] for c in own["citations"]} == {clinics["qinglan"]}

    shipped = ask(running, "MedGPT有多少参数？").json()  # no kb: default, as before knowledge bases
    assert shipped["found"] is True and "1000亿" in shipped["answer"]
    assert not {c["doc_id"] for c in shipped["citations"]} & set(clinics.values())

    # Neither sees the other's passages.
    assert ask(running, "青岚医院的远程会诊平台每月服务多少患者？").json()["found"] is False
    crossed = ask(running, "MedGPT有多少参数？", kb="clinics").json()
    assert crossed["found"] is False and crossed["citations"] == []
    hits = httpx.get(f"{running.url}/search", params={"q": "青岚医院 远程会诊", "k": 10}).json()["hits"]
    assert not {h["doc_id"] for h in hits} & set(clinics.values())

    documents = httpx.get(f"{running.url}/documents", params={"kb": "clinics"}).json()
    assert {d["doc_id"] for d in documents} == set(clinics.values())
    assert not {d["doc_id"] for d in httpx.get(f"{running.url}/documents").json()} & set(clinics.values())
    one = httpx.get(f"{running.url}/documents/{clinics['yunshan']}", params={"kb": "clinics"})
    assert one.status_code == 200 and one.json()["chunks"] >= 1
    assert httpx.get(f"{running.url}/documents/{clinics['yunshan']}").status_code == 404


def test_a_filtered_question_is_answered_only_from_the_documents_it_names(running, clinics):
    question = "青岚医院的远程会诊平台每月服务多少患者？"
    kept = ask(running, question, kb="clinics", filter={"doc_ids": [clinics["qinglan"]]}).json()
    assert kept["found"] is True and {c["doc_id"] for c in kept["citations"]} == {clinics["qinglan"]}
    excluded = ask(running, question, kb="clinics", filter={"doc_ids": [clinics["yunshan"]]}).json()
    assert excluded["found"] is False and excluded["citations"] == []
    nothing = ask(running, question, kb="clinics", filter={"tags": ["no-such-tag"]})
    assert nothing.status_code == 200 and nothing.json()["found"] is False  # excluding everything is no error
    streamed = httpx.post(
        f"{running.url}/ask/stream",
        json={"question": question, "kb": "clinics", "filter": {"tags": ["telecare"]}},
        timeout=60,
    ).text
    done = json.loads(streamed.split("event: done\ndata: ")[1].split("\n")[0])
    assert done["found"] is True and {c["doc_id"] for c in done["citations"]} == {clinics["qinglan"]}
    by_tag = ask(running, question, kb="clinics", filter={"tags": ["telecare"], "sites": ["qinglan.example"]}).json()
    assert by_tag["found"] is True and {c["doc_id"] for c in by_tag["citations"]} == {clinics["qinglan"]}

    search = f"{running.url}/search"
    both = {
        h["doc_id"] for h in httpx.get(search, params={"q": "医院 诊所 患者", "kb": "clinics", "k": 10}).json()["hits"]
    }
    assert both == set(clinics.values())
    for params, expected in (
        ({"tag": "triage"}, {clinics["yunshan"]}),
        ({"site": "yunshan.example"}, {clinics["yunshan"]}),
        ({"doc_id": clinics["qinglan"]}, {clinics["qinglan"]}),
        ({"language": "en"}, set()),
    ):
        hits = httpx.get(search, params={"q": "医院 诊所 患者", "kb": "clinics", "k": 10, **params}).json()["hits"]
        assert {h["doc_id"] for h in hits} == expected, params
    assert httpx.get(search, params={"q": "医院", "kb": "clinics", "date_from": "May 2024"}).status_code == 422


def test_the_openai_face_serves_each_knowledge_base_as_a_model(running, clinics):
    models = [m["id"] for m in httpx.get(f"{running.url}/v1/models").json()["data"]]
    assert models == ["medrag", "medrag/default", "medrag/clinics"]
    question = [{"role": "user", "content": "云杉诊所的智能分诊系统把候诊时间缩短到多少分钟？"}]
    body = httpx.post(
        f"{running.url}/v1/chat/completions", json={"model": "medrag/clinics", "messages": question}, timeout=60
    ).json()
    assert body["model"] == "medrag/clinics" and "18" in body["choices"][0]["message"]["content"]
    assert {c["doc_id"] for c in body["citations"]} == {clinics["yunshan"]}
    filtered = httpx.post(
        f"{running.url}/v1/chat/completions",
        json={"model": "medrag/clinics", "messages": question, "filter": {"doc_ids": [clinics["qinglan"]]}},
        timeout=60,
    ).json()
    assert filtered["medrag"]["found"] is False
    shipped = httpx.post(f"{running.url}/v1/chat/completions", json={"model": "medrag", "messages": question}).json()
    assert shipped["medrag"]["found"] is False
    unknown = httpx.post(f"{running.url}/v1/chat/completions", json={"model": "medrag/nowhere", "messages": question})
    assert unknown.status_code == 404 and unknown.json()["code"] == "model_not_found"


def test_a_write_waiting_in_one_knowledge_base_holds_up_no_reader_of_any(running, clinics):
    from medrag.stores import FaissStore

    # Another writer (as `medrag add` would) holds the clinics index while a document is posted to it.
    with FaissStore(running.index_dir / "kbs" / "clinics").lock():
        posted = httpx.post(
            f"{running.url}/documents",
            params={"kb": "clinics"},
            json={"title": "t", "text": "# 新\n新的内容。"},
            headers=AUTH,
        )
        assert posted.status_code == 202
        for _ in range(300):
            job = httpx.get(f"{running.url}/jobs/{posted.json()['job_id']}", params={"kb": "clinics"}, headers=AUTH)
            if job.json()["waiting"]:
                break
            time.sleep(0.1)
        assert job.json()["waiting"] is True and job.json()["state"] == "running"
        # Meanwhile questions to it and to the others are answered.
        assert ask(running, "青岚医院的远程会诊平台每月服务多少患者？", kb="clinics").json()["found"] is True
        assert ask(running, "MedGPT有多少参数？").json()["found"] is True
    assert finished(running, posted.json(), "clinics")["state"] == "done"
    removed = httpx.delete(
        f"{running.url}/documents/{next(iter(finished(running, posted.json(), 'clinics')['outcomes']))}",
        params={"kb": "clinics"},
        headers=AUTH,
    )
    assert removed.status_code == 202 and finished(running, removed.json(), "clinics")["state"] == "done"


def test_a_private_knowledge_base_needs_a_read_token_for_its_origin(running, clinics):
    created = httpx.post(f"{running.url}/kbs", json={"name": "pharmacy", "private": True}, headers=AUTH)
    assert created.status_code == 201 and created.json()["private"] is True
    add(running, "pharmacy", "白桦医院药房", SECRET, "https://baihua.example/pharmacy", [])
    question = "白桦医院药房的自动发药机每小时能发出多少份处方？"

    refused = ask(running, question, kb="pharmacy")
    assert refused.status_code == 401 and set(refused.json()) == {"detail", "code"}
    assert refused.json()["code"] == "unauthorized"
    assert httpx.get(f"{running.url}/documents", params={"kb": "pharmacy"}).status_code == 401
    assert httpx.get(f"{running.url}/search", params={"q": "发药机", "kb": "pharmacy"}).status_code == 401
    assert httpx.post(f"{running.url}/kbs/pharmacy/tokens", json={"origin": ORIGIN}).status_code == 401

    minted = httpx.post(f"{running.url}/kbs/pharmacy/tokens", json={"origin": ORIGIN, "ttl_seconds": 3}, headers=AUTH)
    assert minted.status_code == 201, minted.text
    token = minted.json()["token"]
    assert minted.json()["kb"] == "pharmacy" and minted.json()["origin"] == ORIGIN
    reader = {"Authorization": f"Bearer {token}", "Origin": ORIGIN}
    accepted = ask(running, question, kb="pharmacy", h=reader)
    assert accepted.status_code == 200 and "600" in accepted.json()["answer"], accepted.text

    foreign = ask(running, question, kb="pharmacy", h={**reader, "Origin": "https://other.example"})
    assert foreign.status_code == 401 and "another origin" in foreign.json()["detail"]
    other_kb = ask(running, "MedGPT有多少参数？", kb="clinics", h=reader)
    assert other_kb.status_code == 200  # a public knowledge base ignores the token
    forged = ask(running, question, kb="pharmacy", h={**reader, "Authorization": f"Bearer {token[:-2]}xx"})
    assert forged.status_code == 401
    assert ask(running, question, kb="pharmacy", h=AUTH).status_code == 200  # the admin token reads it too

    time.sleep(max(0.0, minted.json()["expires_at"] - time.time()) + 0.5)
    expired = ask(running, question, kb="pharmacy", h=reader)
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]


def test_deleting_a_knowledge_base_leaves_the_others_untouched(running, clinics):
    before = sorted(p.name for p in running.index_dir.glob("v-*"))
    live = (running.index_dir / "CURRENT").read_text()
    assert httpx.delete(f"{running.url}/kbs/default", headers=AUTH).status_code == 409
    assert httpx.delete(f"{running.url}/kbs/clinics").status_code == 401
    deleted = httpx.delete(f"{running.url}/kbs/clinics", headers=AUTH)
    assert deleted.status_code == 202 and deleted.json()["name"] == "clinics"
    assert "clinics" not in [kb["name"] for kb in httpx.get(f"{running.url}/kbs").json()]
    assert ask(running, "青岚医院的远程会诊平台每月服务多少患者？", kb="clinics").status_code == 404
    for _ in range(100):
        if not (running.index_dir / "kbs" / "clinics").exists():
            break
        time.sleep(0.1)
    assert not (running.index_dir / "kbs" / "clinics").exists()
    assert sorted(p.name for p in running.index_dir.glob("v-*")) == before
    assert (running.index_dir / "CURRENT").read_text() == live
    assert ask(running, "MedGPT有多少参数？").json()["found"] is True
    assert "medrag/clinics" not in [m["id"] for m in httpx.get(f"{running.url}/v1/models").json()["data"]]
