"""Score a question set against the service's answers (API-shaped dicts, from HTTP or in process).

Question lines (JSONL): {"id", "question", "answerable", "answer_any": [...], "evidence": str | null}.
"""

import json
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import BadInputError
from .textnorm import normalize
from .types import Reply, Results

Ask = Callable[[str], dict]
Search = Callable[[str, int], list[dict]]


def load_questions(path: Path) -> list[dict]:
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise BadInputError(f"{path}:{number}: not JSON ({error.msg})") from error
        missing = {"question", "answerable"} - item.keys()
        if missing:
            raise BadInputError(f"{path}:{number}: missing {sorted(missing)}")
        item.setdefault("id", f"line{number}")
        item.setdefault("answer_any", [])
        item.setdefault("evidence", None)
        items.append(item)
    return items


def ask_reply(reply: Reply) -> dict:
    """The fields of an /ask response that scoring reads, from an answer given in process."""
    answer = reply.answer
    return {
        "answer": answer.text,
        "found": answer.found,
        "evidence": answer.evidence,
        "citations": [{"n": c.n, "text": c.hit.chunk.text} for c in answer.citations],
    }


def search_results(results: Results) -> list[dict]:
    """The fields of /search hits that scoring reads."""
    return [{"text": hit.chunk.text} for hit in results.hits]


def contains(text: str, needle: str) -> bool:
    """Substring match after normalisation, so Traditional/Simplified and full-width forms agree."""
    return normalize(needle).lower() in normalize(text).lower()


@dataclass
class ItemResult:
    id: str
    question: str
    answerable: bool
    found: bool
    evidence: float  # the service's evidence score for its answer (or refusal)
    answer: str
    correct: bool  # answerable: an expected answer appears; unanswerable: refused
    cited_evidence: bool | None  # answerable: some cited passage holds the evidence
    evidence_rank: int | None  # rank of the first retrieved passage holding the evidence
    markers: int  # [n] markers in the answer
    supported_markers: int  # markers whose passage holds the evidence
    latency_ms: float


@dataclass
class Report:
    items: list[ItemResult] = field(default_factory=list)

    def summary(self) -> dict:
        answerable = [r for r in self.items if r.answerable]
        unanswerable = [r for r in self.items if not r.answerable]
        with_evidence = [r for r in answerable if r.evidence_rank is not None or r.cited_evidence is not None]
        ranks = [r.evidence_rank for r in with_evidence]
        latencies = sorted(r.latency_ms for r in self.items)
        markers = sum(r.markers for r in answerable)
        return {
            "questions": len(self.items),
            "answer_accuracy": _share(r.correct for r in answerable),
            "cited_evidence": _share(bool(r.cited_evidence) for r in answerable),
            "evidence_hit@1": _share(rank == 1 for rank in ranks),
            "evidence_hit@5": _share(rank is not None and rank <= 5 for rank in ranks),
            "mrr": round(statistics.fmean(1 / rank if rank else 0.0 for rank in ranks), 4) if ranks else None,
            "refusal_accuracy": _share(r.correct for r in unanswerable),
            "citation_precision": round(sum(r.supported_markers for r in answerable) / markers, 4) if markers else None,
            "latency_p50_ms": _percentile(latencies, 50),
            "latency_p95_ms": _percentile(latencies, 95),
        }

    def to_json(self) -> dict:
        return {"summary": self.summary(), "items": [asdict(r) for r in self.items]}


def evaluate(items: list[dict], ask: Ask, search: Search | None = None) -> Report:
    report = Report()
    for item in items:
        started = time.perf_counter()
        response = ask(item["question"])
        latency = (time.perf_counter() - started) * 1000
        evidence = item.get("evidence")
        citations = {c["n"]: c for c in response["citations"]}
        if item["answerable"]:
            correct = response["found"] and any(contains(response["answer"], a) for a in item["answer_any"])
        else:
            correct = not response["found"]
        cited = None
        rank = None
        numbers = _markers(response["answer"])
        supported = 0
        if evidence:
            cited = any(contains(c["text"], evidence) for c in citations.values())
            supported = sum(1 for n in numbers if n in citations and contains(citations[n]["text"], evidence))
            if search is not None:
                hits = search(item["question"], 10)
                rank = next((i + 1 for i, h in enumerate(hits) if contains(h["text"], evidence)), None)
        report.items.append(
            ItemResult(
                id=item["id"],
                question=item["question"],
                answerable=item["answerable"],
                found=response["found"],
                evidence=response.get("evidence", 0.0),
                answer=response["answer"],
                correct=bool(correct),
                cited_evidence=cited,
                evidence_rank=rank,
                markers=len(numbers),
                supported_markers=supported,
                latency_ms=round(latency, 2),
            )
        )
    return report


def format_table(summaries: dict[str, dict]) -> str:
    """One column per run (e.g. per retriever mode), one row per metric."""
    names = list(summaries)
    metrics = list(next(iter(summaries.values())))
    width = max(len(m) for m in metrics)
    lines = [f"{'metric':<{width}}  " + "  ".join(f"{n:>10}" for n in names)]
    for metric in metrics:
        cells = []
        for name in names:
            value = summaries[name][metric]
            cells.append(f"{'-' if value is None else value:>10}")
        lines.append(f"{metric:<{width}}  " + "  ".join(cells))
    return "\n".join(lines)


def _markers(answer: str) -> list[int]:
    return [int(n) for n in re.findall(r"\[(\d+)\]", answer)]


def _share(flags) -> float | None:
    flags = list(flags)
    return round(sum(flags) / len(flags), 4) if flags else None


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    position = (len(values) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(values) - 1)
    return round(values[low] + (values[high] - values[low]) * (position - low), 2)
