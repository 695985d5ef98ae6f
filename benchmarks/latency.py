"""Query-path latency over HTTP: /ask and /search at 1, 4 and 16 concurrent clients.

Starts `medrag serve` on a free loopback port over the shipped corpus (or --index), sends a fixed
number of requests per level (questions cycle through the public and dev question sets), and
writes p50/p95/p99 latency and throughput as JSON and a plot.

    .venv/bin/python benchmarks/latency.py
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def questions() -> list[str]:
    lines = []
    for name in ("qa_public.jsonl", "dev_questions.jsonl"):
        lines += (ROOT / "tests" / "data" / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["question"] for line in lines if line.strip()]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (position - low), 2)


def start_server(index_dir: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "MEDRAG_INDEX_DIR": str(index_dir), "MEDRAG_CORPUS_DIR": str(ROOT / "corpus")}
    process = subprocess.Popen(
        [sys.executable, "-m", "medrag.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/healthz", timeout=1).json().get("status") == "ok":
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("server did not start")


def run_level(url: str, endpoint: str, clients: int, requests: int, texts: list[str]) -> dict:
    def one(i: int) -> float:
        text = texts[i % len(texts)]
        with httpx.Client(timeout=60) as client:
            started = time.perf_counter()
            if endpoint == "/ask":
                response = client.post(f"{url}/ask", json={"question": text})
            else:
                response = client.get(f"{url}/search", params={"q": text, "k": 5})
            response.raise_for_status()
            return (time.perf_counter() - started) * 1000

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = list(pool.map(one, range(requests)))
    wall = time.perf_counter() - started
    return {
        "clients": clients,
        "requests": requests,
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "mean_ms": round(statistics.fmean(latencies), 2),
        "throughput_rps": round(requests / wall, 2),
    }


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for endpoint, levels in report["levels"].items():
        clients = [level["clients"] for level in levels]
        for key, style in (("p50_ms", "-o"), ("p95_ms", "--s"), ("p99_ms", ":^")):
            left.plot(clients, [level[key] for level in levels], style, label=f"{endpoint} {key[:3]}")
        right.plot(clients, [level["throughput_rps"] for level in levels], "-o", label=endpoint)
    left.set(xscale="log", xlabel="concurrent clients", ylabel="latency (ms)", title="latency over HTTP")
    right.set(xscale="log", xlabel="concurrent clients", ylabel="requests/s", title="throughput")
    left.legend(fontsize=8)
    right.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--index", type=Path, help="serve this index (default: build the shipped corpus into a temp folder)"
    )
    parser.add_argument("--requests", type=int, default=200, help="requests per endpoint and level")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    texts = questions()
    with tempfile.TemporaryDirectory() as scratch:
        index_dir = args.index or Path(scratch) / "index"
        started = time.perf_counter()
        process, url = start_server(index_dir)
        startup = time.perf_counter() - started
        try:
            cold = run_level(url, "/ask", 1, len(texts), texts)  # every question once: nothing cached yet
            report = {
                "server_start_seconds": round(startup, 2),
                "index": httpx.get(f"{url}/healthz").json()["index"],
                "cold_ask_single_client": cold,
                "levels": {
                    endpoint: [run_level(url, endpoint, c, args.requests, texts) for c in args.clients]
                    for endpoint in ("/ask", "/search")
                },
            }
        finally:
            process.terminate()
            process.wait(timeout=10)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latency.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    plot(report, args.out / "latency.png")
    print(json.dumps(report, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
