"""The extractive reader's evidence: the probability that a sentence's answer is right.

A logistic model over a few features of the best sentence (FEATURES), fitted by
`benchmarks/train_reader.py` on questions that are not evaluation questions: Toyhom patient questions
over an index of doctors' answers (their own answer indexed or not), other patient questions asked of
the report (about nothing in it), questions generated mechanically
from the report (attribute questions and their entity swaps) and the development half of
`tests/data/reader_dev.jsonl`. Its weights and the refusal threshold chosen out of fold ship beside
this module as `reader_model.json`; `MEDRAG_MIN_EVIDENCE` overrides the threshold.
"""

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

# What the reader measures of a sentence (answering.ExtractiveAnswerer.candidates):
# - similarity: the cosine of the sentence's vector (with its headings) to the question's, mapped from
#   e5's narrow band for the pair's languages (answering.rescale);
# - support: the share of what the question asks about (its terms without its entities) the sentence holds;
# - distinct: how far the sentence's cosine (on its band) stands above every other sentence read of the
#   top passages, those the rules set aside included, in [-1, 1] (answering.distinct).
# Tried and left out (docs/design.md): the coverage of all the question's terms, the raw cosine with a
# per-language term instead of the mapped one, the passage's retrieval rank, and the coverage of the
# question's heaviest noun.
FEATURES = ("similarity", "support", "distinct")
MODEL_FILE = "reader_model.json"


@dataclass(frozen=True)
class EvidenceModel:
    weights: tuple[float, ...]  # one per FEATURES entry
    bias: float
    threshold: float  # below this probability the reader refuses

    def probability(self, features: Sequence[float]) -> float:
        z = self.bias + sum(w * x for w, x in zip(self.weights, features, strict=True))
        return 1.0 / (1.0 + math.exp(-z))


def load(path: Path | None = None) -> EvidenceModel:
    """The model shipped in the package, or the one at `path` (as `benchmarks/train_reader.py` writes it)."""
    text = path.read_text(encoding="utf-8") if path else (resources.files(__package__) / MODEL_FILE).read_text("utf-8")
    data = json.loads(text)
    if tuple(data["features"]) != FEATURES:
        raise ValueError(f"reader model features {data['features']} are not {list(FEATURES)}")
    return EvidenceModel(
        tuple(float(data["weights"][name]) for name in FEATURES), float(data["bias"]), data["threshold"]
    )
