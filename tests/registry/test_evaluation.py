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


def test_fairness_equals_fairlearn_in_small_groups_without_positives_or_negatives():
    rng = np.random.default_rng(2026)
    degenerate = 0

    for _ in range(200):
        n = int(rng.integers(2, 12))
        groups = rng.choice(["a", "b", "c"], n)
        y, pred = rng.integers(0, 2, n), rng.integers(0, 2, n)
        y[0], y[1] = 0, 1  # both classes occur somewhere, as fairlearn needs
        got = fairness_metrics(y, pred, groups)
        degenerate += bool(got.undefined_rates)

        assert got["equalized_odds_difference"] == pytest.approx(equalized_odds_difference(y, pred, sensitive_features=groups), abs=1e-12), (y, pred, groups)
        assert got["demographic_parity_difference"] == pytest.approx(demographic_parity_difference(y, pred, sensitive_features=groups), abs=1e-12)
    assert degenerate > 20  # the cases this test is about did occur


def test_fairness_names_the_groups_whose_rates_are_undefined_and_their_rows():
    y = [0, 0, 1, 1, 1, 0]
    pred = [1, 0, 1, 0, 1, 1]
    groups = ["a", "a", "b", "b", "c", "c"]

    got = fairness_metrics(y, pred, groups)

    by = {g.group: g for g in got.by_group}
    assert (by["a"].tpr, by["a"].fpr, by["b"].fpr) == (None, 0.5, None)
    assert got.undefined_rates == [{"group": "a", "rate": "tpr", "n": 2}, {"group": "b", "rate": "fpr", "n": 2}]
    assert got.smallest_group == {"group": "a", "n": 2}
    # TPR a 0 (undefined), b 0.5, c 1; FPR a 0.5, b 0 (undefined), c 1: both spreads are 1
    assert got["equalized_odds_difference"] == 1.0
    assert "a (2 rows: no positives), b (2 rows: no negatives)" in got.note


def test_fairness_needs_a_binary_task_and_matching_groups():
    with pytest.raises(EvaluationError, match="binary"):
        fairness_metrics([0, 1, 2], [0, 1, 2], ["a", "b", "a"])
    with pytest.raises(EvaluationError, match="group values"):
        fairness_metrics([0, 1], [0, 1], ["a"])


# --- stored shapes, the positive label, the labels argument, every zero-division branch --------


def test_classification_as_dict_is_plain_json_with_scikit_learns_numbers():
    import json

    y, pred, scores = np.array([1, 0, 1, 1, 0, 0]), np.array([1, 0, 0, 1, 1, 0]), [0.9, 0.1, 0.4, 0.8, 0.6, 0.3]

    stored = json.loads(json.dumps(classification_metrics(y, pred, scores).as_dict()))

    assert stored == {
        "n": 6,
        "accuracy": pytest.approx(sk.accuracy_score(y, pred)),
        "precision": pytest.approx(sk.precision_score(y, pred)),
        "recall": pytest.approx(sk.recall_score(y, pred)),
        "f1": pytest.approx(sk.f1_score(y, pred)),
        "roc_auc": pytest.approx(sk.roc_auc_score(y, scores)),
        "roc_auc_note": "",
        "labels": [0, 1],
        "positive_label": 1,
        "confusion": sk.confusion_matrix(y, pred).tolist(),
    }


def test_fairness_as_dict_is_plain_json_with_fairlearns_numbers():
    import json

    y, pred = np.array([1, 0, 1, 0, 1, 1, 0, 0]), np.array([1, 0, 0, 0, 1, 1, 1, 0])
    groups = np.array(["a", "a", "a", "a", "b", "b", "b", "b"])

    stored = json.loads(json.dumps(fairness_metrics(y, pred, groups).as_dict()))

    assert set(stored) == {"demographic_parity_difference", "equalized_odds_difference", "by_group", "undefined_rates", "smallest_group",
                           "positive_label", "note"}
    assert stored["demographic_parity_difference"] == pytest.approx(demographic_parity_difference(y, pred, sensitive_features=groups))
    assert stored["equalized_odds_difference"] == pytest.approx(equalized_odds_difference(y, pred, sensitive_features=groups))
    assert (stored["positive_label"], stored["note"], stored["undefined_rates"], stored["smallest_group"]) == (1, "", [], {"group": "a", "n": 4})
    assert [g["group"] for g in stored["by_group"]] == ["a", "b"]
    assert stored["by_group"][0] == {"group": "a", "n": 4, "selection_rate": 0.25, "tpr": 0.5, "fpr": 0.0, "accuracy": 0.75}


def test_an_explicit_positive_label_is_the_one_scored():
    y = np.array(["no", "yes", "no", "no", "yes", "no", "yes", "no"])
    pred = np.array(["no", "yes", "yes", "no", "no", "no", "yes", "yes"])

    got = classification_metrics(y, pred, positive="no")

    assert got.positive_label == "no"
    assert got["precision"] == pytest.approx(sk.precision_score(y, pred, pos_label="no"))
    assert got["recall"] == pytest.approx(sk.recall_score(y, pred, pos_label="no"))
    assert got["f1"] == pytest.approx(sk.f1_score(y, pred, pos_label="no"))


def test_fairness_with_an_explicit_positive_label_equals_fairlearn_on_flipped_labels():
    rng = np.random.default_rng(6)
    groups = rng.choice(["a", "b", "c"], 600)
    y, pred = rng.integers(0, 2, 600), rng.integers(0, 2, 600)

    got = fairness_metrics(y, pred, groups, positive=0)

    flipped_true, flipped_pred = 1 - y, 1 - pred
    assert got.positive_label == 0
    assert got["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(flipped_true, flipped_pred, sensitive_features=groups), rel=1e-12
    )
    assert got["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(flipped_true, flipped_pred, sensitive_features=groups), rel=1e-12
    )


def test_labels_argument_adds_labels_never_seen_to_the_macro_average():
    y, pred = [0, 1, 1, 0, 2], [0, 1, 0, 0, 1]

    got = classification_metrics(y, pred, labels=[0, 1, 2, 3])

    assert got.labels == (0, 1, 2, 3) and len(got.confusion) == 4
    for name, metric in [("precision", sk.precision_score), ("recall", sk.recall_score), ("f1", sk.f1_score)]:
        assert got[name] == pytest.approx(metric(y, pred, labels=[0, 1, 2, 3], average="macro", zero_division=0)), name
    assert [list(r) for r in got.confusion] == sk.confusion_matrix(y, pred, labels=[0, 1, 2, 3]).tolist()


def test_unknown_labels_are_named_five_at_most():
    with pytest.raises(EvaluationError, match=r"Unknown label value\(s\) \[2, 3, 4, 5, 6\]; allowed: \[0, 1\]\."):
        classification_metrics([0, 1, 2, 3, 4, 5, 6, 7], [0] * 8, labels=[0, 1])


def test_a_positive_label_given_for_three_labels_still_macro_averages():
    y, pred = [0, 1, 2, 2, 1, 0], [0, 2, 2, 1, 1, 0]

    got = classification_metrics(y, pred, [0.1, 0.5, 0.9, 0.7, 0.4, 0.2], positive=2)

    assert got.positive_label is None
    assert got["precision"] == pytest.approx(sk.precision_score(y, pred, average="macro"))
    assert got["roc_auc"] is None and got.roc_auc_note == "more than two labels: ROC AUC is computed for binary tasks only"


@pytest.mark.parametrize(
    ("y", "pred"),
    [
        ([1, 0, 1, 0], [1, 1, 0, 0]),  # tp = fp = fn = 1: precision = recall = 0.5
        ([0, 0, 0], [1, 0, 0]),  # no positive label at all: recall 0/0
        ([0, 0, 0], [0, 0, 0]),  # nothing positive anywhere
        ([1, 1, 0], [0, 0, 0]),  # nothing predicted positive: precision 0/0
    ],
)
def test_binary_zero_division_and_equal_precision_and_recall_match_scikit_learn(y, pred):
    got = classification_metrics(y, pred, labels=[0, 1])

    assert got.positive_label == 1
    for name, metric in [("precision", sk.precision_score), ("recall", sk.recall_score), ("f1", sk.f1_score)]:
        assert got[name] == pytest.approx(metric(y, pred, labels=[0, 1], zero_division=0), abs=1e-15), name


def test_multiclass_with_labels_predicted_once_or_never_matches_scikit_learn():
    y = [0, 0, 1, 1, 2, 2, 2, 3, 4]
    pred = [0, 1, 1, 1, 0, 0, 2, 0, 4]  # 2 predicted once, 3 never predicted, 4 once and right

    got = classification_metrics(y, pred)

    for name, metric in [("precision", sk.precision_score), ("recall", sk.recall_score), ("f1", sk.f1_score)]:
        assert got[name] == pytest.approx(metric(y, pred, average="macro", zero_division=0), abs=1e-15), name


def test_roc_auc_notes_and_a_single_positive():
    y = [0, 0, 1, 0, 0]
    scores = [0.1, 0.7, 0.6, 0.2, 0.9]

    scored = classification_metrics(y, [0, 0, 1, 0, 0], scores)
    unscored = classification_metrics(y, [0, 0, 1, 0, 0])

    assert scored["roc_auc"] == pytest.approx(sk.roc_auc_score(y, scores)) and scored.roc_auc_note == ""
    assert (unscored["roc_auc"], unscored.roc_auc_note) == (None, "no scores given")
    one_class = classification_metrics([1, 1], [1, 0], [0.2, 0.4])
    assert one_class.roc_auc_note == "only one class in the labels: ROC AUC is undefined"


@pytest.mark.parametrize(
    ("scores", "words"),
    [
        (["high", "low"], r"^scores must be one number per row, as many as the labels\.$"),
        ([[0.1], [0.2]], r"^scores must be one number per row, as many as the labels\.$"),
        ([0.1, float("inf")], r"^scores hold NaN or infinite values\.$"),
    ],
)
def test_bad_scores_say_why(scores, words):
    with pytest.raises(EvaluationError, match=words):
        classification_metrics([0, 1], [0, 1], scores)


def test_bad_groups_and_non_binary_tasks_say_why():
    with pytest.raises(EvaluationError, match="groups must be one value per row"):
        fairness_metrics([0, 1], [0, 1], [["a"], ["b"]])
    with pytest.raises(EvaluationError, match=r"^Fairness metrics need a binary task \(two label values\)\.$"):
        fairness_metrics([0, 1, 2], [0, 1, 2], ["a", "b", "a"])


@pytest.mark.parametrize(
    ("labels", "positive"),
    [([0, 1], 1), ([1, 2], 1), ([0, 2], 2), ([False, True], True), (["1", "2"], "1"), (["true", "zzz"], "true"),
     (["yes", "zzz"], "yes"), (["b", "a"], "b")],
)  # fmt: skip
def test_the_default_positive_label_is_1_or_true_or_yes_else_the_larger(labels, positive):
    got = classification_metrics(labels, labels)

    assert got.positive_label == positive


def test_a_positive_label_outside_the_labels_is_refused():
    with pytest.raises(EvaluationError, match=r"The positive label 'maybe' is not among the labels \['no', 'yes'\]\."):
        classification_metrics(["no", "yes"], ["yes", "yes"], positive="maybe")


def test_a_numpy_positive_label_is_stored_as_a_plain_number():
    import json

    stored = json.loads(json.dumps(classification_metrics([0, 1, 1], [0, 1, 0], positive=np.int64(1)).as_dict()))

    assert stored["positive_label"] == 1


@pytest.mark.parametrize(
    ("y_true", "y_pred", "words"),
    [
        ([[1], [0]], [1, 0], r"^labels must be one value per row\.$"),
        ([1, 0], [1.0, float("nan")], r"^predictions holds NaN or infinite values\.$"),
        ([1, None], [1, 0], r"^labels must be all numbers or all strings\.$"),
        ([], [], r"^Nothing to evaluate: no rows\.$"),
        ([1, 0], ["1", "0"], r"^Labels and predictions must both be numbers or both be strings\.$"),
    ],
)
def test_bad_labels_and_predictions_are_named_in_the_message(y_true, y_pred, words):
    with pytest.raises(EvaluationError, match=words):
        classification_metrics(y_true, y_pred)


def test_results_read_as_mappings_of_their_metrics():
    got = classification_metrics([0, 1, 1], [0, 1, 0])
    fairness = fairness_metrics([0, 1, 1, 0], [0, 1, 0, 0], ["a", "a", "b", "b"])

    assert list(got) == ["accuracy", "precision", "recall", "f1", "roc_auc"] and len(got) == 5
    assert dict(fairness).keys() == {"demographic_parity_difference", "equalized_odds_difference", "by_group"}
    with pytest.raises(KeyError) as missing:
        got["n"]  # a field, but not one of the metrics
    assert missing.value.args == ("n",)
