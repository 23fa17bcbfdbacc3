"""Classification metrics written from scratch with NumPy.

Part II's text-classification chapter builds each of these step by step and checks them
against scikit-learn; Part V's evaluation chapter and the capstone reuse them. Labels can be
any sortable values (``0``/``1``, ``"neg"``/``"pos"``, ...)::

    from llmzero.evaluation import metrics

    metrics.accuracy(y_true, y_pred)
    metrics.confusion_matrix(y_true, y_pred)              # rows: true label, columns: predicted
    metrics.precision_recall_f1(y_true, y_pred)           # per-class arrays
    metrics.f1_score(y_true, y_pred, average="macro")     # one number
    metrics.precision_recall_curve(y_true, scores, pos_label="pos")
    metrics.average_precision(y_true, scores, pos_label="pos")

**Zero division.** Precision is undefined for a class that is never predicted, recall for a
class that never occurs, and F1 when both are. Such values are set to ``zero_division``
(default ``0.0``), silently. This is scikit-learn's ``zero_division=0`` (its default,
``"warn"``, gives the same numbers plus a warning). ``zero_division=1.0`` is also accepted
and matches scikit-learn's ``zero_division=1``.

F1 is computed as ``2 TP / (2 TP + FP + FN)``, which equals the harmonic mean of precision
and recall whenever both are defined and is 0 when ``TP = 0`` but the class was predicted or
occurs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

__all__ = [
    "accuracy",
    "average_precision",
    "confusion_matrix",
    "f1_score",
    "precision",
    "precision_recall_curve",
    "precision_recall_f1",
    "recall",
]

Average = Literal["binary", "macro", "micro", "weighted"] | None
#: What the metrics accept as labels or scores: a list, a NumPy array, a pandas Series, ...
ArrayLike = Sequence[Any] | np.ndarray


def _check_pair(
    y_true: ArrayLike, y_pred: ArrayLike, pred_name: str = "y_pred"
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``y_true`` and ``y_pred`` as 1-D arrays after checking they can be compared."""
    true = np.asarray(y_true)
    pred = np.asarray(y_pred)
    if true.ndim != 1 or pred.ndim != 1:
        raise ValueError(
            f"y_true and {pred_name} must be 1-D, got shapes {true.shape} and {pred.shape}"
        )
    if len(true) != len(pred):
        raise ValueError(
            f"y_true and {pred_name} must have the same length, got {len(true)} and {len(pred)}"
        )
    if len(true) == 0:
        raise ValueError(f"y_true and {pred_name} are empty: there is nothing to evaluate")
    return true, pred


def _check_zero_division(zero_division: float) -> float:
    """Accept only the two conventions this module documents."""
    if zero_division not in (0.0, 1.0):
        raise ValueError(f"zero_division must be 0.0 or 1.0, got {zero_division!r}")
    return float(zero_division)


def _encode(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Index of each value in ``labels``, or -1 where the value is not one of them."""
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    positions = np.searchsorted(sorted_labels, values)  # (n,) insertion points
    clipped = np.minimum(positions, len(labels) - 1)
    found = sorted_labels[clipped] == values  # (n,) bool
    return np.where(found, order[clipped], -1)


def _resolve_labels(true: np.ndarray, pred: np.ndarray, labels: ArrayLike | None) -> np.ndarray:
    """The labels to report on: ``labels`` as given, or every value seen, sorted."""
    if labels is None:
        return np.unique(np.concatenate([true, pred]))
    resolved = np.asarray(labels)
    if resolved.ndim != 1 or len(resolved) == 0:
        raise ValueError(f"labels must be a non-empty 1-D sequence, got {labels!r}")
    if len(np.unique(resolved)) != len(resolved):
        raise ValueError(f"labels contains duplicates: {labels!r}")
    return resolved


def _divide(numerator: np.ndarray, denominator: np.ndarray, zero_division: float) -> np.ndarray:
    """``numerator / denominator`` elementwise; ``zero_division`` where the denominator is 0."""
    numerator = np.asarray(numerator, dtype=float)
    denominator = np.asarray(denominator, dtype=float)
    out = np.full(np.broadcast(numerator, denominator).shape, zero_division, dtype=float)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """The fraction of examples whose predicted label equals the true label."""
    true, pred = _check_pair(y_true, y_pred)
    return float(np.mean(true == pred))


def confusion_matrix(
    y_true: ArrayLike, y_pred: ArrayLike, labels: ArrayLike | None = None
) -> np.ndarray:
    """Count how often each true label was predicted as each label.

    Entry ``[i, j]`` is the number of examples whose true label is ``labels[i]`` and whose
    predicted label is ``labels[j]``, so the diagonal holds the correct predictions. By default
    ``labels`` is every value in ``y_true`` or ``y_pred``, sorted; examples whose true or
    predicted label is not in ``labels`` are left out (as in scikit-learn).
    """
    true, pred = _check_pair(y_true, y_pred)
    label_array = _resolve_labels(true, pred, labels)
    n_labels = len(label_array)
    true_idx, pred_idx = _encode(true, label_array), _encode(pred, label_array)  # (n,) each
    keep = (true_idx >= 0) & (pred_idx >= 0)
    flat = true_idx[keep] * n_labels + pred_idx[keep]  # one number per (true, predicted) pair
    return np.bincount(flat, minlength=n_labels * n_labels).reshape(n_labels, n_labels)


def _counts(
    true: np.ndarray, pred: np.ndarray, label_array: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-label true positives, number of predictions and number of true occurrences.

    Counted over all examples, so a prediction of a listed label whose true label is not
    listed still counts as a false positive (as in scikit-learn).
    """
    n_labels = len(label_array)
    true_idx, pred_idx = _encode(true, label_array), _encode(pred, label_array)  # (n,) each
    hit = (true_idx == pred_idx) & (true_idx >= 0)
    tp = np.bincount(true_idx[hit], minlength=n_labels)  # (n_labels,)
    n_predicted = np.bincount(pred_idx[pred_idx >= 0], minlength=n_labels)  # TP + FP
    n_true = np.bincount(true_idx[true_idx >= 0], minlength=n_labels)  # TP + FN (the support)
    return tp, n_predicted, n_true


def precision_recall_f1(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    average: Average = None,
    labels: ArrayLike | None = None,
    pos_label: object = 1,
    zero_division: float = 0.0,
) -> tuple[np.ndarray | float, np.ndarray | float, np.ndarray | float]:
    """Precision, recall and F1, per class or averaged.

    For one class, with TP, FP and FN its true positives, false positives and false
    negatives: precision = TP / (TP + FP), recall = TP / (TP + FN),
    F1 = 2 TP / (2 TP + FP + FN).

    ``average`` chooses what comes back:

    - ``None``: one value per label in ``labels`` (default: every value seen, sorted);
    - ``"binary"``: the values for ``pos_label`` only; the data must have at most two labels;
    - ``"macro"``: the unweighted mean over labels of the per-class values (so macro-F1 is
      the mean of per-class F1 scores, not the F1 of macro precision and recall);
    - ``"micro"``: TP, FP and FN summed over labels first, then one precision, recall and F1
      (for single-label data with every label listed, all three equal the accuracy);
    - ``"weighted"``: the per-class values averaged with weights proportional to each
      label's number of true occurrences.

    Undefined ratios become ``zero_division`` (see the module docstring).
    """
    true, pred = _check_pair(y_true, y_pred)
    zero_division = _check_zero_division(zero_division)
    if average not in (None, "binary", "macro", "micro", "weighted"):
        raise ValueError(
            f"average must be None, 'binary', 'macro', 'micro' or 'weighted', got {average!r}"
        )
    if average == "binary":
        present = np.unique(np.concatenate([true, pred]))
        if len(present) > 2:
            raise ValueError(
                f"average='binary' needs at most two labels, found {len(present)}; "
                "use average='macro', 'micro', 'weighted' or None"
            )
        if len(present) == 2 and pos_label not in present.tolist():
            raise ValueError(f"pos_label={pos_label!r} is not one of the labels {present.tolist()}")
        label_array = np.asarray([pos_label])
    else:
        label_array = _resolve_labels(true, pred, labels)

    tp, n_predicted, n_true = _counts(true, pred, label_array)
    if average == "micro":
        tp, n_predicted, n_true = tp.sum(), n_predicted.sum(), n_true.sum()
    precision_values = _divide(tp, n_predicted, zero_division)
    recall_values = _divide(tp, n_true, zero_division)
    f1_values = _divide(2 * tp, n_predicted + n_true, zero_division)

    if average is None:
        return precision_values, recall_values, f1_values
    if average in ("binary", "micro"):
        return (
            float(precision_values.item(0)),
            float(recall_values.item(0)),
            float(f1_values.item(0)),
        )
    if average == "macro":
        return float(precision_values.mean()), float(recall_values.mean()), float(f1_values.mean())
    if n_true.sum() == 0:  # weighted, but no listed label ever occurs
        return zero_division, zero_division, zero_division
    weights = n_true / n_true.sum()
    return (
        float(weights @ precision_values),
        float(weights @ recall_values),
        float(weights @ f1_values),
    )


def precision(y_true: ArrayLike, y_pred: ArrayLike, **kwargs: object) -> np.ndarray | float:
    """Precision, TP / (TP + FP); keyword arguments as in :func:`precision_recall_f1`."""
    return precision_recall_f1(y_true, y_pred, **kwargs)[0]  # type: ignore[arg-type]


def recall(y_true: ArrayLike, y_pred: ArrayLike, **kwargs: object) -> np.ndarray | float:
    """Recall, TP / (TP + FN); keyword arguments as in :func:`precision_recall_f1`."""
    return precision_recall_f1(y_true, y_pred, **kwargs)[1]  # type: ignore[arg-type]


def f1_score(y_true: ArrayLike, y_pred: ArrayLike, **kwargs: object) -> np.ndarray | float:
    """F1, 2 TP / (2 TP + FP + FN); keyword arguments as in :func:`precision_recall_f1`."""
    return precision_recall_f1(y_true, y_pred, **kwargs)[2]  # type: ignore[arg-type]


def precision_recall_curve(
    y_true: ArrayLike, scores: ArrayLike, pos_label: object = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall of the rule "predict ``pos_label`` when score >= t" for every t.

    ``scores`` are any numbers where higher means "more likely ``pos_label``" (probabilities,
    logits, VADER's compound score). The thresholds are the distinct scores, in increasing
    order. ``precision[k]`` and ``recall[k]`` belong to ``thresholds[k]``; one last point,
    precision 1 and recall 0 (predict nothing positive), ends both arrays, so they are one
    longer than ``thresholds`` and recall decreases along them. This is scikit-learn's
    layout. A threshold at which nothing is predicted positive cannot occur here, so no
    zero-division convention is needed.

    Raises ``ValueError`` if ``y_true`` has no example of ``pos_label`` (recall is then
    undefined everywhere) or if a score is not finite.
    """
    true, score = _check_pair(y_true, scores, pred_name="scores")
    score = score.astype(float)
    if not np.all(np.isfinite(score)):
        raise ValueError("scores must be finite numbers")
    is_positive = true == pos_label  # (n,) bool
    n_positive = int(is_positive.sum())
    if n_positive == 0:
        raise ValueError(f"y_true has no example of pos_label={pos_label!r}: recall is undefined")

    order = np.argsort(-score, kind="stable")  # highest score first
    score, is_positive = score[order], is_positive[order]
    # The last index of each run of equal scores: lowering the threshold past a score
    # turns all examples with that score positive at once.
    last_of_run = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]
    tp = np.cumsum(is_positive)[last_of_run]  # positives among the predicted positives
    n_predicted = last_of_run + 1  # everything scored at least this high
    precision_values = tp / n_predicted
    recall_values = tp / n_positive
    thresholds = score[last_of_run]
    # Reverse so thresholds increase, then append the "predict nothing" end point.
    return (
        np.r_[precision_values[::-1], 1.0],
        np.r_[recall_values[::-1], 0.0],
        thresholds[::-1],
    )


def average_precision(y_true: ArrayLike, scores: ArrayLike, pos_label: object = 1) -> float:
    """The area under the precision-recall curve as a step function (average precision).

    ``AP = sum_k (R_k - R_(k+1)) * P_k``: the precision at each threshold, weighted by how
    much recall it adds. Same definition as scikit-learn's
    ``average_precision_score``; no interpolation between points.
    """
    precision_values, recall_values, _ = precision_recall_curve(y_true, scores, pos_label)
    return float(-np.sum(np.diff(recall_values) * precision_values[:-1]))
