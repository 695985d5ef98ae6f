"""Documents as people have them, posted to a real server: Word, PowerPoint, Excel, CSV, a PDF printed by
Chromium with CJK fonts, a scan of one and a photo of a page; each answers a question only it holds,
cited with its section path (and page, for PDFs)."""

import shutil
import time

import httpx
import pytest

from tests import formatfiles
from tests.conftest import Server

pytestmark = pytest.mark.slow

TOKEN = "formats-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

EGRET = formatfiles.printed_pdf(
    "白鹭研究报告",
    "<h1>白鹭研究报告</h1><h2>研究方法</h2><p>白鹭研究在东湖医院选取了 532 名患者，行首次随访，随访期为十八个月。</p>"
    "<h2>主要结果</h2><p>白鹭模型的诊断准确率为百分之九十一。</p>"
    "<table><tr><th>指标</th><th>数值</th></tr><tr><td>灵敏度</td><td>0.87</td></tr></table>"
    '<div class="page"></div><h2>讨论</h2><p>白鹭模型在夜间急诊中减少了候诊时间，平均每人节省二十分钟。</p>',
)
CRANE = formatfiles.printed_pdf(
    "灰鹤随访研究",
    "<h1>灰鹤随访研究</h1><h2>研究对象</h2><p>灰鹤随访研究由西岭医院牵头，覆盖六个社区。</p>"
    "<h2>随访结果</h2><p>灰鹤随访研究共随访了八百四十名老年患者，随访期为两年。</p>",
)
STORK = formatfiles.printed_pdf(
    "黑鹳筛查项目",
    "<h1>黑鹳筛查项目</h1><h2>筛查范围</h2><p>黑鹳筛查项目在南湖县为一万二千名居民做了眼底检查。</p>",
)
FILES = {
    "heron.docx": formatfiles.docx_file(
        "苍鹭问诊系统手册",
        [
            ("heading", 1, "部署情况"),
            ("heading", 2, "东山医院"),
            ("text", "苍鹭问诊系统于2029年在东山医院上线，每天服务三千名门诊患者。"),
            ("table", [["科室", "医生人数"], ["内科", "42"], ["外科", "37"]]),
            ("heading", 1, "维护"),
            ("text", "系统每周日凌晨停机维护两小时。"),
        ],
    ),
    "crane.pptx": formatfiles.pptx_file(
        [
            ("白鹤影像平台", ["年度汇报"], ""),
            (
                "试点成果",
                ["白鹤影像平台在西岭医院试点，阅片时间缩短了百分之三十五。"],
                "白鹤影像平台的研发团队共有二十八人。",
            ),
        ]
    ),
    "devices.xlsx": formatfiles.xlsx_file(
        {
            "设备清单": [["设备", "数量", "院区"], ["朱鹮监护仪", 64, "北院"], ["山雀呼吸机", 18, "南院"]],
            "维修记录": [["设备", "维修次数"], ["朱鹮监护仪", 3]],
        }
    ),
    "药品库存.csv": formatfiles.csv_file([["药品", "库存", "单位"], ["雪雁胶囊", 1200, "盒"]]),
    "egret.pdf": EGRET,
    "crane-scan.pdf": formatfiles.scanned_pdf(CRANE),
    "stork.png": formatfiles.png_file(STORK),
}
MEDIA = formatfiles.MEDIA
# Question, the words the answer must hold, the file it comes from, its section path, its page.
QUESTIONS = [
    ("苍鹭问诊系统每天服务多少名门诊患者？", "三千名", "heron.docx", "部署情况 > 东山医院", None),
    ("白鹤影像平台的研发团队有多少人？", "二十八人", "crane.pptx", "试点成果", None),
    ("白鹤影像平台试点后阅片时间缩短了多少？", "百分之三十五", "crane.pptx", "试点成果", None),
    ("朱鹮监护仪的数量是多少？", "64", "devices.xlsx", "设备清单", None),
    ("雪雁胶囊的库存是多少？", "1200", "药品库存.csv", "药品库存", None),
    ("白鹭研究在东湖医院选取了多少名患者？", "532名", "egret.pdf", "研究方法", 1),
    ("白鹭模型在夜间急诊中平均每人节省多少分钟？", "二十分钟", "egret.pdf", "讨论", 2),
    ("灰鹤随访研究共随访了多少名老年患者？", "八百四十名", "crane-scan.pdf", "随访结果", 1),
    ("黑鹳筛查项目为多少名居民做了眼底检查？", "一万二千名", "stork.png", "筛查范围", None),
]


def finish(client: httpx.Client, response: httpx.Response, timeout: float = 300) -> dict:
    assert response.status_code == 202, response.text
    deadline = time.monotonic() + timeout
    seen_pages = 0
    while time.monotonic() < deadline:
        job = client.get(response.headers["location"], headers=AUTH).json()
        seen_pages = max(seen_pages, job["progress"]["pages_total"])
        if job["state"] in ("done", "failed", "cancelled"):
            job["seen_pages"] = seen_pages
            return job
        time.sleep(0.1)
    raise AssertionError(f"job still {job['state']} after {timeout} s")


@pytest.fixture(scope="module")
def served(real_index, tmp_path_factory):
    """A real server over a copy of the real index, with every file of `FILES` posted in one request."""
    index_dir = tmp_path_factory.mktemp("formats") / "index"
    shutil.copytree(real_index, index_dir)
    server = Server(index_dir, env={"MEDRAG_ADMIN_TOKEN": TOKEN, "MEDRAG_FETCH_ALLOW": "127.0.0.1/32"}).wait()
    client = httpx.Client(base_url=server.url, timeout=60)
    files = [("file", (name, data, MEDIA[name.rsplit(".", 1)[1]])) for name, data in FILES.items()]
    job = finish(client, client.post("/documents", files=files, headers=AUTH))
    documents = {d["path"]: d for d in client.get("/documents").json()}
    yield client, job, documents
    client.close()
    server.stop()


def test_every_format_is_indexed_in_one_job(served):
    _, job, documents = served
    assert job["state"] == "done", job
    assert sorted(job["outcomes"].values()) == ["added"] * len(FILES), job["outcomes"]
    assert set(FILES) <= set(documents)
    assert job["seen_pages"] >= 1  # the job counted pages while it parsed
    assert documents["heron.docx"]["title"] == "苍鹭问诊系统手册"
    assert documents["egret.pdf"]["title"] == "白鹭研究报告"


@pytest.mark.parametrize("question, expected, name, section, page", QUESTIONS, ids=[q[2] for q in QUESTIONS])
def test_a_question_only_one_file_holds_is_answered_from_it(served, question, expected, name, section, page):
    client, _, documents = served
    reply = client.post("/ask", json={"question": question}).json()
    assert reply["found"] and expected in reply["answer"], reply
    first = reply["citations"][0]
    assert first["doc_id"] == documents[name]["doc_id"], reply
    assert (first["section"], first["page"]) == (section, page), first


def test_tables_become_sentences_with_their_column_names(served):
    client, _, documents = served
    for query, name, sentence in [
        ("内科 医生人数", "heron.docx", "科室：内科，医生人数：42。"),
        ("灵敏度", "egret.pdf", "指标：灵敏度，数值：0.87。"),
        ("山雀呼吸机", "devices.xlsx", "设备：山雀呼吸机，数量：18，院区：南院。"),
    ]:
        hits = client.get("/search", params={"q": query, "k": 20}).json()["hits"]
        texts = [hit["text"] for hit in hits if hit["doc_id"] == documents[name]["doc_id"]]
        assert any(sentence in text for text in texts), (name, texts)


def test_printed_pdf_text_is_clean_and_its_hash_is_that_of_its_bytes(served):
    client, _, documents = served
    import hashlib

    egret = documents["egret.pdf"]
    assert egret["content_hash"] == hashlib.sha256(FILES["egret.pdf"]).hexdigest()
    hits = client.get("/search", params={"q": "白鹭研究 东湖医院 患者", "k": 20}).json()["hits"]
    text = "".join(hit["text"] for hit in hits if hit["doc_id"] == egret["doc_id"])
    # Chromium's PDF maps 行, 首, 十, 八, 月 to Kangxi radicals (⾏ ⾸ ⼗ ⼋ ⽉) and spaces digits from Chinese.
    assert "选取了532名患者，行首次随访，随访期为十八个月" in text, text
    assert not any(0x2F00 <= ord(character) <= 0x2FDF for character in text)


def test_the_same_file_again_is_unchanged(served):
    client, _, documents = served
    job = finish(client, client.post("/documents", files=[("file", ("egret.pdf", EGRET, MEDIA["pdf"]))], headers=AUTH))
    assert job["state"] == "done" and job["outcomes"] == {documents["egret.pdf"]["doc_id"]: "unchanged"}, job


def test_a_fetched_pdf_links_to_the_page_of_the_quote(served, loopback_site):
    client, _, _ = served
    site = loopback_site()
    report = formatfiles.printed_pdf(
        "赤麻鸭监测年报",
        "<h1>赤麻鸭监测年报</h1><h2>概况</h2><p>赤麻鸭监测站设在北湖湿地。</p>"
        '<div class="page"></div><h2>监测数据</h2><p>赤麻鸭监测站每年记录四千只候鸟。</p>',
    )
    site.routes["/reports/shelduck.pdf"] = (200, {"Content-Type": "application/pdf"}, report)
    url = f"{site.url}/reports/shelduck.pdf"
    job = finish(client, client.post("/documents", json={"url": url}, headers=AUTH))
    assert job["state"] == "done" and list(job["outcomes"].values()) == ["added"], job
    reply = client.post("/ask", json={"question": "赤麻鸭监测站每年记录多少只候鸟？"}).json()
    assert reply["found"] and "四千只" in reply["answer"], reply
    cited = [c for c in reply["citations"] if c["url"] == url]
    assert cited and cited[0]["page"] == 2 and cited[0]["deep_link"] == f"{url}#page=2", reply["citations"]
