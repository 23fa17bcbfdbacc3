"""Calibration of a classifier's probabilities (Part VI, *Classification in practice*).

A classifier is *calibrated* when its probabilities mean what they say: of all the
examples it gives 80% confidence, about 80% are right. This module measures that and
fixes the simplest kind of miscalibration:

- :func:`bin_indices` puts probabilities into equal-width (``"uniform"``) or equal-count
  (``"quantile"``) bins, the binning of ``sklearn.calibration.calibration_curve``;
- :func:`reliability_bins` gives, for every bin, the mean predicted probability, the
  observed frequency and the count: the points of a *reliability diagram*. For binary
  labels and ``P(class 1)``, its non-empty bins equal ``calibration_curve``'s output
  (``tests/test_calibration.py`` checks it);
- :func:`confidence_bins` and :func:`expected_calibration_error`: the *top-label* view of
  Guo et al. (2017): bin the confidence (the largest class probability) and compare it
  with the accuracy in each bin; ECE is the count-weighted mean gap;
- :func:`softmax`, :func:`negative_log_likelihood` and :func:`fit_temperature`:
  temperature scaling, one number ``T`` that divides the logits, fitted on held-out data
  by minimising the negative log-likelihood. It changes no prediction, only confidence.

Usage::

    import numpy as np
    from llmzero.evaluation import calibration

    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])  # (n, classes)
    labels = np.array([0, 1, 1])
    ece = calibration.expected_calibration_error(probs, labels, n_bins=10)
    T = calibration.fit_temperature(np.log(probs), labels)  # fit on validation data
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "STRATEGIES",
    "ReliabilityBins",
    "bin_indices",
    "confidence_bins",
    "expected_calibration_error",
    "fit_temperature",
    "negative_log_likelihood",
    "reliability_bins",
    "softmax",
]

STRATEGIES = ("uniform", "quantile")
"""How :func:`bin_indices` places the bin edges."""


@dataclass(frozen=True)
class ReliabilityBins:
    """One row per bin (empty bins included): the bin ``edges`` (``n_bins + 1``), the
    ``mean_predicted`` probability, the ``observed`` frequency (fraction positive, or
    accuracy for :func:`confidence_bins`) and the ``counts``. Empty bins have ``nan``
    means and count 0."""

    edges: np.ndarray
    mean_predicted: np.ndarray
    observed: np.ndarray
    counts: np.ndarray

    @property
    def nonempty(self) -> np.ndarray:
        """A boolean mask of the bins that hold at least one example."""
        return self.counts > 0


def _probabilities(values: ArrayLike, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        raise ValueError(f"{name} is empty; pass at least one probability.")
    if not np.all(np.isfinite(array)) or array.min() < 0 or array.max() > 1:
        raise ValueError(f"{name} must hold probabilities in [0, 1]; apply softmax to logits.")
    return array


def bin_indices(
    probabilities: ArrayLike, n_bins: int = 10, strategy: str = "uniform"
) -> tuple[np.ndarray, np.ndarray]:
    """The bin of every probability, and the bin edges.

    ``"uniform"``: ``n_bins`` equal-width bins on [0, 1]; ``"quantile"``: edges at the
    quantiles of ``probabilities``, so the bins hold about equally many values. A value on
    an inner edge goes to the lower bin: the bins are ``[0, e1], (e1, e2], ..., (e_{n-1},
    1]``, as in ``sklearn.calibration.calibration_curve``.

    Returns:
        ``(indices, edges)``: integers in ``0 .. n_bins - 1`` with the shape of
        ``probabilities``, and the ``n_bins + 1`` edges.
    """
    values = _probabilities(probabilities, "probabilities")
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}.")
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    elif strategy == "quantile":
        edges = np.percentile(values, np.linspace(0, 100, n_bins + 1))
    else:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}.")
    return np.searchsorted(edges[1:-1], values), edges


def _binned_means(
    predicted: np.ndarray, observed: np.ndarray, n_bins: int, strategy: str
) -> ReliabilityBins:
    indices, edges = bin_indices(predicted, n_bins, strategy)
    counts = np.bincount(indices, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):  # empty bins become nan
        mean_predicted = np.bincount(indices, weights=predicted, minlength=n_bins) / counts
        mean_observed = np.bincount(indices, weights=observed, minlength=n_bins) / counts
    return ReliabilityBins(edges, mean_predicted, mean_observed, counts)


def reliability_bins(
    labels: ArrayLike,
    positive_probabilities: ArrayLike,
    n_bins: int = 10,
    strategy: str = "uniform",
) -> ReliabilityBins:
    """Reliability-diagram points for a binary task: bin ``P(class 1)``, and in every bin
    compare its mean with the fraction of examples whose label is 1.

    Args:
        labels: 0/1 (or boolean) labels, shape ``(n,)``.
        positive_probabilities: the predicted probability of class 1, shape ``(n,)``.
        n_bins: the number of bins.
        strategy: ``"uniform"`` or ``"quantile"`` (see :func:`bin_indices`).

    The non-empty bins' ``observed`` and ``mean_predicted`` equal the ``(prob_true,
    prob_pred)`` of ``sklearn.calibration.calibration_curve(labels, probabilities,
    n_bins=n_bins, strategy=strategy)``.
    """
    predicted = _probabilities(positive_probabilities, "positive_probabilities").ravel()
    truth = np.asarray(labels).ravel()
    if truth.shape != predicted.shape:
        raise ValueError(f"got {truth.size} labels for {predicted.size} probabilities.")
    if not np.isin(truth, (0, 1)).all():
        raise ValueError("labels must be 0 or 1; for several classes use confidence_bins.")
    return _binned_means(predicted, truth.astype(float), n_bins, strategy)


def _check_class_probabilities(probabilities: ArrayLike, labels: ArrayLike):
    probs = _probabilities(probabilities, "probabilities")
    if probs.ndim == 1:  # P(class 1) of a binary task
        probs = np.stack([1 - probs, probs], axis=1)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise ValueError(f"probabilities must be (n, classes) or (n,), got shape {probs.shape}.")
    truth = np.asarray(labels)
    if truth.shape != (len(probs),) or not np.issubdtype(truth.dtype, np.integer):
        raise ValueError(f"labels must be {len(probs)} class indices (integers).")
    if truth.min() < 0 or truth.max() >= probs.shape[1]:
        raise ValueError(f"labels must be class indices in 0 .. {probs.shape[1] - 1}.")
    return probs, truth


def confidence_bins(
    probabilities: ArrayLike, labels: ArrayLike, n_bins: int = 10, strategy: str = "uniform"
) -> ReliabilityBins:
    """Top-label reliability bins: bin each example's confidence (its largest class
    probability) and compare the bin's mean confidence with its accuracy.

    Args:
        probabilities: class probabilities ``(n, classes)`` with rows summing to 1, or
            ``P(class 1)`` of shape ``(n,)`` for a binary task.
        labels: the true class indices, shape ``(n,)``.
        n_bins, strategy: as in :func:`bin_indices`.
    """
    probs, truth = _check_class_probabilities(probabilities, labels)
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == truth).astype(float)
    return _binned_means(confidence, correct, n_bins, strategy)


def expected_calibration_error(
    probabilities: ArrayLike, labels: ArrayLike, n_bins: int = 10, strategy: str = "uniform"
) -> float:
    """Expected calibration error: ``sum_b (n_b / n) |accuracy_b - confidence_b|`` over the
    bins of :func:`confidence_bins` (Guo et al., 2017; 10 equal-width bins by default).

    0 for a perfectly calibrated model; at most 1. With few examples per bin the estimate
    is noisy and biased upwards: even a calibrated model shows gaps by chance.
    """
    bins = confidence_bins(probabilities, labels, n_bins, strategy)
    full = bins.nonempty
    gaps = np.abs(bins.observed[full] - bins.mean_predicted[full])
    return float(np.sum(bins.counts[full] * gaps) / bins.counts.sum())


def softmax(logits: ArrayLike, temperature: float = 1.0) -> np.ndarray:
    """``softmax(logits / temperature)`` along the last axis, computed stably."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}.")
    scaled = np.asarray(logits, dtype=float) / temperature
    scaled = scaled - scaled.max(axis=-1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=-1, keepdims=True)


def negative_log_likelihood(
    logits: ArrayLike, labels: ArrayLike, temperature: float = 1.0
) -> float:
    """The mean of ``-log softmax(logits / temperature)[label]`` (cross-entropy, in nats)."""
    scaled = np.asarray(logits, dtype=float) / temperature
    if scaled.ndim != 2:
        raise ValueError(f"logits must be (n, classes), got shape {scaled.shape}.")
    truth = np.asarray(labels)
    shifted = scaled - scaled.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(truth)), truth].mean())


def fit_temperature(
    logits: ArrayLike,
    labels: ArrayLike,
    bounds: tuple[float, float] = (0.01, 100.0),
    tolerance: float = 1e-6,
) -> float:
    """The temperature ``T`` that minimises :func:`negative_log_likelihood` on held-out data.

    The loss is convex in ``1 / T``, so it has one minimum along ``log T`` as well, found
    by golden-section search between ``bounds`` until the interval is narrower than
    ``tolerance`` (in ``log T``). ``T > 1`` softens an overconfident model, ``T < 1``
    sharpens an underconfident one. Fit it on validation data, never on the test set.

    Args:
        logits: scores ``(n, classes)`` (log-probabilities work too: softmax ignores a
            constant per row).
        labels: the true class indices ``(n,)``.
        bounds: the smallest and largest temperature considered; a result at a bound
            means the best ``T`` lies outside them.
        tolerance: the precision of the search, in ``log T``.
    """
    scores = np.asarray(logits, dtype=float)
    _check_class_probabilities(softmax(scores), labels)
    low, high = np.log(bounds[0]), np.log(bounds[1])
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"bounds must be two positive numbers, smaller first; got {bounds}.")
    inverse_golden = (np.sqrt(5) - 1) / 2

    def loss(log_t: float) -> float:
        return negative_log_likelihood(scores, labels, float(np.exp(log_t)))

    left, right = high - inverse_golden * (high - low), low + inverse_golden * (high - low)
    loss_left, loss_right = loss(left), loss(right)
    while high - low > tolerance:
        if loss_left <= loss_right:  # the minimum is in [low, right]
            high, right, loss_right = right, left, loss_left
            left = high - inverse_golden * (high - low)
            loss_left = loss(left)
        else:  # the minimum is in [left, high]
            low, left, loss_left = left, right, loss_right
            right = low + inverse_golden * (high - low)
            loss_right = loss(right)
    return float(np.exp((low + high) / 2))
