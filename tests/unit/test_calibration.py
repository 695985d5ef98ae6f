"""The reader's evidence model: the shipped weights load, and the probability behaves as evidence should."""

import json

import pytest

from medrag import calibration
from medrag.answering import ExtractiveAnswerer, distinct


def test_the_shipped_model_weighs_every_feature_and_a_probability_threshold():
    model = calibration.load()
    assert len(model.weights) == len(calibration.FEATURES)
    assert 0.0 < model.threshold < 1.0


def test_evidence_rises_with_similarity_support_and_distinctness():
    model = calibration.load()
    low, high = (0.2, 0.0, 0.0), (0.9, 1.0, 0.3)
    assert 0.0 < model.probability(low) < model.threshold < model.probability(high) < 1.0
    for feature in range(len(calibration.FEATURES)):  # more of any is more evidence, all else equal
        more = list(low)
        more[feature] += 0.5
        assert model.probability(more) > model.probability(low), calibration.FEATURES[feature]


def test_a_sentence_no_closer_than_the_others_read_is_weak_evidence():
    # The same similarity and no support: standing 0.3 of the band above every other sentence read, or
    # level with one of them (the sentence naming the model asked, where another model's sentence
    # holds the attribute asked).
    model = calibration.load()
    assert model.probability((0.6, 0.0, 0.3)) >= model.threshold > model.probability((0.6, 0.0, 0.0))


def test_distinct_is_the_margin_over_the_best_other_sentence_within_its_bounds():
    assert distinct(0.9, [0.4, 0.7]) == pytest.approx(0.2)
    assert distinct(0.5, [0.8]) == pytest.approx(-0.3)
    assert distinct(3.0, [0.5]) == 1.0 and distinct(0.2, [3.0]) == -1.0
    assert distinct(1.3, [1.1]) == pytest.approx(0.2)  # above a direct answer's cosine, still apart
    assert distinct(-0.5, [-3.0]) == 0.0  # among unrelated sentences, none stands out
    assert distinct(0.5, []) == 0.5 and distinct(-0.4, []) == 0.0  # nothing else read: against unrelated text


def test_a_model_of_other_features_is_refused(tmp_path):
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"features": ["dense"], "weights": {"dense": 1.0}, "bias": 0.0, "threshold": 0.5}))
    with pytest.raises(ValueError, match="features"):
        calibration.load(path)


def test_the_threshold_is_the_models_unless_one_is_set():
    model = calibration.load()
    assert ExtractiveAnswerer(None, None, None, model=model).min_evidence == model.threshold
    assert ExtractiveAnswerer(None, None, None, model=model, min_evidence=0.7).min_evidence == 0.7
