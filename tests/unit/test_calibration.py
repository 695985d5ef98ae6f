"""The reader's evidence model: the shipped weights load, and the probability behaves as evidence should."""

import json

import pytest

from medrag import calibration
from medrag.answering import ExtractiveAnswerer


def test_the_shipped_model_weighs_every_feature_and_a_probability_threshold():
    model = calibration.load()
    assert len(model.weights) == len(calibration.FEATURES)
    assert 0.0 < model.threshold < 1.0


def test_evidence_rises_with_similarity_and_with_support():
    model = calibration.load()
    low, high = (0.2, 0.0), (0.9, 1.0)
    assert 0.0 < model.probability(low) < model.threshold < model.probability(high) < 1.0
    for feature in (0, 1):  # similarity, support: more of either is more evidence, all else equal
        more = list(low)
        more[feature] += 0.5
        assert model.probability(more) > model.probability(low), calibration.FEATURES[feature]


def test_a_model_of_other_features_is_refused(tmp_path):
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"features": ["dense"], "weights": {"dense": 1.0}, "bias": 0.0, "threshold": 0.5}))
    with pytest.raises(ValueError, match="features"):
        calibration.load(path)


def test_the_threshold_is_the_models_unless_one_is_set():
    model = calibration.load()
    assert ExtractiveAnswerer(None, None, None, model=model).min_evidence == model.threshold
    assert ExtractiveAnswerer(None, None, None, model=model, min_evidence=0.7).min_evidence == 0.7
