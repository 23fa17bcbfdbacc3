"""Bootstrap confidence intervals for evaluation scores (Part V, *Evaluating LLMs*).

A score measured on ``n`` test items is one draw from the scores that other samples of
``n`` items would give. The bootstrap estimates that spread without formulas: resample the
items with replacement many times, recompute the score on each resample, and read an
interval off the percentiles of the results. It works for any score computed from items:
a mean (accuracy), a ratio of sums (bits per byte) or a corpus statistic (BLEU).

:func:`bootstrap_ci` draws its resamples exactly as ``scipy.stats.bootstrap`` does for one
sample, so with the same seed its percentile interval equals SciPy's (the chapter and
``tests/test_bootstrap.py`` check it).

Usage::

    import numpy as np
    from llmzero.evaluation.bootstrap import bootstrap_ci

    correct = np.array([1, 0, 1, 1, 0, 1, 1, 1])  # one 0/1 score per test item
    result = bootstrap_ci(correct)  # mean and 95% percentile interval
    print(f"{result.estimate:.2f} [{result.low:.2f}, {result.high:.2f}]")
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["BootstrapResult", "bootstrap_ci", "bootstrap_distribution"]


@dataclass(frozen=True)
class BootstrapResult:
    """A score on the full sample (``estimate``), a ``confidence`` interval
    ``[low, high]`` around it, and the bootstrap ``standard_error`` (the standard
    deviation of the resampled scores)."""

    estimate: float
    low: float
    high: float
    standard_error: float
    confidence: float

    def __str__(self) -> str:
        return f"{self.estimate:.3g} [{self.low:.3g}, {self.high:.3g}]"


def _mean(sample: np.ndarray) -> float:
    return float(np.mean(sample))


def bootstrap_distribution(
    data: ArrayLike,
    statistic: Callable[[np.ndarray], float] = _mean,
    n_resamples: int = 1000,
    seed: int | np.random.Generator = 0,
) -> np.ndarray:
    """``statistic`` of ``n_resamples`` resamples of ``data``'s rows, drawn with replacement.

    ``data`` is an array whose first axis runs over test items (a 1-D array of per-item
    scores, or a 2-D array of per-item statistics such as BLEU's); each resample draws
    ``len(data)`` row indices uniformly with replacement. ``statistic`` maps such a resample
    to a number. Returns an array of ``n_resamples`` numbers.
    """
    data = np.asarray(data)
    if data.ndim == 0 or len(data) < 2:
        raise ValueError(
            f"need at least 2 items to resample, got data of shape {data.shape}; "
            "pass one score (or row of statistics) per test item."
        )
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}.")
    rng = np.random.default_rng(seed)
    # The same draw as scipy.stats.bootstrap: one (n_resamples, n) array of indices.
    indices = rng.integers(0, len(data), (n_resamples, len(data)))
    return np.array([statistic(data[row]) for row in indices], dtype=float)


def bootstrap_ci(
    data: ArrayLike,
    statistic: Callable[[np.ndarray], float] = _mean,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int | np.random.Generator = 0,
) -> BootstrapResult:
    """A percentile bootstrap ``confidence`` interval for ``statistic(data)``.

    The interval runs from the ``(1 - confidence) / 2`` to the ``(1 + confidence) / 2``
    quantile of the resampled statistics (:func:`bootstrap_distribution`; NumPy's default
    linear interpolation). Equal to ``scipy.stats.bootstrap((data,), statistic,
    method="percentile", rng=np.random.default_rng(seed))`` for 1-D ``data``.

    The percentile interval assumes the resampled scores spread around the estimate the
    way estimates spread around the truth: fine for means of a few dozen items or more,
    too narrow for very small samples (a 0/1 score on 5 items has few possible values).

    Raises:
        ValueError: fewer than 2 items, ``confidence`` outside (0, 1), or a statistic that
            is not finite on the full sample.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}.")
    data = np.asarray(data)
    resampled = bootstrap_distribution(data, statistic, n_resamples, seed)
    estimate = float(statistic(data))
    if not np.isfinite(estimate):
        raise ValueError(f"the statistic is {estimate} on the full sample; check the data.")
    alpha = (1 - confidence) / 2
    low, high = np.percentile(resampled, [100 * alpha, 100 * (1 - alpha)])
    return BootstrapResult(
        estimate=estimate,
        low=float(low),
        high=float(high),
        standard_error=float(np.std(resampled, ddof=1)) if n_resamples > 1 else float("nan"),
        confidence=confidence,
    )
