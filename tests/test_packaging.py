"""`pip install .` (not editable) ships what the service needs: it serves the widget and answers from anywhere."""

import os
import subprocess
import sys
import zipfile

import httpx
import pytest

from .conftest import ROOT, Child, free_port

pytestmark = pytest.mark.slow


class InstalledServer(Child):
    """`medrag serve` from the installed wheel, started in a folder that is not the repository."""

    def __init__(self, site, workdir, env):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # The wheel's files come first on the path, ahead of the editable install of the source tree.
        environment = {**os.environ, **env, "PYTHONPATH": str(site)}
        environment.pop("MEDRAG_WIDGET_DIR", None)  # served from the package's own folder
        command = [sys.executable, "-m", "medrag.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        self.start(command, workdir / "server.log", environment, cwd=workdir)

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False


def test_the_built_wheel_serves_the_widget_and_answers_outside_the_repository(tmp_path):
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("medrag-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "medrag/widget/widget.js" in names and "medrag/widget/demo.html" in names

    site = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "notes").mkdir(parents=True)
    (elsewhere / "notes" / "heart.md").write_text("# 心脏\n\n心脏每分钟大约跳动七十次。\n", encoding="utf-8")
    # Only the corpus is the user's to give: the default, ./corpus, is not there in this folder.
    env = {"MEDRAG_CORPUS_DIR": str(elsewhere / "notes"), "MEDRAG_INDEX_DIR": str(elsewhere / "index")}
    server = InstalledServer(site, elsewhere, env)
    try:
        server.wait(180)
        widget = httpx.get(f"{server.url}/widget.js", timeout=10)
        assert widget.status_code == 200 and "attachShadow" in widget.text
        assert httpx.get(f"{server.url}/", timeout=10).status_code == 200
        answer = httpx.post(f"{server.url}/ask", json={"question": "心脏每分钟跳动多少次？"}, timeout=60).json()
        assert answer["found"] and "七十次" in answer["answer"]
        where = subprocess.run(
            [sys.executable, "-c", "import medrag; print(medrag.__file__)"],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(site)},
            cwd=elsewhere,
        )
        assert where.stdout.strip().startswith(str(site))  # the wheel's copy answered, not the source tree
    finally:
        server.stop()
