"""The command line, run as a user runs it."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def medrag(*args, env=None, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "medrag.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=300,
    )


def test_ingest_then_ask_prints_the_answer_and_its_sources(tmp_path):
    document = tmp_path / "note.md"
    document.write_text("# 心脏\n\n## 功能\n心脏每分钟大约跳动七十次，把血液送往全身。\n", encoding="utf-8")
    env = {"MEDRAG_INDEX_DIR": str(tmp_path / "index")}
    ingest = medrag("ingest", str(document), env=env)
    assert ingest.returncode == 0, ingest.stderr
    assert "indexed 1 document(s)" in ingest.stderr
    asked = medrag("ask", "心脏每分钟跳动多少次？", env=env)
    assert asked.returncode == 0, asked.stderr
    assert "七十次" in asked.stdout and "[1]" in asked.stdout
    assert "心脏 > 功能" in asked.stdout
    refused = medrag("ask", "MedGPT有多少参数？", env=env)
    assert refused.returncode == 1 and "没有找到" in refused.stdout


def test_user_errors_are_messages_not_tracebacks(tmp_path):
    missing = medrag("ingest", str(tmp_path / "missing.md"), env={"MEDRAG_INDEX_DIR": str(tmp_path / "index")})
    assert missing.returncode == 2
    assert "no such file or folder" in missing.stderr and "Traceback" not in missing.stderr
    no_index = medrag("ask", "问题", env={"MEDRAG_INDEX_DIR": str(tmp_path / "none")})
    assert no_index.returncode == 2 and "medrag ingest" in no_index.stderr


def test_eval_compares_retrievers_locally_and_against_a_server(tmp_path, server, real_index):
    from ..conftest import DATA

    env = {"MEDRAG_INDEX_DIR": str(real_index)}
    out = tmp_path / "local.json"
    local = medrag(
        "eval",
        str(DATA / "qa_public.jsonl"),
        "--retriever",
        "hybrid",
        "--retriever",
        "bm25",
        "--json",
        str(out),
        env=env,
    )
    assert local.returncode == 0, local.stderr
    header = local.stdout.splitlines()[0].split()
    assert header == ["metric", "hybrid", "bm25"]
    for metric in (
        "answer_accuracy",
        "evidence_hit@1",
        "evidence_hit@5",
        "mrr",
        "refusal_accuracy",
        "citation_precision",
        "latency_p50_ms",
        "latency_p95_ms",
    ):
        assert metric in local.stdout
    import json

    results = json.loads(out.read_text(encoding="utf-8"))
    assert set(results) == {"hybrid", "bm25"}
    assert len(results["hybrid"]["items"]) == 18
    assert results["hybrid"]["summary"]["answer_accuracy"] >= 0.9
    remote = medrag("eval", str(DATA / "qa_public.jsonl"), "--url", server.url, "--json", str(tmp_path / "remote.json"))
    assert remote.returncode == 0, remote.stderr
    remote_summary = json.loads((tmp_path / "remote.json").read_text(encoding="utf-8"))["hybrid"]["summary"]
    assert remote_summary["answer_accuracy"] == results["hybrid"]["summary"]["answer_accuracy"]


def test_a_bad_setting_is_one_clear_line(tmp_path):
    result = medrag("ask", "问题", env={"MEDRAG_TOP_K": "0", "MEDRAG_INDEX_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert "MEDRAG_TOP_K" in result.stderr and "Traceback" not in result.stderr
    result = medrag("ask", "问题", env={"MEDRAG_CHUNK_OVERLAP": "400", "MEDRAG_INDEX_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert "MEDRAG_CHUNK_OVERLAP (400) must be smaller" in result.stderr and "Traceback" not in result.stderr
