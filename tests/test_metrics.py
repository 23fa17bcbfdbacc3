"""Tests for llmzero.evaluation.metrics: each metric vs scikit-learn, random and edge cases."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning

from llmzero.evaluation import metrics


def label_pairs(max_label: int = 4, max_size: int = 40) -> st.SearchStrategy:
    """Pairs (y_true, y_pred) of equal, non-zero length with small integer labels."""
    return st.integers(1, max_size).flatmap(
        lambda n: st.tuples(
            st.lists(st.integers(0, max_label), min_size=n, max_size=n),
            st.lists(st.integers(0, max_label), min_size=n, max_size=n),
        )
    )


def sklearn_prf(y_true, y_pred, **kwargs):
    """scikit-learn's precision, recall and F1 (without support), its warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return skm.precision_recall_fscore_support(y_true, y_pred, **kwargs)[:3]


def assert_prf_equal(ours, theirs) -> None:
    for mine, expected in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(mine, expected, rtol=1e-12, atol=1e-12)


@settings(max_examples=120, deadline=None)
@given(label_pairs())
def test_accuracy_matches_sklearn_on_random_labels(pair) -> None:
    y_true, y_pred = pair
    assert metrics.accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))


@settings(max_examples=120, deadline=None)
@given(label_pairs())
def test_confusion_matrix_matches_sklearn_on_random_labels(pair) -> None:
    y_true, y_pred = pair
    with warnings.catch_warnings():  # scikit-learn warns when only one label occurs
        warnings.simplefilter("ignore", UserWarning)
        expected = skm.confusion_matrix(y_true, y_pred)
    np.testing.assert_array_equal(metrics.confusion_matrix(y_true, y_pred), expected)


@settings(max_examples=120, deadline=None)
@given(
    label_pairs(),
    st.sampled_from([None, "macro", "micro", "weighted"]),
    st.sampled_from([0.0, 1.0]),
)
def test_precision_recall_f1_match_sklearn_for_every_average_and_zero_division(
    pair, average, zero_division
) -> None:
    y_true, y_pred = pair
    ours = metrics.precision_recall_f1(y_true, y_pred, average=average, zero_division=zero_division)
    theirs = sklearn_prf(y_true, y_pred, average=average, zero_division=zero_division)
    assert_prf_equal(ours, theirs)


@settings(max_examples=120, deadline=None)
@given(label_pairs(max_label=1), st.sampled_from([0.0, 1.0]))
def test_binary_average_matches_sklearn(pair, zero_division) -> None:
    y_true, y_pred = pair
    ours = metrics.precision_recall_f1(
        y_true, y_pred, average="binary", pos_label=1, zero_division=zero_division
    )
    theirs = sklearn_prf(y_true, y_pred, average="binary", pos_label=1, zero_division=zero_division)
    assert_prf_equal(ours, theirs)


@settings(max_examples=100, deadline=None)
@given(label_pairs(max_label=5), st.sampled_from([None, "macro", "micro", "weighted"]))
def test_explicit_label_subset_matches_sklearn(pair, average) -> None:
    y_true, y_pred = pair
    labels = [4, 0, 2]  # unsorted, and possibly absent from the data
    ours = metrics.precision_recall_f1(y_true, y_pred, average=average, labels=labels)
    theirs = sklearn_prf(y_true, y_pred, average=average, labels=labels, zero_division=0)
    assert_prf_equal(ours, theirs)
    if set(labels) & set(y_true):  # scikit-learn refuses labels none of which occur
        np.testing.assert_array_equal(
            metrics.confusion_matrix(y_true, y_pred, labels=labels),
            skm.confusion_matrix(y_true, y_pred, labels=labels),
        )


def test_string_labels_work_and_match_sklearn() -> None:
    y_true = ["pos", "neg", "pos", "pos", "neg", "neu"]
    y_pred = ["pos", "pos", "neg", "pos", "neg", "neg"]
    np.testing.assert_array_equal(
        metrics.confusion_matrix(y_true, y_pred), skm.confusion_matrix(y_true, y_pred)
    )
    ours = metrics.precision_recall_f1(y_true, y_pred, average="macro")
    assert_prf_equal(ours, sklearn_prf(y_true, y_pred, average="macro", zero_division=0))
    assert metrics.f1_score(y_true[:5], y_pred[:5], average="binary", pos_label="pos") == (
        pytest.approx(skm.f1_score(y_true[:5], y_pred[:5], pos_label="pos"))
    )


def test_convenience_functions_return_the_matching_component() -> None:
    y_true, y_pred = [0, 1, 1, 2, 2, 2], [0, 2, 1, 2, 0, 2]
    p, r, f = metrics.precision_recall_f1(y_true, y_pred, average="macro")
    assert metrics.precision(y_true, y_pred, average="macro") == p
    assert metrics.recall(y_true, y_pred, average="macro") == r
    assert metrics.f1_score(y_true, y_pred, average="macro") == f


@settings(max_examples=100, deadline=None)
@given(label_pairs(max_label=6))
def test_micro_f1_equals_accuracy_for_single_label_data(pair) -> None:
    y_true, y_pred = pair
    micro = metrics.precision_recall_f1(y_true, y_pred, average="micro")
    for value in micro:
        assert value == pytest.approx(metrics.accuracy(y_true, y_pred))


def test_zero_division_convention_for_a_class_never_predicted() -> None:
    y_true, y_pred = [0, 0, 1, 1], [0, 0, 0, 0]  # class 1 occurs but is never predicted
    precision, recall, f1 = metrics.precision_recall_f1(y_true, y_pred, average="binary")
    assert (precision, recall, f1) == (0.0, 0.0, 0.0)
    precision, recall, f1 = metrics.precision_recall_f1(
        y_true, y_pred, average="binary", zero_division=1.0
    )
    assert (precision, recall, f1) == (1.0, 0.0, 0.0)  # F1 is defined: TP = 0 with FN > 0


def test_zero_division_when_positive_class_is_absent_everywhere() -> None:
    y_true = y_pred = [0, 0, 0]
    for zero_division in (0.0, 1.0):
        ours = metrics.precision_recall_f1(
            y_true, y_pred, average="binary", zero_division=zero_division
        )
        assert ours == (zero_division,) * 3
        assert_prf_equal(
            ours, sklearn_prf(y_true, y_pred, average="binary", zero_division=zero_division)
        )


def test_perfect_predictions_score_one_everywhere() -> None:
    labels = [2, 0, 1, 1, 0, 2, 2]
    for average in ("macro", "micro", "weighted"):
        assert metrics.precision_recall_f1(labels, labels, average=average) == (1.0, 1.0, 1.0)
    np.testing.assert_array_equal(metrics.confusion_matrix(labels, labels), np.diag([2, 2, 3]))


@pytest.mark.parametrize(
    "function",
    [metrics.accuracy, metrics.confusion_matrix, metrics.precision_recall_f1, metrics.f1_score],
)
def test_length_mismatch_and_empty_input_raise_clear_errors(function) -> None:
    with pytest.raises(ValueError, match="same length"):
        function([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="empty"):
        function([], [])
    with pytest.raises(ValueError, match="1-D"):
        function([[0, 1]], [[0, 1]])


def test_bad_arguments_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="at most two labels"):
        metrics.precision_recall_f1([0, 1, 2], [0, 1, 1], average="binary")
    with pytest.raises(ValueError, match="pos_label"):
        metrics.precision_recall_f1(["a", "b"], ["b", "a"], average="binary")
    with pytest.raises(ValueError, match="average"):
        metrics.precision_recall_f1([0, 1], [0, 1], average="samples")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="zero_division"):
        metrics.precision_recall_f1([0, 1], [0, 1], zero_division=0.5)
    with pytest.raises(ValueError, match="duplicates"):
        metrics.confusion_matrix([0, 1], [0, 1], labels=[0, 0, 1])


def score_pairs(max_size: int = 40) -> st.SearchStrategy:
    """Binary labels with at least one positive, and scores with many ties (rounded floats)."""
    return st.integers(1, max_size).flatmap(
        lambda n: st.tuples(
            st.lists(st.integers(0, 1), min_size=n, max_size=n).filter(lambda y: 1 in y),
            st.lists(st.integers(-5, 5).map(lambda k: k / 4), min_size=n, max_size=n),
        )
    )


@settings(max_examples=120, deadline=None)
@given(score_pairs())
def test_precision_recall_curve_matches_sklearn_with_ties(pair) -> None:
    y_true, scores = pair
    ours = metrics.precision_recall_curve(y_true, scores)
    theirs = skm.precision_recall_curve(y_true, scores)
    for mine, expected in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(mine, expected, rtol=1e-12, atol=1e-12)


@settings(max_examples=120, deadline=None)
@given(score_pairs())
def test_average_precision_matches_sklearn(pair) -> None:
    y_true, scores = pair
    assert metrics.average_precision(y_true, scores) == pytest.approx(
        skm.average_precision_score(y_true, scores)
    )


def test_precision_recall_curve_on_continuous_scores_and_string_labels() -> None:
    rng = np.random.default_rng(0)
    y_true = rng.choice(["neg", "pos"], size=300)
    scores = rng.normal(size=300) + (y_true == "pos")  # positives score higher on average
    for mine, expected in zip(
        metrics.precision_recall_curve(y_true, scores, pos_label="pos"),
        skm.precision_recall_curve(y_true, scores, pos_label="pos"),
        strict=True,
    ):
        np.testing.assert_allclose(mine, expected)
    assert metrics.average_precision(y_true, scores, pos_label="pos") == pytest.approx(
        skm.average_precision_score(y_true == "pos", scores)
    )


def test_perfect_ranking_has_average_precision_one() -> None:
    assert metrics.average_precision([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0


def test_precision_recall_curve_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="no example of pos_label"):
        metrics.precision_recall_curve([0, 0, 0], [0.1, 0.5, 0.9])
    with pytest.raises(ValueError, match="finite"):
        metrics.precision_recall_curve([0, 1], [0.1, np.nan])
    with pytest.raises(ValueError, match="same length"):
        metrics.average_precision([0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="empty"):
        metrics.precision_recall_curve([], [])
