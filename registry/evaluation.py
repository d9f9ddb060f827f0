"""Model evaluation: classification metrics and group fairness. numpy and scipy only, no Django.

The numbers match scikit-learn and fairlearn (tests use them as oracles; the
product does not import them):

- accuracy = mean(y_pred == y_true)
- binary: precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2PR / (P + R),
  each 0 when its denominator is 0 (scikit-learn's zero_division=0);
  more than two labels: the unweighted mean over labels ("macro").
- ROC AUC (binary, with scores) = the Mann-Whitney U of the positives' scores
  divided by n_pos * n_neg, ties counted half; equal to scikit-learn's
  trapezoidal roc_auc_score. Undefined (None, with the reason) when the labels
  hold a single class.
- Per sensitive group: selection rate = mean(y_pred == positive), TPR, FPR,
  accuracy. Demographic parity difference = max - min selection rate;
  equalized odds difference = max(TPR spread, FPR spread) (fairlearn's
  definitions; docs/metrics.md). A group without positives has no TPR (and one
  without negatives no FPR): it is reported undefined, and the spread counts it
  as 0, as fairlearn does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields

import numpy as np
from scipy.stats import rankdata


class EvaluationError(ValueError):
    """Inputs that cannot be evaluated; the message says which and why."""


class _Mapping(Mapping):
    """Frozen-dataclass results that also read as a mapping of their metric fields."""

    _keys: tuple[str, ...] = ()

    def __getitem__(self, key: str):
        if key not in self._keys:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


@dataclass(frozen=True)
class ClassificationMetrics(_Mapping):
    n: int
    accuracy: float
    precision: float
    recall: float
    f1: float
    roc_auc: float | None
    roc_auc_note: str
    labels: tuple
    positive_label: object  # None for more than two labels (macro averages)
    confusion: tuple[tuple[int, ...], ...]  # rows: true label, columns: predicted label, in `labels` order

    _keys = ("accuracy", "precision", "recall", "f1", "roc_auc")

    def as_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["labels"] = [_plain(v) for v in self.labels]
        out["positive_label"] = _plain(self.positive_label)
        out["confusion"] = [list(row) for row in self.confusion]
        return out


@dataclass(frozen=True)
class GroupMetrics:
    group: str
    n: int
    selection_rate: float
    tpr: float | None  # None: no positives in this group
    fpr: float | None  # None: no negatives in this group
    accuracy: float


@dataclass(frozen=True)
class FairnessMetrics(_Mapping):
    demographic_parity_difference: float
    equalized_odds_difference: float | None
    by_group: tuple[GroupMetrics, ...]
    positive_label: object
    note: str

    _keys = ("demographic_parity_difference", "equalized_odds_difference", "by_group")

    @property
    def undefined_rates(self) -> list[dict]:
        """Each group whose TPR or FPR is undefined (no positives or no negatives), with its rows."""
        return [
            {"group": g.group, "rate": rate, "n": g.n}
            for g in self.by_group
            for rate, value in (("tpr", g.tpr), ("fpr", g.fpr))
            if value is None
        ]

    @property
    def smallest_group(self) -> dict | None:
        smallest = min(self.by_group, key=lambda g: g.n, default=None)
        return None if smallest is None else {"group": smallest.group, "n": smallest.n}

    def as_dict(self) -> dict:
        return {
            "demographic_parity_difference": self.demographic_parity_difference,
            "equalized_odds_difference": self.equalized_odds_difference,
            "by_group": [g.__dict__ for g in self.by_group],
            "undefined_rates": self.undefined_rates,
            "smallest_group": self.smallest_group,
            "positive_label": _plain(self.positive_label),
            "note": self.note,
        }


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _array(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise EvaluationError(f"{name} must be one value per row.")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise EvaluationError(f"{name} holds NaN or infinite values.")
    if array.dtype.kind == "O":
        raise EvaluationError(f"{name} must be all numbers or all strings.")
    return array


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t, p = _array(y_true, "labels"), _array(y_pred, "predictions")
    if len(t) != len(p):
        raise EvaluationError(f"{len(p)} predictions for {len(t)} labels: the lengths must match.")
    if len(t) == 0:
        raise EvaluationError("Nothing to evaluate: no rows.")
    if (t.dtype.kind in "US") != (p.dtype.kind in "US"):
        raise EvaluationError("Labels and predictions must both be numbers or both be strings.")
    return t, p


def _positive(labels: np.ndarray, positive):
    if positive is not None:
        if positive not in labels.tolist():
            raise EvaluationError(f"The positive label {positive!r} is not among the labels {labels.tolist()!r}.")
        return positive
    values = labels.tolist()
    if len(values) > 2:
        return None
    for candidate in (1, True, "1", "true", "yes"):
        if candidate in values:
            return candidate
    return values[-1]  # two labels without an obvious positive: the larger, as sorted


def classification_metrics(y_true, y_pred, scores=None, *, positive=None, labels=None) -> ClassificationMetrics:
    """Accuracy, precision, recall, F1, ROC AUC (with `scores`, binary only) and the confusion matrix.

    `labels`: the allowed label values; a value outside them is an error ("unknown label").
    `positive`: the positive label of a binary task (default 1 / True when present, else the larger).
    """
    t, p = _pair(y_true, y_pred)
    found = np.unique(np.concatenate([t, p]))
    if labels is not None:
        allowed = np.asarray(labels)
        unknown = np.setdiff1d(found, allowed)
        if len(unknown):
            raise EvaluationError(f"Unknown label value(s) {unknown[:5].tolist()!r}; allowed: {allowed.tolist()!r}.")
        found = np.unique(allowed)
    k = len(found)
    codes_t, codes_p = np.searchsorted(found, t), np.searchsorted(found, p)
    confusion = np.bincount(codes_t * k + codes_p, minlength=k * k).reshape(k, k)
    n = len(t)
    accuracy = float(np.trace(confusion) / n)
    pos = _positive(found, positive)
    binary = pos is not None and k <= 2
    if binary:
        i = int(np.searchsorted(found, pos))
        tp = confusion[i, i]
        fp = confusion[:, i].sum() - tp
        fn = confusion[i, :].sum() - tp
        precision = float(tp / (tp + fp)) if tp + fp else 0.0
        recall = float(tp / (tp + fn)) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    else:
        tp = np.diag(confusion)
        predicted, actual = confusion.sum(axis=0), confusion.sum(axis=1)
        per_precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
        per_recall = np.divide(tp, actual, out=np.zeros(k), where=actual > 0)
        both = per_precision + per_recall
        per_f1 = np.divide(2 * per_precision * per_recall, both, out=np.zeros(k), where=both > 0)
        precision, recall, f1 = float(per_precision.mean()), float(per_recall.mean()), float(per_f1.mean())
    roc_auc, note = None, "no scores given"
    if scores is not None:
        roc_auc, note = _roc_auc(t, scores, pos, k)
    return ClassificationMetrics(
        n=n, accuracy=accuracy, precision=precision, recall=recall, f1=float(f1), roc_auc=roc_auc, roc_auc_note=note,
        labels=tuple(found.tolist()), positive_label=pos if binary else None, confusion=tuple(tuple(int(c) for c in row) for row in confusion),
    )


def _roc_auc(t: np.ndarray, scores, pos, k: int) -> tuple[float | None, str]:
    s = np.asarray(scores, dtype=np.float64) if np.asarray(scores).dtype.kind in "iufb" else None
    if s is None or s.ndim != 1 or len(s) != len(t):
        raise EvaluationError("scores must be one number per row, as many as the labels.")
    if not np.isfinite(s).all():
        raise EvaluationError("scores hold NaN or infinite values.")
    if k > 2 or pos is None:
        return None, "more than two labels: ROC AUC is computed for binary tasks only"
    positives = t == pos
    n_pos = int(positives.sum())
    n_neg = len(t) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None, "only one class in the labels: ROC AUC is undefined"
    ranks = rankdata(s)  # average ranks: a tie between a positive and a negative counts half
    u = ranks[positives].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg)), ""


def fairness_metrics(y_true, y_pred, groups, *, positive=None) -> FairnessMetrics:
    """Selection rate, TPR, FPR and accuracy per group; demographic parity and equalized odds differences.

    Binary tasks only. A group without positives (or negatives) has no TPR (FPR):
    it is reported as None and counted as 0 in that spread, as fairlearn counts it
    (so the difference equals fairlearn's in every case); the note names those groups.
    """
    t, p = _pair(y_true, y_pred)
    g = _array(groups, "groups")
    if len(g) != len(t):
        raise EvaluationError(f"{len(g)} group values for {len(t)} rows: the lengths must match.")
    found = np.unique(np.concatenate([t, p]))
    if len(found) > 2:
        raise EvaluationError("Fairness metrics need a binary task (two label values).")
    pos = _positive(found, positive)
    names, codes = np.unique(g.astype(str), return_inverse=True)
    m = len(names)
    is_pos_true, is_pos_pred = t == pos, p == pos
    count = np.bincount(codes, minlength=m)
    selected = np.bincount(codes, weights=is_pos_pred, minlength=m)
    correct = np.bincount(codes, weights=(t == p), minlength=m)
    actual_pos = np.bincount(codes, weights=is_pos_true, minlength=m)
    true_pos = np.bincount(codes, weights=is_pos_true & is_pos_pred, minlength=m)
    false_pos = np.bincount(codes, weights=~is_pos_true & is_pos_pred, minlength=m)
    actual_neg = count - actual_pos
    rows = []
    for j in range(m):
        rows.append(GroupMetrics(
            group=str(names[j]), n=int(count[j]), selection_rate=float(selected[j] / count[j]),
            tpr=float(true_pos[j] / actual_pos[j]) if actual_pos[j] else None,
            fpr=float(false_pos[j] / actual_neg[j]) if actual_neg[j] else None,
            accuracy=float(correct[j] / count[j]),
        ))
    rates = [r.selection_rate for r in rows]
    tprs = [r.tpr or 0.0 for r in rows]
    fprs = [r.fpr or 0.0 for r in rows]
    undefined = [
        f"{r.group} ({r.n} rows: no {'positives' if r.tpr is None else 'negatives'})" if (r.tpr is None) != (r.fpr is None)
        else f"{r.group} ({r.n} rows)"
        for r in rows if r.tpr is None or r.fpr is None
    ]
    note = f"rates undefined, counted as 0 in the equalized odds spread as fairlearn does: {', '.join(undefined)}" if undefined else ""
    return FairnessMetrics(
        demographic_parity_difference=float(max(rates) - min(rates)),
        equalized_odds_difference=float(max(max(tprs) - min(tprs), max(fprs) - min(fprs))),
        by_group=tuple(rows), positive_label=_plain(pos) if not isinstance(pos, str) else pos, note=note,
    )
