"""Tests of llmzero.core.plotting: the course style and the three reusable figures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display needed

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.axes import Axes
from matplotlib.colors import to_hex

from llmzero.core import plotting
from llmzero.training.loop import History


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def make_history(n_steps: int = 60) -> History:
    steps = list(range(1, n_steps + 1))
    return History(
        steps=steps,
        train_loss=[2.0 / s**0.5 for s in steps],
        val_steps=steps[9::10],
        val_loss=[2.2 / s**0.5 for s in steps[9::10]],
    )


def test_use_style_sets_white_backgrounds_and_the_palette():
    with matplotlib.rc_context():
        plotting.use_style()
        assert to_hex(matplotlib.rcParams["figure.facecolor"]) == "#ffffff"
        assert to_hex(matplotlib.rcParams["axes.facecolor"]) == "#ffffff"
        assert matplotlib.rcParams["axes.grid"] is True
        colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
        assert [to_hex(c) for c in colors] == [c.lower() for c in plotting.PALETTE]


# ----------------------------------------------------------------------------- plot_history


@pytest.mark.parametrize("as_dict", [False, True])
def test_plot_history_returns_labelled_axes(as_dict):
    history = make_history()
    ax = plotting.plot_history(history.to_dict() if as_dict else history)
    assert isinstance(ax, Axes)
    assert ax.get_title() == "Training and validation loss"
    assert ax.get_xlabel() == "optimizer step" and ax.get_ylabel() == "loss"
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["train (each batch)", "train (mean of 3 steps)", "validation"]
    validation = ax.get_lines()[-1]
    assert list(validation.get_xdata()) == history.val_steps


def test_plot_history_draws_on_the_given_axes_with_options():
    _, (left, right) = plt.subplots(1, 2)
    ax = plotting.plot_history(make_history(10), ax=right, title="Run", ylabel="nll", log_y=True)
    assert ax is right and not left.get_lines()
    assert ax.get_title() == "Run" and ax.get_ylabel() == "nll" and ax.get_yscale() == "log"
    assert [line.get_label() for line in ax.get_lines()] == ["train", "validation"]  # short run


def test_plot_history_rejects_mismatched_or_empty_histories():
    broken = make_history().to_dict()
    broken["val_loss"].pop()
    with pytest.raises(ValueError, match="same length"):
        plotting.plot_history(broken)
    with pytest.raises(ValueError, match="missing"):
        plotting.plot_history({"steps": [1], "train_loss": [1.0]})
    with pytest.raises(ValueError, match="empty"):
        plotting.plot_history(History())


# ----------------------------------------------------------------------------- attention_heatmap


def test_attention_heatmap_returns_labelled_axes_for_a_tensor():
    tokens = ["the", "cat", "sat"]
    weights = torch.softmax(torch.randn(3, 3, requires_grad=True), dim=-1)  # (query, key)
    ax = plotting.attention_heatmap(weights, tokens, tokens, annotate=True)
    assert isinstance(ax, Axes)
    assert ax.get_title() == "Attention weights"
    assert ax.get_xlabel() == "key (attended to)" and ax.get_ylabel() == "query (attending)"
    assert [t.get_text() for t in ax.get_xticklabels()] == tokens
    assert [t.get_text() for t in ax.get_yticklabels()] == tokens
    assert len(ax.texts) == 9  # one number per cell
    np.testing.assert_allclose(ax.images[0].get_array(), weights.detach().numpy(), rtol=1e-6)


def test_attention_heatmap_accepts_rectangular_weights_and_a_title():
    ax = plotting.attention_heatmap(np.full((2, 4), 0.25), ["a", "b"], list("wxyz"), title="Head 0")
    assert ax.get_title() == "Head 0" and ax.images[0].get_array().shape == (2, 4)


@pytest.mark.parametrize(
    ("shape", "message"),
    [((3, 2), r"expected \(3, 3\)"), ((2, 3, 3), "must be 2-D"), ((3,), "must be 2-D")],
)
def test_attention_heatmap_shape_mismatch_raises_value_error(shape, message):
    with pytest.raises(ValueError, match=message):
        plotting.attention_heatmap(np.zeros(shape), ["a", "b", "c"], ["a", "b", "c"])


# ----------------------------------------------------------------------------- embedding_scatter


def test_embedding_scatter_labels_and_colours_groups():
    points = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.5], [0.5, 2.0]])
    ax = plotting.embedding_scatter(
        points, ["king", "queen", "apple", "pear"], groups=["royal", "royal", "fruit", "fruit"]
    )
    assert isinstance(ax, Axes)
    assert ax.get_title() and ax.get_xlabel() == "dimension 1" and ax.get_ylabel()
    assert [t.get_text() for t in ax.texts] == ["king", "queen", "apple", "pear"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["royal", "fruit"]
    assert len(ax.collections) == 2  # one scatter per group


def test_embedding_scatter_without_groups_or_labels():
    ax = plotting.embedding_scatter(torch.randn(5, 2), None, title="PCA", xlabel="PC 1")
    assert ax.get_title() == "PCA" and ax.get_xlabel() == "PC 1" and not ax.texts


@pytest.mark.parametrize(
    ("points", "labels", "groups", "message"),
    [
        (np.zeros((3, 3)), ["a", "b", "c"], None, r"shape \(n, 2\)"),
        (np.zeros((3, 2)), ["a", "b"], None, "3 points but 2 labels"),
        (np.zeros((3, 2)), ["a", "b", "c"], ["x"], "3 points but 1 groups"),
    ],
)
def test_embedding_scatter_shape_mismatch_raises_value_error(points, labels, groups, message):
    with pytest.raises(ValueError, match=message):
        plotting.embedding_scatter(points, labels, groups=groups)
