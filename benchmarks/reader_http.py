"""The reader through real servers: answer and refusal per question set and language, and /ask latency,
for this checkout against an earlier one in the same run.

Starts `medrag serve` twice on fresh indexes of the shipped corpus — one with `--before` (another
checkout's `src/`, e.g. the commit the reader issue was measured at) and one with this checkout, both
with the question-vector cache off — and asks every question of the public set, of both halves of
tests/data/reader_dev.jsonl, of the development sets 2 and 3 (reader_dev2.jsonl, reader_dev3.jsonl),
of the team's probes (tests/data/reader_probes.jsonl: `group` "guided" were read while the reader was
changed, "after" were written once the changes were done and not tuned on) and of the held-back sets
(tests/data/reader_held2.jsonl to reader_held8.jsonl, each written by an engineer apart before a round
of reader changes, on 2026-12-02) of both, alternating between them question by question, so both
see the same machine. Scores each set with `medrag.evaluation`, splits the sets by language, and
reports each server's /ask p50 and p95 over all questions.

    .venv/bin/python benchmarks/reader_http.py --before /tmp/old/src

Writes benchmarks/results/reader_http.json. The held-back sets are for the final measurement: their
misses (question and answer) are written only with `--final`, and the newest set (8) is asked only then.
"""

import argparse
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx

from first_question import serve, wait_ready
from medrag.evaluation import evaluate, load_questions
from peer import free_port, percentile

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT / "tests" / "data"
NEWEST = 8  # tests/data/reader_held{2..NEWEST}.jsonl; the newest is asked only with --final


def held(n: int) -> str:
    return f"held-back set {n}"


HELD = ("held half", *(held(n) for n in range(2, NEWEST + 1)))


def sets(final: bool) -> dict[str, list[dict]]:
    """The question sets; the newest held-back set only for the final measurement (it has never been run)."""
    reader = load_questions(DATA / "reader_dev.jsonl")
    probes = load_questions(DATA / "reader_probes.jsonl")
    chosen = {
        "public": load_questions(DATA / "qa_public.jsonl"),
        "dev half": [q for q in reader if q.get("half") == "dev"],
        "development set 2": load_questions(DATA / "reader_dev2.jsonl"),
        "development set 3": load_questions(DATA / "reader_dev3.jsonl"),
        "held half": [q for q in reader if q.get("half") == "held"],
        "probes, guided the changes": [q for q in probes if q.get("group") == "guided"],
        "probes, written after, never tuned on": [q for q in probes if q.get("group") == "after"],
    }
    for n in range(2, NEWEST + 1 if final else NEWEST):
        chosen[held(n)] = load_questions(DATA / f"reader_held{n}.jsonl")
    return chosen


def by_language(items: list[dict], report) -> dict:
    counts: dict[str, dict[str, list[int]]] = defaultdict(lambda: {"answerable": [0, 0], "unanswerable": [0, 0]})
    for item, result in zip(items, report.items, strict=True):
        cell = counts[item.get("lang", "?")]["answerable" if item["answerable"] else "unanswerable"]
        cell[0] += result.correct
        cell[1] += 1
    return {
        lang: {kind: f"{right}/{total}" for kind, (right, total) in cells.items()} for lang, cells in counts.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="an earlier checkout's src/")
    parser.add_argument("--before-label", default="before")
    parser.add_argument(
        "--final", action="store_true", help=f"also ask held-back set {NEWEST}; list the held sets' misses"
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "reader_http.json")
    args = parser.parse_args()
    servers = {}
    with tempfile.TemporaryDirectory() as scratch:
        for label, src in ((args.before_label, args.before), ("now", ROOT / "src")):
            port = free_port()
            servers[label] = (f"http://127.0.0.1:{port}", serve(src, Path(scratch) / label, port, cache=False))
        try:
            for base, process in servers.values():
                wait_ready(base, process)
            latencies: dict[str, list[float]] = {label: [] for label in servers}
            answers: dict[str, dict[str, dict]] = {label: {} for label in servers}
            with httpx.Client(timeout=60) as client:
                for base, _ in servers.values():  # one warm-up each (jieba, the first encode)
                    client.get(f"{base}/search", params={"q": "预热", "k": 1}).raise_for_status()
                for items in sets(args.final).values():
                    for item in items:
                        for label, (base, _) in servers.items():
                            started = time.perf_counter()
                            response = client.post(f"{base}/ask", json={"question": item["question"]})
                            latencies[label].append((time.perf_counter() - started) * 1000)
                            response.raise_for_status()
                            answers[label][item["question"]] = response.json()
        finally:
            for _, process in servers.values():
                process.terminate()
                process.wait(timeout=30)
    result: dict = {"command": "python benchmarks/reader_http.py --before <src of the earlier commit>"}
    for label in servers:
        figures = {}
        for name, items in sets(args.final).items():
            report = evaluate(items, lambda question, label=label: answers[label][question])
            summary = report.summary()
            figures[name] = {
                key: summary[key] for key in ("questions", "answer_accuracy", "refusal_accuracy", "cited_evidence")
            }
            if name != "public":
                figures[name]["by_language"] = by_language(items, report)
            if name != "public" and (args.final or name not in HELD):
                figures[name]["misses"] = [
                    {"id": r.id, "question": r.question, "answer": r.answer[:80]} for r in report.items if not r.correct
                ]
        result[label] = {
            "sets": figures,
            "ask_p50_ms": percentile(latencies[label], 50),
            "ask_p95_ms": percentile(latencies[label], 95),
        }
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    for label in servers:
        print(label, {n: (f["answer_accuracy"], f["refusal_accuracy"]) for n, f in result[label]["sets"].items()})
        print("   /ask p50", result[label]["ask_p50_ms"], "p95", result[label]["ask_p95_ms"])


if __name__ == "__main__":
    main()
