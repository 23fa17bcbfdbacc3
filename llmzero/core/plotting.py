"""One figure style for the whole course, and the plots chapters draw again and again.

Call :func:`use_style` once near the top of a chapter. Figures get a white background
on purpose: the site's dark mode then shows them as light cards, which stays legible,
instead of dark lines vanishing into a dark page.

Three figures come back in chapter after chapter, so they are drawn here once, with
titles, labelled axes and a colour-blind-safe palette:

- :func:`plot_history`: training and validation loss curves from :func:`llmzero.training.loop.fit`;
- :func:`attention_heatmap`: who attends to whom, one row per query token;
- :func:`embedding_scatter`: vectors projected to two dimensions, labelled and grouped.

Each draws on the ``ax`` you pass (or a new figure), returns the
:class:`~matplotlib.axes.Axes` so a chapter can add to it, and never calls
``plt.show()``: the notebook shows the figure at the end of the cell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

__all__ = ["PALETTE", "attention_heatmap", "embedding_scatter", "plot_history", "use_style"]

#: A colour-blind-safe palette (Okabe & Ito, 2008), in the order plots use it.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]


def use_style() -> None:
    """Set the course's matplotlib style: readable fonts, light grid, white background."""
    mpl.rcParams.update(
        {
            "figure.figsize": (7.0, 4.0),
            "figure.dpi": 100,
            "savefig.dpi": 150,
            "figure.facecolor": "white",
            "axes.facecolor": "white",
            "savefig.facecolor": "white",
            "axes.edgecolor": "#333333",
            "axes.labelcolor": "#222222",
            "axes.titlesize": 13,
            "axes.titleweight": "bold",
            "axes.labelsize": 11,
            "axes.grid": True,
            "grid.color": "#dddddd",
            "grid.linewidth": 0.8,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.prop_cycle": mpl.cycler(color=PALETTE),
            "xtick.color": "#333333",
            "ytick.color": "#333333",
            "legend.frameon": False,
            "lines.linewidth": 2.0,
            "font.size": 11,
            "figure.constrained_layout.use": True,
        }
    )


def _new_axes(ax: Axes | None) -> Axes:
    """``ax`` itself, or the axes of a new figure."""
    if ax is None:
        _, ax = plt.subplots()
    return ax


def _as_array(values: Any, name: str, finite: bool = True) -> np.ndarray:
    """A NumPy float array from a list, an array or a (possibly GPU, grad-tracking) tensor."""
    if hasattr(values, "detach"):  # a torch tensor, without importing torch here
        values = values.detach().float().cpu().numpy()
    array = np.asarray(values, dtype=float)
    if finite and not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains nan or infinite values.")
    return array


def _running_mean(values: np.ndarray, window: int) -> np.ndarray:
    """The mean of every run of ``window`` consecutive values (one fewer per extra step)."""
    return np.convolve(values, np.ones(window) / window, mode="valid")


def plot_history(
    history: Any,
    ax: Axes | None = None,
    title: str = "Training and validation loss",
    ylabel: str = "loss",
    log_y: bool = False,
    smooth: int | None = None,
) -> Axes:
    """Draw the training loss at every step and the validation loss at every evaluation.

    ``history`` is a :class:`llmzero.training.loop.History` or a dict with its four keys
    (``steps``, ``train_loss``, ``val_steps``, ``val_loss``). The loss of single batches
    is noisy, so the raw per-step curve is drawn faint and a running mean over ``smooth``
    steps on top of it (default: about a twentieth of the run, no smoothing below 50
    steps; ``smooth=1`` turns it off). Validation losses, each a mean over the whole
    validation set, are drawn as points joined by a line. ``log_y=True`` uses a
    logarithmic loss axis, which shows late, small improvements better.
    """
    data = history if isinstance(history, Mapping) else history.to_dict()
    missing = {"steps", "train_loss", "val_steps", "val_loss"} - set(data)
    if missing:
        raise ValueError(f"history is missing {sorted(missing)}; pass a History or its to_dict().")
    # A diverged run (fit(..., allow_nonfinite=True)) may hold nan losses: they show as gaps.
    steps = _as_array(data["steps"], "steps")
    train_loss = _as_array(data["train_loss"], "train_loss", finite=False)
    val_steps = _as_array(data["val_steps"], "val_steps")
    val_loss = _as_array(data["val_loss"], "val_loss", finite=False)
    if len(steps) != len(train_loss) or len(val_steps) != len(val_loss):
        raise ValueError(
            f"history has {len(steps)} steps for {len(train_loss)} training losses and "
            f"{len(val_steps)} validation steps for {len(val_loss)} validation losses; "
            "each pair must have the same length."
        )
    if len(steps) == 0 and len(val_steps) == 0:
        raise ValueError("history is empty: there is nothing to plot.")
    if smooth is None:
        smooth = max(1, len(steps) // 20) if len(steps) >= 50 else 1
    if smooth < 1:
        raise ValueError(f"smooth must be a window of at least 1 step, got {smooth}.")

    ax = _new_axes(ax)
    if smooth > 1 and len(steps) >= smooth:
        ax.plot(
            steps,
            train_loss,
            color=PALETTE[0],
            alpha=0.3,
            linewidth=1.0,
            label="train (each batch)",
        )
        ax.plot(
            steps[smooth - 1 :],
            _running_mean(train_loss, smooth),
            color=PALETTE[0],
            label=f"train (mean of {smooth} steps)",
        )
    elif len(steps):
        ax.plot(steps, train_loss, color=PALETTE[0], label="train")
    if len(val_steps):
        ax.plot(val_steps, val_loss, color=PALETTE[1], marker="o", markersize=4, label="validation")
    if log_y:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(ylabel)
    ax.legend()
    return ax


def attention_heatmap(
    weights: Any,
    query_tokens: Sequence[str],
    key_tokens: Sequence[str],
    ax: Axes | None = None,
    title: str | None = None,
    cmap: str = "viridis",
    annotate: bool = False,
    vmin: float | None = None,
    vmax: float | None = None,
) -> Axes:
    """Draw attention weights as a grid: one row per query token, one column per key token.

    ``weights`` has shape ``(n_query, n_key)`` (a list, array or tensor); row ``i`` is how
    query token ``i`` spreads its attention over the key tokens, so after a softmax each
    row sums to 1. ``annotate=True`` writes each weight in its cell (for small grids).
    The colour scale runs from the smallest to the largest weight unless ``vmin`` and
    ``vmax`` fix it, e.g. ``vmin=0, vmax=1`` to compare several heads on one scale.
    Raises ``ValueError`` if the shape does not match the token lists.
    """
    grid = _as_array(weights, "weights")  # masked scores of -inf: apply the softmax first
    if grid.ndim != 2:
        raise ValueError(
            f"weights must be 2-D (n_query, n_key), got shape {grid.shape}; for one head of a "
            "batched attention tensor pass e.g. weights[0, head]."
        )
    if grid.shape != (len(query_tokens), len(key_tokens)):
        raise ValueError(
            f"weights has shape {grid.shape} but there are {len(query_tokens)} query tokens "
            f"and {len(key_tokens)} key tokens: expected ({len(query_tokens)}, {len(key_tokens)})."
        )
    ax = _new_axes(ax)
    image = ax.imshow(grid, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.grid(False)  # grid lines would cut through the cells
    ax.set_xticks(
        range(len(key_tokens)),
        [str(t) for t in key_tokens],
        rotation=90 if len(key_tokens) > 6 else 0,
    )
    ax.set_yticks(range(len(query_tokens)), [str(t) for t in query_tokens])
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    ax.set_title(title if title is not None else "Attention weights")
    ax.figure.colorbar(image, ax=ax, label="attention weight")
    if annotate:
        for row in range(grid.shape[0]):
            for column in range(grid.shape[1]):
                value = grid[row, column]
                # Black text on light cells, white on dark ones (luminance of the cell colour).
                red, green, blue, _ = image.cmap(image.norm(value))
                light = 0.299 * red + 0.587 * green + 0.114 * blue > 0.5
                ax.text(
                    column,
                    row,
                    f"{value:.2f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="black" if light else "white",
                )
    return ax


def embedding_scatter(
    points: Any,
    labels: Sequence[str] | None,
    groups: Sequence[Any] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    xlabel: str = "dimension 1",
    ylabel: str = "dimension 2",
) -> Axes:
    """Scatter 2-D points (e.g. embeddings after PCA) and write each one's label next to it.

    ``points`` has shape ``(n, 2)``; ``labels`` holds ``n`` strings (or is ``None`` for no
    text); ``groups`` (optional, ``n`` values) colours the points by group, with a legend.
    Name the axes with ``xlabel`` and ``ylabel`` (e.g. ``"PC 1"``). Raises ``ValueError``
    if the shapes do not match.
    """
    xy = _as_array(points, "points")
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(
            f"points must have shape (n, 2), got {xy.shape}; project higher-dimensional "
            "vectors to 2-D first (e.g. with PCA)."
        )
    for name, values in (("labels", labels), ("groups", groups)):
        if values is not None and len(values) != len(xy):
            raise ValueError(f"there are {len(xy)} points but {len(values)} {name}.")
    ax = _new_axes(ax)
    if groups is None:
        ax.scatter(xy[:, 0], xy[:, 1], color=PALETTE[0], s=30)
    else:
        names = list(dict.fromkeys(groups))  # in order of first appearance
        for index, name in enumerate(names):
            mask = np.array([g == name for g in groups])
            ax.scatter(
                xy[mask, 0], xy[mask, 1], s=30, label=str(name), color=PALETTE[index % len(PALETTE)]
            )
        ax.legend(title="group")
    if labels is not None:
        for (x, y), label in zip(xy, labels, strict=True):
            ax.annotate(str(label), (x, y), xytext=(4, 3), textcoords="offset points", fontsize=9)
    ax.set_title(title if title is not None else "Points in two dimensions")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return ax
