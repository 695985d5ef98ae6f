"""Bad files of every format (issue 15, step 5): over the size or count limits, corrupt, encrypted, a zip
bomb inside an Office file, a million-row spreadsheet, thousands of empty pages, a decompression-bomb
image. Each is refused at once (4xx) or fails its job with a clear error in the one error shape, within
a bounded time, and the index is left as it was."""

import time

import pytest

from medrag.stores import faiss as store
from tests import formatfiles
from tests.api.test_documents_api import AUTH, FALCON, finish, make_client

pytestmark = pytest.mark.slow

LIMIT = 8_000_000
# Far above what each case takes (well under a few seconds); a parser that ran on would blow it.
BOUND = 30.0
MEDIA = formatfiles.MEDIA
DOCX = formatfiles.docx_file("t", [("text", "正文。")])
PPTX = formatfiles.pptx_file([("标题", ["要点"], "")])
PDF = formatfiles.blank_pdf(1)
PNG = formatfiles.huge_png(64)
STARTS = {"docx": DOCX, "pptx": PPTX, "xlsx": formatfiles.xlsx_file({"s": [["a"]]}), "csv": b"a,b\n", "pdf": PDF}
STARTS["png"] = PNG


def one(name: str, data: bytes) -> list:
    return [("file", (name, data, MEDIA[name.rsplit(".", 1)[1]]))]


# Refused with the request: (files, status, code).
REFUSED = {
    **{
        f"{kind} over the size limit": (one(f"big.{kind}", STARTS[kind] + b"\0" * LIMIT), 413, "too_large")
        for kind in MEDIA
    },
    "too many spreadsheets": (
        [file for i in range(4) for file in one(f"{i}.xlsx", STARTS["xlsx"])],
        413,
        "too_large",
    ),
    "encrypted word file": (one("secret.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 4000), 422, "bad_input"),
    "a png named docx": (one("photo.docx", PNG), 415, "unsupported_type"),
}
# Accepted, then the job fails: (files, code).
FAILED = {
    "corrupt word file": (one("broken.docx", b"PK\x03\x04" + b"\x17" * 2000), "bad_input"),
    "truncated slides": (one("half.pptx", PPTX[: len(PPTX) // 2]), "bad_input"),
    "encrypted pdf": (one("secret.pdf", formatfiles.encrypted_pdf(formatfiles.blank_pdf(1))), "bad_input"),
    "zip bomb in a word file": (one("bomb.docx", formatfiles.bomb_docx(200 * 2**20)), "too_large"),
    "a million rows": (one("rows.xlsx", formatfiles.many_rows_xlsx(1_000_000)), "too_large"),
    "a million rows, size undeclared": (one("rows.xlsx", formatfiles.many_rows_xlsx(1_000_000, False)), "too_large"),
    "3000 empty pages": (one("blank.pdf", formatfiles.blank_pdf(3000)), "too_large"),
    "200 empty pages": (one("blank.pdf", formatfiles.blank_pdf(200)), "bad_input"),
    "corrupt image": (one("scan.png", PNG[:40]), "bad_input"),
    "decompression bomb image": (one("huge.png", formatfiles.huge_png(7000)), "too_large"),
    "csv that is not utf-8": (one("表.csv", "药品,库存\n雪雁,1\n".encode("gb18030")), "bad_input"),
}


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """An in-process service over an index holding one document, with a row limit small enough to reach."""
    options = dict(max_upload_bytes=LIMIT, max_sheet_rows=10_000, parse_timeout=BOUND)
    with make_client(tmp_path_factory.mktemp("bad-files"), **options) as client:
        finish(client, client.post("/documents", json={"title": "t", "text": FALCON}, headers=AUTH))
        yield client


def unchanged(client, live) -> bool:
    index_dir = client.app.state.settings.index_dir
    return store.current_path(index_dir) == live and len(client.get("/documents").json()) == 1


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_bad_file_is_refused_with_the_request(indexed, case):
    files, status, code = REFUSED[case]
    live = store.current_path(indexed.app.state.settings.index_dir)
    started = time.monotonic()
    response = indexed.post("/documents", files=files, headers=AUTH)
    elapsed = time.monotonic() - started
    assert response.status_code == status, response.text
    assert response.json()["code"] == code and response.json()["detail"], response.json()
    assert elapsed < BOUND
    time.sleep(0.1)  # a job wrongly queued would have landed by now
    assert unchanged(indexed, live)


@pytest.mark.parametrize("case", list(FAILED))
def test_a_bad_file_fails_its_job_in_bounded_time_and_nothing_is_indexed(indexed, case):
    files, code = FAILED[case]
    live = store.current_path(indexed.app.state.settings.index_dir)
    started = time.monotonic()
    job = finish(indexed, indexed.post("/documents", files=files, headers=AUTH))
    elapsed = time.monotonic() - started
    assert job["state"] == "failed" and job["error"]["code"] == code, job
    assert files[0][1][0] in job["error"]["detail"], job["error"]
    assert elapsed < BOUND
    assert unchanged(indexed, live)


def test_scanned_pages_past_the_ocr_limit_are_reported_and_the_rest_is_indexed(tmp_path):
    printed = formatfiles.printed_pdf(
        "鸬鹚调查",
        "<h1>鸬鹚调查</h1><h2>概况</h2><p>鸬鹚调查覆盖了九个湖区。</p>"
        '<div class="page"></div><h2>附录</h2><p>附录列出了全部观测点。</p>',
    )
    scan = formatfiles.scanned_pdf(printed)
    with make_client(tmp_path, ocr_max_pages=1) as client:
        job = finish(client, client.post("/documents", files=one("cormorant.pdf", scan), headers=AUTH))
        assert job["state"] == "done", job
        assert job["progress"]["pages_done"] == job["progress"]["pages_total"] == 2
        failure = job["outcomes"].pop("cormorant.pdf page 2")
        assert failure.startswith("failed: ") and "MEDRAG_OCR_MAX_PAGES" in failure
        assert list(job["outcomes"].values()) == ["added"]
        reply = client.post("/ask", json={"question": "鸬鹚调查覆盖了几个湖区？"}).json()
        assert reply["found"] and "九个湖区" in reply["answer"], reply
        assert (reply["citations"][0]["section"], reply["citations"][0]["page"]) == ("概况", 1)


def test_with_ocr_off_a_scan_fails_its_job_saying_so(tmp_path):
    scan = formatfiles.scanned_pdf(formatfiles.printed_pdf("t", "<p>鸬鹚调查覆盖了九个湖区。</p>"))
    with make_client(tmp_path, ocr=False) as client:
        job = finish(client, client.post("/documents", files=one("scan.pdf", scan), headers=AUTH))
        assert job["state"] == "failed" and job["error"]["code"] == "bad_input", job
        assert "MEDRAG_OCR" in job["error"]["detail"]
        assert client.get("/documents").json()["code"] == "index_missing"  # nothing was written


def test_the_parser_cannot_grow_past_its_memory_limit(tmp_path):
    """OCR (onnxruntime, OpenCV) does not even load in 300 MiB: the job fails saying so, the service goes on."""
    image = formatfiles.png_file(formatfiles.printed_pdf("t", "<p>鸬鹚调查覆盖了九个湖区。</p>"))
    with make_client(tmp_path, max_parse_memory=300 * 2**20) as client:
        started = time.monotonic()
        job = finish(client, client.post("/documents", files=one("scan.png", image), headers=AUTH))
        assert time.monotonic() - started < BOUND
        assert job["state"] == "failed" and job["error"]["code"] in ("bad_input", "too_large"), job
        assert "MEDRAG_MAX_PARSE_MEMORY" in job["error"]["detail"]
        # The service lives on: the next document is indexed.
        job = finish(client, client.post("/documents", json={"title": "t", "text": FALCON}, headers=AUTH))
        assert job["state"] == "done" and len(client.get("/documents").json()) == 1


def test_a_folder_is_parsed_within_the_same_limits_each_bad_file_reported(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "heron.docx").write_bytes(
        formatfiles.docx_file("苍鹭手册", [("heading", 1, "部署"), ("text", "苍鹭问诊系统每天服务三千名门诊患者。")])
    )
    (folder / "bomb.docx").write_bytes(formatfiles.bomb_docx(200 * 2**20))
    with make_client(tmp_path) as client:
        job = client.app.state.service.add(paths=[folder])
        assert job.wait(60) and job.state == "done", job
        assert job.outcomes.pop(str(folder / "bomb.docx")).startswith("failed: ")
        assert list(job.outcomes.values()) == ["added"]
        reply = client.post("/ask", json={"question": "苍鹭问诊系统每天服务多少名门诊患者？"}).json()
        assert reply["found"] and "三千名" in reply["answer"] and reply["citations"][0]["section"] == "部署"
