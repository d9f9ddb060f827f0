"""registry/evaluation.py against scikit-learn and fairlearn (oracles), and hand-computed values."""

import numpy as np
import pytest
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference
from sklearn import metrics as sk

from registry.evaluation import EvaluationError, classification_metrics, fairness_metrics


def _binary(n: int, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    scores = np.clip(y * 0.3 + rng.normal(0.4, 0.25, n), 0, 1).round(2)  # rounded: many ties
    return y, (scores >= 0.5).astype(int), scores


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_metrics_match_scikit_learn(seed):
    y, pred, scores = _binary(5000, seed)

    got = classification_metrics(y, pred, scores)

    assert got["accuracy"] == pytest.approx(sk.accuracy_score(y, pred), rel=1e-12)
    assert got["precision"] == pytest.approx(sk.precision_score(y, pred), rel=1e-12)
    assert got["recall"] == pytest.approx(sk.recall_score(y, pred), rel=1e-12)
    assert got["f1"] == pytest.approx(sk.f1_score(y, pred), rel=1e-12)
    assert got["roc_auc"] == pytest.approx(sk.roc_auc_score(y, scores), rel=1e-9)
    assert [list(r) for r in got.confusion] == sk.confusion_matrix(y, pred).tolist()


def test_string_labels_multiclass_macro_averages_match_scikit_learn():
    rng = np.random.default_rng(4)
    y = rng.choice(["cat", "dog", "eel"], 3000)
    pred = np.where(rng.random(3000) < 0.7, y, rng.choice(["cat", "dog", "eel"], 3000))

    got = classification_metrics(y, pred, scores=rng.random(3000))

    assert got["accuracy"] == pytest.approx(sk.accuracy_score(y, pred))
    assert got["precision"] == pytest.approx(sk.precision_score(y, pred, average="macro"))
    assert got["recall"] == pytest.approx(sk.recall_score(y, pred, average="macro"))
    assert got["f1"] == pytest.approx(sk.f1_score(y, pred, average="macro"))
    assert got["roc_auc"] is None and "binary" in got.roc_auc_note


def test_hand_computed_small_case_and_zero_division():
    got = classification_metrics([1, 1, 0, 0], [1, 0, 0, 0], [0.9, 0.4, 0.4, 0.1])

    assert (got["accuracy"], got["precision"], got["recall"]) == (0.75, 1.0, 0.5)
    assert got["f1"] == pytest.approx(2 / 3)
    assert got["roc_auc"] == pytest.approx(0.875)  # pairs: (0.9>0.4, 0.9>0.1, 0.4=0.4 half, 0.4>0.1) = 3.5 / 4
    nothing_predicted = classification_metrics([1, 0, 1], [0, 0, 0])
    assert nothing_predicted["precision"] == 0.0 and nothing_predicted["f1"] == 0.0


def test_single_class_auc_is_undefined_not_a_crash():
    got = classification_metrics([1, 1, 1], [1, 0, 1], [0.9, 0.2, 0.8])

    assert got["roc_auc"] is None and "one class" in got.roc_auc_note


@pytest.mark.parametrize(
    "args, words",
    [
        (([1, 0], [1]), "lengths"),
        (([], []), "no rows"),
        (([1, 0], ["1", "0"]), "both be numbers"),
        (([1.0, float("nan")], [1, 0]), "NaN"),
        (([1, 0], [1, 0], [0.5]), "scores"),
    ],
)
def test_bad_inputs_say_why(args, words):
    with pytest.raises(EvaluationError, match=words):
        classification_metrics(*args)


def test_unknown_label_values_are_refused_when_labels_are_given():
    with pytest.raises(EvaluationError, match="Unknown label"):
        classification_metrics([0, 1, 2], [0, 1, 1], labels=[0, 1])


@pytest.mark.parametrize("seed", [0, 5])
def test_fairness_matches_fairlearn(seed):
    rng = np.random.default_rng(seed)
    n = 20000
    groups = rng.choice(["a", "b", "c", "d", "e"], n)
    y = rng.integers(0, 2, n)
    bias = np.select([groups == "a", groups == "b"], [0.2, -0.1], 0.0)
    pred = (rng.random(n) < 0.3 + 0.4 * y + bias).astype(int)

    got = fairness_metrics(y, pred, groups)

    assert got["demographic_parity_difference"] == pytest.approx(demographic_parity_difference(y, pred, sensitive_features=groups), rel=1e-12)
    assert got["equalized_odds_difference"] == pytest.approx(equalized_odds_difference(y, pred, sensitive_features=groups), rel=1e-12)
    by = {g.group: g for g in got["by_group"]}
    mask = groups == "a"
    assert by["a"].selection_rate == pytest.approx(pred[mask].mean())
    assert by["a"].tpr == pytest.approx(sk.recall_score(y[mask], pred[mask]))
    assert by["a"].accuracy == pytest.approx(sk.accuracy_score(y[mask], pred[mask]))


def test_fairness_needs_a_binary_task_and_matching_groups():
    with pytest.raises(EvaluationError, match="binary"):
        fairness_metrics([0, 1, 2], [0, 1, 2], ["a", "b", "a"])
    with pytest.raises(EvaluationError, match="group values"):
        fairness_metrics([0, 1], [0, 1], ["a"])
