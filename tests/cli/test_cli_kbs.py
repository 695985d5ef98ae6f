"""Knowledge bases on the command line: `medrag kb list|create|delete` and `--kb` on the other commands.

The commands run through `cli.main` in this process: a child for each would spend most of its 1.5 s
importing. tests/cli/test_cli.py runs `python -m medrag.cli` itself.
"""

from types import SimpleNamespace

import pytest

from medrag import cli

pytestmark = pytest.mark.slow


@pytest.fixture
def medrag(monkeypatch, capsys):
    """Run one command with the environment given; its exit code and what it printed."""

    def run(*args: str, env: dict[str, str]) -> SimpleNamespace:
        with monkeypatch.context() as patched:
            for name, value in env.items():
                patched.setenv(name, value)
            try:
                code = cli.main(list(args))
            except SystemExit as exiting:  # argparse's usage errors
                code = exiting.code
        printed = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=printed.out, stderr=printed.err)

    return run


def test_a_knowledge_base_is_created_filled_asked_checked_and_deleted_from_the_command_line(tmp_path, medrag):
    env = {"MEDRAG_INDEX_DIR": str(tmp_path / "index")}
    heart = tmp_path / "heart.md"
    heart.write_text("# 心脏\n\n心脏每分钟大约跳动七十次，把血液送往全身。\n", encoding="utf-8")
    lungs = tmp_path / "lungs.md"
    lungs.write_text("# 肺\n\n成年人的肺每分钟大约呼吸十六次。\n", encoding="utf-8")
    assert medrag("ingest", str(heart), env=env).returncode == 0  # the default knowledge base

    created = medrag("kb", "create", "lungs", "--title", "Lungs", "--private", env=env)
    assert created.returncode == 0, created.stderr
    assert medrag("kb", "create", "lungs", env=env).returncode == 2  # the name is taken
    bad = medrag("kb", "create", "Bad/Name", env=env)
    assert bad.returncode == 2 and "not a knowledge base name" in bad.stderr
    listed = medrag("kb", "list", env=env)
    assert listed.stdout.splitlines() == ["default\tpublic\tdefault", "lungs\tprivate\tLungs"]

    assert medrag("add", "--kb", "lungs", str(lungs), env=env).returncode == 0
    asked = medrag("ask", "--kb", "lungs", "肺每分钟呼吸多少次？", env=env)
    assert asked.returncode == 0 and "十六次" in asked.stdout, asked.stderr
    assert "十六次" not in medrag("ask", "肺每分钟呼吸多少次？", env=env).stdout  # default has no lungs
    assert "七十次" not in medrag("ask", "--kb", "lungs", "心脏每分钟跳动多少次？", env=env).stdout
    verified = medrag("verify", "--kb", "lungs", env=env)
    assert verified.returncode == 0 and "(live)" in verified.stdout
    missing = medrag("ask", "--kb", "nowhere", "问题", env=env)
    assert missing.returncode == 2 and "no knowledge base nowhere" in missing.stderr

    deleted = medrag("kb", "delete", "lungs", env=env)
    assert deleted.returncode == 0, deleted.stderr
    assert not (tmp_path / "index" / "kbs" / "lungs").exists()
    assert medrag("kb", "list", env=env).stdout.splitlines() == ["default\tpublic\tdefault"]
    assert medrag("kb", "delete", "default", env=env).returncode == 2
    assert "七十次" in medrag("ask", "心脏每分钟跳动多少次？", env=env).stdout
