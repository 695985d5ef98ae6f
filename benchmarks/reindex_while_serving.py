"""/ask latency with the service idle and while `medrag reindex` rebuilds its index; writes JSON.

    .venv/bin/python benchmarks/reindex_while_serving.py [--queries 200] [--concurrency 4] [--out FILE]

It builds the shipped corpus into a temporary index, starts `medrag serve` on a free loopback
port, asks the same questions first with nothing else running and then while a re-index runs
in another process, and reports latency percentiles, failures and the re-index's duration.
"""

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [
    "MedGPT有多少参数？",
    "MMed-Llama 3在MMedBench上的准确率是多少？",
    "MedLM是哪两家机构合作的？",
    "What is MedGPT's diagnostic agreement with attending physicians?",
    "今天天气怎么样？",
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def summary(latencies: list[float], failures: int) -> dict:
    values = np.array(latencies) * 1000
    return {
        "queries": len(latencies) + failures,
        "failures": failures,
        "p50_ms": round(float(np.percentile(values, 50)), 1),
        "p95_ms": round(float(np.percentile(values, 95)), 1),
        "max_ms": round(float(values.max()), 1),
    }


def run(http: httpx.Client, count: int, concurrency: int, keep_going=lambda: False) -> tuple[list[float], int]:
    """Ask `count` questions (and more while `keep_going()`); latencies of the successes, number of failures."""
    latencies: list[float] = []
    failures = 0

    def one(i: int) -> float | None:
        started = time.perf_counter()
        try:
            response = http.post("/ask", json={"question": QUESTIONS[i % len(QUESTIONS)]})
            return time.perf_counter() - started if response.status_code == 200 else None
        except httpx.HTTPError:
            return None

    sent = 0
    with ThreadPoolExecutor(concurrency) as pool:
        while sent < count or keep_going():
            for result in pool.map(one, range(sent, sent + concurrency * 5)):
                if result is None:
                    failures += 1
                else:
                    latencies.append(result)
            sent += concurrency * 5
    return latencies, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "reindex_while_serving.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        env = {
            **os.environ,
            "MEDRAG_INDEX_DIR": str(Path(folder) / "index"),
            "MEDRAG_CORPUS_DIR": str(ROOT / "corpus"),
            "HF_HUB_OFFLINE": "1",
        }
        medrag = [sys.executable, "-m", "medrag.cli"]
        subprocess.run([*medrag, "ingest"], env=env, check=True, capture_output=True)
        port = free_port()
        server = subprocess.Popen(
            [*medrag, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
            for _ in range(600):
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            run(http, 10, 1)  # warm-up
            idle = run(http, args.queries, args.concurrency)

            before = http.get("/healthz").json()["index"]
            started = time.perf_counter()
            writer = subprocess.Popen(
                [*medrag, "reindex"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            done = threading.Event()
            threading.Thread(target=lambda: (writer.wait(), done.set()), daemon=True).start()
            during = run(http, args.queries, args.concurrency, keep_going=lambda: not done.is_set())
            reindex_seconds = time.perf_counter() - started
            after = http.get("/healthz").json()["index"]
        finally:
            server.terminate()
            server.wait(10)

    result = {
        "what": "POST /ask latency, idle and while `medrag reindex` re-embeds the corpus in another process",
        "command": "python benchmarks/reindex_while_serving.py " + " ".join(sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "concurrency": args.concurrency,
        "chunks": before["chunks"],
        "idle": summary(*idle),
        "during_reindex": summary(*during),
        "reindex_exit_code": writer.returncode,
        "reindex_seconds_with_load": round(reindex_seconds, 2),
        "version_switched": after["version"] != before["version"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
