"""Train the reader's answer/refuse model from data that is not an evaluation set, and calibrate its threshold.

Every question goes through the real pipeline (real model, real index, real retrieval); each sentence
of the top passages becomes one example with the features `answering.FEATURES`. Sources:

- toyhom: the Toyhom internal-medicine Q&A (MIT; `--toyhom`), answers indexed as documents; a
  sentence is positive when it belongs to the question's own answer.
- generated: questions made mechanically from the corpus (`corpus/`): a sentence's figure, date or
  organisation is replaced by a question word ("…诊断一致性达多少？"); the sentence itself is the positive.
  Hard negatives by construction, every sentence negative: the question's entity swapped for another
  entity of the corpus for which no sentence states the fact (checked: no sentence about the other
  entity covers the question's words); a version that does not exist (Med-PaLM 2 → Med-PaLM 3); a
  changed premise (a year or count of the question that the passage does not hold).
- dev: the development half of tests/data/reader_dev.jsonl; the held-back half is never read here.

Questions are split into a training and a validation part (seeded, by question); the model is fitted
on the training part only, and the threshold (the `min_evidence` the service uses by default) is the
one that maximises balanced question-level accuracy on the validation part.

    .venv/bin/pip install -e ".[bench]"
    .venv/bin/python benchmarks/train_reader.py --toyhom ../shared/data/toyhom-neike

Writes src/medrag/reader.json (the weights that ship), benchmarks/results/reader_training.json,
reader_reliability.png and reader_threshold.png.
"""

import argparse
import csv
import json
import random
import re
import tempfile
import time
from pathlib import Path

import numpy as np

from medrag import corpus, indexing, pipeline
from medrag.answering import DECISION_FEATURES, FEATURES, Candidate, ExtractiveAnswerer, ReaderModel, decision_row
from medrag.chunking import clean, sentence_spans
from medrag.entities import Lexicon
from medrag.evaluation import contains, load_questions
from medrag.query import analyse
from medrag.service import Service
from medrag.settings import Settings
from medrag.textnorm import normalize

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SEED = 20261201
# A figure, a date or a share in a sentence, and the question word that asks for it.
SPANS = (
    (re.compile(r"\d{4}年\d{1,2}月(?:\d{1,2}日)?|\d{4}年"), "什么时候"),
    (re.compile(r"\d+(?:\.\d+)?%"), "多少"),
    (re.compile(r"(?:超过|超)?\d+(?:\.\d+)?(?:万|亿)?(?=[个种条名对位项家学样参])"), "多少"),
    (re.compile(r"\d+(?:\.\d+)?"), "多少"),
)
CITATION = re.compile(r"\s*\([^()]*\d{4}[^()]*\)")


class Collector:
    """Runs questions through one service and keeps each candidate sentence's features and label."""

    def __init__(self, service: Service):
        self.service = service
        self.rows: list[np.ndarray] = []
        self.labels: list[int] = []
        self.groups: list[str] = []
        self.sources: list[str] = []
        self.questions: dict[str, tuple[str, bool]] = {}  # group -> (source, answerable)

    def candidates(self, question: str) -> list[Candidate]:
        snapshot = self.service.pipeline.snapshot()
        query = analyse(question, snapshot.lexicon)
        vector = snapshot.retriever.embed_query(query)
        hits = snapshot.retriever.search(query, self.service.settings.top_k, "hybrid", query_vector=vector)
        answerer = snapshot.answerer
        assert isinstance(answerer, ExtractiveAnswerer)
        return answerer.candidates(query, hits, vector)

    def add(self, group: str, source: str, question: str, positive, answerable: bool) -> None:
        """One question; `positive(candidate)` says whether a candidate sentence answers it."""
        for candidate in self.candidates(question):
            self.rows.append(candidate.features)
            self.labels.append(int(answerable and positive(candidate)))
            self.groups.append(group)
            self.sources.append(source)
        self.questions[group] = (source, answerable)


def generated_questions(documents, lexicon: Lexicon, rng: random.Random) -> list[dict]:
    """Cloze questions from the corpus's sentences, and hard negatives made from them by construction."""
    sentences = []  # (sentence, heading entities, sentence entities)
    for document in documents:
        text = clean(document.text)
        heading_names: list[str] = []
        for line in text.splitlines():
            if line.startswith("#"):
                heading_names = lexicon.names(normalize(line)) or heading_names
                continue
            for start, end in sentence_spans(line):
                sentence = CITATION.sub("", line[start:end]).strip(" -*")
                if len(sentence) >= 8 and "http" not in sentence:
                    sentences.append((sentence, heading_names, lexicon.names(normalize(sentence))))
    models = sorted({n for _, heads, names in sentences for n in (*heads, *names) if re.search(r"[A-Za-z]", n)})
    items: list[dict] = []

    def emit(key: str, cloze: str, answer: str, sentence: str, about: str | None) -> None:
        question = cloze.rstrip("。；;，, ") + "？"
        if about and about not in question:
            question = f"{about}：{question}"
        items.append({"id": key, "question": question, "answerable": True, "answer": answer, "sentence": sentence})
        others = [m for m in models if about and m != about and m not in question]
        if about and others:
            swapped = rng.choice(others)
            if not states(sentences, swapped, cloze):
                items.append({"id": f"{key}s", "question": question.replace(about, swapped), "answerable": False})
        if about:
            items.append({"id": f"{key}v", "question": question.replace(about, bump(about)), "answerable": False})
        premise = [m for m in re.finditer(r"\d+", question) if m.group() not in answer]
        if premise:
            figure = rng.choice(premise)
            changed = str(int(figure.group()) + rng.choice([-3, -2, -1, 1, 2, 3]))
            if changed not in sentence:
                changed_question = question[: figure.start()] + changed + question[figure.end() :]
                items.append({"id": f"{key}p", "answerable": False, "question": changed_question})

    for number, (sentence, heads, names) in enumerate(sentences):
        about = next((n for n in (*names, *heads) if re.search(r"[A-Za-z]", n)), None)
        answers: set[str] = set()
        for kind, (pattern, word) in enumerate(SPANS):
            found = pattern.search(sentence)
            if found and not any(found.group() in a for a in answers):
                answers.add(found.group())
                emit(
                    f"g{number}.{kind}",
                    sentence[: found.start()] + word + sentence[found.end() :],
                    found.group(),
                    sentence,
                    about,
                )
        # An organisation the sentence names, asked for.
        for name in names:
            if not re.search(r"[A-Za-z]", name) and name in sentence and name != about:
                emit(f"g{number}.o", sentence.replace(name, "哪家机构", 1), name, sentence, about)
                break
    return items


def source_sentence(item: dict):
    """A generated question's positive: a candidate holding its answer, made mostly of its source sentence."""
    if not item["answerable"]:
        return lambda candidate: False
    answer, characters = normalize(item["answer"]), set(normalize(item["sentence"]))

    def positive(candidate: Candidate) -> bool:
        text = normalize(candidate.text)
        return answer in text and len(set(text) & characters) >= 0.7 * len(set(text))

    return positive


def states(sentences, entity: str, cloze: str) -> bool:
    """Whether some sentence about `entity` covers most of the question's characters (the fact is stated)."""
    wanted = set(re.findall(r"[\u4e00-\u9fff]", cloze))
    for sentence, heads, names in sentences:
        if (entity in names or entity in heads) and len(wanted & set(sentence)) >= 0.6 * len(wanted):
            return True
    return False


def bump(name: str) -> str:
    """A version of the name that does not exist: the next version number, or a "2" where it has none."""
    match = re.search(r"(\d+)$", name)
    if match:
        return name[: match.start()] + str(int(match.group()) + 1)
    return f"{name} 2"


def neutral_model() -> ReaderModel:
    """A model with no weights: the features do not depend on it, and the weights being trained may not load."""

    def zeros(features) -> dict:
        n = len(features)
        return {"features": list(features), "mean": [0.0] * n, "scale": [1.0] * n, "weights": [0.0] * n, "intercept": 0}

    return ReaderModel.from_json({"rank": zeros(FEATURES), "decide": zeros(DECISION_FEATURES), "threshold": 0.5})


def build(index_dir: Path, documents, settings: Settings) -> Service:
    """A service over a fresh index of these documents (built in process, with the service's embedder)."""
    service = Service(settings.model_copy(update={"index_dir": index_dir}))
    indexing.update(
        service.store, service.embedder, add=documents, size=settings.chunk_size, overlap=settings.chunk_overlap
    )
    return service


def split(groups: list[str], rng: random.Random, share: float) -> set[str]:
    unique = sorted(set(groups))
    rng.shuffle(unique)
    return set(unique[: int(len(unique) * share)])


def figures(probabilities, labels, answerable, threshold: float) -> dict[str, float]:
    """Question-level figures at a threshold: a question is answered when its probability reaches it.

    answer (= recall): answerable questions answered with a right sentence; refusal: unanswerable ones
    refused; precision: answered questions whose sentence is right.
    """
    answered = probabilities >= threshold
    right = answered & (labels == 1)
    return {
        "answer": float(right[answerable].mean()) if answerable.any() else 0.0,
        "refusal": float((~answered)[~answerable].mean()) if (~answerable).any() else 0.0,
        "precision": float(right[answered].mean()) if answered.any() else 1.0,
    }


def source_weights(sources: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Sample weights under which every source weighs the same in a fit.

    Within the generated source positives and negatives weigh the same too: how many hard negatives
    are made per positive is a choice of this script, not a fact about questions.
    """
    weights = np.ones(len(sources))
    kinds = set(sources.tolist())
    for source in kinds:
        mask = sources == source
        weights[mask] = len(sources) / (len(kinds) * mask.sum())
        if source == "generated":
            for label in (0, 1):
                part = mask & (labels == label)
                if part.any():
                    weights[part] = weights[mask].sum() / (2 * part.sum())
    return weights


# Directions the evidence must push, whatever the data's accidents: a fitted weight of the wrong sign is
# held at 0. (Mechanical hard negatives share everything with their positives but the entity, so without
# this a feature such as "holds the kind of answer asked for" can come out as a sign of a wrong answer.)
POSITIVE = {
    "dense",
    "dense_gap",
    "dense_cross",
    "cover_sentence",
    "cover_context",
    "cover_passage",
    "entity_in_sentence",
    "type_match",
    "rank",
    "rank_lead",
    "dense_lead",
}
NEGATIVE = {"entity_missing", "other_entity", "unknown_name", "premise_mismatch", "passage_rank", "type_missing"}


class SignedLogistic:
    """L2-regularised logistic regression whose weights keep the signs above (L-BFGS-B with bounds)."""

    def __init__(self, features, penalty: float = 1.0):
        self.features = tuple(features)
        self.penalty = penalty

    def fit(self, rows: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> "SignedLogistic":
        from scipy.optimize import minimize

        n, d = rows.shape
        total = weights.sum()

        def loss(theta):
            w, b = theta[:d], theta[d]
            z = rows @ w + b
            p = 1 / (1 + np.exp(-z))
            value = (weights * (np.logaddexp(0, z) - labels * z)).sum() / total + self.penalty * (w @ w) / (2 * total)
            gradient = np.append(
                rows.T @ (weights * (p - labels)) / total + self.penalty * w / total,
                (weights * (p - labels)).sum() / total,
            )
            return value, gradient

        bounds = [(0, None) if f in POSITIVE else (None, 0) if f in NEGATIVE else (None, None) for f in self.features]
        result = minimize(loss, np.zeros(d + 1), jac=True, method="L-BFGS-B", bounds=[*bounds, (None, None)])
        self.coef_ = result.x[:d][None, :]
        self.intercept_ = result.x[d : d + 1]
        return self

    def decision_function(self, rows: np.ndarray) -> np.ndarray:
        return rows @ self.coef_[0] + self.intercept_[0]

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        p = 1 / (1 + np.exp(-self.decision_function(rows)))
        return np.column_stack([1 - p, p])


def fit(features, rows: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> dict:
    mean = rows.mean(axis=0)
    scale = rows.std(axis=0)
    scale[scale == 0] = 1.0
    model = SignedLogistic(features).fit((rows - mean) / scale, labels, weights)
    return {"model": model, "mean": mean, "scale": scale}


def rank_logits(fitted: dict, rows: np.ndarray) -> np.ndarray:
    return fitted["model"].decision_function((rows - fitted["mean"]) / fitted["scale"])


def export(fitted: dict, features) -> dict:
    return {
        "features": list(features),
        "mean": fitted["mean"].tolist(),
        "scale": fitted["scale"].tolist(),
        "weights": fitted["model"].coef_[0].tolist(),
        "intercept": float(fitted["model"].intercept_[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--toyhom", type=Path, default=ROOT.parent / "shared" / "data" / "toyhom-neike")
    parser.add_argument("--toyhom-documents", type=int, default=600, help="Toyhom answers indexed")
    parser.add_argument("--toyhom-questions", type=int, default=300)
    parser.add_argument("--dev", type=Path, default=ROOT / "tests" / "data" / "reader_dev.jsonl")
    parser.add_argument("--out", type=Path, default=ROOT / "src" / "medrag" / "reader.json")
    parser.add_argument("--results", type=Path, default=HERE / "results")
    args = parser.parse_args()

    pipeline.shipped_model = neutral_model
    rng = random.Random(SEED)
    settings = Settings()
    scratch = Path(tempfile.mkdtemp(prefix="medrag-train-"))
    started = time.perf_counter()

    documents = corpus.load_paths([ROOT / "corpus"])
    report = build(scratch / "report", documents, settings)
    collector = Collector(report)
    lexicon = report.pipeline.snapshot().lexicon
    generated = generated_questions(report.pipeline.snapshot().index.documents.values(), lexicon, rng)
    for item in generated:
        collector.add(item["id"], "generated", item["question"], source_sentence(item), item["answerable"])
    dev = [item for item in load_questions(args.dev) if item.get("half") == "dev"]
    for item in dev:
        answers = item["answer_any"]
        collector.add(
            f"d{item['id']}",
            "dev",
            item["question"],
            lambda c, answers=answers: any(contains(c.text, a) for a in answers),
            item["answerable"],
        )

    if args.toyhom.is_dir():
        with (args.toyhom / "neike_5000-6000.csv").open(encoding="utf-8", newline="") as handle:
            rows = [row for row in csv.DictReader(handle) if row["answer"].strip() and row["title"].strip()]
        sample = random.Random(SEED).sample(rows, min(args.toyhom_documents, len(rows)))
        answers = [corpus.from_text(row["answer"].strip(), title="") for row in sample]
        toyhom_service = build(scratch / "toyhom", answers, settings)
        toyhom_collector = Collector(toyhom_service)
        for i, row in enumerate(sample[: args.toyhom_questions]):
            text = row["answer"].strip()
            own = {normalize(text[s:e]) for s, e in sentence_spans(text)}
            question = row["title"].strip() if i % 2 == 0 else row["ask"].strip()[:200]
            toyhom_collector.add(f"t{i}", "toyhom", question, lambda c, own=own: normalize(c.text) in own, True)
        for name in ("rows", "labels", "groups", "sources"):
            getattr(collector, name).extend(getattr(toyhom_collector, name))
        collector.questions.update(toyhom_collector.questions)

    rows = np.vstack(collector.rows)
    labels = np.asarray(collector.labels)
    groups = np.asarray(collector.groups)
    sources = np.asarray(collector.sources)
    held = split(list(groups), random.Random(SEED), 0.3)
    train = np.array([g not in held for g in groups])

    # Stage 1, ranking: which sentence of a question's passages answers it. Learnt from the sources where
    # one sentence is the answer (generated, dev); in Toyhom every sentence of the doctor's reply counts
    # as positive, which teaches which passage, not which sentence. Each source weighs the same.
    ranking = train & (sources != "toyhom")
    rank = fit(FEATURES, rows[ranking], labels[ranking], source_weights(sources[ranking], labels[ranking]))
    logits = rank_logits(rank, rows)

    # Stage 2, decision: per question, does its best-ranked sentence answer it?
    questions = []  # (group, source, decision row, label)
    for group in dict.fromkeys(groups):
        members = np.flatnonzero(groups == group)
        order = members[np.argsort(-logits[members], kind="stable")]
        best = Candidate(0, "", 0, 0, rows[order[0]], float(logits[order[0]]))
        runner_up = Candidate(0, "", 0, 0, rows[order[1]], float(logits[order[1]])) if len(order) > 1 else None
        questions.append((group, sources[order[0]], decision_row(best, runner_up), int(labels[order[0]])))
    q_rows = np.vstack([q[2] for q in questions])
    q_labels = np.array([q[3] for q in questions])
    q_sources = np.array([q[1] for q in questions])
    # An answerable question none of whose retrieved sentences answers it is retrieval's miss, not a
    # decision the reader can get right: it stays out of this stage's fit (unanswerable ones all count).
    positive_groups = {g for g, label in zip(groups, labels, strict=True) if label}
    decidable = np.array([not collector.questions[q[0]][1] or q[0] in positive_groups for q in questions])
    q_train = np.array([q[0] not in held for q in questions]) & decidable
    decide = fit(
        DECISION_FEATURES, q_rows[q_train], q_labels[q_train], source_weights(q_sources[q_train], q_labels[q_train])
    )
    probabilities = decide["model"].predict_proba((q_rows - decide["mean"]) / decide["scale"])[:, 1]

    # The threshold is chosen on the validation questions (every source; never trained on).
    answerable = np.array([collector.questions[q[0]][1] for q in questions])
    valid = ~np.array([q[0] not in held for q in questions]) & decidable
    choose = valid
    thresholds = np.round(np.arange(0.05, 0.96, 0.01), 2)
    curve = [
        {"threshold": float(t), **figures(probabilities[choose], q_labels[choose], answerable[choose], t)}
        for t in thresholds
    ]
    # Balanced accuracy, ties to the higher threshold: for a medical service a wrong answer costs more.
    threshold = max(curve, key=lambda c: (round((c["answer"] + c["refusal"]) / 2, 4), c["threshold"]))["threshold"]

    record = {
        "rank": export(rank, FEATURES),
        "decide": export(decide, DECISION_FEATURES),
        "threshold": threshold,
        "trained": {
            "script": "benchmarks/train_reader.py",
            "seed": SEED,
            "sentences": int(train.sum()),
            "questions": int(q_train.sum()),
            "sources": sorted(set(collector.sources)),
        },
    }
    args.out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    ReaderModel.from_json(record)  # the service can read what was written

    by_source = {
        source: {
            "questions": int((valid & (q_sources == source)).sum()),
            **figures(
                probabilities[valid & (q_sources == source)],
                q_labels[valid & (q_sources == source)],
                answerable[valid & (q_sources == source)],
                threshold,
            ),
        }
        for source in sorted(set(collector.sources))
    }
    bins = np.linspace(0, 1, 11)
    reliability = []
    for low, high in zip(bins[:-1], bins[1:], strict=True):
        mask = valid & (probabilities >= low) & (probabilities < high if high < 1 else probabilities <= high)
        if mask.any():
            reliability.append(
                {
                    "bin": [round(low, 1), round(high, 1)],
                    "predicted": float(probabilities[mask].mean()),
                    "observed": float(q_labels[mask].mean()),
                    "count": int(mask.sum()),
                }
            )
    summary = {
        "threshold": threshold,
        "seconds": round(time.perf_counter() - started, 1),
        "sentences": {"train": int(train.sum()), "validation": int((~train).sum())},
        "questions": {
            "train": int(q_train.sum()),
            "validation": int(valid.sum()),
            "threshold_chosen_on": int(choose.sum()),
        },
        "generated_questions": {
            "answerable": sum(i["answerable"] for i in generated),
            "unanswerable": sum(not i["answerable"] for i in generated),
        },
        "validation_by_source": by_source,
        "rank_weights": dict(zip(FEATURES, rank["model"].coef_[0].round(4).tolist(), strict=True)),
        "decide_weights": dict(zip(DECISION_FEATURES, decide["model"].coef_[0].round(4).tolist(), strict=True)),
        "weights_note": "standardised: each weight multiplies (feature - mean) / scale",
        "threshold_curve": curve,
        "reliability": reliability,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "reader_training.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    plot(summary, args.results)
    print(
        json.dumps(
            {k: summary[k] for k in ("threshold", "questions", "validation_by_source", "decide_weights")},
            ensure_ascii=False,
            indent=1,
        )
    )


def plot(summary: dict, results: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 5))
    points = summary["reliability"]
    axis.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    axis.plot([p["predicted"] for p in points], [p["observed"] for p in points], "o-", label="reader (validation)")
    for p in points:
        axis.annotate(
            str(p["count"]), (p["predicted"], p["observed"]), fontsize=7, xytext=(3, -8), textcoords="offset points"
        )
    axis.set_xlabel("predicted probability that the sentence answers")
    axis.set_ylabel("share of sentences that answer")
    axis.set_title("Reader reliability (validation split)")
    axis.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(results / "reader_reliability.png", dpi=120)

    figure, axis = plt.subplots(figsize=(6, 4))
    curve = summary["threshold_curve"]
    x = [c["threshold"] for c in curve]
    axis.plot(x, [c["answer"] for c in curve], label="recall: answerable answered right")
    axis.plot(x, [c["precision"] for c in curve], label="precision: answers that are right")
    axis.plot(x, [c["refusal"] for c in curve], label="unanswerable refused")
    axis.axvline(summary["threshold"], color="grey", linestyle="--", label=f"chosen {summary['threshold']}")
    axis.set_xlabel("threshold (MEDRAG_MIN_EVIDENCE)")
    axis.set_ylabel("share of validation questions")
    axis.set_title("Answering against the threshold (validation split)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(results / "reader_threshold.png", dpi=120)


if __name__ == "__main__":
    main()
