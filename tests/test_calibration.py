"""Tests for llmzero.evaluation.calibration: reliability bins, ECE, temperature scaling."""

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from sklearn.calibration import calibration_curve

from llmzero.evaluation import calibration


def _binary_sample(n: int = 500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    probabilities = rng.uniform(0, 1, n) ** 2  # skewed, so some bins are sparse
    labels = (rng.uniform(0, 1, n) < probabilities).astype(int)
    return labels, probabilities


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
@pytest.mark.parametrize("n_bins", [3, 10, 15])
def test_reliability_bins_equal_sklearn_calibration_curve(strategy, n_bins):
    labels, probabilities = _binary_sample()
    bins = calibration.reliability_bins(labels, probabilities, n_bins, strategy)
    prob_true, prob_pred = calibration_curve(
        labels, probabilities, n_bins=n_bins, strategy=strategy
    )
    np.testing.assert_allclose(bins.observed[bins.nonempty], prob_true, rtol=0, atol=1e-12)
    np.testing.assert_allclose(bins.mean_predicted[bins.nonempty], prob_pred, rtol=0, atol=1e-12)
    assert bins.counts.sum() == len(labels)


def test_empty_bins_are_kept_as_nan_and_dropped_like_sklearn():
    labels = np.array([0, 1, 1, 0])
    probabilities = np.array([0.05, 0.95, 0.9, 0.1])  # nothing between 0.2 and 0.8
    bins = calibration.reliability_bins(labels, probabilities, n_bins=5)
    assert list(bins.counts) == [2, 0, 0, 0, 2]
    assert np.isnan(bins.observed[1]) and np.isnan(bins.mean_predicted[2])
    prob_true, _ = calibration_curve(labels, probabilities, n_bins=5)
    np.testing.assert_allclose(bins.observed[bins.nonempty], prob_true)


def test_value_on_an_inner_edge_goes_to_the_lower_bin():
    indices, edges = calibration.bin_indices([0.0, 0.5, 0.5000001, 1.0], n_bins=2)
    assert list(indices) == [0, 0, 1, 1]
    np.testing.assert_allclose(edges, [0.0, 0.5, 1.0])


def test_ece_by_hand():
    # Confidences 0.9, 0.9 (one right) and 0.6 (right): bins (0.8, 0.9] and (0.5, 0.6].
    probs = np.array([[0.9, 0.1], [0.1, 0.9], [0.4, 0.6]])
    labels = np.array([0, 0, 1])
    expected = (2 / 3) * abs(0.5 - 0.9) + (1 / 3) * abs(1.0 - 0.6)
    assert calibration.expected_calibration_error(probs, labels) == pytest.approx(expected)


def test_ece_equals_a_plain_loop_and_accepts_binary_probabilities():
    labels, p_pos = _binary_sample(seed=1)
    probs = np.stack([1 - p_pos, p_pos], axis=1)
    confidence, correct = probs.max(1), (probs.argmax(1) == labels)
    total = 0.0
    for low, high in zip(np.linspace(0, 1, 11)[:-1], np.linspace(0, 1, 11)[1:], strict=True):
        inside = (confidence > low) & (confidence <= high) if low > 0 else confidence <= high
        if inside.any():
            total += inside.sum() * abs(correct[inside].mean() - confidence[inside].mean())
    ece = calibration.expected_calibration_error(probs, labels)
    assert ece == pytest.approx(total / len(labels), abs=1e-12)
    assert calibration.expected_calibration_error(p_pos, labels) == pytest.approx(ece, abs=1e-12)


def test_calibrated_probabilities_have_small_ece_and_confident_wrong_ones_large():
    rng = np.random.default_rng(2)
    p_pos = rng.uniform(0, 1, 20_000)
    labels = (rng.uniform(0, 1, p_pos.size) < p_pos).astype(int)
    assert calibration.expected_calibration_error(p_pos, labels) < 0.02
    assert calibration.expected_calibration_error(1 - labels.astype(float), labels) == 1.0


def test_softmax_and_nll_match_a_direct_computation():
    logits = np.array([[2.0, -1.0, 0.5], [0.0, 0.0, 3.0]])
    probs = np.exp(logits / 2) / np.exp(logits / 2).sum(1, keepdims=True)
    np.testing.assert_allclose(calibration.softmax(logits, 2.0), probs)
    nll = -np.mean(np.log(probs[[0, 1], [0, 2]]))
    assert calibration.negative_log_likelihood(logits, [0, 2], 2.0) == pytest.approx(nll)


def test_fit_temperature_agrees_with_scipy_and_undoes_a_known_scaling():
    rng = np.random.default_rng(3)
    true_logits = rng.normal(0, 2, (4000, 3))
    labels = np.array([rng.choice(3, p=p) for p in calibration.softmax(true_logits)])
    overconfident = 3.0 * true_logits  # the "model" is three times too sure
    fitted = calibration.fit_temperature(overconfident, labels)
    reference = minimize_scalar(
        lambda log_t: calibration.negative_log_likelihood(overconfident, labels, np.exp(log_t)),
        bounds=(np.log(0.01), np.log(100)),
        method="bounded",
        options={"xatol": 1e-8},
    )
    assert fitted == pytest.approx(np.exp(reference.x), rel=1e-4)
    assert fitted == pytest.approx(3.0, rel=0.1)  # the scaling, up to sampling noise
    before = calibration.expected_calibration_error(calibration.softmax(overconfident), labels)
    after = calibration.expected_calibration_error(
        calibration.softmax(overconfident, fitted), labels
    )
    assert after < before / 2


def test_temperature_changes_no_prediction():
    logits = np.random.default_rng(4).normal(size=(50, 4))
    for temperature in (0.1, 1.0, 7.0):
        assert (calibration.softmax(logits, temperature).argmax(1) == logits.argmax(1)).all()


def test_bad_input_gives_clear_errors():
    with pytest.raises(ValueError, match="softmax"):
        calibration.expected_calibration_error(np.array([[2.0, -1.0]]), np.array([0]))
    with pytest.raises(ValueError, match="class indices"):
        calibration.expected_calibration_error(np.array([[0.5, 0.5]]), np.array([2]))
    with pytest.raises(ValueError, match="strategy"):
        calibration.bin_indices([0.5], strategy="equal")
    with pytest.raises(ValueError, match="0 or 1"):
        calibration.reliability_bins([2, 0], [0.5, 0.5])
    with pytest.raises(ValueError, match="labels"):
        calibration.reliability_bins([1, 0, 1], [0.5, 0.5])
    with pytest.raises(ValueError, match="temperature"):
        calibration.softmax([1.0, 2.0], temperature=0)
    with pytest.raises(ValueError, match="bounds"):
        calibration.fit_temperature(np.zeros((2, 2)), np.array([0, 1]), bounds=(5.0, 1.0))
