"""Browser fixtures: Debian's Chromium driven by Playwright, the real server, and pages of other sites.

`medrag_server` serves the real index of the shipped corpus plus one test document whose text holds
raw HTML markup. `site` is another origin on loopback, like a third-party website: it serves pages
that embed the widget with one script tag, and a scripted answer service for the cases a real
server does not produce on demand (a slow stream, a mid-stream error, a hung connection).
"""

import json
import os
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from medrag import corpus, indexing
from medrag.settings import Settings
from medrag.stores.catalog import FolderCatalog, KnowledgeBase, folder

from ..conftest import DATA, ROOT, Server, free_port

CHROMIUM = Path(os.environ.get("MEDRAG_CHROMIUM", "/usr/bin/chromium"))
# As the machine's probe found: without the background-networking flags Chromium keeps trying to
# reach Google's hosts, which this closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
    "--disable-background-networking",
    "--disable-component-update",
]
ARTIFACTS = ROOT / "test-artifacts"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 740}


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        message = f"no Chromium at {CHROMIUM}: apt-get install chromium (or set MEDRAG_CHROMIUM)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


# A document with a URL (so its citations get a deep link) whose quoted sentence holds emphasis and a link.
QINGLAN_URL = "https://example.org/news/qinglan-remote-care"
QINGLAN = (
    "# 青岚医院远程会诊\n\n"
    "青岚医院于2030年开通**远程会诊**，每天为[二百名](https://example.org/stats/qinglan)偏远地区患者看诊。"
    "会诊由三位主任医师轮流值守。\n"
)


NIGHT_WARD = "# 夜班交接\n\n夜班护士在早上七点半向白班护士交接病房记录。"
PHARMACY = "# 白桦医院药房\n\n白桦医院药房的自动发药机每小时能发出600份处方。"
ADMIN_TOKEN = "widget-admin-token"


@pytest.fixture(scope="session")
def widget_index(real_index, real_embedder, tmp_path_factory) -> Path:
    """The real index plus tests/data/widget/zorvex.md, whose text contains <img> and <script> markup, and QINGLAN."""
    root = tmp_path_factory.mktemp("widget") / "index"
    shutil.copytree(real_index, root)
    settings = Settings()
    indexing.update(
        root,
        real_embedder,
        add=[*corpus.load_paths([DATA / "widget"]), corpus.from_text(QINGLAN, url=QINGLAN_URL)],
        size=settings.chunk_size,
        overlap=settings.chunk_overlap,
    )
    # Two more knowledge bases for `data-kb`: a public one and a private one (read with `data-token`).
    catalog = FolderCatalog(root)
    for name, text, private in (("night-ward", NIGHT_WARD, False), ("pharmacy", PHARMACY, True)):
        catalog.create(KnowledgeBase(name, title=name, private=private))
        indexing.update(
            folder(root, name),
            real_embedder,
            add=[corpus.from_text(text, path=f"{name}.md")],
            size=settings.chunk_size,
            overlap=settings.chunk_overlap,
        )
    return root


@pytest.fixture(scope="session")
def site_ports() -> tuple[int, int]:
    """Ports of two third-party sites: the first is listed in MEDRAG_CORS_ORIGINS, the second is not."""
    return free_port(), free_port()


@pytest.fixture(scope="session")
def medrag_server(widget_index, site_ports):
    env = {"MEDRAG_CORS_ORIGINS": f"http://127.0.0.1:{site_ports[0]}", "MEDRAG_ADMIN_TOKEN": ADMIN_TOKEN}
    running = Server(widget_index, env=env).wait()
    yield running
    running.stop()


CITATION = {
    "n": 1,
    "chunk_id": "scripted:0001",
    "doc_id": "scripted",
    "title": "脚本化文档",
    "section": "第一节",
    "url": None,
    "source_urls": ["https://example.org/article"],
    "text": "第一句。第二句。",
    "score": 1.0,
}
SCRIPTED_ANSWER = {
    "answer": "第一句。[1]第二句。[1]",
    "found": True,
    "evidence": 0.9,
    "citations": [CITATION],
    "timings_ms": {"total": 1.0},
}


def sse(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def host_page(snippet: str) -> str:
    """A third-party page with CSS that would wreck a widget not isolated in a shadow root."""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
<title>Clinic news</title>
<style>
  * {{ font-size: 30px !important; color: #c00 !important; font-family: serif !important; }}
  button, textarea, section, div {{ display: inline !important; border: 5px dashed lime !important; }}
  body {{ margin: 0; }}
</style></head>
<body><main id="content"><h1>Clinic news</h1><p>Ordinary page content.</p></main>
{snippet}
</body></html>"""


class Site:
    """Two third-party origins on loopback, serving pages that embed the widget."""

    def __init__(self, ports: tuple[int, int], api: str):
        self.api = api
        self.servers = [ThreadingHTTPServer(("127.0.0.1", port), self.handler()) for port in ports]
        self.url, self.other_url = (f"http://127.0.0.1:{port}" for port in ports)
        for server in self.servers:
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()

    def snippet(self, api: str, **options: str) -> str:
        attributes = "".join(f' data-{name.replace("_", "-")}="{value}"' for name, value in options.items())
        return f'<script src="{self.api}/widget.js" data-api="{api}"{attributes} defer></script>'

    def handler(self):
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == "/":
                    # The widget pointed at the real service (or `api`), with the options asked for.
                    page = host_page(site.snippet(query.pop("api", site.api), **query))
                elif url.path == "/scripted":
                    # The widget pointed at this site's scripted answer service.
                    scenario = query.pop("scenario")
                    own = f"http://{self.headers['Host']}/scenario/{scenario}"
                    page = host_page(site.snippet(own, timeout="2", **query))
                else:
                    return self.send(404, "text/plain", b"not found")
                self.send(200, "text/html; charset=utf-8", page.encode())

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                parts = self.path.strip("/").split("/")
                if parts[0] != "scenario":
                    return self.send(404, "text/plain", b"not found")
                scenario, endpoint = parts[1], "/".join(parts[2:])
                if endpoint == "ask":
                    return self.send(200, "application/json", json.dumps(SCRIPTED_ANSWER, ensure_ascii=False).encode())
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for item in SCENARIOS[scenario]:
                    if isinstance(item, float):
                        time.sleep(item)
                    else:
                        self.wfile.write(item)
                        self.wfile.flush()
                self.close_connection = True

        return Handler


# A quote placed by offsets that count code points, after a character outside the BMP (two UTF-16
# units in the browser); its deep link is not http(s). And a quote whose offsets do not hold.
QUOTED = {
    **CITATION,
    "text": "𠀀第一句。第二句。",
    "quote": {"text": "第二句。", "passage_start": 5, "passage_end": 9, "document_start": 5, "document_end": 9},
    "deep_link": "javascript:window.medragPwned=4",
}
QUOTED_ANSWER = {**SCRIPTED_ANSWER, "answer": "第一句。[1]", "citations": [QUOTED]}
MISPLACED = {**QUOTED, "quote": {**QUOTED["quote"], "passage_start": 1, "passage_end": 5}}
MISPLACED_ANSWER = {**QUOTED_ANSWER, "citations": [MISPLACED]}
# A passage of a PDF: its page, and a deep link to the page.
PAGED = {
    **QUOTED,
    "text": "第一句。第二句。",
    "section": "讨论",
    "page": 2,
    "url": "https://example.org/report.pdf",
    "deep_link": "https://example.org/report.pdf#page=2",
    "quote": {**QUOTED["quote"], "passage_start": 4, "passage_end": 8},
}
PAGED_ANSWER = {**QUOTED_ANSWER, "citations": [PAGED]}

SCENARIOS = {
    "quote": [sse("delta", {"text": "第一句。[1]"}), sse("done", QUOTED_ANSWER)],
    "misplaced-quote": [sse("delta", {"text": "第一句。[1]"}), sse("done", MISPLACED_ANSWER)],
    "paged": [sse("delta", {"text": "第一句。[1]"}), sse("done", PAGED_ANSWER)],
    # Two pieces a second apart, so the first is on screen before the second exists.
    "slow": [
        sse("delta", {"text": "第一句。[1]"}),
        1.5,
        sse("delta", {"text": "第二句。[1]"}),
        sse("done", SCRIPTED_ANSWER),
    ],
    # Pieces 1.2 s apart, 3.6 s in all: longer than the 2-second timeout, but never silent that long.
    "trickle": [
        sse("delta", {"text": "第一句。[1]"}),
        1.2,
        sse("delta", {"text": "第二"}),
        1.2,
        sse("delta", {"text": "句。[1]"}),
        1.2,
        sse("done", SCRIPTED_ANSWER),
    ],
    "error": [
        sse("delta", {"text": "半句"}),
        sse("error", {"detail": "the language model stopped answering", "code": "generator_failed"}),
    ],
    # Headers, then nothing: the widget's 2-second timeout must end the wait.
    "hang": [sse("delta", {"text": "开始"}), 6.0],
    # The stream breaks off without `done`: the widget asks POST /ask instead.
    "cut": [sse("delta", {"text": "半句"})],
    # What a language model tricked by an injected document might produce.
    "hostile": [
        sse("delta", {"text": '看这里<img src="http://127.0.0.1:9/x.png" onerror="window.medragPwned=1">[1]'}),
        sse(
            "done",
            {
                **SCRIPTED_ANSWER,
                "answer": '看这里<img src="http://127.0.0.1:9/x.png" onerror="window.medragPwned=1">[1]',
                "citations": [
                    {
                        **CITATION,
                        "url": "javascript:window.medragPwned=2",
                        "text": "<script>window.medragPwned=3</script>",
                        "source_urls": [
                            "data:text/html,<script>alert(1)</script>",
                            "//127.0.0.1:9/relative",
                            "https://example.org/ok",
                        ],
                    }
                ],
            },
        ),
    ],
}


@pytest.fixture(scope="session")
def site(site_ports, medrag_server):
    running = Site(site_ports, medrag_server.url)
    yield running
    running.stop()


class Requests:
    """URLs the page asked for, to tell streaming from the fallback."""

    def __init__(self, page):
        self.urls: list[str] = []
        page.on("request", lambda request: self.urls.append(request.url))

    def paths(self, origin: str) -> list[str]:
        return [url[len(origin) :] for url in self.urls if url.startswith(origin)]


@pytest.fixture
def context(browser):
    opened = browser.new_context(viewport=DESKTOP, locale="zh-CN")
    yield opened
    opened.close()


@pytest.fixture
def page(context):
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.requests = Requests(opened)
    yield opened
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
