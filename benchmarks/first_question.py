"""The first question about passages nobody asked about yet, against the same question asked again.

Until sentence vectors were stored at index time, the reader embedded the sentences of the passages
it read at query time (and cached them), so the first question over new passages paid for that
embedding. This starts `medrag serve` on a fresh index of the shipped corpus, asks every question of
the public and reader dev sets once (each the first over its passages, in a fresh server), then all
of them again, one client, and reports p50/p95 of both passes and their ratio. The question-vector
cache is off (MEDRAG_QUERY_CACHE_SIZE=0) unless `--cache`, so the second pass encodes every question
again and differs from the first only in what the first pass could have warmed.

    .venv/bin/python benchmarks/first_question.py [--src PATH] [--label NAME] [--cache]

`--src` runs another checkout's code (e.g. an older commit's `src/`) for a before/after pair in the
same session; results go to benchmarks/results/first_question.json under `--label`.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from peer import free_port, percentile

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def questions() -> list[str]:
    seen: dict[str, None] = {}
    for name in ("qa_public.jsonl", "reader_dev.jsonl"):
        for line in (ROOT / "tests" / "data" / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                seen.setdefault(json.loads(line)["question"], None)
    return list(seen)


def serve(src: Path, index: Path, port: int, cache: bool) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(src), "HF_HUB_OFFLINE": "1", "MEDRAG_INDEX_DIR": str(index)}
    if not cache:
        env["MEDRAG_QUERY_CACHE_SIZE"] = "0"
    env["MEDRAG_CORPUS_DIR"] = str(ROOT / "corpus")
    env["MEDRAG_RATE_LIMIT"] = "0"  # one client asking as fast as it can is the point here
    command = [sys.executable, "-m", "medrag.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_ready(base: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("the server exited before it was ready")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).json().get("status") == "ok":
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    raise SystemExit("the server did not become ready")


def timed_pass(client: httpx.Client, base: str, items: list[str]) -> list[float]:
    latencies = []
    for question in items:
        started = time.perf_counter()
        response = client.post(f"{base}/ask", json={"question": question})
        latencies.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, default=ROOT / "src")
    parser.add_argument("--label", default="this checkout")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "first_question.json")
    parser.add_argument("--cache", action="store_true", help="keep the question-vector cache on")
    args = parser.parse_args()
    items = questions()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as index:
        server = serve(args.src, Path(index), port, args.cache)
        try:
            wait_ready(base, server)
            with httpx.Client(timeout=60) as client:
                client.get(f"{base}/search", params={"q": "预热", "k": 1}).raise_for_status()
                first = timed_pass(client, base, items)
                again = timed_pass(client, base, items)
        finally:
            server.terminate()
            server.wait(timeout=30)
    result = {
        "questions": len(items),
        "query_cache": args.cache,
        "first_p50_ms": percentile(first, 50),
        "first_p95_ms": percentile(first, 95),
        "first_mean_ms": round(statistics.fmean(first), 2),
        "again_p50_ms": percentile(again, 50),
        "again_p95_ms": percentile(again, 95),
        "first_over_again_p50": round(percentile(first, 50) / percentile(again, 50), 2),
        "first_over_again_p95": round(percentile(first, 95) / percentile(again, 95), 2),
    }
    record = json.loads(args.out.read_text(encoding="utf-8")) if args.out.exists() else {}
    record[args.label] = result
    record["command"] = "python benchmarks/first_question.py [--src PATH --label NAME] [--cache]"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({args.label: result}, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
