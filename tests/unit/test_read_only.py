"""A read-only service (a worker of `medrag serve --workers N`) answers, and neither writes nor touches jobs."""

import shutil

import pytest

from medrag.errors import WritesDisabledError
from medrag.service import Service, Text
from medrag.settings import Settings


@pytest.mark.slow
def test_a_read_only_service_answers_and_refuses_every_write_and_job(real_index, tmp_path):
    index_dir = tmp_path / "index"
    shutil.copytree(real_index, index_dir)
    versions = sorted(path.name for path in index_dir.glob("v-*"))
    service = Service(Settings(index_dir=index_dir, read_only=True))
    try:
        assert "1000亿" in service.ask("MedGPT的参数规模是多少？").answer.text
        for write in (
            lambda: service.add(texts=[Text("# 甲\n第一份文件。")]),
            lambda: service.remove([next(iter(service.load().documents))]),
            service.reindex,
            lambda: service.job("any"),
            service.resume_jobs,
        ):
            with pytest.raises(WritesDisabledError, match="MEDRAG_READ_ONLY"):
                write()
        assert service.job_states()["queued"] == 0
    finally:
        service.close()
    assert sorted(path.name for path in index_dir.glob("v-*")) == versions
    assert not (index_dir / "jobs").exists()
