"""docker-compose.yml and api/Dockerfile, checked without a Docker engine.

`docker-compose config` (Debian's docker-compose, installed by .ci/run) parses and resolves the
file as `up` would; the healthcheck command is run for real against a running medrag.
"""

import shutil
import subprocess
import sys

import pytest
import yaml

from .conftest import ROOT

COMPOSE = ROOT / "docker-compose.yml"
MILVUS_PROFILE = {"etcd", "minio", "milvus", "medrag-milvus"}


def compose(*args: str, file=COMPOSE) -> subprocess.CompletedProcess:
    assert shutil.which("docker-compose"), "docker-compose is missing: .ci/run installs Debian's package"
    return subprocess.run(
        ["docker-compose", "--project-directory", str(ROOT), "-f", str(file), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def config() -> dict:
    resolved = compose("--profile", "milvus", "config")
    assert resolved.returncode == 0, resolved.stderr
    return yaml.safe_load(resolved.stdout)


def test_docker_compose_config_accepts_the_file():
    assert compose("config", "--quiet").returncode == 0
    checked = compose("--profile", "milvus", "config", "--quiet")
    assert checked.returncode == 0, checked.stderr


def test_a_broken_file_is_refused(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("condition: service_healthy", "condition: service_ready", 1))
    checked = compose("config", "--quiet", file=broken)
    assert checked.returncode != 0 and "service_ready" in checked.stderr


def test_medrag_builds_from_the_dockerfile_with_corpus_and_index_volumes(config):
    medrag = config["services"]["medrag"]
    assert medrag["build"]["dockerfile"] == "api/Dockerfile"
    assert "profiles" not in medrag  # `docker-compose up` starts it alone, on FAISS
    volumes = {v.split(":")[1]: v.split(":")[0] for v in medrag["volumes"]}
    assert volumes["/srv/medrag/corpus"] == str(ROOT / "corpus") and volumes["/srv/medrag/index"] == str(ROOT / "index")
    assert medrag["ports"] == [{"published": 8000, "target": 8000}]


def test_the_milvus_profile_adds_milvus_standalone_and_a_medrag_pointed_at_it(config):
    services = config["services"]
    assert {name for name, service in services.items() if service.get("profiles") == ["milvus"]} == MILVUS_PROFILE
    assert services["milvus"]["command"] == ["milvus", "run", "standalone"]
    assert services["milvus"]["environment"] == {"ETCD_ENDPOINTS": "etcd:2379", "MINIO_ADDRESS": "minio:9000"}
    assert services["milvus"]["depends_on"] == {
        "etcd": {"condition": "service_healthy"},
        "minio": {"condition": "service_healthy"},
    }
    replica = services["medrag-milvus"]
    assert replica["environment"]["MEDRAG_STORE"] == "milvus"
    assert replica["environment"]["MEDRAG_MILVUS_URI"] == "http://milvus:19530"
    assert replica["depends_on"] == {"milvus": {"condition": "service_healthy"}}
    assert replica["build"] == services["medrag"]["build"] and replica["volumes"] == services["medrag"]["volumes"]
    for name in ("medrag", *MILVUS_PROFILE):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name


def test_the_dockerfile_installs_cpu_torch_first_and_never_reaches_for_a_model_hub():
    lines = [line.strip() for line in (ROOT / "api" / "Dockerfile").read_text().splitlines()]
    torch = next(i for i, line in enumerate(lines) if line.startswith("RUN pip install torch==2.13.0"))
    package = next(i for i, line in enumerate(lines) if line.startswith('RUN pip install ".[milvus]"'))
    assert torch < package and "/whl/cpu" in lines[torch]
    assert "HF_HUB_OFFLINE=1 \\" in lines and lines[-1] == 'CMD ["medrag", "serve"]'


@pytest.mark.slow
def test_the_healthcheck_passes_on_a_running_medrag(config, server):
    command = config["services"]["medrag"]["healthcheck"]["test"][1:]
    assert command[:2] == ["python", "-c"]
    script = command[2].replace("127.0.0.1:8000", f"127.0.0.1:{server.port}")
    assert script != command[2]
    assert subprocess.run([sys.executable, "-c", script], timeout=30).returncode == 0
    stopped = script.replace(str(server.port), "9")  # nothing listens there: the check must fail
    assert subprocess.run([sys.executable, "-c", stopped], capture_output=True, timeout=30).returncode != 0
