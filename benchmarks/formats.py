"""Parsing time per page of each format, OCR against the text layer of the same pages, one run.

Three pages of Chinese text printed by headless Chromium (Noto CJK) are parsed as a PDF with a text
layer (the baseline), as a 200-dpi scan of the same pages (OCR), and as a PNG of one page; Word,
PowerPoint and Excel files of like content are parsed too. In process with the OCR engine loaded once
(`warm`), and through the child process the service uses (`isolated`, which loads the engine anew for
every document).

    PYTHONPATH=src .venv/bin/python benchmarks/formats.py
"""

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests import formatfiles  # noqa: E402

from medrag import corpus, formats  # noqa: E402
from medrag.formats import ocr  # noqa: E402

PARAGRAPH = "第{n}组患者在东湖医院接受了为期十八个月的随访，随访内容包括血压、血糖和用药情况，失访率低于百分之五。"


def article(pages: int) -> str:
    body = "<h1>随访研究报告</h1>"
    for page in range(1, pages + 1):
        body += '<div class="page"></div>' if page > 1 else ""
        body += f"<h2>第{page}部分</h2>" + "".join(f"<p>{PARAGRAPH.format(n=page * 10 + i)}</p>" for i in range(12))
    return body


def timed(function, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "formats.json")
    args = parser.parse_args()
    limits = formats.Limits()
    printed = formatfiles.printed_pdf("随访研究报告", article(args.pages))
    rows = [["组别", "患者", "失访率"]] + [[f"第{i}组", 40 + i, "百分之五"] for i in range(36)]
    files = {
        "pdf (text layer)": ("pdf", printed, args.pages),
        "pdf (scan, OCR)": ("pdf", formatfiles.scanned_pdf(printed), args.pages),
        "png (OCR)": ("image", formatfiles.png_file(printed), 1),
        "docx": ("docx", formatfiles.docx_file("报告", [("text", PARAGRAPH.format(n=i)) for i in range(36)]), 1),
        "pptx": ("pptx", formatfiles.pptx_file([(f"第{i}页", [PARAGRAPH.format(n=i)], "") for i in range(12)]), 12),
        "xlsx": ("xlsx", formatfiles.xlsx_file({"表": rows}), 1),
    }
    started = time.perf_counter()
    ocr.engine()
    engine_load = time.perf_counter() - started
    results = {"pages": args.pages, "engine_load_s": round(engine_load, 3), "formats": {}}
    for label, (kind, data, pages) in files.items():
        warm = timed(lambda kind=kind, data=data, label=label: formats.extract(kind, data, label, limits), args.repeat)
        isolated = timed(lambda kind=kind, data=data: corpus.parse_isolated(data, kind, "f", limits), 1)
        results["formats"][label] = {
            "pages": pages,
            "warm_s": round(warm, 3),
            "warm_s_per_page": round(warm / pages, 3),
            "isolated_s": round(isolated, 3),
        }
        print(label, results["formats"][label], flush=True)
    text = results["formats"]["pdf (text layer)"]["warm_s_per_page"]
    scan = results["formats"]["pdf (scan, OCR)"]["warm_s_per_page"]
    results["ocr_over_text_layer"] = round(scan / text, 1)
    args.out.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n")
    plot(results, args.out.with_suffix(".png"))
    print(json.dumps(results, ensure_ascii=False, indent=2))


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(results["formats"])
    values = [results["formats"][label]["warm_s_per_page"] for label in labels]
    figure, axes = plt.subplots(figsize=(7, 3.5))
    axes.barh(labels, values)
    axes.set_xscale("log")
    axes.set_xlabel("seconds per page (warm, log scale)")
    axes.set_title(f"Parsing per page; OCR = {results['ocr_over_text_layer']}× the text layer")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
