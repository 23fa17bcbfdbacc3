"""The percentile bootstrap equals SciPy's and covers the truth as often as it claims."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from llmzero.evaluation.bootstrap import bootstrap_ci, bootstrap_distribution


@pytest.mark.parametrize("confidence", [0.9, 0.95])
def test_interval_equals_scipy_percentile_bootstrap(confidence):
    data = np.random.default_rng(1).integers(0, 2, 40).astype(float)
    ours = bootstrap_ci(data, confidence=confidence, n_resamples=500, seed=7)
    theirs = scipy.stats.bootstrap(
        (data,),
        np.mean,
        confidence_level=confidence,
        n_resamples=500,
        method="percentile",
        rng=np.random.default_rng(7),
    )
    assert ours.low == pytest.approx(theirs.confidence_interval.low, abs=1e-12)
    assert ours.high == pytest.approx(theirs.confidence_interval.high, abs=1e-12)
    assert ours.standard_error == pytest.approx(theirs.standard_error, abs=1e-12)
    assert ours.estimate == data.mean()


def test_ratio_statistic_on_rows():
    rows = np.random.default_rng(0).uniform(1, 2, (30, 2))
    result = bootstrap_ci(rows, lambda r: r[:, 0].sum() / r[:, 1].sum(), n_resamples=200)
    assert result.low <= result.estimate <= result.high


def test_coverage_of_a_known_mean_is_close_to_nominal():
    # 300 samples of 60 coin flips with p = 0.3: a 90% interval should hold 0.3 about 90%
    # of the time (percentile intervals run a little short on small samples).
    rng = np.random.default_rng(0)
    hits = 0
    for trial in range(300):
        sample = (rng.random(60) < 0.3).astype(float)
        result = bootstrap_ci(sample, confidence=0.9, n_resamples=300, seed=trial)
        hits += result.low <= 0.3 <= result.high
    assert 0.82 <= hits / 300 <= 0.96


def test_same_seed_same_interval_and_bad_input_errors():
    data = np.arange(10.0)
    assert bootstrap_ci(data, seed=3) == bootstrap_ci(data, seed=3)
    with pytest.raises(ValueError, match="at least 2 items"):
        bootstrap_ci([1.0])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(data, confidence=95)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_distribution(data, n_resamples=0)
