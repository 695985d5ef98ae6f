"""medrag from two source trees over HTTP, side by side in one run: what a change did to /ask.

Both are `medrag serve` processes over the same fresh index of the shipped corpus, the question-vector
cache off, driven alike (benchmarks/peer.py's clients: unique wordings, keep-alive, the levels split
into turns taken alternately), so the machine's drifting load falls on both. Per level: p50/p99,
requests/s, medrag's own stage medians, and the server's CPU time per request.

    git archive <commit> src | tar -x -C /tmp/before
    .venv/bin/python benchmarks/before_after.py --before /tmp/before/src [--requests 480 --clients 1 8]
"""

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import psutil

from peer import ROOT, base_questions, drive, side_by_side, stages, start_medrag, stop, wordings

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="the src/ folder of the code to compare with")
    parser.add_argument("--after", type=Path, default=ROOT / "src")
    parser.add_argument("--requests", type=int, default=480, help="per server and level")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    plain = [item["question"] for item in base_questions()]
    unique = wordings(base_questions())
    scratch = Path(tempfile.mkdtemp(prefix="before-after-"))
    servers = {}
    report: dict = {"before": str(args.before), "after": str(args.after), "levels": []}
    try:
        for name in ("before", "after"):
            env = {"PYTHONPATH": str(getattr(args, name).resolve()), "MEDRAG_QUERY_CACHE_SIZE": "0"}
            servers[name] = start_medrag(scratch / "index", env)
        urls = {name: url for name, (_, url) in servers.items()}
        for url in urls.values():
            drive(url, plain, 1, len(plain))  # warm: every passage read once
        fresh = iter(unique)
        for clients in args.clients:
            texts = [next(fresh) for _ in range(args.requests)]
            cpu = {name: psutil.Process(process.pid).cpu_times() for name, (process, _) in servers.items()}
            results = side_by_side(urls, texts, clients, args.requests, args.rounds)
            level: dict = {"clients": clients}
            for name, (process, _) in servers.items():
                now, then = psutil.Process(process.pid).cpu_times(), cpu[name]
                seconds = (now.user - then.user) + (now.system - then.system)
                summary, bodies = results[name]
                level[name] = {
                    **summary,
                    "server_cpu_ms_per_request": round(seconds / args.requests * 1000, 2),
                    "stages": stages(bodies, summary),
                }
            before, after = level["before"], level["after"]
            level["after_over_before_rps"] = round(after["throughput_rps"] / before["throughput_rps"], 3)
            level["after_over_before_p50"] = round(after["p50_ms"] / before["p50_ms"], 3)
            report["levels"].append(level)
    finally:
        for process, _ in servers.values():
            stop(process)
        shutil.rmtree(scratch, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "before_after.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    plot(report, args.out / "before_after.png")
    print(json.dumps(report, ensure_ascii=False, indent=2))


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = report["levels"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 4))
    width = 0.38
    for offset, name in ((-width / 2, "before"), (width / 2, "after")):
        spots = [i + offset for i in range(len(levels))]
        left.bar(spots, [level[name]["p50_ms"] for level in levels], width, label=name)
        right.bar(spots, [level[name]["throughput_rps"] for level in levels], width, label=name)
    for axis, label in ((left, "/ask p50 (ms)"), (right, "requests/s")):
        axis.set_xticks(range(len(levels)), [f"{level['clients']} clients" for level in levels])
        axis.set(ylabel=label)
        axis.legend(fontsize=8)
    figure.suptitle("medrag before and after, unique questions, cache off, one run")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
